"""Devices of a domain, while it runs and in its definition: attach-device, detach-device,
detach-device-alias and update-device, which attach-disk, detach-disk and change-media are built on
(as virsh builds them).

``live`` acts on the running domain, ``config`` on the persistent definition (virsh's --live and
--config; the caller resolves --current and --persistent). Both are checked before either changes, so
a refused request leaves both as they were. A disk plugged live gets its files opened by the daemon
(:mod:`pyvirt.daemon.blockdevs`) and a device on a free PCIe root port on q35
(:func:`pyvirt.qemu.hotplug.pci_slot`); an ``<interface>`` goes through :mod:`pyvirt.daemon.nics`;
a SCSI ``<controller>`` is plugged too, by itself or (libvirt's way) before a SCSI disk that needs
it, then of libvirt's default model (``lsilogic``).

A live removal asks the guest (``device_del``) and lets go of the domain's lock; QEMU's
DEVICE_DELETED, applied under the lock like every QMP event (:func:`device_deleted`), removes the
disk's block nodes, fdsets and files and its live entry. The caller waits without the lock, so a
guest that never lets go blocks nothing; after ``timeout`` the request fails saying the removal is
still pending. A cdrom's or floppy's medium changes through its tray (``blockdev-open-tray``,
``-remove-medium``, ``-insert-medium``, ``-close-tray``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from pyvirt.conf.addresses import drive_address
from pyvirt.conf.controller_models import SCSI_DEVICES, scsi_driver_attrs
from pyvirt.conf.defaults import apply_defaults
from pyvirt.conf.device_xml import Device, device_list, format_device, next_controller_index, parse_device
from pyvirt.conf.domain import (
    ControllerConfig,
    DiskConfig,
    Domain,
    GraphicsConfig,
    InterfaceConfig,
    PCIAddress,
)
from pyvirt.conf.domain_xml import AUTO_TAP_PREFIXES
from pyvirt.conf.hostdev import HostdevConfig
from pyvirt.conf.implicit_devices import DEFAULT_SCSI_MODEL
from pyvirt.conf.memory_devices import MemoryDeviceConfig, aligned
from pyvirt.conf.validate import validate_domain
from pyvirt.daemon import blockdevs, hostdevs, lifecycle, memory_hotplug, nics
from pyvirt.daemon.lifecycle import guard
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.qemu.hotplug import HOTPLUG_BUSES, disk_device, pci_placement, pci_slot

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

REMOVAL_TIMEOUT = 30.0
_MEDIA_FIELDS = (
    *("type", "source", "source_pool", "source_volume", "source_protocol", "source_name"),
    *("source_host", "net", "driver_type", "encryption"),
)
# Fields of a disk that update-device may not change while the domain runs.
_FIXED_FIELDS = (
    *("device", "target_bus", "readonly", "shareable", "serial", "cache", "io", "discard"),
    *("iothread", "driver_name", "layers"),
)


def _transient(obj: DomainObject) -> InvalidState:
    return InvalidState("Requested operation is not valid: cannot change config of transient domain")


def _checked(dom: Domain, change: str, *, live: bool = False) -> Domain:
    """``dom`` (a changed copy of a definition, or with ``live`` of the running domain) with libvirt's
    defaults (PCI addresses only in a definition), validated."""
    apply_defaults(dom, pci=not live)
    try:
        validate_domain(dom)
    except (InvalidArgument, UnsupportedConfig) as err:
        raise type(err)(f"{err} (after the {change})") from err
    return dom


def _live_trial(live: Domain) -> Domain:
    """A copy of the running definition that validates like a definition (no generated tap names)."""
    trial = copy.deepcopy(live)
    for nic in trial.devices.interfaces:
        if nic.target_dev and nic.target_dev.startswith(AUTO_TAP_PREFIXES):
            nic.target_dev = None
    return trial


def _find_disk(dom: Domain, target: str) -> int:
    for index, disk in enumerate(dom.devices.disks):
        if disk.target_dev == target:
            return index
    raise OperationFailed(f"operation failed: disk {target} not found")


def _scopes(obj: DomainObject, live: bool, config: bool) -> None:
    if config and obj.config is None:
        raise _transient(obj)
    if live and not obj.active:
        raise InvalidState("Requested operation is not valid: domain is not running")


# ------------------------------------------------------------------------------------------- attach


async def attach(reg: DomainRegistry, key: str, xml: str, *, live: bool, config: bool) -> dict[str, Any]:
    """attach-device: the device in ``xml`` plugged into the running domain and/or added to its
    definition. Replies with the device's live alias (when plugged)."""
    dev = parse_device(xml)
    if dev.kind == "interface":
        assert isinstance(dev.obj, InterfaceConfig)
        done = await nics.attach_nic(reg, key, dev.obj, live=live, config=config)
        return {"kind": "interface", "alias": dev.obj.alias if live else None, "mac": done["mac"]}
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        _scopes(obj, live, config)
        new_config = None
        if config:
            assert obj.config is not None
            new_config = copy.deepcopy(obj.config)
            item = copy.deepcopy(dev.obj)
            if isinstance(item, DiskConfig) and any(
                d.target_dev == item.target_dev for d in new_config.devices.disks
            ):
                raise InvalidArgument(f"target {item.target_dev} already exists")
            if isinstance(item, ControllerConfig) and not dev.index_given:
                item.index = next_controller_index(new_config, item)
            _add(new_config, dev.kind, item)
            _checked(new_config, f"attach of this {dev.kind}")
            if isinstance(item, DiskConfig):
                _check_files(reg, item)
        alias = None
        if live:
            item = copy.deepcopy(dev.obj)
            if isinstance(item, ControllerConfig):
                if not dev.index_given:
                    assert obj.live is not None
                    item.index = next_controller_index(obj.live, item)
                alias = await _plug_controller(reg, obj, item)
            elif isinstance(item, DiskConfig):
                alias = await _attach_disk_live(reg, obj, item)
            elif isinstance(item, MemoryDeviceConfig):
                alias = await memory_hotplug.plug(reg, obj, item)
            elif isinstance(item, HostdevConfig):
                alias = await _attach_hostdev_live(reg, obj, item)
            else:
                raise UnsupportedConfig(
                    f"unsupported configuration: a <{dev.kind}> cannot be attached to a running domain "
                    "(disks, interfaces, SCSI controllers, DIMMs and host devices can; use --config for "
                    "the next start)"
                )
        if new_config is not None:
            reg.write_config(new_config)
            obj.config = new_config
        return {"kind": dev.kind, "alias": alias}


def _add(dom: Domain, kind: str, item: object) -> None:
    if isinstance(item, MemoryDeviceConfig):  # the domain's memory grows with its modules (libvirt)
        dom.memory_kib += aligned(item.size_kib)
    if kind == "memballoon":
        if dom.devices.memballoon is not None:
            raise InvalidArgument("the domain already has a memballoon")
        dom.devices.memballoon = item  # type: ignore[assignment]
        return
    device_list(dom.devices, kind).append(item)


def _check_files(reg: DomainRegistry, disk: DiskConfig) -> None:
    path = blockdevs.disk_path(reg, disk) if disk.type != "network" else None
    if path is not None:
        blockdevs.check_source(path)


async def _attach_disk_live(reg: DomainRegistry, obj: DomainObject, disk: DiskConfig) -> str:
    """Plug ``disk`` into running ``obj`` (``obj.lock`` held); returns its device id."""
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    blockdevs.record_disks(live, proc.record)
    existing = next((d for d in live.devices.disks if d.target_dev == disk.target_dev), None)
    if existing is not None:
        if disk.device in ("cdrom", "floppy") and existing.device == disk.device:
            await _change_media(reg, obj, existing, disk, force=False)  # libvirt: a new medium
            assert existing.alias is not None
            return existing.alias
        raise InvalidArgument(f"target {disk.target_dev} already exists")
    trial = _live_trial(live)
    trial.devices.disks.append(disk)
    _checked(trial, f"attach of disk '{disk.target_dev}'", live=True)
    disk = trial.devices.disks[-1]
    if disk.target_bus not in HOTPLUG_BUSES:
        raise UnsupportedConfig(
            f"unsupported configuration: disk bus '{disk.target_bus}' cannot be hotplugged "
            f"(only {', '.join(HOTPLUG_BUSES)}; sdX targets default to sata: give bus='scsi')"
        )
    missing = _check_controller(trial, disk, live)
    path = blockdevs.disk_path(reg, disk) if disk.type != "network" else None
    if path is not None:
        blockdevs.check_source(path)
        blockdevs.disk_in_use(reg, obj, disk, path)
    index = len(trial.devices.disks) - 1
    if disk.target_bus == "virtio" and disk.address is None:
        disk.address = pci_slot(trial)
    elif disk.target_bus == "scsi" and disk.address is None:
        controller, bus, target, unit = drive_address(trial, index)
        attrs = {"controller": str(controller), "bus": str(bus), "target": str(target), "unit": str(unit)}
        disk.address = PCIAddress(type="drive", attrs=attrs)
    args = disk_device(trial, index, None)
    if missing is not None:  # as libvirt: the controller first (it stays if the disk then fails)
        await _plug_controller(reg, obj, ControllerConfig(type="scsi", index=missing))
    dev_id = str(args["id"])
    if any(d.alias == dev_id for d in live.devices.disks) or any(
        n.alias == dev_id for n in live.devices.interfaces
    ):
        raise InvalidArgument(f"device alias '{dev_id}' is already used by the domain")
    drive = await blockdevs.plug_nodes(reg, obj, disk) if blockdevs.has_media(disk) else None
    try:
        if drive is not None:
            args["drive"] = drive
        await proc.monitor.execute("device_add", args)
    except BaseException:
        if drive is not None:
            await blockdevs.unplug_nodes(reg, obj, proc, disk, live.devices.disks)
        raise
    disk.alias = dev_id
    live.devices.disks.append(disk)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-added", dev_id)
    return dev_id


async def _attach_hostdev_live(reg: DomainRegistry, obj: DomainObject, dev: HostdevConfig) -> str:
    """Plug host device ``dev`` into running ``obj`` (``obj.lock`` held, daemon/hostdevs.py)."""
    assert obj.live is not None
    trial = _live_trial(obj.live)
    trial.devices.hostdevs.append(dev)
    _checked(trial, "attach of this hostdev", live=True)
    added = trial.devices.hostdevs[-1]
    if added.type in ("pci", "mdev") and added.address is None:
        added.address = pci_slot(trial)
    return await hostdevs.plug(reg, obj, trial)


def _check_controller(dom: Domain, disk: DiskConfig, live: Domain) -> int | None:
    """The SCSI controller a SCSI disk of ``dom`` (``live`` with the disk, defaults applied) needs that the
    running machine ``live`` lacks (libvirt plugs it first); a USB disk without a USB controller is
    refused."""
    if disk.target_bus == "scsi":
        controller = drive_address(dom, dom.devices.disks.index(disk))[0]
        present = any(c.type == "scsi" and c.index == controller for c in live.devices.controllers) or (
            controller == 0 and any(d.target_bus == "scsi" for d in live.devices.disks)
        )
        return None if present else controller
    if disk.target_bus == "usb" and not any(
        c.type == "usb" and c.model != "none" for c in dom.devices.controllers
    ):
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' needs a USB controller, "
            "which the running domain does not have"
        )
    return None


async def _plug_controller(reg: DomainRegistry, obj: DomainObject, ctl: ControllerConfig) -> str:
    """Plug a SCSI controller into running ``obj`` (``obj.lock`` held); its device id. One without a
    model gets libvirt's default (``lsilogic`` on x86, as libvirt 9.0's hot-plug picks it)."""
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    if ctl.type != "scsi":
        raise UnsupportedConfig(
            f"unsupported configuration: a {ctl.type} controller cannot be attached to a running domain "
            "(SCSI ones can; use --config for the next start)"
        )
    if any(c.type == "scsi" and c.index == ctl.index for c in live.devices.controllers):
        raise InvalidArgument(f"the domain already has scsi controller {ctl.index}")
    trial = _live_trial(live)
    trial.devices.controllers.append(ctl)
    # a model-less one gets libvirt's default
    _checked(trial, f"attach of scsi controller {ctl.index}", live=True)
    driver = SCSI_DEVICES.get(ctl.model or DEFAULT_SCSI_MODEL)
    if driver is None:
        raise UnsupportedConfig(f"unsupported configuration: scsi controller model '{ctl.model}'")
    if scsi_driver_attrs(ctl.extra) or ctl.virtio:
        raise UnsupportedConfig(
            f"unsupported configuration: the <driver> tuning of scsi controller {ctl.index} is not applied "
            "to a running domain (use --config for the next start)"
        )
    address = ctl.address or pci_slot(live)
    dev_id = f"scsi{ctl.index}"
    await proc.monitor.execute("device_add", {"driver": driver, "id": dev_id, **pci_placement(address, live)})
    ctl.address = address
    live.devices.controllers.append(ctl)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-added", dev_id)
    return dev_id


# ------------------------------------------------------------------------------------------- detach


async def detach(
    reg: DomainRegistry, key: str, xml: str, *, live: bool, config: bool, wait: bool = True
) -> dict[str, Any]:
    """detach-device: the device ``xml`` describes (a disk by its target, an interface by its MAC,
    another device by its alias or its whole XML) removed from the running domain and/or the
    definition."""
    dev = parse_device(xml)
    obj = reg.lookup(key)
    if dev.kind == "interface":
        assert isinstance(dev.obj, InterfaceConfig)
        mac = dev.obj.mac or _only_mac(obj, dev.obj, live)
        await nics.detach_interface(reg, key, mac, live=live, config=config, timeout=REMOVAL_TIMEOUT)
        return {"kind": "interface", "alias": None}
    removal: asyncio.Future[None] | None = None
    alias: str | None = None
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        _scopes(obj, live, config)
        new_config = None
        if config:
            assert obj.config is not None
            new_config = copy.deepcopy(obj.config)
            _remove(new_config, dev, xml)
        if live:
            assert obj.live is not None
            if isinstance(dev.obj, ControllerConfig):
                removal, alias = await _request_controller_removal(obj, dev.obj)
            elif isinstance(dev.obj, DiskConfig):
                live_disk = obj.live.devices.disks[_find_disk(obj.live, dev.obj.target_dev)]
                removal, alias = await _request_removal(obj, live_disk)
            elif isinstance(dev.obj, MemoryDeviceConfig) and dev.obj.model == "dimm":
                removal, alias = await _request_removal(obj, memory_hotplug.find(obj.live, dev.obj))
            elif isinstance(dev.obj, HostdevConfig) and dev.obj.iscsi is None:
                removal, alias = await _request_removal(obj, hostdevs.find(obj.live, dev.obj))
            else:
                raise UnsupportedConfig(
                    f"unsupported configuration: a <{dev.kind}> cannot be detached from a running domain "
                    "(disks, interfaces, SCSI controllers, DIMMs and host devices can; use --config for "
                    "the next start)"
                )
        if new_config is not None:
            reg.write_config(new_config)
            obj.config = new_config
    if removal is not None and wait:
        what = f"disk {dev.obj.target_dev}" if isinstance(dev.obj, DiskConfig) else f"device {alias}"
        await _wait_removal(removal, what)
    return {"kind": dev.kind, "alias": alias}


def _only_mac(obj: DomainObject, nic: InterfaceConfig, live: bool) -> str:
    dom = obj.live if live and obj.live is not None else obj.config or obj.current
    same = [i for i in dom.devices.interfaces if i.type == nic.type]
    if len(same) != 1 or same[0].mac is None:
        raise InvalidArgument("the interface to detach needs <mac address=...>: the domain has several")
    return same[0].mac


def _remove(dom: Domain, dev: Device, xml: str) -> int:
    """Remove the device ``dev`` names from ``dom``; its index in its list."""
    if isinstance(dev.obj, DiskConfig):
        index = _find_disk(dom, dev.obj.target_dev)
        del dom.devices.disks[index]
        return index
    if isinstance(dev.obj, HostdevConfig) and dev.obj.alias is None and dev.obj.iscsi is None:
        wanted_dev = dev.obj
        index = next(
            (i for i, h in enumerate(dom.devices.hostdevs) if hostdevs.same_device(h, wanted_dev)), -1
        )
        if index < 0:
            raise OperationFailed("operation failed: matching <hostdev> device not found in the domain")
        del dom.devices.hostdevs[index]
        return index
    items = device_list(dom.devices, dev.kind)
    alias = getattr(dev.obj, "alias", None)
    wanted = format_device(dev)
    for index, item in enumerate(items):
        if (alias and getattr(item, "alias", None) == alias) or _shape(dev, item) == wanted:
            if dev.kind == "memballoon":
                dom.devices.memballoon = None
            else:
                del items[index]
            if isinstance(item, MemoryDeviceConfig):
                dom.memory_kib -= aligned(item.size_kib)
            return index
    raise OperationFailed(f"operation failed: matching <{dev.kind}> device not found in the domain")


def _shape(dev: Device, item: object) -> str:
    """``item`` as XML to compare with the device XML ``dev`` (as libvirt matches devices: an address
    counts only when the XML given has one, and definitions have the addresses libvirt assigns)."""
    if getattr(dev.obj, "address", None) is None and getattr(item, "address", None) is not None:
        item = copy.copy(item)
        item.address = None  # type: ignore[attr-defined]
    return format_device(Device(dev.kind, item))


async def _request_controller_removal(
    obj: DomainObject, ctl: ControllerConfig
) -> tuple[asyncio.Future[None], str]:
    live = obj.live
    assert live is not None
    if ctl.type != "scsi" or not any(
        c.type == "scsi" and c.index == ctl.index for c in live.devices.controllers
    ):
        raise OperationFailed(
            "operation failed: matching <controller> device not found in the running domain"
        )
    dom = copy.deepcopy(live)
    for index, disk in enumerate(dom.devices.disks):
        if disk.target_bus == "scsi" and drive_address(dom, index)[0] == ctl.index:
            raise InvalidState(
                f"Requested operation is not valid: scsi controller {ctl.index} still has disk "
                f"{disk.target_dev}"
            )
    return await _request_removal(obj, f"scsi{ctl.index}")


async def _request_removal(obj: DomainObject, device: DiskConfig | str) -> tuple[asyncio.Future[None], str]:
    """Ask the guest to release ``device`` (a disk, or a device id) (``obj.lock`` held); a second
    request joins the first."""
    assert obj.proc is not None and obj.live is not None
    blockdevs.record_disks(obj.live, obj.proc.record)
    dev_id = device.alias if isinstance(device, DiskConfig) else device
    assert dev_id is not None
    removal = obj.removals.get(dev_id)
    if removal is None:
        removal = asyncio.get_running_loop().create_future()
        obj.removals[dev_id] = removal
        try:
            await obj.proc.monitor.execute("device_del", {"id": dev_id})
        except BaseException:
            del obj.removals[dev_id]
            raise
        log.info("domain %s: waiting for the guest to release %s", obj.name, dev_id)
    return removal, dev_id


async def _wait_removal(removal: asyncio.Future[None], what: str) -> None:
    timeout = REMOVAL_TIMEOUT
    try:
        await asyncio.wait_for(asyncio.shield(removal), timeout)
    except TimeoutError as err:
        raise OperationFailed(
            f"operation failed: the guest did not release {what} within {timeout:.0f}s; "
            "it is removed when the guest releases it"
        ) from err


async def detach_alias(reg: DomainRegistry, key: str, alias: str, *, live: bool, config: bool) -> None:
    """detach-device-alias: the device with ``alias`` removed (live: asked of the guest, not waited
    for, as libvirt's)."""
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        _scopes(obj, live, config)
        nic: InterfaceConfig | None = None
        new_config = None
        if config:
            assert obj.config is not None
            new_config = copy.deepcopy(obj.config)
            found = _by_alias(new_config, alias)
            if found is None:
                raise OperationFailed(f"operation failed: no device found with alias {alias}")
            kind, item = found
            if kind == "memballoon":
                new_config.devices.memballoon = None
            else:
                device_list(new_config.devices, kind).remove(item)
        live_disk: DiskConfig | None = None
        hostdev: str | None = None
        if live:
            assert obj.live is not None
            found = _by_alias(obj.live, alias)
            if found is None:
                raise OperationFailed(f"operation failed: no device found with alias {alias}")
            kind, item = found
            if isinstance(item, InterfaceConfig):
                nic = item
            elif isinstance(item, DiskConfig):
                live_disk = item
            elif isinstance(item, HostdevConfig) and item.iscsi is None:
                hostdev = alias
            else:
                raise UnsupportedConfig(
                    f"unsupported configuration: the {kind} '{alias}' cannot be detached from a running "
                    "domain"
                )
            if live_disk is not None or hostdev is not None:
                await _request_removal(obj, live_disk or alias)
        if nic is None and new_config is not None:
            reg.write_config(new_config)
            obj.config = new_config
    if nic is not None:
        assert nic.mac is not None
        task = asyncio.ensure_future(
            nics.detach_interface(reg, key, nic.mac, live=True, config=config, timeout=REMOVAL_TIMEOUT)
        )
        await asyncio.sleep(0)  # the request is sent; its completion is not awaited (libvirt's)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _by_alias(dom: Domain, alias: str) -> tuple[str, object] | None:
    from pyvirt.conf.device_xml import KINDS

    for kind in KINDS:
        for item in device_list(dom.devices, kind):
            if getattr(item, "alias", None) == alias:
                return kind, item
    return None


# ------------------------------------------------------------------------------------------- update


async def update(
    reg: DomainRegistry, key: str, xml: str, *, live: bool, config: bool, force: bool = False
) -> None:
    """update-device: a disk (a cdrom's or floppy's medium while running; anything in the
    definition), an interface (its link while running) or a graphics device (its password while
    running) changed in place."""
    dev = parse_device(xml)
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        _scopes(obj, live, config)
        new_config = None
        if config:
            assert obj.config is not None
            new_config = copy.deepcopy(obj.config)
            _replace(new_config, dev)
            _checked(new_config, f"update of this {dev.kind}")
            if isinstance(dev.obj, DiskConfig):
                _check_files(reg, dev.obj)
        if live:
            assert obj.live is not None and obj.proc is not None
            if isinstance(dev.obj, DiskConfig):
                await _update_disk_live(reg, obj, dev.obj, force)
            elif isinstance(dev.obj, InterfaceConfig):
                await _update_nic_live(reg, obj, dev.obj)
            elif isinstance(dev.obj, GraphicsConfig):
                await _update_graphics_live(reg, obj, dev.obj)
            elif isinstance(dev.obj, MemoryDeviceConfig):
                await memory_hotplug.update_requested(reg, obj, dev.obj)
            else:
                raise UnsupportedConfig(
                    f"unsupported configuration: a <{dev.kind}> cannot be updated in a running domain"
                )
        if new_config is not None:
            reg.write_config(new_config)
            obj.config = new_config


def _replace(dom: Domain, dev: Device) -> None:
    """The device of ``dom`` ``dev`` names replaced by ``dev``, in its place (its address, unless
    ``dev`` gives one)."""
    if isinstance(dev.obj, DiskConfig):
        index = _find_disk(dom, dev.obj.target_dev)
        dev.obj.address = dev.obj.address or dom.devices.disks[index].address
        dom.devices.disks[index] = dev.obj
    elif isinstance(dev.obj, InterfaceConfig):
        index = _find_nic(dom, dev.obj)
        dev.obj.address = dev.obj.address or dom.devices.interfaces[index].address
        dom.devices.interfaces[index] = dev.obj
    elif isinstance(dev.obj, GraphicsConfig):
        same = [i for i, g in enumerate(dom.devices.graphics) if g.type == dev.obj.type]
        if not same:
            raise OperationFailed(f"operation failed: the domain has no {dev.obj.type} graphics device")
        dom.devices.graphics[same[0]] = dev.obj
    elif isinstance(dev.obj, MemoryDeviceConfig):
        index = memory_hotplug.find_virtio_mem(dom, dev.obj)
        dom.devices.memory[index].requested_kib = memory_hotplug.new_requested(
            dom.devices.memory[index], dev.obj
        )
    else:
        raise UnsupportedConfig(
            f"unsupported configuration: update-device of a <{dev.kind}> is not supported"
        )


def _find_nic(dom: Domain, nic: InterfaceConfig) -> int:
    found = [
        i for i, iface in enumerate(dom.devices.interfaces) if nic.mac is not None and iface.mac == nic.mac
    ]
    if len(found) > 1:
        raise OperationFailed(f"operation failed: multiple devices matching MAC address {nic.mac} found")
    if found:
        return found[0]
    raise OperationFailed(f"operation failed: no interface with MAC address {nic.mac} in the domain")


async def _update_disk_live(reg: DomainRegistry, obj: DomainObject, disk: DiskConfig, force: bool) -> None:
    live = obj.live
    assert live is not None
    trial = _live_trial(live)
    index = _find_disk(trial, disk.target_dev)
    trial.devices.disks[index] = disk
    _checked(trial, f"update of disk '{disk.target_dev}'", live=True)
    current = live.devices.disks[index]
    for name in _FIXED_FIELDS:
        if getattr(current, name) != getattr(disk, name):
            raise UnsupportedConfig(
                f"unsupported configuration: cannot modify field '{name}' of disk '{disk.target_dev}' "
                "while the domain runs (only the medium of a cdrom or floppy)"
            )
    if all(getattr(current, name) == getattr(disk, name) for name in _MEDIA_FIELDS):
        return
    if current.device not in ("cdrom", "floppy"):
        raise UnsupportedConfig(
            f"unsupported configuration: the medium of disk '{disk.target_dev}' cannot be changed "
            "while the domain runs (only a cdrom's or floppy's)"
        )
    await _change_media(reg, obj, current, disk, force=force)


async def _change_media(
    reg: DomainRegistry, obj: DomainObject, current: DiskConfig, disk: DiskConfig, *, force: bool
) -> None:
    """Swap the medium of cdrom/floppy ``current`` for ``disk``'s (none: eject) (``obj.lock`` held)."""
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    blockdevs.record_disks(live, proc.record)
    dev_id = current.alias
    assert dev_id is not None
    monitor = proc.monitor
    path = blockdevs.disk_path(reg, disk) if blockdevs.has_media(disk) and disk.type != "network" else None
    if path is not None:
        blockdevs.check_source(path)
        blockdevs.disk_in_use(reg, obj, disk, path)
    incoming = DiskConfig(**{**current.__dict__, **{name: getattr(disk, name) for name in _MEDIA_FIELDS}})
    incoming.target_dev = f"{current.target_dev}.new"  # recorded under the target once it is in
    node = await blockdevs.plug_nodes(reg, obj, incoming) if blockdevs.has_media(incoming) else None
    try:
        await monitor.execute("blockdev-open-tray", {"id": dev_id, "force": force})
        if not await _tray_open(proc, dev_id):
            raise OperationFailed(
                f"operation failed: the guest keeps the tray of {current.target_dev} locked (a mounted "
                "medium?); unmount it in the guest, or use --force"
            )
        if blockdevs.has_media(current):
            await monitor.execute("blockdev-remove-medium", {"id": dev_id})
    except BaseException:
        if node is not None:
            await blockdevs.unplug_nodes(reg, obj, proc, incoming, live.devices.disks)
        raise
    if blockdevs.has_media(current):
        old = DiskConfig(**current.__dict__)
        await blockdevs.unplug_nodes(reg, obj, proc, old, [d for d in live.devices.disks if d is not current])
    for name in _MEDIA_FIELDS:
        setattr(current, name, getattr(disk, name))
    record = proc.record
    for table in (record.blockdevs, record.fdsets, record.disk_files):
        moved = table.pop(incoming.target_dev, [])
        if moved or table is record.blockdevs:
            table[current.target_dev] = moved
    root = record.blockroots.pop(incoming.target_dev, None)
    if root is not None:
        record.blockroots[current.target_dev] = root
    reg.save_run_state(obj)
    if node is not None:
        await monitor.execute("blockdev-insert-medium", {"id": dev_id, "node-name": node})
    await monitor.execute("blockdev-close-tray", {"id": dev_id})


async def _tray_open(proc: QemuProcess, dev_id: str) -> bool:
    for info in await proc.monitor.execute("query-block"):
        if info.get("qdev") == dev_id or str(info.get("qdev", "")).endswith(f"/{dev_id}"):
            return bool(info.get("tray_open", True))
    return True


async def _update_nic_live(reg: DomainRegistry, obj: DomainObject, nic: InterfaceConfig) -> None:
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    current = live.devices.interfaces[_find_nic(live, nic)]
    for name in ("type", "source_network", "source_bridge", "model"):
        if getattr(current, name) != getattr(nic, name):
            raise UnsupportedConfig(
                f"unsupported configuration: cannot modify field '{name}' of interface {nic.mac} while "
                "the domain runs (only its link state)"
            )
    state = nic.link_state or "up"
    if (current.link_state or "up") != state:
        assert current.alias is not None
        await proc.monitor.set_link(current.alias, state == "up")
        current.link_state = state
        reg.save_run_state(obj)


async def _update_graphics_live(reg: DomainRegistry, obj: DomainObject, gfx: GraphicsConfig) -> None:
    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    current = next((g for g in live.devices.graphics if g.type == gfx.type), None)
    if current is None:
        raise OperationFailed(f"operation failed: the domain has no {gfx.type} graphics device")
    if (gfx.listen, gfx.port if not gfx.autoport else None) != (
        current.listen,
        current.port if not current.autoport else None,
    ) or gfx.spice != current.spice:
        raise UnsupportedConfig(
            f"unsupported configuration: only the password of the {gfx.type} display can change while "
            "the domain runs"
        )
    if (gfx.passwd, gfx.passwd_valid_to, gfx.connected) != (
        current.passwd,
        current.passwd_valid_to,
        current.connected,
    ):
        from pyvirt.qemu import graphics

        args = {"protocol": "spice" if gfx.type == "spice" else "vnc", "password": gfx.passwd or ""}
        if gfx.connected is not None:
            args["connected"] = gfx.connected
        await proc.monitor.execute("set_password", args)
        await graphics.expire_password(proc.monitor, gfx)  # its passwdValidTo, or never
        current.passwd, current.passwd_valid_to = gfx.passwd, gfx.passwd_valid_to
        current.connected = gfx.connected
        reg.save_run_state(obj)


# ------------------------------------------------------------------------------------------- events


async def device_deleted(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, dev_id: str) -> None:
    """QEMU's DEVICE_DELETED for ``dev_id`` (``obj.lock`` held): a disk's nodes, fdsets, files and live
    entry go; a NIC's through :func:`pyvirt.daemon.nics.device_deleted`, which also ends the wait of
    whoever asked for the removal."""
    live = obj.live
    if live is not None and dev_id:
        index = next((i for i, d in enumerate(live.devices.disks) if d.alias == dev_id), None)
        if index is not None:
            disk = live.devices.disks.pop(index)
            await blockdevs.unplug_nodes(reg, obj, proc, disk, live.devices.disks)
            reg.save_run_state(obj)
            reg.events.publish("domain", obj.name, "device-removed", dev_id)
        ctls = live.devices.controllers
        index = next((i for i, c in enumerate(ctls) if c.type == "scsi" and f"scsi{c.index}" == dev_id), None)
        if index is not None:
            del ctls[index]
            reg.save_run_state(obj)
            reg.events.publish("domain", obj.name, "device-removed", dev_id)
        await memory_hotplug.unplugged(reg, obj, proc, dev_id)
        await hostdevs.unplugged(reg, obj, proc, dev_id)
    await nics.device_deleted(reg, obj, proc, dev_id)
