"""Disk I/O throttling (blkdeviotune, QEMU's ``block_set_io_throttle``) and I/O threads (iothreadinfo)
of a running domain.

Throttling is live only: pyvirt's domain XML has no ``<iotune>`` element yet, so a limit is neither
kept in the definition nor shown in the live XML; ``--config`` is refused, naming why. Limits not given
keep their values, but a group given (total/read/write of one kind) replaces the old group whole, as
libvirt merges them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyvirt.conf.validate import iothread_ids
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.daemon.stats import block_entries
from pyvirt.errors import InvalidArgument, InvalidState

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry

# virsh's names → QEMU's (query-block's and block_set_io_throttle's), in virsh's order.
FIELDS = (
    ("total_bytes_sec", "bps"),
    ("read_bytes_sec", "bps_rd"),
    ("write_bytes_sec", "bps_wr"),
    ("total_iops_sec", "iops"),
    ("read_iops_sec", "iops_rd"),
    ("write_iops_sec", "iops_wr"),
    ("total_bytes_sec_max", "bps_max"),
    ("read_bytes_sec_max", "bps_rd_max"),
    ("write_bytes_sec_max", "bps_wr_max"),
    ("total_iops_sec_max", "iops_max"),
    ("read_iops_sec_max", "iops_rd_max"),
    ("write_iops_sec_max", "iops_wr_max"),
    ("size_iops_sec", "iops_size"),
    ("group_name", "group"),
    ("total_bytes_sec_max_length", "bps_max_length"),
    ("read_bytes_sec_max_length", "bps_rd_max_length"),
    ("write_bytes_sec_max_length", "bps_wr_max_length"),
    ("total_iops_sec_max_length", "iops_max_length"),
    ("read_iops_sec_max_length", "iops_rd_max_length"),
    ("write_iops_sec_max_length", "iops_wr_max_length"),
)

#: Limits set together: one of a group given, the group's others are reset (QEMU refuses a total and a
#: read or write limit of the same kind at once).
GROUPS = (
    ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec"),
    ("total_iops_sec", "read_iops_sec", "write_iops_sec"),
    ("total_bytes_sec_max", "read_bytes_sec_max", "write_bytes_sec_max"),
    ("total_iops_sec_max", "read_iops_sec_max", "write_iops_sec_max"),
    ("total_bytes_sec_max_length", "read_bytes_sec_max_length", "write_bytes_sec_max_length"),
    ("total_iops_sec_max_length", "read_iops_sec_max_length", "write_iops_sec_max_length"),
)


async def _disk_entry(obj: DomainObject, device: str) -> dict[str, Any]:
    """The ``query-block`` entry of the disk named by target (vda) or source path."""
    assert obj.proc is not None
    disks = obj.current.devices.disks
    index = next((i for i, d in enumerate(disks) if device in (d.target_dev, d.source)), None)
    if index is None:
        raise InvalidArgument(f"invalid argument: disk '{device}' was not found in the domain config")
    entry = block_entries(obj, await obj.proc.monitor.execute("query-block")).get(index)
    if entry is None or "inserted" not in entry:
        raise InvalidArgument(f"invalid argument: disk '{device}' has no medium to throttle")
    return entry


def _values(entry: dict[str, Any]) -> dict[str, Any]:
    inserted = entry["inserted"]
    out: dict[str, Any] = {}
    for name, qemu in FIELDS:
        out[name] = str(inserted.get(qemu, "")) if name == "group_name" else int(inserted.get(qemu, 0))
    return out


async def get_iotune(reg: DomainRegistry, key: str, device: str, *, config: bool) -> dict[str, Any]:
    obj = reg.lookup(key)
    if config or obj.proc is None:
        raise InvalidState(
            "Requested operation is not valid: pyvirt's domain XML has no <iotune>: throttling is set on "
            "the running domain only"
        )
    return _values(await _disk_entry(obj, device))


async def set_iotune(
    reg: DomainRegistry, key: str, device: str, changes: dict[str, Any], *, live: bool, config: bool
) -> None:
    if config:
        raise InvalidArgument(
            "--config: pyvirt's domain XML has no <iotune> yet; throttling applies to the running domain only"
        )
    async with guard(reg.lookup(key), lifecycle.HOTPLUGGABLE) as obj:
        assert obj.proc is not None
        entry = await _disk_entry(obj, device)
        values = _values(entry)
        for group in GROUPS:  # a group given anew replaces the old one whole, as libvirt's
            if any(name in changes for name in group):
                values.update({name: 0 for name in group})
        values.update(changes)
        for name, value in values.items():
            if name != "group_name" and int(value) < 0:
                raise InvalidArgument(f"invalid argument: {name} must not be negative")
        args: dict[str, Any] = {"id": str(entry.get("qdev", ""))}
        for name, qemu in FIELDS:
            if name == "group_name":
                if values[name]:
                    args[qemu] = values[name]
            elif name.endswith("_length"):
                if int(values[name]) > 0:
                    args[qemu] = int(values[name])
            else:
                args[qemu] = int(values[name])
        await obj.proc.monitor.execute("block_set_io_throttle", args)


async def iothreads(reg: DomainRegistry, key: str, *, config: bool) -> list[dict[str, Any]]:
    """iothreadinfo: each I/O thread's id and CPU affinity (of the running QEMU's thread, or with
    ``config`` or while shut off, every host CPU: pyvirt has no <iothreadpin>)."""
    obj = reg.lookup(key)
    host = sorted(os.sched_getaffinity(0))
    if config or obj.proc is None:
        dom = obj.config if config and obj.config is not None else obj.current
        return [{"id": ident, "affinity": host} for ident in iothread_ids(dom)]
    out = []
    for thread in await obj.proc.monitor.execute("query-iothreads"):
        name = str(thread["id"])
        ident = int(name[len("iothread") :]) if name.startswith("iothread") and name[8:].isdigit() else -1
        try:
            cpus = sorted(os.sched_getaffinity(int(thread["thread-id"])))
        except OSError:
            cpus = host
        out.append({"id": ident, "affinity": cpus})
    return sorted(out, key=lambda t: int(t["id"]))
