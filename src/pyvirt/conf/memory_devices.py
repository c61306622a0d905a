"""Memory modules and the hotplug space: ``<maxMemory slots>`` and ``<memory model='dimm|nvdimm|
virtio-pmem|virtio-mem'>``, as libvirt 9.0 writes them and gives them to QEMU.

- ``<maxMemory slots='S'>M</maxMemory>`` is ``-m size=INITIAL,slots=S,maxmem=M``; the initial memory is
  the NUMA cells' sum, else ``<memory>`` less the modules (libvirt's rule);
- each module is a memory backend and a device, named as libvirt names them (``memdimm0``/``dimm0``,
  ``memnvdimm0``/``nvdimm0``, ``memvirtiopmem0``/``virtiopmem0``, ``memvirtiomem0``/``virtiomem0``):
  ``memory-backend-ram`` (``memory-backend-file`` for a file or huge pages) and ``pc-dimm``, ``nvdimm``
  (``label-size``, ``unarmed`` for ``<readonly/>``; the machine gets ``nvdimm=on``; the file backend
  ``pmem``, ``align``, ``prealloc`` unless pmem), ``virtio-pmem-pci``, ``virtio-mem-pci`` (``block-size``,
  ``requested-size``; the backend ``reserve=false``);
- ``access`` is the backend's ``share``, ``discard='yes'`` its ``discard-data`` (file backends),
  ``<source><nodemask>`` its ``host-nodes`` with ``policy=bind``, ``<source><pagesize>`` huge pages
  (:mod:`pyvirt.conf.memory_backing` finds their mount at start); ``<target><node>`` the device's
  ``node``, ``<address type='dimm' slot base>`` its ``slot`` and ``addr``.

Sizes are aligned up to 2 MiB as libvirt aligns x86 memory modules. libvirt's checks are kept: modules
need ``<maxMemory>`` and a NUMA cell, at most ``slots`` DIMMs, and room below ``maxMemory``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyvirt.conf import memory_backing
from pyvirt.conf.addresses import number
from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.units import KIB, unit_factor
from pyvirt.conf.xmlutil import Elem, XNode, x, yes_no
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

MODELS = ("dimm", "nvdimm", "virtio-pmem", "virtio-mem")
ALIGN_KIB = 2048  # libvirt: x86 memory modules are aligned to 2 MiB
MAX_MAXMEM_KIB = 1 << 50  # 1 EiB: above what a guest's physical address space holds
_DEVICE = {
    "dimm": "pc-dimm",
    "nvdimm": "nvdimm",
    "virtio-pmem": "virtio-pmem-pci",
    "virtio-mem": "virtio-mem-pci",
}
_FILE_MODELS = ("nvdimm", "virtio-pmem")  # backed by <source><path>


@dataclass
class MemoryDeviceConfig:
    """One ``<memory model=...>`` device (sizes in KiB)."""

    model: str = "dimm"
    access: str | None = None  # shared | private: the backend's share
    discard: bool | None = None
    path: str | None = None  # nvdimm, virtio-pmem: the backing file
    pmem: bool = False  # nvdimm: the file is persistent memory
    align_kib: int | None = None  # nvdimm: <source><alignsize>
    pagesize_kib: int | None = None  # dimm, virtio-mem: huge pages of this size
    nodemask: str | None = None  # dimm, virtio-mem: host NUMA nodes the memory is bound to
    size_kib: int = 0
    node: int | None = None  # guest NUMA node
    label_kib: int | None = None  # nvdimm: <label><size>
    readonly: bool = False  # nvdimm: unarmed
    block_kib: int | None = None  # virtio-mem
    requested_kib: int | None = None  # virtio-mem
    alias: str | None = None
    address: PCIAddress | None = None


def parse_size(e: Elem, *, what: str, maximum_kib: int = MAX_MAXMEM_KIB) -> int:
    """A size element's text in its ``unit`` (KiB by default), in KiB rounded up."""
    text = e.text().strip()
    if not (text.isascii() and text.isdigit()):
        raise XMLError(f"invalid size '{text}' in element '{e.path}': expected a non-negative integer")
    try:
        factor = unit_factor(e.attr("unit") or "KiB")
    except InvalidArgument as err:
        raise InvalidArgument(f"{err.message} in element '{e.path}'") from err
    kib = -(-int(text) * factor // KIB) if len(text) < 30 else maximum_kib + 1
    if not 0 < kib <= maximum_kib:
        raise InvalidArgument(f"{what} '{text}' in element '{e.path}' is out of range (1 KiB-1 EiB)")
    e.done()
    return kib


def parse_max_memory(e: Elem) -> tuple[int, int | None]:
    """``<maxMemory slots unit>`` → (KiB, slots)."""
    slots = e.integer("slots", minimum=0, maximum=255)
    return parse_size(e, what="maxMemory"), slots


def parse(e: Elem) -> MemoryDeviceConfig:
    model = e.choice("model", MODELS, required=True)
    assert model is not None
    mem = MemoryDeviceConfig(model=model)
    mem.access = e.choice("access", ("shared", "private"))
    mem.discard = e.flag("discard")
    if (source := e.child("source")) is not None:
        if (node := source.child("path")) is not None:
            mem.path = node.text()
            node.done()
        if (node := source.child("pmem")) is not None:
            mem.pmem = True
            node.done()
        if (node := source.child("alignsize")) is not None:
            mem.align_kib = parse_size(node, what="alignsize")
        if (node := source.child("pagesize")) is not None:
            mem.pagesize_kib = parse_size(node, what="pagesize")
        if (node := source.child("nodemask")) is not None:
            mem.nodemask = node.text()
            parse_cpuset(mem.nodemask, f"'{node.path}'")
            node.done()
        source.done()
    target = e.child("target")
    if target is None:
        raise XMLError(f"missing element 'target' of '{e.path}'")
    if (node := target.child("size")) is None:
        raise XMLError(f"missing element 'size' of '{target.path}'")
    mem.size_kib = parse_size(node, what="size")
    if (node := target.child("node")) is not None:
        mem.node = node.text_int(minimum=0, maximum=127)
        node.done()
    if (label := target.child("label")) is not None:
        if (node := label.child("size")) is None:
            raise XMLError(f"missing element 'size' of '{label.path}'")
        mem.label_kib = parse_size(node, what="label size")
        label.done()
    if (node := target.child("readonly")) is not None:
        mem.readonly = True
        node.done()
    if (node := target.child("block")) is not None:
        mem.block_kib = parse_size(node, what="block size")
    if (node := target.child("requested")) is not None:
        mem.requested_kib = parse_size(node, what="requested size")
    target.skip("current")  # virtio-mem's plugged size: QEMU's to report (libvirt's live XML)
    target.done()
    _check_model(mem, e.path)
    return mem


def _check_model(mem: MemoryDeviceConfig, where: str) -> None:
    def only(attr: object, name: str, models: tuple[str, ...]) -> None:
        if attr and mem.model not in models:
            raise UnsupportedConfig(
                f"unsupported configuration: {name} of '{where}' is not supported by model '{mem.model}'"
            )

    only(mem.path, "<source><path>", _FILE_MODELS)
    only(mem.pmem, "<source><pmem>", ("nvdimm",))
    only(mem.align_kib, "<source><alignsize>", ("nvdimm",))
    only(mem.pagesize_kib, "<source><pagesize>", ("dimm", "virtio-mem"))
    only(mem.nodemask, "<source><nodemask>", ("dimm", "virtio-mem"))
    only(mem.label_kib, "<target><label>", ("nvdimm",))
    only(mem.readonly, "<target><readonly>", ("nvdimm",))
    only(mem.block_kib, "<target><block>", ("virtio-mem",))
    only(mem.requested_kib, "<target><requested>", ("virtio-mem",))
    if mem.model in _FILE_MODELS and not mem.path:
        raise XMLError(f"missing element 'source/path' of '{where}' (model '{mem.model}')")
    if mem.model == "virtio-mem" and (mem.block_kib is None or mem.requested_kib is None):
        raise XMLError(f"'{where}' of model 'virtio-mem' needs <target><block> and <target><requested>")


def write(mem: MemoryDeviceConfig, extra: tuple[XNode | None, ...]) -> XNode:
    node = x("memory", {"model": mem.model, "access": mem.access, "discard": yes_no(mem.discard)})
    source = x("source")
    if mem.nodemask:
        source.add(x("nodemask", text=mem.nodemask))
    if mem.pagesize_kib:
        source.add(x("pagesize", {"unit": "KiB"}, text=str(mem.pagesize_kib)))
    if mem.path:
        source.add(x("path", text=mem.path))
    if mem.align_kib:
        source.add(x("alignsize", {"unit": "KiB"}, text=str(mem.align_kib)))
    if mem.pmem:
        source.add(x("pmem"))
    if source.children:
        node.add(source)
    target = x("target").add(x("size", {"unit": "KiB"}, text=str(mem.size_kib)))
    if mem.node is not None:
        target.add(x("node", text=str(mem.node)))
    if mem.label_kib is not None:
        target.add(x("label").add(x("size", {"unit": "KiB"}, text=str(mem.label_kib))))
    if mem.readonly:
        target.add(x("readonly"))
    if mem.block_kib is not None:
        target.add(x("block", {"unit": "KiB"}, text=str(mem.block_kib)))
    if mem.requested_kib is not None:
        target.add(x("requested", {"unit": "KiB"}, text=str(mem.requested_kib)))
    return node.add(target, *extra)


def aligned(kib: int) -> int:
    return -(-kib // ALIGN_KIB) * ALIGN_KIB


def initial_kib(dom: Domain) -> int:
    """The memory QEMU's ``-m size`` gets: the NUMA cells' sum, else ``<memory>`` less the modules."""
    cells = dom.cpu.numa if dom.cpu is not None else []
    if cells:
        return sum(cell.memory_kib for cell in cells)
    return dom.memory_kib - sum(aligned(mem.size_kib) for mem in dom.devices.memory)


def validate(dom: Domain) -> None:
    """libvirt's checks of the hotplug space and the modules in it."""
    mems = dom.devices.memory
    if dom.max_memory_kib is None:
        if mems:
            raise UnsupportedConfig(
                "unsupported configuration: cannot use/hotplug a memory device when domain 'maxMemory' "
                "is not defined"
            )
        return
    cells = dom.cpu.numa if dom.cpu is not None else []
    if not cells:
        raise UnsupportedConfig(
            "unsupported configuration: At least one numa node has to be configured when enabling "
            "memory hotplug"
        )
    initial = initial_kib(dom)
    if dom.max_memory_kib < initial:
        raise InvalidArgument(
            f"maximum memory size ({dom.max_memory_kib} KiB) must be at least the initial memory "
            f"({initial} KiB)"
        )
    if "acpi" not in dom.features and any(m.model in ("dimm", "nvdimm") for m in mems):
        raise UnsupportedConfig(
            "unsupported configuration: memory models 'dimm' and 'nvdimm' need <features><acpi/>: "
            "QEMU's memory hotplug is ACPI's"
        )
    slots = dom.max_memory_slots or 0
    dimms = [m for m in mems if m.model in ("dimm", "nvdimm")]
    if len(dimms) > slots:
        raise InvalidArgument(f"memory device count '{len(dimms)}' exceeds slots count '{slots}'")
    if initial + sum(aligned(m.size_kib) for m in mems) > dom.max_memory_kib:
        raise InvalidArgument("memory device total size exceeds hotplug space")
    taken: dict[int, int] = {}
    for index, mem in enumerate(mems):
        where = f"memory device #{index} (model '{mem.model}')"
        if mem.node is not None and mem.node >= len(cells):
            raise InvalidArgument(
                f"{where}: can't add memory backend for guest node '{mem.node}' as the guest has only "
                f"'{len(cells)}' NUMA nodes configured"
            )
        addr = mem.address
        if addr is not None and addr.type == "dimm":
            if mem.model not in ("dimm", "nvdimm"):
                raise InvalidArgument(f"{where} cannot have an address of type 'dimm'")
            slot = number(addr, "slot", -1)
            if slot >= slots:
                raise InvalidArgument(f"{where}: memory device slot '{slot}' exceeds slots count '{slots}'")
            if slot >= 0:
                if slot in taken:
                    raise InvalidArgument(
                        f"memory device slot '{slot}' is already being used by another memory device"
                    )
                taken[slot] = index
        elif addr is not None and addr.type == "pci" and mem.model in ("dimm", "nvdimm"):
            raise InvalidArgument(f"{where} cannot have an address of type 'pci'")
        if mem.model == "virtio-mem":
            assert mem.block_kib is not None and mem.requested_kib is not None
            if mem.block_kib & (mem.block_kib - 1) or mem.block_kib < 2048:
                raise InvalidArgument(f"{where}: block size must be a power of two, at least 2 MiB")
            if mem.size_kib % mem.block_kib or mem.requested_kib % mem.block_kib:
                raise InvalidArgument(f"{where}: size and requested size must be multiples of the block size")
            if mem.requested_kib > mem.size_kib:
                raise InvalidArgument(f"{where}: requested size must be smaller than or equal to size")
        if mem.label_kib is not None and mem.label_kib < 128:
            raise InvalidArgument(f"{where}: nvdimm label must be at least 128KiB")


def machine_options(dom: Domain) -> dict[str, str]:
    """``-machine`` options the modules need (``nvdimm=on``)."""
    return {"nvdimm": "on"} if any(m.model == "nvdimm" for m in dom.devices.memory) else {}


def memory_option(dom: Domain) -> str:
    """``-m``'s value: the initial size rounded up to whole MiB, with the hotplug space."""
    size = f"size={-(-initial_kib(dom) // 1024) * 1024}k"
    if dom.max_memory_kib is None:
        return size
    slots = f",slots={dom.max_memory_slots}" if dom.max_memory_slots is not None else ""
    return f"{size}{slots},maxmem={dom.max_memory_kib}k"


def dimm_slots(dom: Domain) -> dict[int, int]:
    """Module index → the slot of each DIMM and NVDIMM: its address's, else the lowest free one (as
    libvirt assigns them at start)."""
    slots: dict[int, int] = {}
    for index, mem in enumerate(dom.devices.memory):
        addr = mem.address
        if (
            mem.model in ("dimm", "nvdimm")
            and addr is not None
            and addr.type == "dimm"
            and "slot" in addr.attrs
        ):
            slots[index] = number(addr, "slot")
    for index, mem in enumerate(dom.devices.memory):
        if mem.model in ("dimm", "nvdimm") and index not in slots:
            slots[index] = next(s for s in range(len(dom.devices.memory) + 256) if s not in slots.values())
    return slots


def _counters() -> dict[str, int]:
    return {model: 0 for model in MODELS}


def options(dom: Domain, hugepage_dirs: dict[int, str], placement: dict[int, dict[str, str]]) -> list[str]:
    """The ``-object`` and ``-device`` pairs of every module; ``hugepage_dirs``: huge page size (KiB) →
    the directory the backend files go in; ``placement``: module index → its PCI placement."""
    args: list[str] = []
    counters = _counters()
    slots = dimm_slots(dom)
    for index, mem in enumerate(dom.devices.memory):
        name = mem.model.replace("-", "")
        if index in slots:  # libvirt names a DIMM by its slot
            ident = mem.alias or f"{name}{slots[index]}"
        else:
            ident = mem.alias or f"{name}{counters[mem.model]}"
            counters[mem.model] += 1
        backend = _backend(dom, mem, f"mem{ident}", hugepage_dirs)
        device: dict[str, object] = {"driver": _DEVICE[mem.model]}
        if mem.node is not None and mem.model != "virtio-pmem":
            device["node"] = mem.node
        if mem.label_kib is not None:
            device["label-size"] = mem.label_kib * 1024
        if mem.readonly:
            device["unarmed"] = True
        if mem.model == "virtio-mem":
            assert mem.block_kib is not None and mem.requested_kib is not None
            device["block-size"] = mem.block_kib * 1024
            device["requested-size"] = mem.requested_kib * 1024
        device["memdev"] = backend["id"]
        if mem.model == "virtio-mem" and backend.pop("prealloc", False):
            device["prealloc"] = True  # virtio-mem preallocates what the guest plugs, not the backend
        device["id"] = ident
        if index in slots:
            device["slot"] = slots[index]
        addr = mem.address
        if addr is not None and addr.type == "dimm" and "base" in addr.attrs:
            device["addr"] = number(addr, "base")
        device.update(placement.get(index, {}))
        for obj in memory_backing.with_thread_context(backend):
            args += ["-object", json.dumps(obj, separators=(",", ":"))]
        args += ["-device", json.dumps(device, separators=(",", ":"))]
    return args


def _backend(
    dom: Domain, mem: MemoryDeviceConfig, ident: str, hugepage_dirs: dict[int, str]
) -> dict[str, object]:
    size = aligned(mem.size_kib) * 1024
    obj: dict[str, object]
    if mem.path is not None:
        obj = {"qom-type": "memory-backend-file", "id": ident, "mem-path": mem.path}
    elif mem.pagesize_kib is not None and mem.pagesize_kib != _base_page_kib():
        directory = hugepage_dirs.get(mem.pagesize_kib)
        if directory is None:
            raise UnsupportedConfig(
                f"unsupported configuration: memory device '{ident[3:]}': no huge pages of "
                f"{mem.pagesize_kib} KiB are mounted on this host"
            )
        obj = {"qom-type": "memory-backend-file", "id": ident, "mem-path": directory, "prealloc": True}
    else:
        obj = {"qom-type": "memory-backend-ram", "id": ident}
    if mem.model == "virtio-mem":
        obj["reserve"] = False
    if mem.access is not None:
        obj["share"] = mem.access == "shared"
    if mem.model == "nvdimm" and not mem.pmem:
        obj["prealloc"] = True
    obj["size"] = size
    if mem.align_kib is not None:
        obj["align"] = mem.align_kib * 1024
    if mem.pmem:
        obj["pmem"] = True
    if mem.discard and obj["qom-type"] == "memory-backend-file":
        obj["discard-data"] = True
    if mem.nodemask is not None:
        obj["host-nodes"] = sorted(parse_cpuset(mem.nodemask, "memory device nodemask"))
        obj["policy"] = "bind"
    return obj


def _base_page_kib() -> int:
    return 4  # x86's base page: <pagesize unit='KiB'>4</pagesize> is plain memory, as libvirt takes it


def host_files(dom: Domain) -> list[str]:
    """The files the modules' backends map (QEMU's user opens them)."""
    return [mem.path for mem in dom.devices.memory if mem.path is not None]
