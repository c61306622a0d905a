"""memtune and schedinfo: a domain's memory limits and CPU weight and bandwidth, on its running QEMU's
cgroup (:mod:`pyvirt.qemu.cgtune`) and in its definition (``<memtune>``, ``<cputune><shares>``,
``<global_period>``, ``<global_quota>``), which a start applies before the guest runs.

pyvirt keeps all of a QEMU's threads in one cgroup, so schedinfo's per-thread-group parameters
(vcpu_*, emulator_*, iothread_*) are refused by name; cpu_shares, global_period and global_quota are
the group's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyvirt.conf.domain import CPUTune, Domain, MemTune
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.daemon.stats import scope_targets
from pyvirt.errors import InvalidArgument
from pyvirt.qemu.cgtune import CPU_FIELDS, MEMORY_FIELDS, UNLIMITED_KIB, DomainGroup, check_cpu, check_memory
from pyvirt.qemu.process import QemuProcess

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry

PER_THREAD = tuple(
    f"{group}_{what}" for group in ("vcpu", "emulator", "iothread") for what in ("period", "quota")
)


def _group(obj: DomainObject) -> DomainGroup:
    assert obj.proc is not None
    return DomainGroup(obj.proc.record.cgroup, obj.proc.pid)


def _definition(obj: DomainObject, config: bool) -> Domain | None:
    """The definition a read with ``config`` shows, or None for the running QEMU's cgroup."""
    if config:
        return obj.config if obj.config is not None else obj.current
    return None if obj.proc is not None else obj.current


# Memory


def _memory_of(dom: Domain) -> dict[str, int]:
    tune = dom.memtune or MemTune()
    return {name: getattr(tune, name) or UNLIMITED_KIB for name in MEMORY_FIELDS}


def _record_memory(dom: Domain, values: dict[str, int]) -> None:
    tune = dom.memtune or MemTune()
    for name, kib in values.items():
        setattr(tune, name, None if kib >= UNLIMITED_KIB else kib)
    dom.memtune = tune if any(getattr(tune, n) is not None for n in MEMORY_FIELDS) else None


async def memtune(reg: DomainRegistry, key: str, *, config: bool) -> dict[str, int]:
    obj = reg.lookup(key)
    dom = _definition(obj, config)
    return _memory_of(dom) if dom is not None else _group(obj).memory()


async def set_memtune(
    reg: DomainRegistry, key: str, changes: dict[str, int], *, live: bool, config: bool
) -> None:
    for name, kib in changes.items():
        if name not in MEMORY_FIELDS:
            raise InvalidArgument(f"invalid argument: memtune has no parameter '{name}'")
        if kib <= 0:
            raise InvalidArgument(f"invalid argument: {name} must be a positive size in KiB")
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        targets = scope_targets(obj, live=live, config=config)
        if config:
            assert obj.config is not None
            check_memory({**_memory_of(obj.config), **changes})
        if live:
            assert obj.live is not None
            _group(obj).set_memory(changes)
            _record_memory(obj.live, changes)
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None and obj.config in targets
            _record_memory(obj.config, changes)
            reg.write_config(obj.config)


# CPU


def _cpu_of(dom: Domain) -> dict[str, int]:
    """A definition's values; 0 for those it does not set, as libvirt shows them."""
    values = (dom.cputune or CPUTune()).cgroup_fields()
    return {name: values.get(name, 0) for name in CPU_FIELDS}


def _record_cpu(dom: Domain, values: dict[str, int]) -> None:
    tune = dom.cputune or CPUTune()
    for name, value in values.items():
        setattr(tune, "shares" if name == "cpu_shares" else name, value)
    dom.cputune = None if tune.empty() else tune


async def schedinfo(reg: DomainRegistry, key: str, *, config: bool) -> dict[str, int]:
    obj = reg.lookup(key)
    dom = _definition(obj, config)
    return _cpu_of(dom) if dom is not None else _group(obj).cpu()


async def set_schedinfo(
    reg: DomainRegistry, key: str, changes: dict[str, int], *, live: bool, config: bool
) -> None:
    for name in changes:
        if name in PER_THREAD:
            raise InvalidArgument(
                f"invalid argument: {name}: pyvirt keeps every QEMU thread in the domain's one cgroup; "
                "use global_period and global_quota"
            )
        if name not in CPU_FIELDS:
            raise InvalidArgument(f"invalid argument: invalid scheduler option: {name}")
    check_cpu(changes)
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        scope_targets(obj, live=live, config=config)
        if live:
            assert obj.live is not None
            _group(obj).set_cpu(changes)
            _record_cpu(obj.live, changes)
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None
            _record_cpu(obj.config, changes)
            reg.write_config(obj.config)


def apply_at_start(proc: QemuProcess, dom: Domain) -> None:
    """The definition's ``<memtune>`` and cgroup ``<cputune>`` values, set on the new QEMU's cgroup
    (a domain without them is left alone: the group's defaults stand)."""
    memory = {k: v for k, v in _memory_of(dom).items() if v < UNLIMITED_KIB}
    cpu = (dom.cputune or CPUTune()).cgroup_fields()
    if not memory and not cpu:
        return
    group = DomainGroup(proc.record.cgroup, proc.pid)
    if memory:
        group.set_memory(memory)
    if cpu:
        group.set_cpu(cpu)


def body_values(data: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in data.items() if k not in ("live", "config")}
