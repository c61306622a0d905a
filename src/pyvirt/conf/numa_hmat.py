"""NUMA memory performance (ACPI HMAT): a cell's ``<cache level associativity policy>`` with its
``<size>`` and ``<line>``, and ``<numa><interconnects>`` ``<latency>``/``<bandwidth>``, as libvirt 9.0
writes them and gives them to QEMU: ``-machine hmat=on``, each node's ``initiator`` (itself when it has
CPUs, else the initiator an interconnect names for it, else the first node with CPUs), ``-numa
hmat-lb`` per interconnect and ``-numa hmat-cache`` per cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf.domain import CPUConfig, NUMACell
from pyvirt.conf.units import parse_size_kib, unit_factor
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, XMLError

ASSOCIATIVITY = {"none": "none", "direct": "direct", "full": "complex"}
POLICY = {"none": "none", "writeback": "write-back", "writethrough": "write-through"}
TYPES = ("access", "read", "write")
HIERARCHY = {0: "memory", 1: "first-level", 2: "second-level", 3: "third-level"}


@dataclass
class Cache:
    level: int
    associativity: str
    policy: str
    size_kib: int
    line_bytes: int


@dataclass
class Interconnect:
    kind: str  # latency | bandwidth
    initiator: int
    target: int
    type: str  # access | read | write
    value: int  # latency: ns; bandwidth: KiB/s
    cache: int | None = None


def parse_caches(cell: Elem) -> list[Cache]:
    caches: list[Cache] = []
    for node in cell.children("cache"):
        level = node.integer("level", minimum=1, maximum=3)
        if level is None:
            raise XMLError(f"missing attribute 'level' of '{node.path}'")
        associativity = node.choice("associativity", ASSOCIATIVITY, required=True) or "none"
        policy = node.choice("policy", POLICY, required=True) or "none"
        size, line = node.child("size"), node.child("line")
        if size is None or line is None:
            raise XMLError(f"'{node.path}' needs <size> and <line>")
        size_kib = parse_size_kib(size.require("value"), size.attr("unit"), element=size.path)
        text = line.require("value")
        if not text.isdigit():
            raise XMLError(f"invalid value '{text}' of '{line.path}'")
        line_bytes = int(text) * unit_factor(line.attr("unit") or "B")
        size.done()
        line.done()
        node.done()
        caches.append(Cache(level, associativity, policy, size_kib, line_bytes))
    return caches


def parse_interconnects(numa: Elem) -> list[Interconnect]:
    out: list[Interconnect] = []
    if (node := numa.child("interconnects")) is None:
        return out
    for item in node.each():
        if item.tag not in ("latency", "bandwidth"):
            raise item.refuse()
        initiator, target = item.integer("initiator", minimum=0), item.integer("target", minimum=0)
        if initiator is None or target is None:
            raise XMLError(f"'{item.path}' needs initiator and target")
        kind = item.choice("type", TYPES, required=True) or "access"
        cache = item.integer("cache", minimum=1, maximum=3)
        if item.tag == "latency":
            value = item.integer("value", minimum=0)
            if value is None:
                raise XMLError(f"missing attribute 'value' of '{item.path}'")
        else:
            value = parse_size_kib(item.require("value"), item.attr("unit"), element=item.path)
        item.done()
        out.append(Interconnect(item.tag, initiator, target, kind, value, cache))
    node.done()
    return out


def write_caches(cell: NUMACell) -> list[XNode]:
    return [
        x("cache", {"level": c.level, "associativity": c.associativity, "policy": c.policy}).add(
            x("size", {"value": c.size_kib, "unit": "KiB"}), x("line", {"value": c.line_bytes, "unit": "B"})
        )
        for c in cell.caches
    ]


def write_interconnects(cpu: CPUConfig) -> XNode | None:
    if not cpu.interconnects:
        return None
    items = []
    for i in cpu.interconnects:
        attrs = {
            "initiator": i.initiator,
            "target": i.target,
            "cache": i.cache,
            "type": i.type,
            "value": i.value,
        }
        if i.kind == "bandwidth":
            attrs["unit"] = "KiB"
        items.append(x(i.kind, attrs))
    return x("interconnects").add(*items)


def in_use(cpu: CPUConfig | None) -> bool:
    return cpu is not None and (bool(cpu.interconnects) or any(c.caches for c in cpu.numa))


def validate(cpu: CPUConfig | None) -> None:
    if cpu is None or not in_use(cpu):
        return
    ids = {c.id for c in cpu.numa}
    for i in cpu.interconnects:
        if i.initiator not in ids or i.target not in ids:
            raise InvalidArgument(
                f"NUMA interconnect {i.initiator} → {i.target} names a cell the domain lacks"
            )
        initiator = next(c for c in cpu.numa if c.id == i.initiator)
        if not initiator.cpus:
            raise InvalidArgument(f"NUMA interconnect initiator {i.initiator} has no CPUs")
        target = next(c for c in cpu.numa if c.id == i.target)
        if i.cache is not None and not any(c.level == i.cache for c in target.caches):
            raise InvalidArgument(
                f"NUMA interconnect names cache level {i.cache}, which cell {i.target} lacks"
            )
    if not any(c.cpus for c in cpu.numa):
        raise InvalidArgument("HMAT needs a NUMA cell with CPUs")


def initiator(cpu: CPUConfig, cell: NUMACell) -> int | None:
    """The ``initiator`` of ``cell``'s ``-numa node`` (None without HMAT)."""
    if not in_use(cpu):
        return None
    if cell.cpus:
        return cell.id
    for i in cpu.interconnects:
        if i.target == cell.id:
            return i.initiator
    return next(c.id for c in cpu.numa if c.cpus)


def options(cpu: CPUConfig | None) -> list[str]:
    """The ``-numa hmat-lb`` and ``-numa hmat-cache`` pairs."""
    if cpu is None or not in_use(cpu):
        return []
    args: list[str] = []
    for i in cpu.interconnects:
        kind = f"{i.type}-{i.kind}"
        value = f"latency={i.value}" if i.kind == "latency" else f"bandwidth={i.value}K"
        hierarchy = HIERARCHY[i.cache or 0]
        args += [
            "-numa",
            f"hmat-lb,initiator={i.initiator},target={i.target},hierarchy={hierarchy},data-type={kind},{value}",
        ]
    for cell in cpu.numa:
        for c in cell.caches:
            args += [
                "-numa",
                f"hmat-cache,node-id={cell.id},size={c.size_kib}K,level={c.level},"
                f"associativity={ASSOCIATIVITY[c.associativity]},policy={POLICY[c.policy]},line={c.line_bytes}",
            ]
    return args
