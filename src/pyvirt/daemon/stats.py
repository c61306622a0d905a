"""Domain statistics: virsh domstats' groups and fields, dommemstat, and dominfo's used memory.

A field is named and valued as libvirt 9.0's QEMU driver names it (``state.state``, ``cpu.time``,
``balloon.current``, ``vcpu.0.time``, ``net.0.rx.bytes``, ``block.0.rd.bytes``...). Statistics of many
domains are gathered concurrently, each running domain with a handful of QMP queries and cheap reads of
/proc; /proc/net/dev is read once for all of them. Nothing here takes a domain's lock: queries that
meet a QEMU that has just gone leave its counters out, as libvirt does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyvirt.conf.domain import Domain
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import Paused, Reason, guard
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed
from pyvirt.qemu import cpuacct, procstats
from pyvirt.qemu.process import QemuProcess
from pyvirt.qemu.procstats import NetCounters

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry

GROUPS = ("state", "cpu-total", "balloon", "vcpu", "interface", "block")
FILTERS = ("active", "inactive", "persistent", "transient", "running", "paused", "shutoff", "other")

# virDomainState's numbers, by the family virsh shows.
STATE_CODES = {
    "running": 1,
    "blocked": 2,
    "paused": 3,
    "in shutdown": 4,
    "shut off": 5,
    "crashed": 6,
    "pmsuspended": 7,
}

# QEMU's balloon statistics: (QOM name, libvirt's name, multiplier to libvirt's unit), libvirt's order.
BALLOON_STATS = (
    ("stat-swap-in", "swap_in", 1 / 1024),
    ("stat-swap-out", "swap_out", 1 / 1024),
    ("stat-major-faults", "major_fault", 1),
    ("stat-minor-faults", "minor_fault", 1),
    ("stat-free-memory", "unused", 1 / 1024),
    ("stat-total-memory", "available", 1 / 1024),
    ("stat-available-memory", "usable", 1 / 1024),
    ("last-update", "last_update", 1),
    ("stat-disk-caches", "disk_caches", 1 / 1024),
    ("stat-htlb-pgalloc", "hugetlb_pgalloc", 1),
    ("stat-htlb-pgfail", "hugetlb_pgfail", 1),
)

Fields = dict[str, int | str]

# Kept per QEMU, so that statistics of many domains need fewer QMP round trips: the balloon's actual
# size (bytes; QEMU's BALLOON_CHANGE events keep it current once it was asked for), the vCPUs'
# thread ids (cpu-index, thread-id; forgotten when vCPUs are plugged or unplugged), the guest's
# last memory report (the balloon's guest-stats: QEMU changes it only when the guest reports, once
# per polling period, see _guest_report) and the last query-blockstats reply with when it was asked
# (what a /metrics scrape shows between refreshes, see pyvirt.daemon.metrics).
_BALLOON: weakref.WeakKeyDictionary[QemuProcess, int] = weakref.WeakKeyDictionary()
_VCPUS: weakref.WeakKeyDictionary[QemuProcess, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
_GUEST: weakref.WeakKeyDictionary[QemuProcess, dict[str, Any]] = weakref.WeakKeyDictionary()
_BLOCKSTATS: weakref.WeakKeyDictionary[QemuProcess, tuple[Any, float]] = weakref.WeakKeyDictionary()


def balloon_changed(proc: QemuProcess, data: dict[str, Any]) -> None:
    """QEMU's BALLOON_CHANGE event: the balloon's new actual size."""
    if isinstance(data.get("actual"), int):
        _BALLOON[proc] = int(data["actual"])


def forget_vcpus(proc: QemuProcess) -> None:
    """The vCPUs of ``proc`` changed (hot-plug): ask QEMU for their threads again."""
    _VCPUS.pop(proc, None)


def _guest_report(obj: DomainObject, proc: QemuProcess, now: float) -> dict[str, Any] | None:
    """The guest's last memory report as QEMU would give it now, if it cannot have changed since it
    was asked: QEMU asks the guest once every polling period and stamps the answer (``last-update``,
    whole seconds), so the report stays the same until ``last-update + period`` (for ever with no
    polling). None: ask QEMU (no report kept, none made yet, or the next one may have come)."""
    report = _GUEST.get(proc)
    balloon = obj.live.devices.memballoon if obj.live is not None else None
    if report is None or balloon is None or not isinstance(report.get("last-update"), int):
        return None
    last = int(report["last-update"])
    period = balloon.stats_period or 0
    if not last:
        return None
    if period and now >= last + period:
        return None
    return report


def block_stats_time(proc: QemuProcess) -> float | None:
    """When (epoch seconds) the block statistics a /metrics scrape shows for ``proc`` were asked."""
    kept = _BLOCKSTATS.get(proc)
    return kept[1] if kept is not None else None


async def refresh_kept(reg: DomainRegistry) -> None:
    """Ask every running domain, concurrently, for what a /metrics scrape shows as kept (its block
    statistics, the guest's memory report once the next one may have come) and keep the answers (the
    scrapes' background refresh)."""

    async def one(obj: DomainObject) -> None:
        # A QEMU going away meanwhile (its monitor closing) leaves its statistics as they were.
        with contextlib.suppress(OperationFailed, EOFError, ConnectionError):
            await _query(obj, ["block", "balloon"], capacity=False)

    await asyncio.gather(*(one(obj) for obj in reg.all() if obj.proc is not None))


@functools.cache
def reason_code(reason: Reason) -> int:
    """libvirt's number of ``reason`` in its family (the enums list them in libvirt's order, but
    for the paused reason 'crashed' (10), which pyvirt never gives)."""
    members = list(type(reason))
    index = members.index(reason)
    if isinstance(reason, Paused) and index >= members.index(Paused.STARTING_UP):
        index += 1
    return index


def matches(obj: DomainObject, filters: Sequence[str]) -> bool:
    """Whether ``obj`` passes every one of domstats' ``--list-*`` filters."""
    state = obj.state.virsh(obj.reason)
    for word in filters:
        ok = {
            "active": obj.active,
            "inactive": not obj.active,
            "persistent": obj.persistent,
            "transient": not obj.persistent,
            "running": state == "running",
            "paused": state == "paused",
            "shutoff": state == "shut off",
            "other": state not in ("running", "paused", "shut off"),
        }.get(word)
        if ok is None:
            raise InvalidArgument(f"unknown domain filter '{word}' (one of {', '.join(FILTERS)})")
        if not ok:
            return False
    return True


async def collect(
    reg: DomainRegistry,
    names: Sequence[str],
    groups: Sequence[str],
    filters: Sequence[str] = (),
    *,
    capacity: bool = True,
    kept: bool = False,
) -> list[dict[str, Any]]:
    """domstats: for each domain named (every domain when none is, in name order, those that pass
    ``filters``) its fields of ``groups`` (every group when none is given). ``kept``: the block
    statistics and the guest's memory report last asked (of a call, a refresh or an earlier call)
    where there are some (a /metrics scrape), not asked again."""
    for group in groups:
        if group not in GROUPS:
            raise InvalidArgument(f"unknown statistics group '{group}' (one of {', '.join(GROUPS)})")
    wanted = [g for g in GROUPS if g in groups] if groups else list(GROUPS)
    if names:
        if filters:
            raise InvalidArgument("domain filters cannot be combined with a list of domains")
        objs = [reg.lookup(name) for name in names]
    else:
        objs = sorted((o for o in reg.all() if matches(o, filters)), key=lambda o: o.name)
    nets = procstats.net_devices() if "interface" in wanted and any(o.active for o in objs) else {}
    records = await asyncio.gather(*(_domain(reg, obj, wanted, nets, capacity, kept) for obj in objs))
    return [{"name": obj.name, "fields": fields} for obj, fields in zip(objs, records, strict=True)]


async def _domain(
    reg: DomainRegistry,
    obj: DomainObject,
    groups: list[str],
    nets: dict[str, NetCounters],
    capacity: bool,
    kept: bool = False,
) -> Fields:
    proc = obj.proc
    dom = obj.current
    fields: Fields = {}
    queries: dict[str, Any] = {}
    if proc is not None:
        queries = await _query(obj, groups, capacity=capacity, kept=kept)
    for group in groups:
        if group == "state":
            fields["state.state"] = STATE_CODES[obj.state.virsh(obj.reason)]
            fields["state.reason"] = reason_code(obj.reason)
        elif group == "cpu-total" and proc is not None:
            cpu = procstats.process_cpu(proc.pid, proc.record.cgroup)
            fields.update({"cpu.time": cpu.total, "cpu.user": cpu.user, "cpu.system": cpu.system})
        elif group == "balloon":
            actual = queries.get("query-balloon")
            fields["balloon.current"] = int(actual["actual"]) // 1024 if actual else dom.current_kib
            fields["balloon.maximum"] = dom.memory_kib
            if proc is not None:
                guest = guest_memory(queries.get("guest-stats"))
                for name, value in guest.items():
                    fields[f"balloon.{'last-update' if name == 'last_update' else name}"] = value
                rss = procstats.rss_kib(proc.pid)
                if rss is not None:
                    fields["balloon.rss"] = rss
        elif group == "vcpu":
            _vcpus(obj, fields, queries.get("query-cpus-fast"))
        elif group == "interface" and proc is not None:
            _interfaces(obj, fields, nets)
        elif group == "block":
            _blocks(reg, obj, fields, queries.get("query-blockstats"), queries.get("query-block"))
    return fields


async def _query(
    obj: DomainObject, groups: list[str], *, capacity: bool = True, kept: bool = False
) -> dict[str, Any]:
    """The QMP replies the groups need, asked at once; a query QEMU refuses is left out. ``kept``:
    the block statistics and the guest's memory report kept from earlier queries, whatever their
    age, asked only when none is kept."""
    assert obj.proc is not None
    monitor = obj.proc.monitor
    calls: dict[str, tuple[str, dict[str, Any] | None]] = {}
    balloon = obj.current.devices.memballoon
    proc = obj.proc
    now = time.time()
    virtio_balloon = balloon is not None and balloon.model == "virtio"
    if virtio_balloon and {"balloon", "balloon-actual"} & set(groups) and proc not in _BALLOON:
        calls["query-balloon"] = ("query-balloon", None)
    report = _guest_report(obj, proc, now) if "balloon" in groups and virtio_balloon else None
    if report is None and kept and "balloon" in groups and virtio_balloon:
        report = _GUEST.get(proc)
    if "balloon" in groups and balloon is not None and virtio_balloon and report is None:
        path = f"/machine/peripheral/{balloon.alias or 'balloon0'}"
        calls["guest-stats"] = ("qom-get", {"path": path, "property": "guest-stats"})
    if "vcpu" in groups and proc not in _VCPUS:
        calls["query-cpus-fast"] = ("query-cpus-fast", None)
    blocks = _BLOCKSTATS.get(proc) if kept else None
    if "block" in groups and obj.current.devices.disks:
        if blocks is None:
            calls["query-blockstats"] = ("query-blockstats", None)
        if capacity:  # the images' virtual size (block.N.capacity)
            calls["query-block"] = ("query-block", None)
    replies = (
        await asyncio.gather(
            *(monitor.execute(cmd, args) for cmd, args in calls.values()), return_exceptions=True
        )
        if calls
        else []
    )
    out: dict[str, Any] = {}
    for key, reply in zip(calls, replies, strict=True):
        if isinstance(reply, BaseException):
            if not isinstance(reply, OperationFailed):
                raise reply
            continue
        out[key] = reply
    if "guest-stats" in out and isinstance(out["guest-stats"], dict):
        _GUEST[proc] = out["guest-stats"]
    elif report is not None:
        out["guest-stats"] = report
    if "query-blockstats" in out:
        _BLOCKSTATS[proc] = (out["query-blockstats"], now)
    elif blocks is not None and "block" in groups:
        out["query-blockstats"] = blocks[0]
    if "query-balloon" in out:
        _BALLOON.setdefault(proc, int(out["query-balloon"]["actual"]))
    if "query-cpus-fast" in out:
        _VCPUS[proc] = list(out["query-cpus-fast"])
    if {"balloon", "balloon-actual"} & set(groups) and proc in _BALLOON:
        out["query-balloon"] = {"actual": _BALLOON[proc]}
    if "vcpu" in groups and proc in _VCPUS:
        out["query-cpus-fast"] = _VCPUS[proc]
    return out


def guest_memory(reply: Any) -> dict[str, int]:
    """The guest's memory statistics from the balloon's ``guest-stats`` (libvirt's names and units);
    those the guest does not report (-1, or no report yet) are left out."""
    if not isinstance(reply, dict) or not reply.get("last-update"):
        return {}
    stats = reply.get("stats") or {}
    out: dict[str, int] = {}
    for qom, name, scale in BALLOON_STATS:
        value = reply.get(qom) if qom == "last-update" else stats.get(qom)
        if isinstance(value, int) and value >= 0:
            out[name] = int(value * scale)
    return out


def _vcpus(obj: DomainObject, fields: Fields, cpus: Any) -> None:
    dom = obj.current
    online = dom.online_vcpus
    if obj.proc is not None and isinstance(cpus, list):
        online = len(cpus)
    fields["vcpu.current"] = online
    fields["vcpu.maximum"] = dom.vcpus
    if obj.proc is None or not isinstance(cpus, list):
        return
    pid = obj.proc.pid
    for cpu in sorted(cpus, key=lambda c: int(c["cpu-index"])):
        index = int(cpu["cpu-index"])
        run, wait = procstats.thread_schedstat(pid, int(cpu["thread-id"]))
        fields[f"vcpu.{index}.state"] = 1
        fields[f"vcpu.{index}.time"] = run
        fields[f"vcpu.{index}.delay"] = wait


def tap_counters(tap: str | None, nets: dict[str, NetCounters]) -> NetCounters | None:
    counters = nets.get(tap) if tap else None
    return counters.guest_view() if counters is not None else None


def _interfaces(obj: DomainObject, fields: Fields, nets: dict[str, NetCounters]) -> None:
    ifaces = obj.current.devices.interfaces
    fields["net.count"] = len(ifaces)
    for index, iface in enumerate(ifaces):
        counters = tap_counters(iface.target_dev if iface.type != "user" else None, nets)
        if counters is None:
            continue
        prefix = f"net.{index}"
        fields[f"{prefix}.name"] = str(iface.target_dev)
        for key, value in (
            ("rx.bytes", counters.rx_bytes),
            ("rx.pkts", counters.rx_packets),
            ("rx.errs", counters.rx_errs),
            ("rx.drop", counters.rx_drop),
            ("tx.bytes", counters.tx_bytes),
            ("tx.pkts", counters.tx_packets),
            ("tx.errs", counters.tx_errs),
            ("tx.drop", counters.tx_drop),
        ):
            fields[f"{prefix}.{key}"] = value


def disk_path(reg: DomainRegistry, obj: DomainObject, index: int) -> str | None:
    disk = obj.current.devices.disks[index]
    if disk.type == "volume" and reg.storage is not None and disk.source_pool and disk.source_volume:
        with contextlib.suppress(Exception):
            return reg.storage.volume_path(disk.source_pool, disk.source_volume)
        return None
    return disk.source


def block_entries(obj: DomainObject, replies: Any) -> dict[int, dict[str, Any]]:
    """Disk index → its entry in a ``query-blockstats`` or ``query-block`` reply: by its device id,
    else by the node name pyvirt gave the disk at start (``pyvirt-N-format``)."""
    return disk_entries(obj.current, replies)


def disk_entries(dom: Domain, replies: Any) -> dict[int, dict[str, Any]]:
    """:func:`block_entries` of the disks of ``dom``."""
    if not isinstance(replies, list):
        return {}
    by_node: dict[str, dict[str, Any]] = {}
    by_qdev: dict[str, dict[str, Any]] = {}
    for entry in replies:
        node = entry.get("node-name") or (entry.get("inserted") or {}).get("node-name")
        if node:
            by_node[str(node)] = entry
        qdev = str(entry.get("qdev", ""))
        if qdev:
            parts = qdev.split("/")
            by_qdev[parts[3] if qdev.startswith("/machine/peripheral/") and len(parts) > 3 else qdev] = entry
    out: dict[int, dict[str, Any]] = {}
    for index, disk in enumerate(dom.devices.disks):
        # By device id first: a disk plugged or unplugged live shifts the indexes, not the ids.
        entry = by_qdev.get(disk.alias) if disk.alias else None
        if entry is None:
            entry = by_node.get(f"pyvirt-{index + 1}-format")
        if entry is not None:
            out[index] = entry
    return out


def _blocks(reg: DomainRegistry, obj: DomainObject, fields: Fields, stats: Any, block: Any) -> None:
    disks = obj.current.devices.disks
    fields["block.count"] = len(disks)
    stat_entries = block_entries(obj, stats)
    info_entries = block_entries(obj, block)
    for index, disk in enumerate(disks):
        prefix = f"block.{index}"
        fields[f"{prefix}.name"] = disk.target_dev
        path = disk_path(reg, obj, index)
        if path:
            fields[f"{prefix}.path"] = path
        entry = stat_entries.get(index)
        if entry is not None:
            s = entry.get("stats", {})
            for key, qemu in (
                ("rd.reqs", "rd_operations"),
                ("rd.bytes", "rd_bytes"),
                ("rd.times", "rd_total_time_ns"),
                ("wr.reqs", "wr_operations"),
                ("wr.bytes", "wr_bytes"),
                ("wr.times", "wr_total_time_ns"),
                ("fl.reqs", "flush_operations"),
                ("fl.times", "flush_total_time_ns"),
            ):
                fields[f"{prefix}.{key}"] = int(s.get(qemu, 0))
            fields[f"{prefix}.allocation"] = int(s.get("wr_highest_offset", 0))
        image = (info_entries.get(index, {}).get("inserted") or {}).get("image") or {}
        if "virtual-size" in image:
            fields[f"{prefix}.capacity"] = int(image["virtual-size"])
        if path and obj.active:
            with contextlib.suppress(OSError):
                fields[f"{prefix}.physical"] = os.stat(path).st_size


def block_stats(fields: Fields, index: int) -> dict[str, int]:
    """domblkstat's counters (its legacy names, its order) of disk ``index`` from domstats' fields."""
    prefix = f"block.{index}"
    out: dict[str, int] = {}
    for name, key in (
        ("rd_req", "rd.reqs"),
        ("rd_bytes", "rd.bytes"),
        ("wr_req", "wr.reqs"),
        ("wr_bytes", "wr.bytes"),
        ("flush_operations", "fl.reqs"),
        ("rd_total_times", "rd.times"),
        ("wr_total_times", "wr.times"),
        ("flush_total_times", "fl.times"),
    ):
        value = fields.get(f"{prefix}.{key}")
        if isinstance(value, int):
            out[name] = value
    return out


# dommemstat and dominfo


async def balloon_kib(obj: DomainObject) -> int:
    """The guest's memory now: the balloon's actual size while it runs with one, else the target."""
    dom = obj.current
    balloon = dom.devices.memballoon
    if obj.proc is not None and balloon is not None and balloon.model == "virtio":
        replies = await _query(obj, ["balloon-actual"])
        if "query-balloon" in replies:
            return int(replies["query-balloon"]["actual"]) // 1024
    return dom.current_kib


async def memory_stats(obj: DomainObject) -> dict[str, int]:
    """dommemstat: actual (KiB), the guest's balloon statistics, rss (KiB); libvirt's order."""
    if obj.proc is None:
        raise _not_running()
    out = {"actual": obj.current.current_kib}
    replies = await _query(obj, ["balloon"])  # query-balloon and the guest's report, at once
    if "query-balloon" in replies:
        out["actual"] = int(replies["query-balloon"]["actual"]) // 1024
    out.update(guest_memory(replies.get("guest-stats")))
    rss = procstats.rss_kib(obj.proc.pid)
    if rss is not None:
        out["rss"] = rss
    return out


async def percpu(obj: DomainObject, *, count_only: bool = False) -> dict[str, Any]:
    """cpu-stats' per-CPU figures of a running domain (:mod:`pyvirt.qemu.cpuacct`): each host CPU's
    time on QEMU and on the online vCPUs; ``count_only``: only how many CPUs the host lists."""
    proc = obj.proc
    if proc is None:
        raise _not_running()
    if count_only:
        return {"host_cpus": cpuacct.host_cpus(), "cpus": []}
    if proc not in _VCPUS:
        await _query(obj, ["vcpu"])
    vcpus = [int(cpu["cpu-index"]) for cpu in _VCPUS.get(proc, [])]
    times = cpuacct.percpu(proc.record.cgroup, vcpus)
    return {
        "host_cpus": len(times),
        "cpus": [{"cpu_time": t.cpu_time, "vcpu_time": t.vcpu_time} for t in times],
    }


def _not_running() -> InvalidState:
    return InvalidState("Requested operation is not valid: domain is not running")


async def set_period(reg: DomainRegistry, key: str, period: int, *, live: bool, config: bool) -> None:
    """dommemstat --period: how often (seconds, 0: never) the guest reports its memory statistics,
    to the running balloon (``live``) and/or into the definition (``config``)."""
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        targets = scope_targets(obj, live=live, config=config)
        for dom in targets:
            balloon = dom.devices.memballoon
            if balloon is None or balloon.model != "virtio":
                raise InvalidState(
                    "Requested operation is not valid: No memory balloon device configured, "
                    "can not set the collection period"
                )
        if live:
            assert obj.proc is not None and obj.live is not None and obj.live.devices.memballoon
            balloon = obj.live.devices.memballoon
            path = f"/machine/peripheral/{balloon.alias or 'balloon0'}"
            args = {"path": path, "property": "guest-stats-polling-interval", "value": period}
            await obj.proc.monitor.execute("qom-set", args)
            balloon.stats_period = period or None
            _GUEST.pop(obj.proc, None)  # the next report comes on the new period
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None and obj.config.devices.memballoon
            obj.config.devices.memballoon.stats_period = period or None
            reg.write_config(obj.config)


def scope_targets(obj: DomainObject, *, live: bool, config: bool) -> list[Domain]:
    """The definitions a ``--live``/``--config`` change goes to (the caller resolved ``--current``):
    refused for a domain that does not run (live) or is transient (config)."""
    targets: list[Domain] = []
    if live:
        if obj.proc is None or obj.live is None:
            raise _not_running()
        targets.append(obj.live)
    if config:
        if obj.config is None:
            raise InvalidState(
                "Requested operation is not valid: cannot change persistent config of a transient domain"
            )
        targets.append(obj.config)
    return targets
