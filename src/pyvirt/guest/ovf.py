"""Appliances: OVA and OVF exports of VMware and VirtualBox, read and mapped onto pyvirt's machines.

:func:`read_appliance` reads an ``.ova`` (a tar holding the ``.ovf``, its disks and an optional
``.mf`` manifest) or an ``.ovf`` with its files beside it, and returns an :class:`Appliance`: the
virtual system's name, OS, CPUs, memory, firmware (VMware's ``vmw:Config firmware``, VirtualBox's
``vbox:Machine`` ``Firmware``), disks (capacity, file, controller) and NICs (model, network). What
cannot be carried over is said in :attr:`Appliance.notes` (a sound card, a USB controller, the
appliance's CD drive...), never dropped silently; what cannot be imported at all (several virtual
systems, a disk file the package does not hold, a digest that does not match the manifest) raises
InvalidArgument naming it.

:func:`convert_disks` writes the disks as standalone qcow2 files through pyvirt's image library
(streamOptimized VMDK, VDI, qcow2, raw ...), checking the manifest's digests as it reads them, and
grows a disk to the capacity the OVF gives when its image is smaller. :meth:`Appliance.hardware`
is the mapping onto what pyvirt's QEMU machines offer (:class:`pyvirt.guest.hardware.Hardware`):

=====================================  ===============================================
OVF                                    pyvirt
=====================================  ===============================================
IDE controller                         ide (sata on an EFI/q35 machine, which has none)
SATA (AHCI) controller                 sata
SCSI (lsilogic, buslogic, pvscsi...)   scsi on virtio-scsi (a note says so)
NVMe controller                        virtio (a note says so)
E1000 / E1000e NIC                     e1000 / e1000e
VmxNet3, PCNet32, other NICs           virtio (a note says so)
=====================================  ===============================================

Used by ``pyvirt template import`` (:func:`pyvirt.guest.template.import_appliance`) and by
``pyvirt install --import --disk X.ova`` (:mod:`pyvirt.install.appliance`): read, map, convert.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pyvirt.errors import InvalidArgument, OperationFailed

if TYPE_CHECKING:
    from pyvirt.conf.xmlutil import Node
    from pyvirt.guest.hardware import Hardware

Say = Callable[[str], None]

# CIM resource types (DMTF DSP1041/1043) an OVF's Items use.
PROCESSOR, MEMORY, IDE, SCSI, ETHERNET, FLOPPY, CD, DVD, DISK, STORAGE = 3, 4, 5, 6, 10, 14, 15, 16, 17, 20
_DROPPED = {
    1: "other device",
    7: "Fibre Channel adapter",
    8: "iSCSI adapter",
    9: "InfiniBand adapter",
    11: "network adapter",
    12: "I/O slot",
    13: "I/O device",
    14: "floppy drive",
    15: "CD drive",
    16: "DVD drive",
    18: "tape drive",
    21: "serial port",
    22: "parallel port",
    23: "USB controller",
    24: "graphics controller",
    35: "sound card",
}
_NIC_MODELS = {"e1000": "e1000", "e1000e": "e1000e", "virtio": "virtio", "rtl8139": "rtl8139"}
_DIGESTS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
_MANIFEST_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$")


@dataclass(frozen=True)
class OvfDisk:
    """One disk of the appliance, in the order the virtual hardware lists them."""

    disk_id: str
    file: str  # the file's name in the OVA, or beside the OVF
    capacity: int  # bytes, as the OVF says
    bus: str  # pyvirt's: virtio, sata, scsi, ide
    controller: str  # what the OVF had, for the notes ("SCSI lsilogic")


@dataclass(frozen=True)
class OvfNic:
    model: str  # pyvirt's
    network: str | None  # the OVF's logical network (a name on the exporting host)
    original: str  # the OVF's adapter type


@dataclass
class Appliance:
    """What an OVA/OVF describes; :meth:`hardware` is its mapping onto pyvirt's machines."""

    path: str  # the .ova or .ovf read
    name: str
    os: str  # the OVF's OS description (VMware's osType, VirtualBox's OSType), or "unknown"
    vcpus: int | None
    memory: int | None  # bytes
    firmware: str  # bios or efi
    disks: list[OvfDisk] = field(default_factory=list)
    nics: list[OvfNic] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is not carried over, and why
    digests: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (algorithm, hex)

    @property
    def is_ova(self) -> bool:
        return not self.path.lower().endswith(".ovf")

    def hardware(self) -> Hardware:
        from pyvirt.guest.hardware import Hardware

        return Hardware(
            vcpus=self.vcpus,
            memory=self.memory,
            firmware=self.firmware,
            disk_buses=tuple(d.bus for d in self.disks),
            nic_models=tuple(n.model for n in self.nics),
        )


def is_appliance(path: str | os.PathLike[str]) -> bool:
    """An OVF (by its name) or an OVA (a tar file holding an .ovf)."""
    text = str(path).lower()
    if text.endswith(".ovf"):
        return True
    if not os.path.isfile(path):
        return False
    # The ustar magic of the first header first: tarfile.is_tarfile takes a file of zeros (a fresh raw
    # disk) for an empty archive, after reading all of it.
    with open(path, "rb") as f:
        if f.read(512)[257:262] != b"ustar":
            return False
    with tarfile.open(path, "r:") as tar:
        return any(m.name.lower().endswith(".ovf") for m in tar.getmembers())


# --- reading ------------------------------------------------------------------------------------


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _attr(node: Node, name: str) -> str | None:
    for key, value in node.attrib.items():
        if _local(key) == name:
            return value
    return None


def _children(node: Node, name: str) -> list[Node]:
    return [c for c in node.children if _local(c.tag) == name]


def _child(node: Node, name: str) -> Node | None:
    found = _children(node, name)
    return found[0] if found else None


def _text(node: Node, name: str) -> str:
    child = _child(node, name)
    return child.text.strip() if child is not None else ""


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _units(units: str, what: str) -> int:
    """The multiplier of an OVF allocation unit: ``byte * 2^20``, ``MegaBytes``, ``GB``..."""
    text = units.strip().replace(" ", "").lower()
    if not text or text in ("byte", "bytes"):
        return 1
    match = re.fullmatch(r"byte\*(2|10)\^(\d+)", text)
    if match:
        return int(int(match.group(1)) ** int(match.group(2)))
    words = {"kilobytes": 1 << 10, "kb": 1 << 10, "megabytes": 1 << 20, "mb": 1 << 20, "gigabytes": 1 << 30}
    words.update({"gb": 1 << 30, "terabytes": 1 << 40, "tb": 1 << 40})
    if text in words:
        return words[text]
    raise InvalidArgument(f"the OVF's {what} has allocation units {units!r}, which pyvirt does not know")


def _number(text: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidArgument(f"the OVF's {what} is {text!r}, not a number") from None
    if value < 0:
        raise InvalidArgument(f"the OVF's {what} is negative ({value})")
    return value


@contextlib.contextmanager
def _package(path: str) -> Iterator[tuple[str, Callable[[str], IO[bytes] | None]]]:
    """(OVF text, open(file name) -> readable or None) of an OVA or an OVF with its files beside it."""
    if path.lower().endswith(".ovf"):
        folder = os.path.dirname(os.path.abspath(path))
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidArgument(f"cannot read the OVF {path}: {err}") from err

        def open_beside(name: str) -> IO[bytes] | None:
            candidate = os.path.join(folder, name)
            if os.path.basename(name) != name or not os.path.isfile(candidate):
                return None
            return open(candidate, "rb")

        yield text, open_beside
        return
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as err:
        raise InvalidArgument(f"{path} is not an OVA (a tar holding an OVF): {err}") from err
    with tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        ovfs = [name for name in members if name.lower().endswith(".ovf")]
        if len(ovfs) != 1:
            raise InvalidArgument(f"{path} holds {len(ovfs)} .ovf files: an OVA holds one")
        handle = tar.extractfile(members[ovfs[0]])
        assert handle is not None
        try:
            text = handle.read().decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidArgument(f"the OVF in {path} is not UTF-8 text: {err}") from err

        def open_member(name: str) -> IO[bytes] | None:
            member = members.get(name)
            return tar.extractfile(member) if member is not None else None

        yield text, open_member


def read_appliance(path: str | os.PathLike[str]) -> Appliance:
    """The appliance described by the OVA or OVF at ``path`` (see the module doc)."""
    source = str(path)
    if not os.path.isfile(source):
        raise InvalidArgument(f"cannot import {source}: no such file")
    with _package(source) as (text, open_file):
        app = _parse(source, text)
        for manifest in _manifest_names(source):
            handle = open_file(manifest)
            if handle is not None:
                with handle:
                    app.digests = _parse_manifest(handle.read().decode("utf-8", "replace"), manifest)
        for disk in app.disks:
            handle = open_file(disk.file)
            if handle is None:
                where = "the OVA" if app.is_ova else f"the folder of {os.path.basename(source)}"
                raise InvalidArgument(
                    f"the OVF references the file {disk.file} (disk {disk.disk_id}), which {where} "
                    "does not hold"
                )
            handle.close()
    return app


def _manifest_names(source: str) -> list[str]:
    if source.lower().endswith(".ovf"):
        return [os.path.basename(source)[:-4] + ".mf"]
    with tarfile.open(source, "r:") as tar:
        return [m.name.lstrip("./") for m in tar.getmembers() if m.name.lower().endswith(".mf")]


def _parse_manifest(text: str, name: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line.strip())
        if match is None:
            raise InvalidArgument(f"the manifest {name} has a line pyvirt cannot read: {line.strip()!r}")
        out[match.group(2).strip()] = (_DIGESTS[match.group(1)], match.group(3).lower())
    return out


def _parse(source: str, text: str) -> Appliance:
    from pyvirt.conf.xmlutil import parse_document

    root = parse_document(text)
    if _local(root.tag) != "Envelope":
        raise InvalidArgument(f"{source}: not an OVF document (its root is <{root.tag}>, not <Envelope>)")
    files = {}
    for file_node in _children(_child(root, "References") or root, "File"):
        compression = _attr(file_node, "compression")
        if compression:
            raise InvalidArgument(
                f"the OVF's file {_attr(file_node, 'href')} is compressed ({compression}): "
                "pyvirt reads uncompressed OVA members only"
            )
        files[_attr(file_node, "id") or ""] = _attr(file_node, "href") or ""
    disk_defs: dict[str, tuple[str, int]] = {}
    for section in _children(root, "DiskSection"):
        for disk_node in _children(section, "Disk"):
            disk_id = _attr(disk_node, "diskId") or ""
            ref = _attr(disk_node, "fileRef")
            if ref is None:
                raise InvalidArgument(f"the OVF's disk {disk_id} has no file (a blank disk): not supported")
            if ref not in files:
                raise InvalidArgument(
                    f"the OVF's disk {disk_id} references file {ref!r}, not in <References>"
                )
            capacity = _number(_attr(disk_node, "capacity") or "0", f"capacity of disk {disk_id}")
            units = _attr(disk_node, "capacityAllocationUnits") or ""
            capacity *= _units(units, f"capacity of disk {disk_id}")
            disk_defs[disk_id] = (files[ref], capacity)
    systems = [n for n in _walk(root) if _local(n.tag) == "VirtualSystem"]
    if len(systems) != 1:
        raise InvalidArgument(
            f"{source} describes {len(systems)} virtual machines: pyvirt imports an appliance of exactly one"
        )
    system = systems[0]
    name = _text(system, "Name") or _attr(system, "id") or "appliance"
    os_section = _child(system, "OperatingSystemSection")
    os_name = "unknown"
    if os_section is not None:
        os_name = (
            _attr(os_section, "osType")
            or next((c.text.strip() for c in os_section.children if _local(c.tag) == "OSType"), "")
            or _text(os_section, "Description")
            or "unknown"
        )
    hw = _child(system, "VirtualHardwareSection")
    if hw is None:
        raise InvalidArgument(f"{source}: the virtual system has no <VirtualHardwareSection>")
    app = Appliance(source, name, os_name, None, None, _firmware(system, hw))
    _map_items(app, hw, disk_defs)
    if app.firmware == "efi":
        for index, disk in enumerate(app.disks):
            if disk.bus == "ide":
                app.disks[index] = OvfDisk(disk.disk_id, disk.file, disk.capacity, "sata", disk.controller)
                app.notes.append(f"disk {disk.disk_id}: IDE becomes SATA (an EFI machine, q35, has no IDE)")
    return app


def _firmware(system: Node, hw: Node) -> str:
    for config in _children(hw, "Config"):
        if _attr(config, "key") == "firmware":
            return "efi" if (_attr(config, "value") or "").lower() == "efi" else "bios"
    for machine in _children(system, "Machine"):
        for node in _walk(machine):
            if _local(node.tag) == "Firmware":
                return "efi" if (_attr(node, "type") or "").upper().startswith("EFI") else "bios"
    return "bios"


def _map_items(app: Appliance, hw: Node, disk_defs: dict[str, tuple[str, int]]) -> None:
    items = _children(hw, "Item") + _children(hw, "StorageItem") + _children(hw, "EthernetPortItem")
    controllers: dict[str, tuple[str, str]] = {}  # InstanceID -> (bus, description)
    for item in items:
        kind = _number(_text(item, "ResourceType") or "0", "ResourceType")
        sub = _text(item, "ResourceSubType")
        instance = _text(item, "InstanceID")
        if kind == IDE:
            controllers[instance] = ("ide", f"IDE {sub}".strip())
        elif kind == SCSI:
            controllers[instance] = ("scsi", f"SCSI {sub}".strip())
        elif kind == STORAGE and "nvme" in sub.lower():
            controllers[instance] = ("virtio", f"NVMe {sub}".strip())
        elif kind == STORAGE:
            controllers[instance] = ("sata", f"SATA {sub}".strip())
    for item in items:
        kind = _number(_text(item, "ResourceType") or "0", "ResourceType")
        label = _text(item, "ElementName") or _text(item, "Caption") or f"item {_text(item, 'InstanceID')}"
        if kind == PROCESSOR:
            app.vcpus = _number(_text(item, "VirtualQuantity") or "1", "CPU count")
        elif kind == MEMORY:
            quantity = _number(_text(item, "VirtualQuantity") or "0", "memory size")
            app.memory = quantity * _units(_text(item, "AllocationUnits") or "byte * 2^20", "memory size")
        elif kind in (IDE, SCSI, STORAGE):
            continue
        elif kind == DISK:
            _map_disk(app, item, label, disk_defs, controllers)
        elif kind == ETHERNET:
            original = _text(item, "ResourceSubType") or "unspecified"
            model = _NIC_MODELS.get(original.lower(), "virtio")
            if model != original.lower():
                app.notes.append(
                    f"{label}: the {original} adapter becomes virtio (pyvirt's NICs: e1000, e1000e, virtio)"
                )
            app.nics.append(OvfNic(model, _text(item, "Connection") or None, original))
        elif kind in _DROPPED:
            why = "pyvirt adds its own seed CD-ROM" if kind in (CD, DVD) else "pyvirt does not carry it over"
            app.notes.append(f"{label} ({_DROPPED[kind]}): not imported, {why}")
        else:
            app.notes.append(f"{label} (resource type {kind}): not imported, pyvirt does not know it")


def _map_disk(
    app: Appliance,
    item: Node,
    label: str,
    disk_defs: dict[str, tuple[str, int]],
    controllers: dict[str, tuple[str, str]],
) -> None:
    resource = _text(item, "HostResource")
    disk_id = resource.rsplit("/", 1)[-1]
    if not resource or disk_id not in disk_defs:
        raise InvalidArgument(f"the OVF's {label} names the disk {resource!r}, which its <DiskSection> lacks")
    bus, controller = controllers.get(_text(item, "Parent"), ("virtio", "no controller"))
    if controller.startswith("SCSI"):
        app.notes.append(f"disk {disk_id}: {controller} becomes virtio-scsi (the guest needs virtio_scsi)")
    elif controller.startswith("NVMe"):
        app.notes.append(f"disk {disk_id}: {controller} becomes virtio-blk (the guest needs virtio_blk)")
    file, capacity = disk_defs[disk_id]
    app.disks.append(OvfDisk(disk_id, file, capacity, bus, controller))


# --- converting the disks -----------------------------------------------------------------------


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, raw: IO[bytes], algorithm: str | None) -> None:
        self.raw = raw
        self.hash = hashlib.new(algorithm) if algorithm else None

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if self.hash is not None:
            self.hash.update(data)
        return data


def convert_disks(
    app: Appliance,
    dest: Path | None = None,
    *,
    targets: Sequence[tuple[Path, str]] | None = None,
    say: Say | None = None,
) -> list[Path]:
    """Each disk of ``app`` as a standalone image made through pyvirt's image library: qcow2
    ``dest/disk-N.qcow2`` (the boot disk first), or the (path, format) of ``targets`` (one per disk,
    none of them existing: ``pyvirt install --import``); digests checked against the manifest."""
    from pyvirt.errors import ImageError
    from pyvirt.image.api import convert, image_info, resize

    if targets is None:
        assert dest is not None
        targets = [(dest / f"disk-{index}.qcow2", "qcow2") for index in range(len(app.disks))]
    else:
        if len(targets) != len(app.disks):
            raise ValueError(f"{len(app.disks)} disks, {len(targets)} targets")
        for target, _fmt in targets:
            if os.path.lexists(target):
                raise InvalidArgument(f"cannot convert the appliance's disk to {target}: the file exists")
    out = []
    with _package(app.path) as (_text, open_file):
        for disk, (target, target_fmt) in zip(app.disks, targets, strict=True):
            handle = open_file(disk.file)
            if handle is None:
                raise InvalidArgument(f"the appliance lost its file {disk.file} while being imported")
            raw = target.parent / f".{target.name}.source"
            algorithm, expected = app.digests.get(disk.file, (None, ""))
            with handle, open(raw, "wb") as copy:
                reader = _Hashing(handle, algorithm)
                shutil.copyfileobj(reader, copy, 1 << 20)  # type: ignore[misc]
            try:
                if reader.hash is not None and reader.hash.hexdigest() != expected:
                    raise InvalidArgument(
                        f"{disk.file} does not match the manifest's {reader.hash.name.upper()} digest: the "
                        "appliance is damaged or was changed"
                    )
                fmt = str(image_info(str(raw))["format"])
                if say:
                    say(f"Converting disk {disk.disk_id} ({disk.file}, {fmt}) to {target_fmt}")
                convert(str(raw), str(target), target_fmt, src_fmt=fmt)
                if disk.capacity > int(image_info(str(target))["virtual-size"]):
                    resize(str(target), disk.capacity, fmt=target_fmt)
            except ImageError as err:
                raise OperationFailed(f"cannot convert {disk.file} of {app.path}: {err}") from err
            finally:
                raw.unlink(missing_ok=True)
            out.append(target)
    return out
