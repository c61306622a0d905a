"""Memory and vCPUs of a domain, changed while it runs or in its definition: setmem (the balloon),
setmaxmem, setvcpus (vCPU hot-plug), vcpupin/emulatorpin (thread affinity), and what vcpuinfo and
vcpucount read back.

A live vCPU is added as QEMU adds one: the next free slot of ``query-hotpluggable-cpus`` becomes a
``device_add`` of its CPU type with the slot's properties, under the id ``vcpuN``; a hot-plugged vCPU
is removed with ``device_del`` and is gone once the guest has released it (QEMU's DEVICE_DELETED). The
guest brings a new vCPU online itself (a kernel with CPU hot-plug, udev or ``echo 1 >
/sys/devices/system/cpu/cpuN/online``). Pins take effect as the affinity of QEMU's threads, as at start
(:mod:`pyvirt.qemu.affinity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import CPUTune, Domain
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.daemon.stats import forget_vcpus, scope_targets
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, PyvirtError, XMLError
from pyvirt.qemu import affinity, cpuacct, procstats
from pyvirt.qemu.process import QemuProcess

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry

log = logging.getLogger(__name__)

UNPLUG_TIMEOUT = 10.0  # seconds the guest gets to release a vCPU

# The vCPU slots each QEMU has unplugged (its topology ids): under TCG, QEMU 7.2 dies (SIGSEGV) when a
# vCPU is plugged into such a slot again, so that is refused.
_UNPLUGGED: weakref.WeakKeyDictionary[QemuProcess, set[tuple[int, ...]]] = weakref.WeakKeyDictionary()


def _has_balloon(dom: Domain) -> bool:
    balloon = dom.devices.memballoon
    return balloon is not None and balloon.model == "virtio"


async def set_memory(
    reg: DomainRegistry, key: str, kib: int, *, maximum: bool, live: bool, config: bool
) -> None:
    """setmem (the balloon's target, ``<currentMemory>``) or with ``maximum`` setmaxmem (``<memory>``)."""
    if kib <= 0:
        raise InvalidArgument("invalid argument: memory size must be greater than 0")
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        if maximum and live:
            raise OperationFailed(
                "Operation not supported: cannot resize the maximum memory on an active domain"
            )
        targets = scope_targets(obj, live=live, config=config)
        for dom in targets:
            if not maximum and kib > dom.memory_kib:
                raise InvalidArgument(
                    "invalid argument: cannot set memory higher than max memory "
                    f"({kib} > {dom.memory_kib} KiB)"
                )
        if live:
            assert obj.proc is not None and obj.live is not None
            if not _has_balloon(obj.live):
                raise OperationFailed(
                    "Operation not supported: Unable to change memory of active domain without the "
                    "balloon device and guest OS balloon driver"
                )
            await obj.proc.monitor.execute("balloon", {"value": kib * 1024})
            obj.live.current_memory_kib = kib
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None
            dom = obj.config
            if maximum:
                dom.memory_kib = kib
                if dom.current_memory_kib is not None and dom.current_memory_kib > kib:
                    dom.current_memory_kib = kib
            else:
                dom.current_memory_kib = kib
            reg.write_config(dom)


# vCPUs


async def vcpu_info(reg: DomainRegistry, key: str, *, config: bool = False) -> dict[str, Any]:
    """vcpucount's counts, and per vCPU (of the running domain, else or with ``config`` of the
    definition) the host CPU it last ran on, its CPU time and its affinity; the emulator threads'."""
    obj = reg.lookup(key)
    if config and obj.config is None:
        raise InvalidState(
            "Requested operation is not valid: transient domains do not have any persistent config"
        )
    host_cpus = sorted(os.sched_getaffinity(0))
    persistent = obj.config
    out: dict[str, Any] = {
        "maximum_config": persistent.vcpus if persistent else None,
        "current_config": persistent.online_vcpus if persistent else None,
        "maximum_live": None,
        "current_live": None,
        "host_cpus": _host_cpu_count(),
        "vcpus": [],
        "emulator": [],
    }
    dom = obj.config if config and obj.config is not None else obj.current
    if obj.proc is not None:
        out["maximum_live"] = obj.current.vcpus
        out["current_live"] = obj.current.online_vcpus
    if obj.proc is None or config:
        emulator, pins = affinity.wanted(dom)
        out["emulator"] = sorted(emulator) if emulator is not None else host_cpus
        for index in range(dom.online_vcpus):
            cpus = pins.get(index, ("", frozenset(host_cpus)))[1]
            out["vcpus"].append(
                {"vcpu": index, "cpu": None, "state": None, "time_ns": None, "affinity": sorted(cpus)}
            )
        return out
    proc = obj.proc
    cpus = await proc.monitor.execute("query-cpus-fast")
    out["maximum_live"] = dom.vcpus
    out["current_live"] = len(cpus)
    vcpu_threads = set()
    for cpu in sorted(cpus, key=lambda c: int(c["cpu-index"])):
        tid = int(cpu["thread-id"])
        vcpu_threads.add(tid)
        run, _wait = procstats.thread_schedstat(proc.pid, tid)
        out["vcpus"].append(
            {
                "vcpu": int(cpu["cpu-index"]),
                "cpu": procstats.thread_cpu(proc.pid, tid),
                "state": "running",
                "time_ns": run,
                "affinity": sorted(_affinity(tid, host_cpus)),
            }
        )
    out["emulator"] = sorted(_affinity(proc.pid, host_cpus))
    return out


def _host_cpu_count() -> int:
    return os.cpu_count() or len(os.sched_getaffinity(0))


def _affinity(tid: int, default: list[int]) -> set[int]:
    try:
        return set(os.sched_getaffinity(tid))
    except OSError:
        return set(default)


async def set_vcpus(
    reg: DomainRegistry, key: str, count: int, *, maximum: bool, live: bool, config: bool
) -> None:
    """setvcpus: the vCPUs online (``<vcpu current>``), live by hot-plug; with ``maximum`` the
    definition's maximum (``<vcpu>``)."""
    if count < 1:
        raise InvalidArgument("invalid argument: Number of vCPUs must be greater than 0")
    removals: list[str] = []
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        if maximum and live:
            raise OperationFailed(
                "Operation not supported: cannot change the maximum vCPU count of a running domain "
                "(use --config)"
            )
        targets = scope_targets(obj, live=live, config=config)
        for dom, where in zip(
            targets, (["live"] if live else []) + (["persistent"] if config else []), strict=True
        ):
            if not maximum and count > dom.vcpus:
                raise InvalidArgument(
                    f"invalid argument: requested vcpus is greater than max allowable vcpus for the "
                    f"{where} domain: {count} > {dom.vcpus}"
                )
        if live:
            if obj.state not in lifecycle.HOTPLUGGABLE:
                raise lifecycle.refusal(obj.state, obj.reason, lifecycle.HOTPLUGGABLE)
            removals = await _set_live_vcpus(reg, obj, count)
        if config:
            assert obj.config is not None
            dom = obj.config
            if maximum:
                if dom.cputune is not None and any(v >= count for v in dom.cputune.vcpupin):
                    raise InvalidArgument(
                        f"invalid argument: vCPUs pinned in <cputune> would be beyond the maximum {count}"
                    )
                online = dom.online_vcpus
                dom.vcpus = count
                dom.vcpu_current = min(online, count) if min(online, count) != count else None
            else:
                dom.vcpu_current = count if count != dom.vcpus else None
            reg.write_config(dom)
    if removals:
        await _wait_unplugged(reg, key, removals)


async def _wait_unplugged(reg: DomainRegistry, key: str, dev_ids: list[str]) -> None:
    """Wait (without the domain's lock) until QEMU has let go of the vCPUs ``dev_ids`` the guest was
    asked to release, then record the count. Their slots are watched: QEMU sends DEVICE_DELETED for a
    CPU only once the object is finalized, which may be long after the guest released it."""
    obj = reg.lookup(key)
    deadline = asyncio.get_running_loop().time() + UNPLUG_TIMEOUT
    while True:
        proc = obj.proc
        if proc is None:
            return
        slots = await proc.monitor.execute("query-hotpluggable-cpus")
        paths = {str(s.get("qom-path", "")).rsplit("/", 1)[-1] for s in slots if s.get("qom-path")}
        if not paths & set(dev_ids):
            break
        if asyncio.get_running_loop().time() > deadline:
            raise OperationFailed(
                f"operation failed: vcpu unplug request timed out: the guest did not release "
                f"{', '.join(sorted(paths & set(dev_ids)))} within {UNPLUG_TIMEOUT:.0f}s; it is removed "
                "when the guest releases it"
            )
        await asyncio.sleep(0.2)
    async with obj.lock:
        if obj.proc is not None and obj.live is not None:
            forget_vcpus(obj.proc)
            online = len(await obj.proc.monitor.execute("query-cpus-fast"))
            obj.live.vcpu_current = online if online != obj.live.vcpus else None
            reg.save_run_state(obj)


async def _set_live_vcpus(reg: DomainRegistry, obj: DomainObject, count: int) -> list[str]:
    """Plug vCPUs up to ``count`` or ask the guest to release the hot-plugged ones above it (``obj.lock``
    held); the removals to wait for, without the lock."""
    assert obj.proc is not None and obj.live is not None
    forget_vcpus(obj.proc)
    monitor = obj.proc.monitor
    slots = await monitor.execute("query-hotpluggable-cpus")
    present = [s for s in slots if s.get("qom-path")]
    free = [s for s in slots if not s.get("qom-path")]
    online = len(present)
    removals: list[str] = []
    if count > online:
        free.sort(key=_slot_order)
        if obj.proc.record.accel == "tcg":
            unplugged = _UNPLUGGED.get(obj.proc, set())
            usable = [s for s in free if _slot_order(s) not in unplugged]
            if len(usable) < count - online:
                raise OperationFailed(
                    "Operation not supported: QEMU (7.2, under TCG) crashes when a vCPU is plugged into a "
                    "slot it has unplugged; restart the domain to have that vCPU again"
                )
            free = usable
        plugged: list[str] = []
        for slot in free[: count - online]:
            props = dict(slot.get("props", {}))
            index = _slot_index(obj.live, props)
            dev_id = f"vcpu{index}"
            try:
                await monitor.execute("device_add", {"driver": slot["type"], "id": dev_id, **props})
            except PyvirtError:
                for done in plugged:  # all or nothing, as libvirt
                    with contextlib.suppress(PyvirtError):
                        await monitor.execute("device_del", {"id": done})
                raise
            plugged.append(dev_id)
        obj.live.vcpu_current = count if count != obj.live.vcpus else None
        try:
            await affinity.apply(monitor, obj.proc.pid, obj.live)
            await cpuacct.place(monitor, obj.proc.record.cgroup)
        except OperationFailed as err:
            log.warning("domain %s: pinning or accounting the new vCPUs: %s", obj.name, err)
        reg.save_run_state(obj)
    elif count < online:
        removable = [s for s in present if "/peripheral/" in str(s.get("qom-path"))]
        removable.sort(key=_slot_order, reverse=True)
        if len(removable) < online - count:
            raise OperationFailed(
                f"Operation not supported: only {len(removable)} of the {online} vCPUs were hot-plugged and "
                f"can be unplugged; the domain started with {online - len(removable)}"
            )
        for slot in removable[: online - count]:
            dev_id = str(slot["qom-path"]).rsplit("/", 1)[1]
            await monitor.execute("device_del", {"id": dev_id})
            removals.append(dev_id)
            _UNPLUGGED.setdefault(obj.proc, set()).add(_slot_order(slot))
    return removals


def _slot_order(slot: dict[str, Any]) -> tuple[int, ...]:
    props = slot.get("props", {})
    return tuple(int(props.get(k, 0)) for k in ("node-id", "socket-id", "die-id", "core-id", "thread-id"))


def _slot_index(dom: Domain, props: dict[str, Any]) -> int:
    """The vCPU number of a slot: its place in the topology (sockets, dies, cores, threads)."""
    cpu = dom.cpu
    dies = (cpu.dies if cpu and cpu.dies else 1) if cpu and cpu.sockets else 1
    cores = cpu.cores if cpu and cpu.cores else 1
    threads = cpu.threads if cpu and cpu.threads else 1
    socket = int(props.get("socket-id", 0))
    die = int(props.get("die-id", 0))
    core = int(props.get("core-id", 0))
    thread = int(props.get("thread-id", 0))
    return ((socket * dies + die) * cores + core) * threads + thread


# Pinning


async def pin(
    reg: DomainRegistry, key: str, cpulist: str, *, vcpu: int | None, live: bool, config: bool
) -> None:
    """vcpupin (``vcpu``) or emulatorpin (``vcpu`` None): the host CPUs a vCPU's thread, or QEMU's
    other threads, may run on; ``r`` resets to every host CPU."""
    what = "vcpupin" if vcpu is not None else "emulatorpin"
    host = frozenset(os.sched_getaffinity(0))
    if cpulist == "r":
        cpus = host
    else:
        try:
            cpus = parse_cpuset(cpulist, f"--cpulist of {what}")
        except XMLError as err:
            raise InvalidArgument(str(err).replace("XML error: ", "")) from err
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        targets = scope_targets(obj, live=live, config=config)
        for dom in targets:
            if vcpu is not None and vcpu >= dom.vcpus:
                raise InvalidArgument(
                    f"invalid argument: vcpu {vcpu} is out of range of live cpu count {dom.vcpus}"
                )
        if live:
            assert obj.proc is not None and obj.live is not None
            if not cpus & host:
                raise InvalidArgument(f"invalid argument: --cpulist {cpulist} names no CPU of this host")
            await _pin_threads(obj, vcpu, cpus)
            _record_pin(obj.live, vcpu, cpulist, host)
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None
            _record_pin(obj.config, vcpu, cpulist, host)
            reg.write_config(obj.config)


async def _pin_threads(obj: DomainObject, vcpu: int | None, cpus: frozenset[int]) -> None:
    assert obj.proc is not None
    pid = obj.proc.pid
    threads = {
        int(c["thread-id"]): int(c["cpu-index"]) for c in await obj.proc.monitor.execute("query-cpus-fast")
    }
    if vcpu is not None and vcpu not in threads.values():
        raise InvalidArgument(f"invalid argument: vcpu {vcpu} is not online")
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        index = threads.get(tid)
        if (vcpu is None and index is None) or (vcpu is not None and index == vcpu):
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                continue
            except OSError as err:
                raise OperationFailed(f"cannot set CPU affinity of thread {tid}: {err.strerror}") from err


def _record_pin(dom: Domain, vcpu: int | None, cpulist: str, host: frozenset[int]) -> None:
    tune = dom.cputune or CPUTune()
    reset = cpulist == "r"
    if vcpu is None:
        tune.emulatorpin = None if reset else cpulist
    elif reset:
        tune.vcpupin.pop(vcpu, None)
    else:
        tune.vcpupin[vcpu] = cpulist
    dom.cputune = None if tune.empty() else tune
