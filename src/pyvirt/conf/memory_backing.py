"""How guest RAM is backed: ``<memoryBacking>`` and ``<numatune>``, as libvirt 9.0 writes them and gives
them to QEMU.

``<memoryBacking>``: ``<hugepages><page size nodeset/></hugepages>`` (a ``memory-backend-file`` in the
host's hugetlbfs mount of that page size, preallocated; 4 KiB pages are plain memory, as libvirt takes
them), ``<nosharepages/>`` (``-machine mem-merge=off``), ``<locked/>`` (``-overcommit mem-lock=on``, the
QEMU process's locked-memory limit lifted at start), ``<source type='file|anonymous|memfd'/>``,
``<access mode='shared|private'/>`` (the backend's ``share``), ``<allocation mode='immediate|ondemand'
threads/>`` (``prealloc``, ``prealloc-threads``), ``<discard/>`` (``discard-data`` of file backends).

``<numatune>``: ``<memory mode='strict|preferred|interleave|restrictive' nodeset/>`` and per-cell
``<memnode cellid mode nodeset/>``: the backends' ``host-nodes`` and ``policy`` (``bind``,
``preferred``, ``interleave``; ``restrictive`` only limits the process's cgroup, which pyvirt leaves as
it is, so it is refused); ``placement='auto'`` needs numad and is refused.

The guest RAM is one backend (libvirt's ``pc.ram``) or one per NUMA cell (``ram-nodeN``), with each
cell's ``memAccess`` and ``discard`` over the domain's. Host checks are at start, not define
(:func:`require_host`): huge pages of the size mounted and reserved, the host NUMA nodes present, and
for ``<locked/>`` the right to lift the locked-memory limit (``CAP_SYS_RESOURCE``, which a container
may lack).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import Domain, NUMACell
from pyvirt.conf.units import parse_size_kib
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

BASE_PAGE_KIB = 4  # x86's page: a <page size='4' unit='KiB'/> is plain memory
NUMA_MODES = {"strict": "bind", "preferred": "preferred", "interleave": "interleave"}
_NUMA_MODE_NAMES = (*NUMA_MODES, "restrictive")


@dataclass
class HugePage:
    size_kib: int | None = None  # None: the host's default huge page size
    nodeset: str | None = None  # guest NUMA cells backed by this size (all when None)


@dataclass
class MemoryBacking:
    """The parts of ``<memoryBacking>`` beyond ``<source>`` and ``<access>`` (``Domain.memory_source``,
    ``Domain.memory_access``)."""

    hugepages: list[HugePage] | None = None  # None: no <hugepages>
    nosharepages: bool = False
    locked: bool = False
    allocation: str | None = None  # immediate | ondemand
    threads: int | None = None
    discard: bool = False

    def is_set(self) -> bool:
        return self != MemoryBacking()


@dataclass
class MemNode:
    cellid: int
    mode: str
    nodeset: str


@dataclass
class NumaTune:
    mode: str | None = None  # strict | preferred | interleave | restrictive
    nodeset: str | None = None
    placement: str | None = None  # static | auto
    memnodes: list[MemNode] = field(default_factory=list)


def of(dom: Domain) -> MemoryBacking:
    """``dom``'s memory backing settings (the defaults when it has none)."""
    return dom.memory_backing or MemoryBacking()


def parse(e: Elem, dom: Domain) -> None:
    """``<memoryBacking>`` into ``dom``."""
    backing = dom.memory_backing = MemoryBacking()
    if (node := e.child("hugepages")) is not None:
        backing.hugepages = []
        for page in node.children("page"):
            size = parse_size_kib(page.require("size"), page.attr("unit"), element=page.path)
            nodeset = page.attr("nodeset")
            if nodeset is not None:
                parse_cpuset(nodeset, f"attribute 'nodeset' of '{page.path}'")
            backing.hugepages.append(HugePage(size, nodeset))
            page.done()
        node.done()
    for tag in ("nosharepages", "locked", "discard"):
        if (node := e.child(tag)) is not None:
            setattr(backing, tag, True)
            node.done()
    if (source := e.child("source")) is not None:
        dom.memory_source = source.choice("type", ("file", "anonymous", "memfd"), required=True)
        source.done()
    if (access := e.child("access")) is not None:
        dom.memory_access = access.choice("mode", ("shared", "private"), required=True)
        access.done()
    if (node := e.child("allocation")) is not None:
        backing.allocation = node.choice("mode", ("immediate", "ondemand"))
        backing.threads = node.integer("threads", minimum=1, maximum=1024)
        node.done()
    e.done()


def write(dom: Domain) -> XNode | None:
    backing = of(dom)
    if not backing.is_set() and dom.memory_source is None and dom.memory_access is None:
        return None
    node = x("memoryBacking")
    if backing.hugepages is not None:
        pages = [
            x("page", {"size": p.size_kib, "unit": "KiB" if p.size_kib else None, "nodeset": p.nodeset})
            for p in backing.hugepages
        ]
        node.add(x("hugepages").add(*pages))
    node.add(x("nosharepages") if backing.nosharepages else None)
    node.add(x("locked") if backing.locked else None)
    node.add(x("source", {"type": dom.memory_source}) if dom.memory_source else None)
    node.add(x("access", {"mode": dom.memory_access}) if dom.memory_access else None)
    if backing.allocation or backing.threads:
        node.add(x("allocation", {"mode": backing.allocation, "threads": backing.threads}))
    node.add(x("discard") if backing.discard else None)
    return node


def parse_numatune(e: Elem) -> NumaTune:
    tune = NumaTune()
    if (node := e.child("memory")) is not None:
        tune.mode = node.choice("mode", _NUMA_MODE_NAMES) or "strict"
        tune.placement = node.choice("placement", ("static", "auto"))
        tune.nodeset = node.attr("nodeset")
        if tune.nodeset is not None:
            parse_cpuset(tune.nodeset, f"attribute 'nodeset' of '{node.path}'")
        node.done()
    for node in e.children("memnode"):
        cellid = node.integer("cellid", minimum=0)
        nodeset = node.require("nodeset")
        parse_cpuset(nodeset, f"attribute 'nodeset' of '{node.path}'")
        if cellid is None:
            raise XMLError(f"missing attribute 'cellid' of '{node.path}'")
        tune.memnodes.append(MemNode(cellid, node.choice("mode", _NUMA_MODE_NAMES) or "strict", nodeset))
        node.done()
    e.done()
    return tune


def write_numatune(tune: NumaTune) -> XNode:
    node = x("numatune")
    if tune.mode is not None or tune.nodeset is not None or tune.placement is not None:
        node.add(x("memory", {"mode": tune.mode, "nodeset": tune.nodeset, "placement": tune.placement}))
    for mem in tune.memnodes:
        node.add(x("memnode", {"cellid": mem.cellid, "mode": mem.mode, "nodeset": mem.nodeset}))
    return node


def validate(dom: Domain) -> None:
    """libvirt's checks, and the refusals of what pyvirt cannot honour."""
    backing, cells = of(dom), (dom.cpu.numa if dom.cpu is not None else [])
    if backing.hugepages is not None:
        ids = {cell.id for cell in cells}
        for page in backing.hugepages:
            if page.nodeset is not None:
                missing = parse_cpuset(page.nodeset, "hugepages nodeset") - ids
                if missing:
                    raise InvalidArgument(
                        f"hugepages: nodeset {page.nodeset} names NUMA cells {sorted(missing)} the domain "
                        "does not have"
                    )
        if len(backing.hugepages) > 1 and any(p.nodeset is None for p in backing.hugepages):
            raise InvalidArgument("hugepages: more than one <page> needs a nodeset on each")
    if backing.threads is not None and backing.allocation == "ondemand":
        raise InvalidArgument("memoryBacking/allocation threads need mode='immediate'")
    tune = dom.numatune
    if tune is None:
        return
    if tune.placement == "auto" or (
        tune.mode is not None and tune.nodeset is None and tune.placement != "static"
    ):
        raise UnsupportedConfig(
            "unsupported configuration: numatune placement='auto' needs numad, which pyvirt does not run: "
            "give a nodeset"
        )
    if tune.mode == "restrictive" or any(m.mode == "restrictive" for m in tune.memnodes):
        raise UnsupportedConfig(
            "unsupported configuration: numatune mode='restrictive' limits the QEMU process's cgroup "
            "cpuset.mems, which pyvirt does not set: use strict, preferred or interleave"
        )
    ids = {cell.id for cell in cells}
    for mem in tune.memnodes:
        if mem.cellid not in ids:
            raise InvalidArgument(f"numatune memnode cellid {mem.cellid} names no NUMA cell of the domain")
    if len({m.cellid for m in tune.memnodes}) != len(tune.memnodes):
        raise InvalidArgument("numatune: more than one memnode for the same cellid")


def _huge(size_kib: int | None) -> bool:
    return size_kib != BASE_PAGE_KIB


def page_size(dom: Domain, cell: int | None) -> int | bool | None:
    """The huge page size (KiB; None: the host default) backing ``cell`` (None: all the RAM), or False
    for ordinary pages."""
    pages = of(dom).hugepages
    if pages is None:
        return False
    if not pages:  # <hugepages/>: all the RAM on the host's default huge pages
        return None
    for page in pages:
        if page.nodeset is None or (cell is not None and cell in parse_cpuset(page.nodeset, "nodeset")):
            return page.size_kib if _huge(page.size_kib) else False
    return False


def needs_main_backend(dom: Domain) -> bool:
    """Whether the RAM of a domain without NUMA cells needs its own backend (libvirt's ``pc.ram``)."""
    tune = dom.numatune
    return (
        dom.memory_source is not None
        or dom.memory_access is not None
        or page_size(dom, None) is not False
        or of(dom).allocation == "immediate"
        or of(dom).discard
        or (tune is not None and tune.nodeset is not None)
    )


def backend(
    dom: Domain,
    ident: str,
    size_kib: int,
    cell: NUMACell | None,
    *,
    hugepage_dirs: dict[int, str],
    memory_dir: str | None,
) -> dict[str, object]:
    """The RAM backend ``ident`` (``pc.ram`` or ``ram-nodeN``) of ``size_kib``, as libvirt builds it."""
    backing = of(dom)
    pages = page_size(dom, cell.id if cell is not None else None)
    obj: dict[str, object]
    prealloc = backing.allocation == "immediate"
    if pages is not False:
        size = pages or default_hugepage_kib()
        directory = hugepage_dirs.get(size)
        if directory is None:
            raise UnsupportedConfig(
                f"unsupported configuration: memoryBacking/hugepages: no huge pages of {size} KiB are "
                "mounted on this host (mount hugetlbfs with pagesize= and reserve pages in "
                f"/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages)"
            )
        obj = {"qom-type": "memory-backend-file", "id": ident, "mem-path": directory}
        prealloc = True  # libvirt preallocates huge pages
    elif dom.memory_source == "memfd":
        obj = {"qom-type": "memory-backend-memfd", "id": ident}
    elif dom.memory_source == "file" or (
        cell is not None and cell.mem_access == "shared" and dom.memory_source != "anonymous"
    ):
        if memory_dir is None:
            raise UnsupportedConfig(
                "unsupported configuration: memoryBacking/source type='file' needs a directory for the "
                "memory files (given at start)"
            )
        obj = {"qom-type": "memory-backend-file", "id": ident, "mem-path": f"{memory_dir}/{ident}"}
    else:
        obj = {"qom-type": "memory-backend-ram", "id": ident}
    access = (cell.mem_access if cell is not None else None) or dom.memory_access
    if access is not None:
        obj["share"] = access == "shared"
    if prealloc:
        obj["prealloc"] = True
        if backing.threads is not None:
            obj["prealloc-threads"] = backing.threads
    obj["size"] = size_kib * 1024
    discard = cell.discard if cell is not None and cell.discard is not None else backing.discard
    if discard and obj["qom-type"] == "memory-backend-file":
        obj["discard-data"] = True
    obj.update(_policy(dom, cell))
    return obj


def _policy(dom: Domain, cell: NUMACell | None) -> dict[str, object]:
    tune = dom.numatune
    if tune is None:
        return {}
    mode, nodeset = tune.mode, tune.nodeset
    for mem in tune.memnodes:
        if cell is not None and mem.cellid == cell.id:
            mode, nodeset = mem.mode, mem.nodeset
    if nodeset is None or mode is None:
        return {}
    return {"host-nodes": sorted(parse_cpuset(nodeset, "numatune nodeset")), "policy": NUMA_MODES[mode]}


def with_thread_context(backend: dict[str, object]) -> list[dict[str, object]]:
    """``backend``, after the ``thread-context`` that preallocates it on its host nodes when it has both
    (libvirt's ``tc-ID`` with QEMU 7.2: the preallocating threads run where the memory is)."""
    if not backend.get("prealloc") or "host-nodes" not in backend:
        return [backend]
    context = f"tc-{backend['id']}"
    backend["prealloc-context"] = context
    return [{"qom-type": "thread-context", "id": context, "node-affinity": backend["host-nodes"]}, backend]


def machine_options(dom: Domain) -> dict[str, str]:
    return {"mem-merge": "off"} if of(dom).nosharepages else {}


def overcommit(dom: Domain) -> list[str]:
    return ["-overcommit", "mem-lock=on"] if of(dom).locked else []


# ---------------------------------------------------------------------------------------- the host


def default_hugepage_kib() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 2048


def hugetlbfs_mounts() -> dict[int, str]:
    """Page size (KiB) → a hugetlbfs mount point of this host."""
    from pyvirt import mounts  # the one mount-table reader

    found: dict[int, str] = {}
    try:
        table = mounts.read_mounts()
    except OSError:
        return found
    for mount in table:
        if mount.fstype != "hugetlbfs":
            continue
        size = default_hugepage_kib()
        for opt in mount.options:
            if opt.startswith("pagesize="):
                text = opt[9:].upper()
                factor = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(text[-1:], 0)
                size = int(text[:-1]) * factor if factor else int(text) // 1024
        found.setdefault(size, mount.mountpoint)
    return found


def can_lift_memlock() -> bool:
    """Whether this process can give a child an unlimited RLIMIT_MEMLOCK (as ``<locked/>`` needs)."""
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[1] == resource.RLIM_INFINITY:
        return True
    cap_sys_resource = 24
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap_sys_resource & 1)
    except OSError:
        pass
    return False


def wanted_page_sizes(dom: Domain) -> set[int]:
    """The huge page sizes (KiB) the domain's RAM and memory modules use."""
    sizes: set[int] = set()
    if of(dom).hugepages == []:  # <hugepages/>
        sizes.add(default_hugepage_kib())
    for page in of(dom).hugepages or []:
        if _huge(page.size_kib):
            sizes.add(page.size_kib or default_hugepage_kib())
    for mem in dom.devices.memory:
        if mem.pagesize_kib is not None and _huge(mem.pagesize_kib):
            sizes.add(mem.pagesize_kib)
    return sizes


def require_host(dom: Domain) -> dict[int, str]:
    """At start: the hugetlbfs mount of each page size the domain uses (refused by name when there is
    none, or no pages of that size are reserved) and the host NUMA nodes numatune names."""
    mounts = hugetlbfs_mounts()
    found: dict[int, str] = {}
    for size in sorted(wanted_page_sizes(dom)):
        if size not in mounts:
            raise UnsupportedConfig(
                f"unsupported configuration: memoryBacking/hugepages: this host has no hugetlbfs mounted "
                f"for {size} KiB pages"
            )
        try:
            with open(f"/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages") as fh:
                reserved = int(fh.read())
        except (OSError, ValueError):
            reserved = 0
        if reserved == 0:
            raise UnsupportedConfig(
                f"unsupported configuration: memoryBacking/hugepages: no {size} KiB huge pages are "
                f"reserved on this host (/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages)"
            )
        found[size] = mounts[size]
    if of(dom).locked and not can_lift_memlock():
        _soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        raise UnsupportedConfig(
            "unsupported configuration: memoryBacking/locked: this host does not let pyvirtd lift QEMU's "
            f"locked-memory limit (RLIMIT_MEMLOCK {hard // 1024} KiB, and no CAP_SYS_RESOURCE)"
        )
    tune = dom.numatune
    if tune is not None:
        for nodeset in [tune.nodeset, *(m.nodeset for m in tune.memnodes)]:
            for host_node in sorted(parse_cpuset(nodeset, "numatune nodeset")) if nodeset else []:
                if not os.path.isdir(f"/sys/devices/system/node/node{host_node}"):
                    raise UnsupportedConfig(
                        f"unsupported configuration: numatune: this host has no NUMA node {host_node}"
                    )
    return found
