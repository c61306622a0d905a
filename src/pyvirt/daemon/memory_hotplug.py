"""Memory modules plugged into a running domain (``attach-device`` of ``<memory model='dimm'>``), as
libvirt 9.0 plugs them: ``object-add`` of the module's backend (``memory-backend-ram``, named
``memdimmN``) then ``device_add pc-dimm`` (``dimmN``, in slot N), the domain's ``<memory>`` grown by the
module's (2 MiB-aligned) size. The hotplug space's rules (``<maxMemory slots>``, a NUMA cell, ACPI)
are checked on the running definition with the module added, before QEMU is asked. The guest's
kernel decides when the new memory goes online (Linux: ``memhp_default_state``, or writing ``online``
to the memory block's ``state``).

``detach-device --live`` of a DIMM asks the guest to release it (``device_del``); once QEMU says it
is gone (``DEVICE_DELETED``) its backend is deleted and ``<memory>`` shrinks. The guest releases only
memory it can take offline (Linux: blocks onlined as movable). Plugging other models (``nvdimm``,
``virtio-pmem``, ``virtio-mem``) is refused by name.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import TYPE_CHECKING

from pyvirt.conf import memory_devices
from pyvirt.conf.memory_devices import MemoryDeviceConfig
from pyvirt.errors import InvalidArgument, OperationFailed, PyvirtError, UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)


def _last_module_args(argv: list[str]) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The ``-object``s and the ``-device`` of the last module on ``argv`` (memory_devices.options)."""
    device_at = max(i for i, arg in enumerate(argv) if arg == "-device")
    start = max((i for i, arg in enumerate(argv[:device_at]) if arg == "-device"), default=-2) + 2
    objects = [json.loads(argv[i + 1]) for i in range(start, device_at) if argv[i] == "-object"]
    return objects, json.loads(argv[device_at + 1])


async def plug(reg: DomainRegistry, obj: DomainObject, mem: MemoryDeviceConfig) -> str:
    """Plug ``mem`` into ``obj``'s running QEMU (``obj.lock`` held); returns its alias."""
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    if mem.model != "dimm":
        raise UnsupportedConfig(
            f"unsupported configuration: a <memory model='{mem.model}'> cannot be plugged into a running "
            "domain here (model 'dimm' can; use --config for the next start)"
        )
    trial = copy.deepcopy(live)
    trial.devices.memory.append(copy.deepcopy(mem))
    trial.memory_kib += memory_devices.aligned(mem.size_kib)
    memory_devices.validate(trial)
    objects, device = _last_module_args(memory_devices.options(trial, {}, {}))
    alias = str(device["id"])
    if any(m.alias == alias for m in live.devices.memory):
        raise OperationFailed(f"internal error: a memory device '{alias}' is plugged already")
    mon = proc.monitor
    added: list[str] = []
    try:
        for backend in objects:
            await mon.execute("object-add", backend)
            added.append(str(backend["id"]))
        await mon.execute("device_add", device)
    except BaseException:
        for ident in reversed(added):
            try:
                await mon.execute("object-del", {"id": ident})
            except PyvirtError as err:
                log.warning("domain %s: removing %s after a failed plug: %s", obj.name, ident, err)
        raise
    plugged = copy.deepcopy(mem)
    plugged.alias = alias
    live.devices.memory.append(plugged)
    live.memory_kib = trial.memory_kib
    if live.current_memory_kib is not None:
        live.current_memory_kib += memory_devices.aligned(mem.size_kib)
    reg.save_run_state(obj)
    return alias


def module_ids(dom: Domain) -> list[str]:
    """Each module's device id in QEMU, as the command line named it (libvirt's names)."""
    try:
        argv = memory_devices.options(dom, {}, {})
    except PyvirtError:  # huge page modules: their backend needs the mount; their ids are still these
        return [m.alias or "" for m in dom.devices.memory]
    return [json.loads(argv[i + 1])["id"] for i, arg in enumerate(argv) if arg == "-device"]


def find(live: Domain, mem: MemoryDeviceConfig) -> str:
    """The id of the plugged module ``mem`` describes: by its alias, else the first of the same
    model, size and node."""
    for plugged, ident in zip(live.devices.memory, module_ids(live), strict=True):
        same = (plugged.model, plugged.size_kib, plugged.node) == (mem.model, mem.size_kib, mem.node)
        if ident == mem.alias or (mem.alias is None and same):
            return ident
    raise OperationFailed("operation failed: matching <memory> device not found in the domain")


async def unplugged(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, dev_id: str) -> None:
    """QEMU's DEVICE_DELETED of a module (``obj.lock`` held): its backend and live entry go."""
    live = obj.live
    if live is None:
        return
    index = next((i for i, ident in enumerate(module_ids(live)) if ident == dev_id), None)
    if index is None:
        return
    mem = live.devices.memory.pop(index)
    try:
        await proc.monitor.execute("object-del", {"id": f"mem{dev_id}"})
    except PyvirtError as err:
        log.warning("domain %s: deleting the backend of %s: %s", obj.name, dev_id, err)
    live.memory_kib -= memory_devices.aligned(mem.size_kib)
    if live.current_memory_kib is not None:
        live.current_memory_kib -= memory_devices.aligned(mem.size_kib)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-removed", dev_id)


def _same_but_requested(a: MemoryDeviceConfig, b: MemoryDeviceConfig) -> bool:
    a, b = copy.copy(a), copy.copy(b)
    a.requested_kib = b.requested_kib = None
    a.alias = b.alias = None
    a.address = b.address = None
    return a == b


def find_virtio_mem(dom: Domain, mem: MemoryDeviceConfig) -> int:
    """The index of the virtio-mem module ``mem`` names (by alias, else the one like it)."""
    for index, (plugged, ident) in enumerate(zip(dom.devices.memory, module_ids(dom), strict=True)):
        if plugged.model != "virtio-mem":
            continue
        if (mem.alias is not None and ident == mem.alias) or (
            mem.alias is None and _same_but_requested(plugged, mem)
        ):
            return index
    raise OperationFailed("operation failed: matching <memory model='virtio-mem'> device not found")


def new_requested(plugged: MemoryDeviceConfig, mem: MemoryDeviceConfig) -> int:
    """The ``<requested>`` size ``mem`` asks of the module ``plugged``: all else must stay as it is."""
    if mem.model != "virtio-mem" or not _same_but_requested(plugged, mem):
        raise UnsupportedConfig(
            "unsupported configuration: of a <memory> device, update-device changes a virtio-mem "
            "module's <requested> size only"
        )
    requested = mem.requested_kib or 0
    assert plugged.block_kib is not None
    if requested % plugged.block_kib or requested > plugged.size_kib:
        raise InvalidArgument(
            f"requested size {requested} KiB of a virtio-mem device must be a multiple of its "
            f"block size ({plugged.block_kib} KiB) and at most its size ({plugged.size_kib} KiB)"
        )
    return requested


async def update_requested(reg: DomainRegistry, obj: DomainObject, mem: MemoryDeviceConfig) -> None:
    """update-device --live of a virtio-mem module: QEMU's ``requested-size`` set (the guest's driver
    plugs or unplugs blocks to reach it), as libvirt does."""
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    if mem.model != "virtio-mem":
        raise UnsupportedConfig(
            "unsupported configuration: of a <memory> device, update-device changes a virtio-mem "
            "module's <requested> size only"
        )
    index = find_virtio_mem(live, mem)
    plugged = live.devices.memory[index]
    requested = new_requested(plugged, mem)
    await proc.monitor.execute(
        "qom-set",
        {
            "path": f"/machine/peripheral/{module_ids(live)[index]}",
            "property": "requested-size",
            "value": requested * 1024,
        },
    )
    plugged.requested_kib = requested
    reg.save_run_state(obj)
