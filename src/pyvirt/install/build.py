"""The domain XML ``pyvirt install`` makes: virt-install 4.1's choices for the same options and OS.

:func:`plan` reads a request (option → suboptions, as :mod:`.syntax` split them) against an OS's facts
(:mod:`.osinfo`) and the host's (:class:`Host`), refusing every suboption it does not carry out by
name, and returns a :class:`Plan`: the final domain XML, the install-time XML when the install has a
phase of its own (cdrom, --location, cloud-init: boot from the media, ``on_reboot`` destroy), and the
storage and files to make. Pure: the daemon supplies the host's facts and does the work.

The defaults follow virt-install's: q35 with pcie-root and 14 root ports where the OS knows q35 (else
the ``pc`` machine, IDE and USB 2), virtio disks, NICs, balloon, rng and the guest-agent channel where
the OS has the drivers, sata cdroms, UEFI where the OS requires it, the OS's recommended vCPUs, memory
and disk size, localtime clocks and Hyper-V enlightenments for Windows, SPICE graphics with a virtio or
QXL video and ich9 sound. What pyvirt cannot run is left out and said in ``Plan.notes`` (SPICE's agent
channel and USB redirection; the SMBIOS serial that points cloud-init at its seed).
"""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass, field

from pyvirt.conf.defaults import HOTPLUG_ROOT_PORTS
from pyvirt.conf.mac import is_unicast_mac, random_mac
from pyvirt.conf.names import validate_name
from pyvirt.conf.units import parse_scaled
from pyvirt.conf.xmlutil import XNode, serialize, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.install import syntax
from pyvirt.install.osinfo import (
    QEMU_XHCI,
    VIRTIO_BALLOON,
    VIRTIO_DISK,
    VIRTIO_GPU,
    VIRTIO_NET,
    VIRTIO_RNG,
    VIRTIO_SCSI,
    VIRTIO_SERIAL,
    OSFacts,
)

OSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"
GIB = 1 << 30
MIB = 1 << 20

Sub = dict[str, str]


@dataclass(frozen=True)
class Pool:
    name: str
    path: str  # the pool's folder (dir pools); "" for pools without one


@dataclass
class Host:
    """What the daemon knows about the host, for the defaults that depend on it."""

    kvm: bool
    emulator: str
    pc_machine: str  # the canonical name the "pc" alias stands for (pc-i440fx-7.2)
    networks: list[str]
    pools: dict[str, Pool]
    default_pool_path: str  # where --disk size=N without a path goes
    domains: list[str]
    boot_dir: str  # where --location's kernel and initrd are copied
    uefi: bool  # firmware descriptors for UEFI on x86_64
    tpm_emulator: bool = False  # swtpm installed: a UEFI guest gets an emulated TPM, as virt-install's
    existing: dict[str, int] = field(default_factory=dict)  # path → size in bytes of files that exist
    formats: dict[str, str] = field(default_factory=dict)  # path → probed format of files that exist


@dataclass
class NewVolume:
    """A disk image to create: in ``pool`` (by name) or as a plain file at ``path``."""

    path: str
    pool: str | None
    name: str
    format: str
    capacity: int
    sparse: bool
    backing: str | None = None
    backing_format: str | None = None


@dataclass
class Plan:
    name: str
    uuid: str
    final: str
    install: str | None
    volumes: list[NewVolume]
    location: str | None = None  # tree to copy the kernel and initrd from
    kernel: str | None = None  # path inside the tree
    initrd: str | None = None
    kernel_dest: str | None = None
    initrd_dest: str | None = None
    seed: str | None = None  # cloud-init seed ISO to write
    cloud_init: dict[str, str] = field(default_factory=dict)
    root_password: str | None = None
    notes: list[str] = field(default_factory=list)
    transient: bool = False
    autostart: bool = False
    noreboot: bool = False
    macs: list[str] = field(default_factory=list)

    @property
    def documents(self) -> list[str]:
        return [self.install, self.final] if self.install else [self.final]


_TPM_KEYS = {
    "type": "type",
    "backend.type": "type",
    "model": "model",
    "version": "version",
    "backend.version": "version",
    "path": "path",
    "backend.device.path": "path",
    "backend.encryption.secret": "secret",
    "backend.persistent_state": "persistent_state",
    **{f"active_pcr_banks.{bank}": bank for bank in ("sha1", "sha256", "sha384", "sha512")},
}


def _tpms(subs: list[Sub], *, default: bool) -> list[XNode]:
    """``--tpm`` as virt-install reads it (``none``, ``emulator``, ``/dev/tpm0``, ``default``, or
    ``type=,model=,backend.version=,backend.encryption.secret=,active_pcr_banks.sha256=on``...);
    without one a UEFI guest gets an emulated TPM 2.0 on a host with swtpm, as virt-install's."""
    if any(sub.get("type") == "none" for sub in subs):
        return []
    if not subs:
        subs = [{"type": "emulator"}] if default else []
    out: list[XNode] = []
    for sub in subs:
        _refuse_unknown("tpm", sub, tuple(_TPM_KEYS))
        opts = {_TPM_KEYS[key]: value for key, value in sub.items()}
        kind = opts.get("type", "default")
        if kind.startswith("/"):
            kind, opts["path"] = "passthrough", kind
        if kind == "default":
            kind = "passthrough" if "path" in opts else "emulator"
        if kind not in ("emulator", "passthrough"):
            raise UnsupportedConfig(f"--tpm type={kind}: pyvirt runs emulator and passthrough TPMs")
        model = opts.get("model")
        if kind == "emulator" and model is None and "version" not in opts:
            model = "tpm-crb"  # QEMU has it on x86: virt-install's choice
        state = opts.get("persistent_state")
        persistent = None if state is None else "yes" if state in ("on", "yes", "true", "1") else "no"
        backend = x("backend", {"type": kind, "version": opts.get("version"), "persistent_state": persistent})
        if "path" in opts:
            backend.add(x("device", {"path": opts["path"]}))
        if "secret" in opts:
            backend.add(x("encryption", {"secret": opts["secret"]}))
        banks = [bank for bank in ("sha1", "sha256", "sha384", "sha512") if opts.get(bank) in ("on", "yes")]
        if banks:
            backend.add(x("active_pcr_banks").add(*(x(bank) for bank in banks)))
        out.append(x("tpm", {"model": model}).add(backend))
    return out


def _refuse_unknown(option: str, sub: Sub, allowed: tuple[str, ...]) -> None:
    for key in sub:
        if key not in allowed:
            raise UnsupportedConfig(
                f"--{option} {key}=: not supported by pyvirt install (it takes {', '.join(allowed)})"
            )


def _int(option: str, key: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgument(f"--{option} {key}={value}: not a whole number") from None
    if number < minimum:
        raise InvalidArgument(f"--{option} {key}={value}: must be at least {minimum}")
    return number


def _mib(option: str, key: str, value: str) -> int:
    """virt-install's memory sizes: MiB (a plain or decimal number)."""
    try:
        mib = float(value)
    except ValueError:
        raise InvalidArgument(f"--{option} {key}={value}: not a size in MiB") from None
    if mib <= 0:
        raise InvalidArgument(f"--{option} {key}={value}: must be positive")
    return int(mib * 1024)


def _gib(option: str, key: str, value: str) -> int:
    """--disk size=: GiB, decimals allowed."""
    try:
        gib = float(value)
    except ValueError:
        raise InvalidArgument(f"--{option} {key}={value}: not a size in GiB") from None
    if gib <= 0:
        raise InvalidArgument(f"--{option} {key}={value}: must be positive")
    return int(gib * GIB)


def _target_name(prefix: str, index: int) -> str:
    """vda, vdb, ... vdz, vdaa (virt-install's and libvirt's numbering)."""
    letters = ""
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return prefix + letters


_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "usb": "sd", "ide": "hd", "fdc": "fd"}
_MAXNODE = {"ide": 4, "fdc": 2}


def _generate_target(bus: str, used: list[str]) -> str:
    """virt-install's choice: the first name after all the bus's used ones, else the first free."""
    prefix = _PREFIX[bus]
    skip = sorted(t for t in used if t.startswith(prefix))
    first_free: str | None = None
    for index in range(_MAXNODE.get(bus, 1024)):
        name = _target_name(prefix, index)
        if name in skip:
            skip.remove(name)
            continue
        if not skip:
            return name
        first_free = first_free or name
    if first_free:
        return first_free
    raise InvalidArgument(f"--disk: no free target name on bus {bus}")


@dataclass
class _Disk:
    device: str
    bus: str
    source_type: str  # file | volume | block | none
    path: str | None
    pool: str | None = None
    vol: str | None = None
    format: str | None = None
    cache: str | None = None
    discard: str | None = None
    io: str | None = None
    readonly: bool = False
    boot_order: int | None = None
    target: str = ""
    install_media: bool = False  # the --cdrom/--location ISO, emptied in the final XML

    def node(self, with_media: bool = True) -> XNode:
        disk = x(
            "disk",
            {"type": "file" if self.source_type == "none" else self.source_type, "device": self.device},
        )
        if (self.path is not None and with_media) or self.source_type == "volume":
            disk.add(
                x(
                    "driver",
                    {
                        "name": "qemu",
                        "type": self.format,
                        "cache": self.cache,
                        "discard": self.discard,
                        "io": self.io,
                    },
                )
            )
            if self.source_type == "volume":
                disk.add(x("source", {"pool": self.pool, "volume": self.vol}))
            elif self.source_type == "block":
                disk.add(x("source", {"dev": self.path}))
            else:
                disk.add(x("source", {"file": self.path}))
        disk.add(x("target", {"dev": self.target, "bus": self.bus}))
        if self.readonly:
            disk.add(x("readonly"))
        if self.boot_order is not None:
            disk.add(x("boot", {"order": str(self.boot_order)}))
        return disk


DISK_KEYS = (
    "path", "size", "format", "bus", "pool", "vol", "backing_store", "cache", "device", "sparse",
    "readonly", "boot.order", "discard", "io", "target",
)  # fmt: skip


class _Builder:
    def __init__(self, req: dict[str, object], facts: OSFacts, host: Host) -> None:
        self.req = req
        self.os = facts
        self.host = host
        self.notes: list[str] = []
        self.volumes: list[NewVolume] = []
        self.arch = "x86_64"

    # -- helpers -------------------------------------------------------------------------------
    def sub(self, option: str) -> Sub | None:
        value = self.req.get(option.replace("-", "_"))
        return value if isinstance(value, dict) else None

    def subs(self, option: str) -> list[Sub]:
        value = self.req.get(option.replace("-", "_"))
        return list(value) if isinstance(value, list) else []

    def flag(self, option: str) -> bool:
        return bool(self.req.get(option.replace("-", "_")))

    def text(self, option: str) -> str | None:
        value = self.req.get(option.replace("-", "_"))
        return value if isinstance(value, str) else None


def plan(req: dict[str, object], facts: OSFacts, host: Host) -> Plan:
    """Read the request against the OS and the host; see the module docstring."""
    b = _Builder(req, facts, host)
    arch = b.text("arch") or "x86_64"
    if arch not in ("x86_64",):
        raise UnsupportedConfig(f"--arch {arch}: pyvirt install makes x86_64 guests only")
    virt_type = b.text("virt-type") or ("kvm" if host.kvm else "qemu")
    if virt_type not in ("kvm", "qemu"):
        raise UnsupportedConfig(f"--virt-type {virt_type}: pyvirt runs kvm and qemu (TCG) domains only")

    if b.sub("check"):
        raise UnsupportedConfig(
            f"--check {','.join(b.sub('check') or {})}: pyvirt install does not run virt-install's optional "
            "checks (path_in_use, disk_size, path_exists, mac_in_use) yet, so there is nothing to turn off"
        )

    # Name
    name = b.text("name")
    if not name:
        base = facts.short_id if not facts.generic else "generic"
        name, n = base, 1
        while name in host.domains:
            n += 1
            name = f"{base}-{n}"
    validate_name(name)
    if name in host.domains:
        raise InvalidArgument(f"--name {name}: a domain of that name exists already (pyvirt undefine {name})")
    uuid = str(uuidlib.uuid4())

    # Install method
    cdrom = b.text("cdrom")
    location = b.sub("location")
    import_ = b.flag("import_install")
    cloud_init = b.sub("cloud-init")
    boot = dict(b.sub("boot") or {})
    methods = [m for m, on in (("--cdrom", cdrom), ("--location", location), ("--import", import_)) if on]
    if len(methods) > 1:
        raise InvalidArgument(f"{' and '.join(methods)} are alternative install methods: give one")
    if not methods and not cloud_init and not boot:
        raise InvalidArgument(
            "An install method must be specified (--location URL, --cdrom CD/ISO, --import, "
            "--boot hd|cdrom|...)"
        )
    if b.text("extra-args") and not location and not boot.get("kernel"):
        raise InvalidArgument(
            "--extra-args: kernel arguments are only supported with --location or --boot kernel="
        )
    if b.subs("initrd-inject") and not location:
        raise InvalidArgument("--initrd-inject: only supported with --location")

    # Machine
    machine = b.text("machine")
    q35 = facts.supports_q35()
    if machine is None:
        machine = "q35" if q35 else host.pc_machine
    is_q35 = machine == "q35" or machine.startswith("pc-q35")

    # Memory
    mem = b.sub("memory") or {}
    _refuse_unknown("memory", mem, ("memory", "maxmemory", "currentMemory"))
    current_kib: int | None = None
    max_kib: int | None = None
    if "memory" in mem:
        current_kib = _mib("memory", "memory", mem["memory"])
    if "currentMemory" in mem:
        current_kib = _mib("memory", "currentMemory", mem["currentMemory"])
    if "maxmemory" in mem:
        max_kib = _mib("memory", "maxmemory", mem["maxmemory"])
    if current_kib is None and max_kib is None:
        ram = facts.resources.recommended_of("ram", arch)
        if not ram:
            raise InvalidArgument("--memory amount in MiB is required")
        current_kib = ram // 1024
    memory_kib = max_kib or current_kib
    assert memory_kib is not None
    current_kib = current_kib or memory_kib

    # vCPUs
    cpus = b.sub("vcpus") or {}
    _refuse_unknown("vcpus", cpus, ("vcpus", "maxvcpus", "sockets", "dies", "cores", "threads"))
    topo: dict[str, int] = {
        k: _int("vcpus", k, cpus[k], 1) for k in ("sockets", "dies", "cores", "threads") if k in cpus
    }
    vcpus = _int("vcpus", "vcpus", cpus["vcpus"], 1) if "vcpus" in cpus else None
    maxvcpus = _int("vcpus", "maxvcpus", cpus["maxvcpus"], 1) if "maxvcpus" in cpus else None
    if topo:
        total = 1
        for k in ("sockets", "dies", "cores", "threads"):
            total *= topo.get(k, 1)
        want = maxvcpus or vcpus or total
        for k in ("sockets", "cores", "threads"):
            if k not in topo:
                rest = 1
                for other in ("sockets", "dies", "cores", "threads"):
                    rest *= topo.get(other, 1)
                topo[k] = max(want // rest, 1)
        topo.setdefault("dies", 1)
        total = topo["sockets"] * topo["dies"] * topo["cores"] * topo["threads"]
        if total != want:
            raise InvalidArgument(
                f"--vcpus: the topology (sockets={topo['sockets']} * dies={topo['dies']} * "
                f"cores={topo['cores']} * threads={topo['threads']} == {total}) does not match {want} vCPUs"
            )
        maxvcpus = maxvcpus or total
    if vcpus is None and maxvcpus is None:
        vcpus = facts.resources.recommended_of("n-cpus", arch) or 1
    if maxvcpus is not None and vcpus is not None and vcpus > maxvcpus:
        raise InvalidArgument(f"--vcpus: {vcpus} vCPUs is more than maxvcpus={maxvcpus}")

    # CPU
    cpu_sub = b.sub("cpu") or {}
    _refuse_unknown("cpu", cpu_sub, ("model",))
    cpu_mode = cpu_sub.get("model")

    # Firmware
    uefi = boot.pop("uefi", None) is not None
    firmware_features: list[tuple[str, str]] = []
    for index in range(16):
        fname = boot.pop(f"firmware.feature{index}.name", None)
        fenabled = boot.pop(f"firmware.feature{index}.enabled", None)
        if fname is None and fenabled is None:
            continue
        if fname is None or fenabled is None:
            raise InvalidArgument(f"--boot firmware.feature{index}: give both .name= and .enabled=")
        firmware_features.append((fname, "yes" if syntax.boolean("boot", "enabled", fenabled) else "no"))
    kernel = boot.pop("kernel", None)
    initrd = boot.pop("initrd", None)
    kernel_args = boot.pop("kernel_args", None) or boot.pop("cmdline", None)
    bootmenu = boot.pop("menu", None)
    bootdevs = [dev for dev in boot if dev in ("hd", "cdrom", "network", "fd")]
    for dev in bootdevs:
        boot.pop(dev)
    if boot:
        raise UnsupportedConfig(
            f"--boot {next(iter(boot))}: not supported by pyvirt install (it takes uefi, hd, cdrom, network, "
            "fd, menu, kernel, initrd, kernel_args, firmware.featureN.name/.enabled)"
        )
    if (uefi or firmware_features) and not host.uefi:
        raise UnsupportedConfig("--boot uefi: no UEFI firmware for x86_64 on this host (Debian: ovmf)")
    use_uefi = uefi or bool(firmware_features) or (facts.requires_efi(arch) and not kernel and host.uefi)

    # Disks
    disks: list[_Disk] = []
    disk_subs = b.subs("disk")
    no_disk = len(disk_subs) == 1 and disk_subs[0] == {"path": "none"}
    if no_disk:
        disk_subs = []
    elif not disk_subs:
        storage = facts.resources.recommended_of("storage", arch)
        if storage and not import_:
            disk_subs = [{"size": str(storage // GIB)}]
        elif not import_ and not storage:
            raise InvalidArgument("--disk storage must be specified (override with --disk none)")
    used_names: set[str] = set()
    for index, sub in enumerate(disk_subs):
        disks.append(_disk(b, sub, name, index, used_names, is_q35))
    if import_ and not any(d.device == "disk" for d in disks) and not no_disk:
        raise InvalidArgument("--import: a --disk with the guest's existing image is required")
    if cdrom:
        if not os.path.isfile(cdrom) and not cdrom.startswith("/dev/"):
            raise InvalidArgument(f"--cdrom {cdrom}: no such file")
        media_disk = _Disk(
            "cdrom",
            "",
            "file" if not cdrom.startswith("/dev/") else "block",
            cdrom,
            format="raw",
            readonly=True,
            install_media=True,
        )
        # inserted before any other cdrom, so boot=cdrom picks it
        pos = next((i for i, d in enumerate(disks) if d.device == "cdrom"), len(disks))
        disks.insert(pos, media_disk)

    # Bus defaults, then targets in order
    supports_virtio_disk = facts.supports(VIRTIO_DISK)
    for disk in disks:
        if not disk.bus:
            if disk.device == "disk" and supports_virtio_disk:
                disk.bus = "virtio"
            elif disk.device == "floppy":
                disk.bus = "fdc"
            else:
                disk.bus = "sata" if is_q35 else "ide"
        if disk.bus not in _PREFIX:
            raise UnsupportedConfig(
                f"--disk bus={disk.bus}: pyvirt runs virtio, sata, scsi, usb, ide and fdc disks"
            )
        if disk.bus == "ide" and is_q35:
            raise UnsupportedConfig("--disk bus=ide: the q35 machine has no IDE bus (use sata)")
    for disk in disks:
        if not disk.target:
            disk.target = _generate_target(disk.bus, [d.target for d in disks if d.target])

    # Location
    plan_location: str | None = None
    kernel_dest = initrd_dest = None
    cmdline: str | None = None
    found_kernel = found_initrd = None
    if location:
        _refuse_unknown("location", location, ("location", "kernel", "initrd"))
        from pyvirt.install import media

        loc = location.get("location", "")
        found = media.find(loc, arch, location.get("kernel"), location.get("initrd"))
        plan_location = loc
        found_kernel, found_initrd = found.kernel, found.initrd
        tag = uuid.split("-")[0]
        kernel_dest = os.path.join(host.boot_dir, f"{name}-{tag}-{os.path.basename(found.kernel)}")
        initrd_dest = os.path.join(host.boot_dir, f"{name}-{tag}-{os.path.basename(found.initrd)}")
        extra = b.text("extra-args")
        cmdline = extra or None
        if os.path.isfile(loc):  # an ISO: attached as the install cdrom too
            media_disk = _Disk(
                "cdrom",
                "sata" if is_q35 else "ide",
                "file",
                loc,
                format="raw",
                readonly=True,
                install_media=True,
            )
            media_disk.target = _generate_target(media_disk.bus, [d.target for d in disks])
            disks.append(media_disk)
    inject = b.subs("initrd-inject")
    if inject:
        raise UnsupportedConfig("--initrd-inject: not supported by pyvirt install yet")

    # Networks
    nics = _networks(b, facts, is_q35)

    # Devices
    disk_nodes_final: list[XNode] = []
    disk_nodes_install: list[XNode] = []
    for disk in disks:
        disk_nodes_install.append(disk.node())
        keep = not disk.install_media or facts.windows
        disk_nodes_final.append(disk.node(with_media=keep))

    controllers: list[XNode] = []
    usb3 = facts.supports(QEMU_XHCI)
    ctrl_subs = b.subs("controller")
    for sub in ctrl_subs:
        controllers.append(_controller(sub))
    if not any(_attr(c, "type") == "usb" for c in controllers):
        if usb3:
            controllers.append(x("controller", {"type": "usb", "model": "qemu-xhci", "ports": "15"}))
        else:
            controllers.append(x("controller", {"type": "usb", "model": "ich9-ehci1"}))
            for n, port in ((1, "0"), (2, "2"), (3, "4")):
                controllers.append(
                    x("controller", {"type": "usb", "model": f"ich9-uhci{n}"}).add(
                        x("master", {"startport": port})
                    )
                )
    scsi = any(d.bus == "scsi" for d in disks)
    if scsi and not any(_attr(c, "type") == "scsi" for c in controllers) and facts.supports(VIRTIO_SCSI):
        controllers.append(x("controller", {"type": "scsi", "model": "virtio-scsi"}))
    if is_q35 and not any(_attr(c, "type") == "pci" for c in controllers):
        controllers.append(x("controller", {"type": "pci", "model": "pcie-root"}))
        for _ in range(HOTPLUG_ROOT_PORTS):
            controllers.append(x("controller", {"type": "pci", "model": "pcie-root-port"}))

    # Graphics
    gfx_subs = b.subs("graphics")
    graphics: XNode | None = None
    if not gfx_subs:
        gfx_subs = [{"type": "spice"}]
    if len(gfx_subs) > 1:
        raise UnsupportedConfig("--graphics: pyvirt install takes one display")
    gsub = dict(gfx_subs[0])
    _refuse_unknown("graphics", gsub, ("type", "listen", "password", "passwd", "port"))
    gtype = gsub.get("type", "spice")
    if gtype == "vnc":
        attrs = {
            "type": "vnc",
            "port": gsub.get("port", "-1"),
            "listen": gsub.get("listen"),
            "passwd": gsub.get("password") or gsub.get("passwd"),
        }
        graphics = x("graphics", attrs)
    elif gtype == "spice":
        attrs = {
            "type": "spice",
            "port": gsub.get("port", "-1"),
            "tlsPort": "-1",
            "autoport": "yes" if "port" not in gsub else None,
            "listen": gsub.get("listen"),
            "passwd": gsub.get("password") or gsub.get("passwd"),
        }
        graphics = x("graphics", attrs).add(x("image", {"compression": "off"}))
    elif gtype != "none":
        raise UnsupportedConfig(f"--graphics {gtype}: pyvirt runs vnc, spice or none")
    spice = gtype == "spice"

    # Consoles, serials, channels
    serials = [_chardev("serial", s) for s in b.subs("serial")]
    consoles = [_chardev("console", s) for s in b.subs("console")]
    channels = [_chardev("channel", s) for s in b.subs("channel")]
    if not serials and not consoles:
        consoles.append(x("console", {"type": "pty"}))
    if not channels and facts.supports(VIRTIO_SERIAL):
        channels.append(
            x("channel", {"type": "unix"}).add(
                x("source", {"mode": "bind"}),
                x("target", {"type": "virtio", "name": "org.qemu.guest_agent.0"}),
            )
        )
    redirdevs: list[XNode] = []
    if spice:  # the agent channel, and two USB redirections (not all four USB 2 ports: virt-install's choice)
        if not any(_attr(c, "type") == "spicevmc" for c in channels):
            agent = x("target", {"type": "virtio", "name": "com.redhat.spice.0"})
            channels.append(x("channel", {"type": "spicevmc"}).add(agent))
        redirdevs = [x("redirdev", {"bus": "usb", "type": "spicevmc"}) for _ in range(2)]

    inputs: list[XNode] = []
    if graphics is not None:
        inputs.append(x("input", {"type": "tablet", "bus": "usb"}))

    video_subs = b.subs("video")
    videos: list[XNode] = []
    for vsub in video_subs:
        _refuse_unknown("video", vsub, ("model", "model.type"))
        model = vsub.get("model") or vsub.get("model.type")
        if model != "none":
            videos.append(x("video").add(x("model", {"type": model})))
    if not video_subs and graphics is not None:
        model = (
            "virtio" if facts.supports(VIRTIO_GPU) else ("qxl" if spice else "bochs" if use_uefi else "vga")
        )
        videos.append(x("video").add(x("model", {"type": model})))

    sounds = [x("sound", {"model": "ich9"})] if spice else []

    watchdogs = []
    for wsub in b.subs("watchdog"):
        _refuse_unknown("watchdog", wsub, ("model", "action"))
        watchdogs.append(
            x("watchdog", {"model": wsub.get("model", "i6300esb"), "action": wsub.get("action", "reset")})
        )

    balloon = x("memballoon", {"model": "virtio"}) if facts.supports(VIRTIO_BALLOON) else None

    rngs: list[XNode] = []
    rng_subs = b.subs("rng")
    for rsub in rng_subs:
        _refuse_unknown("rng", rsub, ("type", "device", "backend"))
        rtype = rsub.get("type", "")
        if rtype == "none":
            continue
        dev = (
            rsub.get("device") or rsub.get("backend") or (rtype if rtype.startswith("/") else "/dev/urandom")
        )
        if rtype not in ("", "random") and not rtype.startswith("/"):
            raise UnsupportedConfig(f"--rng {rtype}: pyvirt runs random (a host device) rngs only")
        rngs.append(x("rng", {"model": "virtio"}).add(x("backend", {"model": "random"}, text=dev)))
    if not rng_subs and facts.supports(VIRTIO_RNG):
        rngs.append(x("rng", {"model": "virtio"}).add(x("backend", {"model": "random"}, text="/dev/urandom")))

    tpms = _tpms(b.subs("tpm"), default=use_uefi and host.tpm_emulator)

    # Cloud-init
    seed_path: str | None = None
    ci: dict[str, str] = {}
    if cloud_init is not None:
        _refuse_unknown(
            "cloud-init",
            cloud_init,
            (
                "root-password-generate",
                "root-password-file",
                "root-ssh-key",
                "clouduser-ssh-key",
                "user-data",
                "meta-data",
                "network-config",
                "disable",
            ),
        )
        ci = dict(cloud_init)
        seed_path = os.path.join(host.boot_dir, f"{name}-{uuid.split('-')[0]}-cloudinit.iso")
        seed_disk = _Disk(
            "cdrom",
            "sata" if is_q35 else "ide",
            "file",
            seed_path,
            format="raw",
            readonly=True,
            install_media=True,
        )
        seed_disk.target = _generate_target(seed_disk.bus, [d.target for d in disks])
        disk_nodes_install.append(seed_disk.node())
        disk_nodes_final.append(seed_disk.node(with_media=False))
        b.notes.append(
            "the SMBIOS serial ds=nocloud is not set (pyvirt has no <sysinfo> yet): cloud-init finds the "
            "seed by its cidata label"
        )

    def devices_for(disk_nodes: list[XNode]) -> XNode:
        dv = x("devices").add(x("emulator", text=host.emulator))
        seed_nodes = disk_nodes[len(disks) :]
        dv.add(*disk_nodes[: len(disks)])
        dv.add(
            *controllers,
            *nics,
            *serials,
            *consoles,
            *channels,
            *inputs,
            *tpms,
            graphics,
            *sounds,
            *videos,
            *redirdevs,
            *watchdogs,
            balloon,
            *rngs,
        )
        dv.add(*seed_nodes)
        return dv

    def domain(install: bool) -> XNode:
        root = x("domain", {"type": virt_type})
        root.add(x("name", text=name), x("uuid", text=uuid))
        if facts.full_id:
            root.add(
                x("metadata").add(
                    x("libosinfo:libosinfo", {"xmlns:libosinfo": OSINFO_NS}).add(
                        x("libosinfo:os", {"id": facts.full_id})
                    )
                )
            )
        root.add(x("memory", text=str(memory_kib)), x("currentMemory", text=str(current_kib)))
        if maxvcpus is not None and vcpus is not None and vcpus != maxvcpus:
            root.add(x("vcpu", {"current": str(vcpus)}, text=str(maxvcpus)))
        else:
            root.add(x("vcpu", text=str(maxvcpus or vcpus)))
        os_node = x("os", {"firmware": "efi" if use_uefi else None})
        os_node.add(x("type", {"arch": arch, "machine": machine}, text="hvm"))
        if firmware_features:
            fw = x("firmware")
            for fname, enabled in firmware_features:
                fw.add(x("feature", {"enabled": enabled, "name": fname}))
            os_node.add(fw)
        if install and plan_location:
            os_node.add(x("kernel", text=kernel_dest), x("initrd", text=initrd_dest))
            if cmdline:
                os_node.add(x("cmdline", text=cmdline))
        elif kernel:
            os_node.add(x("kernel", text=kernel))
            if initrd:
                os_node.add(x("initrd", text=initrd))
            if kernel_args:
                os_node.add(x("cmdline", text=kernel_args))
        else:
            has_boot_order = any(d.boot_order for d in disks)
            if not has_boot_order:
                for dev in _boot_devices(install, bootdevs, cdrom, location, disks):
                    os_node.add(x("boot", {"dev": dev}))
        if bootmenu is not None:
            os_node.add(
                x("bootmenu", {"enable": "yes" if syntax.boolean("boot", "menu", bootmenu) else "no"})
            )
        root.add(os_node)
        feats = x("features").add(x("acpi"), x("apic"))
        if facts.windows:
            feats.add(
                x("hyperv").add(
                    x("relaxed", {"state": "on"}),
                    x("vapic", {"state": "on"}),
                    x("spinlocks", {"state": "on", "retries": "8191"}),
                )
            )
        if spice:
            feats.add(x("vmport", {"state": "off"}))
        root.add(feats)
        if cpu_mode or topo or virt_type == "kvm":
            cpu = _cpu(cpu_mode, virt_type)
            if topo:
                cpu.add(x("topology", {k: str(topo[k]) for k in ("sockets", "dies", "cores", "threads")}))
            root.add(cpu)
        clock = x("clock", {"offset": facts.clock})
        clock.add(
            x("timer", {"name": "rtc", "tickpolicy": "catchup"}),
            x("timer", {"name": "pit", "tickpolicy": "delay"}),
            x("timer", {"name": "hpet", "present": "no"}),
        )
        if facts.windows:
            clock.add(x("timer", {"name": "hypervclock", "present": "yes"}))
        root.add(clock)
        root.add(x("pm").add(x("suspend-to-mem", {"enabled": "no"}), x("suspend-to-disk", {"enabled": "no"})))
        root.add(devices_for(disk_nodes_install if install else disk_nodes_final))
        if install:
            root.add(x("on_reboot", text="destroy"))
        return root

    two_phase = bool(cdrom or location or cloud_init)
    final = serialize(domain(False))
    install_xml = serialize(domain(True)) if two_phase else None
    result = Plan(
        name=name,
        uuid=uuid,
        final=final,
        install=install_xml,
        volumes=b.volumes,
        location=plan_location,
        kernel=found_kernel,
        initrd=found_initrd,
        kernel_dest=kernel_dest,
        initrd_dest=initrd_dest,
        seed=seed_path,
        cloud_init=ci,
        notes=b.notes,
        transient=b.flag("transient"),
        autostart=b.flag("autostart"),
        noreboot=b.flag("noreboot"),
        macs=_macs(nics),
    )
    return result


def _attr(node: XNode, name: str) -> str | None:
    return next((value for key, value in node.attrs if key == name), None)


def _macs(nics: list[XNode]) -> list[str]:
    return [_attr(child, "address") or "" for nic in nics for child in nic.children if child.tag == "mac"]


def _boot_devices(
    install: bool, bootdevs: list[str], cdrom: str | None, location: Sub | None, disks: list[_Disk]
) -> list[str]:
    has_disk = any(d.device == "disk" for d in disks)
    if bootdevs:
        return bootdevs
    if install:  # the install phase boots the media: the cdrom first, else no <boot> at all
        return (["cdrom", "hd"] if has_disk else ["cdrom"]) if cdrom else []
    if disks and disks[0].device == "cdrom" and not has_disk:
        return ["cdrom"]
    return ["hd"]


def _cpu(mode: str | None, virt_type: str) -> XNode:
    if mode is None:
        return x("cpu", {"mode": "host-passthrough"}) if virt_type == "kvm" else x("cpu")
    if mode in ("host-passthrough", "host-model", "maximum"):
        return x("cpu", {"mode": mode})
    if mode == "host":
        return x("cpu", {"mode": "host-model"})
    return x("cpu", {"mode": "custom", "match": "exact"}).add(x("model", text=mode))


def _disk(b: _Builder, sub: Sub, name: str, index: int, used: set[str], is_q35: bool) -> _Disk:
    _refuse_unknown("disk", sub, DISK_KEYS)
    host = b.host
    device = sub.get("device", "disk")
    if device not in ("disk", "cdrom", "floppy"):
        raise UnsupportedConfig(f"--disk device={device}: pyvirt runs disk, cdrom and floppy devices")
    bus = sub.get("bus", "")
    readonly = syntax.boolean("disk", "readonly", sub["readonly"]) if "readonly" in sub else device == "cdrom"
    sparse = syntax.boolean("disk", "sparse", sub["sparse"]) if "sparse" in sub else True
    cache = sub.get("cache")
    if cache and cache not in ("none", "writeback", "writethrough", "directsync", "unsafe"):
        raise InvalidArgument(f"--disk cache={cache}: none, writeback, writethrough, directsync or unsafe")
    boot_order = _int("disk", "boot.order", sub["boot.order"], 1) if "boot.order" in sub else None
    size = _gib("disk", "size", sub["size"]) if "size" in sub else None
    fmt = sub.get("format")
    if fmt and fmt not in ("raw", "qcow2"):
        raise UnsupportedConfig(f"--disk format={fmt}: pyvirt runs raw and qcow2 disks")
    path = sub.get("path")
    pool = sub.get("pool")
    vol = sub.get("vol")
    backing = sub.get("backing_store")
    disk = _Disk(device, bus, "file", path, readonly=readonly, cache=cache, boot_order=boot_order,
                 discard=sub.get("discard"), io=sub.get("io"), target=sub.get("target", ""))  # fmt: skip
    if vol:
        if "/" not in vol:
            raise InvalidArgument(f"--disk vol={vol}: give it as POOL/VOLUME")
        pool_name, vol_name = vol.split("/", 1)
        if pool_name not in host.pools:
            raise InvalidArgument(f"--disk vol={vol}: no storage pool {pool_name}")
        folder = host.pools[pool_name].path
        full = os.path.join(folder, vol_name)
        if full not in host.existing:
            raise InvalidArgument(f"--disk vol={vol}: no volume {vol_name} in pool {pool_name}")
        disk.path = full
        disk.format = host.formats.get(full, "raw")
        return disk
    if path is None or pool is not None:
        if size is None and device == "disk":
            raise InvalidArgument("--disk: a new disk needs size= (GiB), or give path= of an existing image")
        pool_name = pool or "default"
        if pool is not None and pool not in host.pools:
            raise InvalidArgument(f"--disk pool={pool}: no storage pool of that name")
        folder = host.pools[pool_name].path if pool_name in host.pools else host.default_pool_path
        fmt = fmt or "qcow2"
        vol_name = f"{name}.{fmt}"
        n = 0
        while os.path.join(folder, vol_name) in host.existing or vol_name in used:
            n += 1
            vol_name = f"{name}-{n}.{fmt}"
        used.add(vol_name)
        disk.path = os.path.join(folder, vol_name)
    if disk.path is None:
        raise InvalidArgument("--disk: no path")
    if device == "cdrom" and not os.path.exists(disk.path) and size is None:
        raise InvalidArgument(f"--disk {disk.path}: no such file")
    exists = disk.path in host.existing or (device != "disk" and os.path.exists(disk.path))
    if disk.path.startswith("/dev/"):
        disk.source_type = "block"
        disk.format = fmt or "raw"
        disk.discard = disk.discard or "unmap"
        disk.cache = disk.cache or "none"
        disk.io = disk.io or "native"
        return disk
    if exists:
        probed = host.formats.get(disk.path, "raw")
        if probed == "appliance":
            raise UnsupportedConfig(
                f"--disk {disk.path}: an OVA/OVF appliance, not a disk image (qcow2, raw, vmdk, vdi): "
                f"give it as --import --disk {disk.path} (its disks converted, its machine mapped)"
            )
        if fmt and fmt != probed:
            raise InvalidArgument(f"--disk {disk.path},format={fmt}: the image exists and is {probed}")
        if size is not None and "check_disk_size" not in b.req and host.existing.get(disk.path, 0) != size:
            actual = host.existing.get(disk.path, 0)
            raise InvalidArgument(
                f"--disk {disk.path},size={sub['size']}: the image exists and its size is "
                f"{actual / GIB:g} GiB, "
                f"not {size / GIB:g} GiB (drop size= to use it as it is)"
            )
        if backing:
            raise InvalidArgument(f"--disk {disk.path},backing_store=: the image exists already")
        disk.format = probed
        return disk
    if size is None:
        raise InvalidArgument(f"--disk {disk.path}: no such file; give size= (GiB) to create it")
    if os.path.dirname(disk.path) and not os.path.isdir(os.path.dirname(disk.path)):
        raise InvalidArgument(f"--disk {disk.path}: the folder {os.path.dirname(disk.path)} does not exist")
    fmt = fmt or ("qcow2" if disk.path.endswith(".qcow2") or pool is not None or path is None else "raw")
    disk.format = fmt
    pool_for = next(
        (p.name for p in host.pools.values() if p.path and os.path.dirname(disk.path) == p.path.rstrip("/")),
        None,
    )
    b.volumes.append(
        NewVolume(
            disk.path,
            pool_for,
            os.path.basename(disk.path),
            fmt,
            size,
            sparse,
            backing,
            host.formats.get(backing) if backing else None,
        )
    )
    if sparse and device == "disk":
        disk.discard = disk.discard or "unmap"
    return disk


def _networks(b: _Builder, facts: OSFacts, is_q35: bool) -> list[XNode]:
    subs = b.subs("network")
    if not subs:
        subs = [{"network": "default"} if "default" in b.host.networks else {"type": "user"}]
    nics: list[XNode] = []
    taken: set[str] = set()
    for sub in subs:
        sub = dict(sub)
        first = sub.pop("type", None)
        if first is not None:
            if ":" in first:
                kind, value = first.split(":", 1)
                sub.setdefault("network" if kind == "network" else "bridge", value)
                first = kind
            elif first not in ("network", "bridge", "user", "none", "default"):
                raise UnsupportedConfig(
                    f"--network {first}: pyvirt runs network, bridge and user NICs (or none)"
                )
        if first == "none":
            if len(subs) > 1:
                raise InvalidArgument("--network none: given with other --network options")
            return []
        if first == "default":
            first = "network"
            sub.setdefault("network", "default")
        _refuse_unknown("network", sub, ("network", "bridge", "model", "model.type", "mac", "mac.address"))
        model = sub.get("model") or sub.get("model.type")
        mac = sub.get("mac") or sub.get("mac.address")
        if "network" in sub:
            kind, source = "network", {"network": sub["network"]}
            if sub["network"] not in b.host.networks:
                raise InvalidArgument(f"--network network={sub['network']}: no such network")
        elif "bridge" in sub:
            kind, source = "bridge", {"bridge": sub["bridge"]}
        elif first == "user":
            kind, source = "user", None
        else:
            raise InvalidArgument("--network: give network=NAME, bridge=NAME, user or none")
        if mac is None or mac == "RANDOM":
            mac = random_mac(taken)
        elif not is_unicast_mac(mac):
            raise InvalidArgument(f"--network mac={mac}: not a unicast MAC address")
        taken.add(mac)
        if model is None:
            if facts.supports(VIRTIO_NET):
                model = "virtio"
            elif is_q35:
                model = "e1000e"
            else:
                model = next((m for m in ("e1000", "rtl8139") if m in facts.net_models), "e1000")
        if model not in ("virtio", "e1000", "e1000e", "rtl8139"):
            raise UnsupportedConfig(
                f"--network model={model}: pyvirt runs virtio, e1000, e1000e and rtl8139 NICs"
            )
        nic = x("interface", {"type": kind})
        if source:
            nic.add(x("source", source))
        nic.add(x("mac", {"address": mac}), x("model", {"type": model}))
        nics.append(nic)
    return nics


def _chardev(kind: str, sub: Sub) -> XNode:
    sub = dict(sub)
    ctype = sub.pop("type", "pty")
    allowed = ("path", "mode", "target.type", "target_type", "name", "target.name", "target.port")
    _refuse_unknown(kind, sub, allowed)
    if kind == "channel" and ctype == "spicevmc":
        name = sub.get("name") or sub.get("target.name") or "com.redhat.spice.0"
        return x("channel", {"type": "spicevmc"}).add(x("target", {"type": "virtio", "name": name}))
    if ctype not in ("pty", "unix", "file", "null"):
        raise UnsupportedConfig(f"--{kind} {ctype}: pyvirt runs pty, unix, file and null character devices")
    node = x(kind, {"type": ctype})
    if ctype in ("unix", "file"):
        attrs: dict[str, str | None] = {"path": sub.get("path")}
        if ctype == "unix":
            attrs["mode"] = sub.get("mode", "bind")
        node.add(x("source", attrs))
    target_type = sub.get("target.type") or sub.get("target_type")
    target_name = sub.get("name") or sub.get("target.name")
    if kind == "channel":
        node.add(x("target", {"type": target_type or "virtio", "name": target_name}))
    elif target_type or "target.port" in sub:
        node.add(x("target", {"type": target_type, "port": sub.get("target.port")}))
    return node


def _controller(sub: Sub) -> XNode:
    sub = dict(sub)
    _refuse_unknown("controller", sub, ("type", "model", "index", "ports"))
    ctype = sub.get("type")
    if ctype == "usb3":
        return x("controller", {"type": "usb", "model": "qemu-xhci", "ports": "15"})
    if ctype == "usb2":
        raise UnsupportedConfig("--controller usb2: give type=usb,model=... instead")
    if ctype not in ("usb", "scsi", "sata", "virtio-serial", "pci"):
        raise UnsupportedConfig(
            f"--controller type={ctype}: pyvirt makes usb, scsi, sata, virtio-serial and pci controllers"
        )
    return x(
        "controller",
        {"type": ctype, "index": sub.get("index"), "model": sub.get("model"), "ports": sub.get("ports")},
    )


def sizes_text(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size // MIB} MiB"


__all__ = ["Host", "NewVolume", "Plan", "Pool", "parse_scaled", "plan"]
