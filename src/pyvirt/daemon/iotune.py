"""Disk I/O throttling (blkdeviotune, QEMU's ``block_set_io_throttle``; the disk's ``<iotune>``) and
I/O threads (iothreadinfo) of a domain.

Live limits are QEMU's (read back from ``query-block``) and kept in the live XML; ``--config`` ones go
to the definition's ``<iotune>``, which a start gives QEMU before the guest runs, as libvirt does. Limits
not given keep their values, but a kind given (total/read/write of bytes, iops, max, max length)
replaces the old kind whole, as libvirt merges them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyvirt.conf import iotune as conf_iotune
from pyvirt.conf.domain import DiskConfig, Domain
from pyvirt.conf.validate import iothread_ids
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.daemon.stats import disk_entries, scope_targets
from pyvirt.errors import InvalidArgument
from pyvirt.qemu.monitor import Monitor

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry

# virsh's names → QEMU's (query-block's and block_set_io_throttle's), in virsh's order.
QEMU_NAMES = {
    "total_bytes_sec": "bps",
    "read_bytes_sec": "bps_rd",
    "write_bytes_sec": "bps_wr",
    "total_iops_sec": "iops",
    "read_iops_sec": "iops_rd",
    "write_iops_sec": "iops_wr",
    "total_bytes_sec_max": "bps_max",
    "read_bytes_sec_max": "bps_rd_max",
    "write_bytes_sec_max": "bps_wr_max",
    "total_iops_sec_max": "iops_max",
    "read_iops_sec_max": "iops_rd_max",
    "write_iops_sec_max": "iops_wr_max",
    "size_iops_sec": "iops_size",
    "group_name": "group",
    "total_bytes_sec_max_length": "bps_max_length",
    "read_bytes_sec_max_length": "bps_rd_max_length",
    "write_bytes_sec_max_length": "bps_wr_max_length",
    "total_iops_sec_max_length": "iops_max_length",
    "read_iops_sec_max_length": "iops_rd_max_length",
    "write_iops_sec_max_length": "iops_wr_max_length",
}


def _find(dom: Domain, device: str) -> tuple[int, DiskConfig]:
    """The disk named by target (vda) or source path."""
    for index, disk in enumerate(dom.devices.disks):
        if device in (disk.target_dev, disk.source):
            return index, disk
    raise InvalidArgument(f"invalid argument: disk '{device}' was not found in the domain config")


async def _entry(monitor: Monitor, dom: Domain, index: int, device: str) -> dict[str, Any]:
    entry = disk_entries(dom, await monitor.execute("query-block")).get(index)
    if entry is None or "inserted" not in entry:
        raise InvalidArgument(f"invalid argument: disk '{device}' has no medium to throttle")
    return entry


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """Every limit in virsh's order (0 or an empty group name for those unset)."""
    return {
        name: str(values.get(name, "")) if name == "group_name" else int(values.get(name, 0))
        for name in QEMU_NAMES
    }


def _from_qemu(entry: dict[str, Any]) -> dict[str, Any]:
    inserted = entry["inserted"]
    return _shown({name: inserted[qemu] for name, qemu in QEMU_NAMES.items() if qemu in inserted})


async def _throttle(monitor: Monitor, entry: dict[str, Any], values: dict[str, Any]) -> None:
    args: dict[str, Any] = {"id": str(entry.get("qdev", ""))}
    for name, qemu in QEMU_NAMES.items():
        value = values.get(name)
        if name == "group_name" or name.endswith("_length"):
            if value:
                args[qemu] = value
        else:
            args[qemu] = int(value or 0)
    await monitor.execute("block_set_io_throttle", args)


async def get_iotune(reg: DomainRegistry, key: str, device: str, *, config: bool) -> dict[str, Any]:
    """The running QEMU's limits, or the definition's with ``config`` or while shut off."""
    obj = reg.lookup(key)
    if config or obj.proc is None or obj.live is None:
        dom = obj.config if config and obj.config is not None else obj.current
        return _shown(_find(dom, device)[1].iotune)
    index, _ = _find(obj.live, device)
    return _from_qemu(await _entry(obj.proc.monitor, obj.live, index, device))


def _merged(old: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    values = dict(old)
    for group in conf_iotune.GROUPS:  # a kind given anew replaces the old one whole, as libvirt's
        if any(name in changes for name in group):
            for name in group:
                values.pop(name, None)
    values.update(changes)
    conf_iotune.check(values, "blkdeviotune")
    return conf_iotune.nonzero(values)


async def set_iotune(
    reg: DomainRegistry, key: str, device: str, changes: dict[str, Any], *, live: bool, config: bool
) -> None:
    conf_iotune.check({k: v for k, v in changes.items() if k != "group_name"}, "blkdeviotune")
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        scope_targets(obj, live=live, config=config)
        if config:
            assert obj.config is not None
            _merged(_find(obj.config, device)[1].iotune, changes)  # checked before anything changes
        if live:
            assert obj.proc is not None and obj.live is not None
            index, disk = _find(obj.live, device)
            entry = await _entry(obj.proc.monitor, obj.live, index, device)
            wanted = _merged(_from_qemu(entry), changes)
            await _throttle(obj.proc.monitor, entry, wanted)
            disk.iotune = wanted
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None
            disk = _find(obj.config, device)[1]
            disk.iotune = _merged(disk.iotune, changes)
            reg.write_config(obj.config)


async def apply_at_start(monitor: Monitor, dom: Domain) -> None:
    """The definition's ``<iotune>`` limits, given to the new QEMU before the guest runs."""
    if not any(disk.iotune for disk in dom.devices.disks):
        return
    entries = disk_entries(dom, await monitor.execute("query-block"))
    for index, disk in enumerate(dom.devices.disks):
        if disk.iotune:
            entry = entries.get(index)
            if entry is None or "inserted" not in entry:
                raise InvalidArgument(
                    f"invalid argument: disk '{disk.target_dev}' has <iotune> but no medium"
                )
            await _throttle(monitor, entry, disk.iotune)


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
