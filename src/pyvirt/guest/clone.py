"""``pyvirt clone``: a new domain from a template or from a shut-off domain, with its own identity.

The clone gets a new UUID and new MAC addresses; its disks are volumes of the pool: qcow2 overlays
whose backing file is the original disk (``linked``: constant time, whatever the disk's size) or
full, flattened qcow2 copies made with :func:`pyvirt.image.api.convert`. A cloud-init NoCloud seed ISO
(:mod:`pyvirt.guest.cloudinit`), also a volume, is attached as a CD-ROM: a new instance-id, the
hostname, a user with the SSH keys, eth0 on DHCP and the user's own user-data. ``disk_size`` makes
the first disk bigger (its virtual size); the guest grows its root partition on first boot
(cloud-init growpart, or the unit ``customize --prepare-template`` installs).

Disk names in the pool: ``NEW.qcow2`` for the first disk, ``NEW-1.qcow2``... for the others, and
``NEW-seed.iso``. Everything is checked before anything is made (existing domain or volume names
give AlreadyExists), and what was made is removed again if a later step fails.

Linked clones are made from templates only by default: an overlay on a domain's own disk breaks as
soon as that domain writes its disk again, so a domain is copied in full unless ``linked`` is asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import secrets
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf.mac import random_mac
from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.client.api import Connection
    from pyvirt.conf.domain import Domain
    from pyvirt.guest.template import Template

DEFAULT_MEMORY = 1 << 30
DEFAULT_USER = "cloud-user"
SEED_SUFFIX = "-seed.iso"


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

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Source:
    """One disk to clone: its path, format, virtual size, and where it goes in the new domain."""

    path: str
    format: str
    size: int
    disk: Any = None  # the original's DiskConfig (domain clones)


def clone(conn: Connection, opts: CloneOptions, *, say: Callable[[str], None] | None = None) -> CloneResult:
    """Make domain ``opts.name`` from template or domain ``opts.original``; see the module doc."""
    from pyvirt.conf.names import validate_name
    from pyvirt.guest.customize import validate_hostname
    from pyvirt.guest.template import store_for

    started = time.monotonic()
    validate_name(opts.name)
    hostname = validate_hostname(opts.hostname or opts.name)
    if opts.vcpus is not None and opts.vcpus < 1:
        raise InvalidArgument("--vcpus must be at least 1")
    if opts.memory is not None and opts.memory < (64 << 20):
        raise InvalidArgument("--memory must be at least 64M")
    store = store_for(conn, opts.pool)
    if any(dom["name"] == opts.name for dom in conn.list_domains()):
        raise AlreadyExists(
            f"domain {opts.name} exists already: choose another --name, or undefine it first "
            f"(pyvirt undefine --remove-all-storage {opts.name})"
        )

    template: Template | None = store.get(opts.original) if store.exists(opts.original) else None
    base: Domain | None = None
    if template is not None:
        linked = True if opts.linked is None else opts.linked
        sources = [_Source(template.path, "qcow2", template.virtual_size)]
    else:
        base, sources = _domain_sources(conn, opts.original)
        linked = False if opts.linked is None else opts.linked
    if opts.disk_size is not None and opts.disk_size < sources[0].size:
        raise InvalidArgument(
            f"--disk-size {opts.disk_size} is smaller than the original disk ({sources[0].size} bytes): "
            "disks can only grow"
        )

    folder = store.folder
    names = [f"{opts.name}.qcow2" if i == 0 else f"{opts.name}-{i}.qcow2" for i in range(len(sources))]
    seed_name = f"{opts.name}{SEED_SUFFIX}"
    if os.path.lexists(folder / seed_name) and not _seed_in_use(conn, folder / seed_name):
        # undefine --remove-all-storage keeps CD-ROMs: a seed no domain uses is a leftover of ours.
        if say:
            say(f"Replacing {seed_name}, left by a domain of that name that is gone")
        (folder / seed_name).unlink()
    for vol in [*names, seed_name]:
        if os.path.lexists(folder / vol):
            raise AlreadyExists(
                f"volume {vol} exists already in pool {opts.pool}: nothing was created; "
                f"choose another --name or delete the volume (pyvirt vol-delete {vol} --pool {opts.pool})"
            )

    uuid = str(uuidlib.uuid4())
    interfaces = _interfaces(conn, opts, base)
    macs = [mac for _, _, mac in interfaces]
    pool = conn.pool(opts.pool)
    with Revert() as undo:
        for index, (src, vol) in enumerate(zip(sources, names, strict=True)):
            size = max(src.size, opts.disk_size or 0) if index == 0 else src.size
            if say:
                how = "overlay on" if linked else "full copy of"
                say(f"Disk {vol}: {how} {src.path}")
            if linked:
                pool.create_volume(vol, size, fmt="qcow2", backing=src.path, backing_fmt=src.format)
                undo.add(pool.volume(vol).delete)
            else:
                undo.add(functools.partial((folder / vol).unlink, missing_ok=True))
                full_copy(src.path, src.format, folder / vol, size)
        undo.add(lambda: (folder / seed_name).unlink(missing_ok=True))
        _write_seed(folder / seed_name, opts, uuid, hostname, macs[0] if macs else None)
        if base is None:
            xml = template_domain_xml(opts, uuid, names, seed_name, interfaces)
        else:
            xml = domain_clone_xml(base, opts, uuid, names, seed_name, interfaces)
        conn.define_xml(xml)
        undo.success()
    return CloneResult(
        name=opts.name,
        uuid=uuid,
        original=opts.original,
        kind="template" if template is not None else "domain",
        linked=linked,
        disks=names,
        seed=seed_name,
        macs=macs,
        seconds=round(time.monotonic() - started, 3),
    )


def _seed_in_use(conn: Connection, seed: Path) -> bool:
    from pyvirt.guest.template import disk_paths

    real = os.path.realpath(seed)
    for dom in conn.list_domains():
        with contextlib.suppress(NotFound):
            paths = disk_paths(conn, conn.domain(str(dom["name"])).xml(inactive=True))
            if any(os.path.realpath(p) == real for p in paths):
                return True
    return False


def _domain_sources(conn: Connection, name: str) -> tuple[Domain, list[_Source]]:
    """The parsed inactive definition of domain ``name`` and its disks; refused unless shut off."""
    from pyvirt.conf.domain_xml import parse_domain
    from pyvirt.image.api import image_info

    dom = conn.domain(name)
    try:
        info = dom.info()
    except NotFound as err:
        raise NotFound(
            f"no template or domain named {name} (see pyvirt template list and pyvirt list --all)"
        ) from err
    if info.get("state") != "shut off":
        raise InvalidState(
            f"domain {name} is {info.get('state')}: a domain is cloned only while shut off, so that its "
            f"disks are consistent; shut it down first (pyvirt shutdown {name})"
        )
    base = parse_domain(dom.xml(inactive=True))
    sources = []
    for disk in base.devices.disks:
        if disk.device != "disk":
            continue
        path = disk.source
        if disk.type == "volume" and disk.source_pool and disk.source_volume:
            path = conn.pool(disk.source_pool).volume(disk.source_volume).path()
        if not path:
            raise InvalidArgument(f"domain {name}: disk {disk.target_dev} has no source to clone")
        data = image_info(path)
        sources.append(_Source(path, str(data["format"]), int(data["virtual-size"]), disk))
    if not sources:
        raise InvalidArgument(f"domain {name} has no disk to clone")
    return base, sources


def _interfaces(conn: Connection, opts: CloneOptions, base: Domain | None) -> list[tuple[str, str, str]]:
    """(type, network or "", new MAC) of each NIC of the clone."""
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
        names = {net["name"] for net in conn.list_networks()}
        wanted = [("network", "default")] if "default" in names else [("user", "")]
    if wanted[0][0] == "network":
        known = {net["name"] for net in conn.list_networks()}
        if wanted[0][1] not in known:
            raise NotFound(
                f"network {wanted[0][1]} not found: give an existing network (pyvirt net-list --all), "
                "--network user (QEMU user networking) or --network none"
            )
    return [(kind, source, random_mac()) for kind, source in wanted]


def full_copy(src: str, fmt: str, dest: Path, size: int) -> None:
    """A standalone qcow2 copy of ``src`` (backing chain flattened) at ``dest``, grown to ``size``;
    made under a hidden name and linked in when complete (never replacing a file)."""
    from pyvirt.image.api import convert, resize

    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"
    try:
        convert(src, str(tmp), "qcow2", src_fmt=fmt)
        from pyvirt.image.api import image_info

        if size > int(image_info(str(tmp))["virtual-size"]):
            resize(str(tmp), size, fmt="qcow2")
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, dest)
        except FileExistsError as err:
            raise AlreadyExists(f"volume {dest.name} exists already") from err
    finally:
        tmp.unlink(missing_ok=True)


def _write_seed(path: Path, opts: CloneOptions, uuid: str, hostname: str, mac: str | None) -> None:
    from pyvirt.guest.cloudinit import make_seed

    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        make_seed(
            tmp,
            instance_id=f"iid-{uuid}",
            hostname=hostname,
            ssh_keys=opts.ssh_keys,
            user=opts.user if opts.ssh_keys else None,
            mac=mac,
            user_data=opts.user_data,
        )
        try:
            os.link(tmp, path)
        except FileExistsError as err:
            raise AlreadyExists(f"volume {path.name} exists already") from err
    finally:
        tmp.unlink(missing_ok=True)


def _domain_type() -> str:
    from pyvirt.qemu.kvmprobe import kvm_usable

    return "kvm" if kvm_usable()[0] else "qemu"


def template_domain_xml(
    opts: CloneOptions,
    uuid: str,
    disks: Sequence[str],
    seed: str,
    interfaces: Sequence[tuple[str, str, str]],
    *,
    domain_type: str | None = None,
) -> str:
    """A headless BIOS machine booting its first disk, serial console, guest agent channel, virtio RNG."""
    dom = ET.Element("domain", type=domain_type or _domain_type())
    ET.SubElement(dom, "name").text = opts.name
    ET.SubElement(dom, "uuid").text = uuid
    ET.SubElement(dom, "memory", unit="KiB").text = str((opts.memory or DEFAULT_MEMORY) // 1024)
    ET.SubElement(dom, "vcpu").text = str(opts.vcpus or 1)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "boot", dev="hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    devices = ET.SubElement(dom, "devices")
    for index, vol in enumerate(disks):
        disk = ET.SubElement(devices, "disk", type="volume", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", pool=opts.pool, volume=vol)
        ET.SubElement(disk, "target", dev=f"vd{chr(ord('a') + index)}", bus="virtio")
    devices.append(_seed_element(opts.pool, seed))
    for kind, source, mac in interfaces:
        nic = ET.SubElement(devices, "interface", type=kind)
        ET.SubElement(nic, "mac", address=mac)
        if kind == "network":
            ET.SubElement(nic, "source", network=source)
        ET.SubElement(nic, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    ET.SubElement(devices, "memballoon", model="virtio")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def _seed_element(pool: str, seed: str) -> ET.Element:
    cdrom = ET.Element("disk", type="volume", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", pool=pool, volume=seed)
    ET.SubElement(cdrom, "target", dev="sda", bus="sata")
    ET.SubElement(cdrom, "readonly")
    return cdrom


def domain_clone_xml(
    base: Domain,
    opts: CloneOptions,
    uuid: str,
    disks: Sequence[str],
    seed: str,
    interfaces: Sequence[tuple[str, str, str]],
) -> str:
    """The original's definition with a new identity, the new disks, the new seed and new MACs."""
    from pyvirt.conf.domain import DiskConfig, InterfaceConfig
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
        if disk.device == "cdrom" and (disk.source_volume or disk.source or "").endswith(SEED_SUFFIX):
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
    seed_disk = DiskConfig(
        type="volume",
        device="cdrom",
        driver_type="raw",
        source_pool=opts.pool,
        source_volume=seed,
        target_dev=_free_sd({d.target_dev for d in new_disks}),
        target_bus="sata",
        readonly=True,
    )
    new_disks.append(seed_disk)
    old = base.devices.interfaces
    nics: list[InterfaceConfig] = []
    for index, (kind, source, mac) in enumerate(interfaces):
        model = old[index] if index < len(old) else InterfaceConfig()
        nics.append(
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
    dom.devices = dataclasses.replace(base.devices, disks=new_disks, interfaces=nics)
    return format_domain(dom)


def _free_sd(used: set[str]) -> str:
    for letter in "abcdef":  # the six ports of QEMU's AHCI controller
        if f"sd{letter}" not in used:
            return f"sd{letter}"
    raise InvalidArgument("no free SATA target for the cloud-init seed")
