"""Host devices: ``<hostdev mode='subsystem' type='pci'|'usb'>`` as libvirt 9.0 writes them.

- PCI (``managed``, ``<driver name='vfio'/>``, ``<source><address domain bus slot function/>``, ``<rom bar
  file/>``) is QEMU's ``vfio-pci,host=DDDD:BB:SS.F``;
- USB (``<source><vendor id/><product id/>`` and/or ``<address bus device/>``) is ``usb-host`` with the
  device's node ``/dev/bus/usb/BBB/DDD`` (a vendor/product pair is looked up at start).

Starting a domain with one is refused by name before QEMU runs when the host lacks the device or VFIO
(``/dev/vfio/vfio``), and otherwise too: pyvirt does not yet bind devices to vfio-pci nor hand device
nodes to its unprivileged QEMU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x, yes_no
from pyvirt.errors import UnsupportedConfig, XMLError


@dataclass
class HostdevConfig:
    type: str = "pci"  # pci | usb
    managed: bool | None = None
    driver: str | None = None  # vfio
    source: dict[str, int] = field(default_factory=dict)  # pci: domain/bus/slot/function; usb: bus/device
    vendor: int | None = None  # usb
    product: int | None = None  # usb
    rom: dict[str, str] = field(default_factory=dict)  # pci <rom bar file>
    alias: str | None = None
    address: PCIAddress | None = None


_PCI_LIMITS = {"domain": 0xFFFF, "bus": 0xFF, "slot": 0x1F, "function": 7}


def parse(e: Elem) -> HostdevConfig:
    e.choice("mode", ("subsystem",), required=True)
    dev = HostdevConfig(type=e.choice("type", ("pci", "usb"), required=True) or "pci")
    dev.managed = e.flag("managed")
    if (driver := e.child("driver")) is not None:
        if dev.type != "pci":
            raise driver.refuse()
        dev.driver = driver.choice("name", ("vfio",)) or "vfio"
        driver.done()
    source = e.child("source")
    if source is None:
        raise XMLError(f"'{e.path}' needs a <source>")
    if (addr := source.child("address")) is not None:
        keys = tuple(_PCI_LIMITS) if dev.type == "pci" else ("bus", "device")
        for key in keys:
            limit = _PCI_LIMITS.get(key, 999)
            value = addr.integer(key, minimum=0, maximum=limit)
            if value is None and key != "domain":
                raise XMLError(f"missing attribute '{key}' of '{addr.path}'")
            dev.source[key] = value or 0
        addr.done()
    if dev.type == "usb":
        for tag in ("vendor", "product"):
            if (node := source.child(tag)) is not None:
                value = node.integer("id", minimum=0, maximum=0xFFFF)
                if value is None:
                    raise XMLError(f"missing attribute 'id' of '{node.path}'")
                setattr(dev, tag, value)
                node.done()
        if not dev.source and dev.vendor is None:
            raise XMLError(f"'{source.path}' needs an <address> or a <vendor>")
    elif not dev.source:
        raise XMLError(f"'{source.path}' needs an <address>")
    source.done()
    if (rom := e.child("rom")) is not None and dev.type == "pci":
        if (bar := rom.choice("bar", ("on", "off"))) is not None:
            dev.rom["bar"] = bar
        if (path := rom.attr("file")) is not None:
            dev.rom["file"] = path
        rom.done()
    return dev


def write(dev: HostdevConfig, extra: tuple[XNode | None, ...]) -> XNode:
    node = x("hostdev", {"mode": "subsystem", "type": dev.type, "managed": yes_no(dev.managed)})
    node.add(x("driver", {"name": dev.driver}) if dev.driver else None)
    source = x("source")
    if dev.vendor is not None:
        source.add(x("vendor", {"id": f"0x{dev.vendor:04x}"}))
    if dev.product is not None:
        source.add(x("product", {"id": f"0x{dev.product:04x}"}))
    if dev.type == "pci":
        s = dev.source
        attrs = {
            "domain": f"0x{s['domain']:04x}",
            "bus": f"0x{s['bus']:02x}",
            "slot": f"0x{s['slot']:02x}",
            "function": f"0x{s['function']:x}",
        }
        source.add(x("address", attrs))
    elif dev.source:
        source.add(x("address", {"bus": dev.source["bus"], "device": dev.source["device"]}))
    node.add(source, x("rom", dict(dev.rom)) if dev.rom else None)
    return node.add(*extra)


def host_name(dev: HostdevConfig) -> str:
    """The host device as QEMU and sysfs name it."""
    s = dev.source
    if dev.type == "pci":
        return f"{s['domain']:04x}:{s['bus']:02x}:{s['slot']:02x}.{s['function']:x}"
    if not s:
        raise UnsupportedConfig(
            f"unsupported configuration: USB host device {dev.vendor:04x}:{dev.product or 0:04x} "
            "is looked up at start"
        )
    return f"/dev/bus/usb/{s['bus']:03d}/{s['device']:03d}"


def device_props(dev: HostdevConfig, index: int) -> tuple[str, dict[str, str | int | None]]:
    """(QEMU driver, its properties besides the placement)."""
    dev_id = dev.alias or f"hostdev{index}"
    if dev.type == "pci":
        props: dict[str, str | int | None] = {"host": host_name(dev), "id": dev_id}
        props["rombar"] = {"on": 1, "off": 0}.get(dev.rom.get("bar", ""))
        props["romfile"] = dev.rom.get("file")
        return "vfio-pci", props
    return "usb-host", {"hostdevice": host_name(dev), "id": dev_id}


def require_host(dom: Domain) -> None:
    """Refuse the start by name: the host device or VFIO is missing, or pyvirt cannot pass it yet."""
    for dev in dom.devices.hostdevs:
        if dev.type == "pci":
            name = host_name(dev)
            if not os.path.exists(f"/sys/bus/pci/devices/{name}"):
                raise UnsupportedConfig(f"unsupported configuration: host PCI device {name} does not exist")
            if not os.path.exists("/dev/vfio/vfio"):
                raise UnsupportedConfig(
                    f"unsupported configuration: host PCI device {name}: no VFIO on this host"
                )
        elif dev.source and not os.path.exists(host_name(dev)):
            raise UnsupportedConfig(
                f"unsupported configuration: host USB device {host_name(dev)} does not exist"
            )
        raise UnsupportedConfig(
            f"unsupported configuration: <hostdev type='{dev.type}'>: passthrough is not done yet"
        )
