"""The pieces of ``pyvirt clone``: a new domain from a template or a shut-off domain, with its own identity.

pyvirtd runs a clone (:mod:`pyvirt.daemon.clones`, under the storage driver's busy marking); this module
holds what it is made of, none of it tied to a connection. The clone gets a new UUID and new MAC
addresses; its disks are volumes of the pool: qcow2 overlays whose backing file is the original disk
(``linked``: constant time, whatever the disk's size) or full, flattened qcow2 copies made with
:func:`pyvirt.image.api.convert`. A cloud-init NoCloud seed ISO (:mod:`pyvirt.guest.cloudinit`), also a
volume, is attached as a CD-ROM: a new instance-id, the hostname, a user with the SSH keys, eth0 on
DHCP and the user's own user-data. ``disk_size`` makes the first disk bigger (its virtual size); the
guest grows its root partition on first boot (cloud-init growpart, or the unit ``customize
--prepare-template`` installs).

Disk names in the pool: ``NEW.qcow2`` for the first disk, ``NEW-1.qcow2``... for the others, and
``NEW-seed.iso``. Linked clones are made from templates only by default: an overlay on a domain's own
disk breaks as soon as that domain writes its disk again, so a domain is copied in full unless
``linked`` is asked.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf.mac import random_mac
from pyvirt.errors import AlreadyExists, InvalidArgument, NotFound

if TYPE_CHECKING:
    from pyvirt.conf.domain import DiskConfig, Domain
    from pyvirt.guest.hardware import Hardware

DEFAULT_MEMORY = 1 << 30
MIN_MEMORY = 64 << 20
DEFAULT_USER = "cloud-user"
SEED_SUFFIX = "-seed.iso"

Interface = tuple[str, str, str]  # (type, network or bridge or "", MAC)


@dataclass(frozen=True)
class CloneOptions:
    """What ``pyvirt clone`` was asked for; None means: as the original (or the default)."""

    original: str
    name: str
    linked: bool | None = None  # None: linked from a template, full from a domain
    vcpus: int | None = None
    memory: int | None = None  # bytes
    disk_size: int | None = None  # bytes, the first disk's new virtual size
    network: str | None = None  # a network's name, "user" (QEMU user networking) or "none"
    hostname: str | None = None  # default: the clone's name
    ssh_keys: tuple[str, ...] = ()
    user: str = DEFAULT_USER
    user_data: str | None = None
    pool: str = "default"
    password: str | None = None  # for ``user`` (root without ssh_keys), given to cloud-init's chpasswd


@dataclass
class CloneResult:
    name: str
    uuid: str
    original: str
    kind: str  # "template" or "domain"
    linked: bool
    disks: list[str] = field(default_factory=list)  # volume names
    seed: str = ""
    macs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)  # what was done, in order, for the user

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Source:
    """One disk to clone: its path, format, virtual size, and the original's disk (domain clones)."""

    path: str
    format: str
    size: int
    disk: DiskConfig | None = None


def check_options(opts: CloneOptions) -> str:
    """Refuse bad options before anything is looked at; returns the clone's hostname."""
    from pyvirt.conf.names import validate_name
    from pyvirt.guest.customize import validate_hostname

    validate_name(opts.name)
    validate_name(opts.pool, "pool")
    if opts.vcpus is not None and opts.vcpus < 1:
        raise InvalidArgument("--vcpus must be at least 1")
    if opts.memory is not None and opts.memory < MIN_MEMORY:
        raise InvalidArgument("--memory must be at least 64M")
    if opts.network not in (None, "user", "none"):
        validate_name(opts.network, "network")
    return validate_hostname(opts.hostname or opts.name)


def disk_names(name: str, count: int) -> list[str]:
    return [f"{name}.qcow2" if i == 0 else f"{name}-{i}.qcow2" for i in range(count)]


def seed_name(name: str) -> str:
    return f"{name}{SEED_SUFFIX}"


def check_disk_size(opts: CloneOptions, sources: Sequence[Source]) -> None:
    if opts.disk_size is not None and opts.disk_size < sources[0].size:
        raise InvalidArgument(
            f"--disk-size {opts.disk_size} is smaller than the original disk ({sources[0].size} bytes): "
            "disks can only grow"
        )


def probe_source(path: str, disk: DiskConfig | None = None) -> Source:
    """A disk to clone, its format and virtual size read from the image."""
    from pyvirt.image.api import image_info

    data = image_info(path)
    return Source(path, str(data["format"]), int(data["virtual-size"]), disk)


def interfaces(opts: CloneOptions, base: Domain | None, networks: Iterable[str]) -> list[Interface]:
    """(type, network or "", new MAC) of each NIC of the clone; ``networks`` are the defined networks."""
    known = set(networks)
    if opts.network == "none":
        return []
    if opts.network == "user":
        wanted = [("user", "")]
    elif opts.network:
        wanted = [("network", opts.network)]
    elif base is not None:
        return [
            (i.type, i.source_network or i.source_bridge or "", random_mac()) for i in base.devices.interfaces
        ]
    else:
        wanted = [("network", "default")] if "default" in known else [("user", "")]
    if wanted[0][0] == "network" and wanted[0][1] not in known:
        raise NotFound(
            f"network {wanted[0][1]} not found: give an existing network (pyvirt net-list --all), "
            "--network user (QEMU user networking) or --network none"
        )
    return [(kind, source, random_mac()) for kind, source in wanted]


def _link_in(tmp: Path, dest: Path) -> None:
    """Publish a finished file under its name, never replacing one."""
    try:
        os.link(tmp, dest)
    except FileExistsError as err:
        raise AlreadyExists(f"volume {dest.name} exists already") from err


def _work_name(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"


def overlay(src: Source, dest: Path, size: int) -> None:
    """A qcow2 overlay at ``dest`` backed by ``src`` (a linked clone's disk), of virtual size ``size``."""
    from pyvirt.image.api import create_image

    tmp = _work_name(dest)
    try:
        create_image(str(tmp), "qcow2", size, backing=src.path, backing_fmt=src.format)
        os.chmod(tmp, 0o600)
        _link_in(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def full_copy(src: str, fmt: str, dest: Path, size: int) -> None:
    """A standalone qcow2 copy of ``src`` (backing chain flattened) at ``dest``, grown to ``size``;
    made under a hidden name and linked in when complete (never replacing a file)."""
    from pyvirt.image.api import convert, image_info, resize

    tmp = _work_name(dest)
    try:
        convert(src, str(tmp), "qcow2", src_fmt=fmt)
        if size > int(image_info(str(tmp))["virtual-size"]):
            resize(str(tmp), size, fmt="qcow2")
        os.chmod(tmp, 0o600)
        _link_in(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_seed(
    path: Path, opts: CloneOptions, uuid: str, hostname: str, mac: str | None, cloud_init: str = ""
) -> None:
    """The clone's cloud-init NoCloud seed ISO at ``path`` (never replacing a file), for the guest's
    cloud-init version ``cloud_init`` (a template's, when known)."""
    from pyvirt.guest.cloudinit import make_seed

    tmp = _work_name(path)
    try:
        make_seed(
            tmp,
            instance_id=f"iid-{uuid}",
            hostname=hostname,
            ssh_keys=opts.ssh_keys,
            user=opts.user if opts.ssh_keys else None,
            password=opts.password,
            mac=mac,
            user_data=opts.user_data,
            cloud_init=cloud_init,
        )
        _link_in(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _seed_disk(pool: str, seed: str, target: str) -> DiskConfig:
    from pyvirt.conf.domain import DiskConfig

    return DiskConfig(
        type="volume",
        device="cdrom",
        driver_type="raw",
        source_pool=pool,
        source_volume=seed,
        target_dev=target,
        target_bus="sata",
        readonly=True,
    )


def template_domain_xml(
    opts: CloneOptions,
    uuid: str,
    disks: Sequence[str],
    seed: str,
    nics: Sequence[Interface],
    *,
    domain_type: str,
    hardware: Hardware | None = None,
) -> str:
    """A headless machine booting its first disk, serial console, guest agent channel, virtio RNG; the
    firmware, buses and NIC model an appliance template asks for (``hardware``), virtio and BIOS else."""
    from pyvirt.conf.defaults import HOTPLUG_ROOT_PORTS
    from pyvirt.conf.xmlutil import serialize, x
    from pyvirt.guest.hardware import BUS_PREFIX, Hardware

    hw = hardware or Hardware()
    os_attrs = {"firmware": "efi"} if hw.firmware == "efi" else {}
    dom = x("domain", {"type": domain_type}).add(
        x("name", text=opts.name),
        x("uuid", text=uuid),
        x("memory", {"unit": "KiB"}, text=str((opts.memory or hw.memory or DEFAULT_MEMORY) // 1024)),
        x("vcpu", text=str(opts.vcpus or hw.vcpus or 1)),
        x("os", os_attrs).add(
            x("type", {"arch": "x86_64", "machine": hw.machine}, text="hvm"), x("boot", {"dev": "hd"})
        ),
        x("features").add(x("acpi"), x("apic")),
    )
    devices = x("devices")
    used: dict[str, int] = {}
    for index, vol in enumerate(disks):
        bus = hw.disk_bus(index)
        prefix = BUS_PREFIX[bus]
        letter = used.get(prefix, 0)
        used[prefix] = letter + 1
        devices.add(
            x("disk", {"type": "volume", "device": "disk"}).add(
                x("driver", {"name": "qemu", "type": "qcow2"}),
                x("source", {"pool": opts.pool, "volume": vol}),
                x("target", {"dev": f"{prefix}{chr(ord('a') + letter)}", "bus": bus}),
            )
        )
    if "scsi" in (hw.disk_bus(i) for i in range(len(disks))):
        devices.add(x("controller", {"type": "scsi", "model": "virtio-scsi"}))
    if hw.machine == "q35":
        devices.add(x("controller", {"type": "pci", "model": "pcie-root"}))
        for _ in range(HOTPLUG_ROOT_PORTS):
            devices.add(x("controller", {"type": "pci", "model": "pcie-root-port"}))
    devices.add(
        x("disk", {"type": "volume", "device": "cdrom"}).add(
            x("driver", {"name": "qemu", "type": "raw"}),
            x("source", {"pool": opts.pool, "volume": seed}),
            x("target", {"dev": f"sd{chr(ord('a') + used.get('sd', 0))}", "bus": "sata"}),
            x("readonly"),
        )
    )
    for kind, source, mac in nics:
        nic = x("interface", {"type": kind}).add(x("mac", {"address": mac}))
        if kind == "network":
            nic.add(x("source", {"network": source}))
        devices.add(nic.add(x("model", {"type": hw.nic_model})))
    devices.add(
        x("serial", {"type": "pty"}).add(x("target", {"port": 0})),
        x("console", {"type": "pty"}).add(x("target", {"type": "serial", "port": 0})),
        x("channel", {"type": "unix"}).add(x("target", {"type": "virtio", "name": "org.qemu.guest_agent.0"})),
        x("rng", {"model": "virtio"}).add(x("backend", {"model": "random"}, text="/dev/urandom")),
        x("memballoon", {"model": "virtio"}),
    )
    return serialize(dom.add(devices))


def is_seed(disk: DiskConfig) -> bool:
    """A clone's seed CD-ROM (replaced by the new clone's own)."""
    return disk.device == "cdrom" and (disk.source_volume or disk.source or "").endswith(SEED_SUFFIX)


def domain_clone_xml(
    base: Domain,
    opts: CloneOptions,
    uuid: str,
    disks: Sequence[str],
    seed: str,
    nics: Sequence[Interface],
) -> str:
    """The original's definition with a new identity, the new disks, the new seed and new MACs."""
    from pyvirt.conf.domain import InterfaceConfig
    from pyvirt.conf.domain_xml import format_domain

    dom = dataclasses.replace(base, name=opts.name, uuid=uuid)
    if opts.vcpus:
        dom.vcpus = opts.vcpus
    if opts.memory:
        dom.memory_kib = opts.memory // 1024
        dom.current_memory_kib = None
    if dom.os.nvram:
        dom.os = dataclasses.replace(dom.os, nvram=None)  # the daemon makes the clone its own
    new_disks: list[DiskConfig] = []
    names = iter(disks)
    for disk in base.devices.disks:
        if is_seed(disk):
            continue  # the original's seed: the clone gets its own
        if disk.device != "disk":
            new_disks.append(disk)
            continue
        new_disks.append(
            dataclasses.replace(
                disk,
                type="volume",
                source=None,
                source_pool=opts.pool,
                source_volume=next(names),
                driver_type="qcow2",
                alias=None,
            )
        )
    new_disks.append(_seed_disk(opts.pool, seed, _free_sd({d.target_dev for d in new_disks})))
    old = base.devices.interfaces
    new_nics: list[InterfaceConfig] = []
    for index, (kind, source, mac) in enumerate(nics):
        model = old[index] if index < len(old) else InterfaceConfig()
        new_nics.append(
            dataclasses.replace(
                model,
                type=kind,
                mac=mac,
                source_network=source if kind == "network" else None,
                source_bridge=source if kind == "bridge" else None,
                target_dev=None,
                alias=None,
                address=model.address if index < len(old) and model.type == kind else None,
            )
        )
    dom.devices = dataclasses.replace(base.devices, disks=new_disks, interfaces=new_nics)
    return format_domain(dom)


def _free_sd(used: set[str]) -> str:
    for letter in "abcdef":  # the six ports of QEMU's AHCI controller
        if f"sd{letter}" not in used:
            return f"sd{letter}"
    raise InvalidArgument("no free SATA target for the cloud-init seed")
