"""Device hot-plug, conf → QMP arguments, as pure functions beside :mod:`pyvirt.qemu.command`.

Where a device plugged into a running machine goes (:func:`pci_slot`: a free PCIe root port on q35,
which takes nothing on pcie.0 itself; pc's first free slot, hot-plugged through ACPI), the
``device_add`` arguments of a disk (:func:`disk_device`), and the block nodes of a disk whose files
the daemon opened and handed over as fdsets (:func:`disk_nodes`), named as the command line names them.
"""

from __future__ import annotations

from typing import Any

from pyvirt.conf import disk_tuning, pci_assign
from pyvirt.conf.addresses import drive_address, number, placed_devices
from pyvirt.conf.backing_chain import OPEN
from pyvirt.conf.domain import BackingLayer, DiskConfig, Domain, PCIAddress
from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu import scsi_address
from pyvirt.qemu.command import (
    _cache_options,
    _pci_placement,
    disk_device_id,
    format_node,
    is_q35,
    storage_node,
)

# Buses a disk can be plugged into while the machine runs (AHCI, IDE and the floppy controller
# take no hot-plugged drive in QEMU).
HOTPLUG_BUSES = ("virtio", "scsi", "usb")
_BACKING_FORMATS = ("qcow2",)  # formats whose node takes a "backing" option


def pci_slot(dom: Domain) -> PCIAddress | None:
    """The PCI address for a device plugged into running ``dom``: slot 0 of the first free
    pcie-root-port on q35; on pc the first free slot of a hot-pluggable bus, as libvirt gives it
    (None for a domain whose devices QEMU placed: QEMU picks)."""
    if not is_q35(dom):
        return pci_assign.hotplug_address(dom)
    used = {number(p.address, "bus") for p in placed_devices(dom) if p.address.type == "pci"}
    for ctl in sorted(dom.devices.controllers, key=lambda c: c.index):
        if ctl.type != "pci" or ctl.model != "pcie-root-port" or ctl.index in used:
            continue
        if ctl.extra.get("target.hotplug") == "off":
            continue
        attrs = {"domain": "0x0000", "bus": f"{ctl.index:#04x}", "slot": "0x00", "function": "0x0"}
        return PCIAddress(type="pci", attrs=attrs)
    raise OperationFailed(
        "operation failed: no free PCIe root port to plug the device into: a q35 machine takes "
        "hot-plugged devices on pcie-root-port controllers only; add one to the definition "
        "(<controller type='pci' model='pcie-root-port'/>) and start the domain again"
    )


def pci_placement(addr: PCIAddress | None, dom: Domain) -> dict[str, str]:
    """``bus``/``addr`` of ``device_add`` for a PCI address (empty: QEMU's choice)."""
    return _pci_placement(addr, is_q35(dom))


def disk_device(dom: Domain, index: int, drive: str | None) -> dict[str, Any]:
    """``device_add`` arguments of disk ``index`` of ``dom`` (placed: PCI or drive address set)."""
    disk = dom.devices.disks[index]
    args: dict[str, Any] = {"id": disk_device_id(dom, index)}
    if drive is not None:
        args["drive"] = drive
    if disk.serial:
        args["serial"] = disk.serial
    if disk.shareable:
        args["share-rw"] = True
    if disk.boot_order is not None:
        args["bootindex"] = disk.boot_order
    if disk.target_bus == "virtio":
        if disk.device != "disk":
            raise UnsupportedConfig(f"unsupported configuration: a {disk.device} cannot be on the virtio bus")
        args["driver"] = "virtio-blk-pci"
        args.update(pci_placement(disk.address, dom))
        if disk.iothread is not None:
            args["iothread"] = f"iothread{disk.iothread}"
        if disk.cache in ("writethrough", "directsync"):
            args["write-cache"] = "off"
    elif disk.target_bus == "scsi":
        controller, bus, target, unit = drive_address(dom, index)
        args["driver"] = "scsi-cd" if disk.device == "cdrom" else "scsi-hd"
        where = (controller, bus, target, unit)
        args.update(scsi_address.placement(dom, where, f"disk '{disk.target_dev}'"))
    elif disk.target_bus == "usb":
        if disk.device != "disk":
            raise UnsupportedConfig(f"unsupported configuration: a {disk.device} cannot be on the usb bus")
        bus = number(disk.address, "bus") if disk.address is not None and disk.address.type == "usb" else 0
        args["driver"] = "usb-storage"
        args["bus"] = "usb.0" if bus == 0 else f"usb{bus}.0"
        if disk.address is not None and "port" in disk.address.attrs:
            args["port"] = disk.address.attrs["port"]
    else:
        raise UnsupportedConfig(
            f"unsupported configuration: disk bus '{disk.target_bus}' cannot be hotplugged "
            f"(only {', '.join(HOTPLUG_BUSES)})"
        )
    disk_tuning.check(disk)
    args.update({prop: _qmp_value(prop, value) for prop, value in disk_tuning.device_props(disk).items()})
    return args


_FLAGS = ("ioeventfd", "event_idx", "removable")
_NUMBERS = ("num-queues", "queue-size", "rotation_rate", "wwn", "cyls", "heads", "secs")


def _qmp_value(prop: str, value: str) -> bool | int | str:
    """A device property of :func:`disk_tuning.device_props` (command-line text) as ``device_add``
    takes it: typed JSON."""
    if prop in _FLAGS:
        return value == "on"
    if prop in _NUMBERS or prop.endswith("_block_size"):
        return int(value)
    return value.replace(",,", ",")


def disk_nodes(disk: DiskConfig, prefixes: list[str], layers: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``blockdev-add`` arguments, bottom layer first, for a disk whose ``layers`` are
    (fdset path, format) from the top image down its backing chain; ``prefixes`` names their nodes
    (top first). The layers below the top are read-only, and each format node names its backing
    explicitly (``None`` at the base): a confined QEMU cannot open a backing file by its name."""
    if disk.reservations is not None:
        raise UnsupportedConfig(
            f"unsupported configuration: hot-plugging disk '{disk.target_dev}' with <reservations> (the "
            "helper's object is given at start only)"
        )
    if disk.layers.copy_on_read or disk.layers.transient:
        raise UnsupportedConfig(
            f"unsupported configuration: hot-plugging disk '{disk.target_dev}' with copy_on_read or "
            "<transient/> (set up at start only)"
        )
    out: list[dict[str, Any]] = []
    below: str | None = None
    for depth in range(len(layers) - 1, -1, -1):
        path, fmt = layers[depth]
        prefix = prefixes[depth]
        layer = _given_layer(disk, depth)
        backing: dict[str, object] = {"backing": below} if fmt in _BACKING_FORMATS else {}
        last = depth == len(layers) - 1
        if layer is not None and layer.remote is not None and last and disk.backing_given == OPEN:
            backing = {}  # an open chain's last layer, on a server: QEMU opens what it names, as at start
        if depth == 0:
            out.append(storage_node(disk, prefix, path))
            out.append(format_node(disk, prefix, **backing))
        else:  # a layer below: the disk's discard and cache mode, as the command line's layers
            cache = _cache_options(disk)
            io: dict[str, object] = {} if cache is None else {"cache": cache}
            if layer is not None and layer.remote is not None:  # a network disk's protocol node
                storage = storage_node(layer.remote, prefix, None)
            else:
                storage = {
                    "driver": "file",
                    "filename": path,
                    "node-name": f"{prefix}-storage",
                    "read-only": True,
                }
            storage["discard"] = "unmap" if disk.discard == "unmap" else "ignore"
            out.append({**storage, **io})
            out.append(
                {
                    "node-name": f"{prefix}-format",
                    "read-only": True,
                    "driver": fmt,
                    "file": f"{prefix}-storage",
                    **io,
                    **backing,
                    **_given_layer_options(disk, depth),
                }
            )
        below = f"{prefix}-format"
    return out


def _given_layer(disk: DiskConfig, depth: int) -> BackingLayer | None:
    """Layer ``depth`` (1: just under the source) of ``disk``'s given chain (conf.backing_chain); None
    for the source itself and for what an open chain's last layer names below it."""
    if depth == 0 or disk.backing_given is None or not disk.backing or depth > len(disk.backing):
        return None
    return disk.backing[depth - 1]


def _given_layer_options(disk: DiskConfig, depth: int) -> dict[str, object]:
    """What layer ``depth`` of ``disk``'s given chain adds to its format node, as at start
    (qemu.backing_nodes): its ``<metadata_cache>`` as ``cache-size``."""
    layer = _given_layer(disk, depth)
    return {} if layer is None or layer.metadata_cache is None else {"cache-size": layer.metadata_cache}
