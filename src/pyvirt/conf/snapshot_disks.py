"""Which disk gets which kind of snapshot: the request's ``<disks>`` matched to the domain's disks,
defaults filled in and checked (libvirt's ``virDomainSnapshotAlignDisks``), before anything is done.

Every disk of the domain ends up listed once, by target name: ``internal`` (a qcow2 image keeps the
state inside), ``external`` (a new qcow2 overlay, its file named after the snapshot unless given) or
``no`` (CD-ROMs, read-only and empty disks). The memory's mode is settled too: ``internal`` for a
running domain, ``no`` for a shut-off one or a disk-only snapshot.
"""

from __future__ import annotations

import os

from pyvirt.conf.domain import DiskConfig, Domain
from pyvirt.conf.snapshot_xml import DomainSnapshot, SnapshotDisk
from pyvirt.errors import InvalidArgument, UnsupportedConfig


def overlay_name(source: str, snapshot: str) -> str:
    """libvirt's default overlay file: the source's suffix replaced by the snapshot's name."""
    head, tail = os.path.split(source)
    stem = tail.rsplit(".", 1)[0] if "." in tail.lstrip(".") else tail
    return os.path.join(head, f"{stem}.{snapshot}")


def _find(dom: Domain, name: str) -> int:
    for index, disk in enumerate(dom.devices.disks):
        if name == disk.target_dev or (disk.source is not None and name == disk.source):
            return index
    raise UnsupportedConfig(f"unsupported configuration: no disk named '{name}'")


def _snapshottable(disk: DiskConfig) -> bool:
    return (
        disk.device == "disk" and not disk.readonly and disk.source is not None and disk.type != "vhostuser"
    )


def align_disks(snap: DomainSnapshot, dom: Domain, *, active: bool, disk_only: bool) -> None:
    """Fill in ``snap.disks`` for every disk of ``dom`` and ``snap.memory``, or refuse the request.

    ``snap.name`` must be set (it names the overlays).
    """
    assert snap.name is not None
    if disk_only and snap.memory not in (None, "no"):
        raise InvalidArgument("--disk-only is incompatible with a memory snapshot (memspec)")
    if snap.memory is None:
        snap.memory = "internal" if active and not disk_only else "no"
    if not active and snap.memory != "no":
        raise UnsupportedConfig(
            "unsupported configuration: memory state cannot be saved with offline or disk-only snapshot"
        )
    default = "external" if disk_only or snap.memory == "external" else "internal"
    given: dict[int, SnapshotDisk] = {}
    for asked in snap.disks:
        index = _find(dom, asked.name)
        if index in given:
            raise InvalidArgument(f"disk '{asked.name}' specified twice in snapshot XML")
        given[index] = asked
    out: list[SnapshotDisk] = []
    for index, disk in enumerate(dom.devices.disks):
        spec = given.get(index) or SnapshotDisk(name=disk.target_dev)
        spec.name = disk.target_dev
        if spec.snapshot is None:  # the disk's own snapshot='...' first, as libvirt
            spec.snapshot = disk.snapshot or (default if _snapshottable(disk) else "no")
        if spec.snapshot == "manual":
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}': snapshot='manual' is not supported"
            )
        if spec.snapshot != "no" and not _snapshottable(disk):
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}' cannot be snapshotted "
                "(a CD-ROM, read-only or empty disk)"
            )
        if spec.snapshot == "internal":
            _check_internal(disk)
        elif spec.snapshot == "external":
            _fill_external(spec, disk, snap.name)
        out.append(spec)
    snap.disks = out
    kinds = {d.snapshot for d in out} - {"no"}
    if snap.memory == "internal":
        kinds.add("internal")
    elif snap.memory == "external":
        kinds.add("external")
    if len(kinds) > 1:
        raise UnsupportedConfig(
            "unsupported configuration: mixing internal and external targets for a snapshot is not "
            "yet supported"
        )
    if not kinds:
        raise InvalidArgument("the snapshot would contain nothing: every disk has snapshot='no'")
    if disk_only and "internal" in kinds:
        raise UnsupportedConfig("unsupported configuration: disk-only snapshots must be external")
    overlays = [d.source for d in out if d.snapshot == "external"]
    if len(set(overlays)) != len(overlays):
        raise InvalidArgument("two disks would get the same snapshot file")


def _check_internal(disk: DiskConfig) -> None:
    if disk.type not in ("file", "block") or disk.driver_type != "qcow2":
        kind = disk.driver_type if disk.type in ("file", "block") else disk.type
        raise UnsupportedConfig(
            f"unsupported configuration: internal snapshot for disk {disk.target_dev} unsupported for "
            f"storage type {kind}"
        )


def _fill_external(spec: SnapshotDisk, disk: DiskConfig, name: str) -> None:
    if disk.type != "file" or disk.source is None:
        raise UnsupportedConfig(
            f"unsupported configuration: external snapshot of disk {disk.target_dev} of type "
            f"'{disk.type}': only file disks are supported"
        )
    spec.type = "file"
    spec.driver_type = spec.driver_type or "qcow2"
    spec.source = spec.source or overlay_name(disk.source, name)
    if spec.source == disk.source:
        raise InvalidArgument(
            f"the snapshot file of disk {disk.target_dev} is its current source '{disk.source}'"
        )
