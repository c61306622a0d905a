"""Host devices: ``<hostdev mode='subsystem' type='pci'|'usb'|'mdev'>`` as libvirt 9.0 writes them.

- PCI (``managed``, ``<driver name='vfio'/>``, ``<source><address domain bus slot function/>``, ``<rom bar
  file/>``) is QEMU's ``vfio-pci,host=DDDD:BB:SS.F``;
- USB (``<source><vendor id/><product id/>`` and/or ``<address bus device/>``) is ``usb-host`` with the
  device's node ``/dev/bus/usb/BBB/DDD`` (a vendor/product pair is looked up at start);
  ``<source guestReset='off|uninitialized|on'>`` is its ``guest-reset``/``guest-resets-all``;
- a mediated device (``type='mdev' model='vfio-pci'``, ``<source><address uuid/>``, ``display``,
  ``ramfb``) is ``vfio-pci`` with ``sysfsdev=/sys/bus/mdev/devices/UUID`` (``vfio-pci-nohotplug`` with
  ``ramfb``, as libvirt);
- ``<boot order>`` is the device's ``bootindex``;
- an iSCSI LUN (``type='scsi'``, ``<source protocol='iscsi' name='IQN/LUN'><host/>``, ``<readonly/>``,
  ``<address type='drive'>``, else the first free unit on controller 0, written into the definition
  as libvirt's define does) is ``scsi-generic`` on an ``iscsi`` block node, its ``<auth>`` (CHAP) a
  ``user`` and a ``password-secret`` encrypted with the domain's master key as a network disk's; a
  host SCSI adapter's LUN is refused by name (its ``/dev/sg`` node is not handed to QEMU yet).

At start and hot-plug the daemon finds the host's device, moves a managed PCI device to vfio-pci and
hands QEMU the device nodes (pyvirt.daemon.hostdevs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.network_disk import NetworkSource
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
    uuid: str | None = None  # mdev
    model: str | None = None  # mdev: vfio-pci
    display: str | None = None  # mdev: on | off
    ramfb: str | None = None  # mdev: on | off
    guest_reset: str | None = None  # usb: off | uninitialized | on
    boot_order: int | None = None
    alias: str | None = None
    address: PCIAddress | None = None  # PCI; type='drive' for an iSCSI LUN (controller bus target unit)
    iscsi: NetworkSource | None = None  # type='scsi': the iSCSI LUN (conf.network_disk)
    readonly: bool = False  # scsi
    shareable: bool = False  # scsi


_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_PCI_LIMITS = {"domain": 0xFFFF, "bus": 0xFF, "slot": 0x1F, "function": 7}


def parse(e: Elem) -> HostdevConfig:
    e.choice("mode", ("subsystem",), required=True)
    kind = e.require("type")
    if kind == "scsi":
        return _parse_iscsi(e)
    dev = HostdevConfig(type=e.choice("type", ("pci", "usb", "mdev"), required=True) or "pci")
    dev.managed = e.flag("managed")
    if (node := e.child("boot")) is not None:
        dev.boot_order = node.integer("order", minimum=1)
        if dev.boot_order is None:
            raise XMLError(f"missing attribute 'order' of '{node.path}'")
        node.done()
    if dev.type == "mdev":
        return _parse_mdev(e, dev)
    if (driver := e.child("driver")) is not None:
        if dev.type != "pci":
            raise driver.refuse()
        dev.driver = driver.choice("name", ("vfio",)) or "vfio"
        driver.done()
    source = e.child("source")
    if source is None:
        raise XMLError(f"'{e.path}' needs a <source>")
    if dev.type == "usb":
        dev.guest_reset = source.choice("guestReset", ("off", "uninitialized", "on"))
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


def _parse_iscsi(e: Elem) -> HostdevConfig:
    """``<hostdev type='scsi'><source protocol='iscsi' name='IQN/LUN'><host/></source>``: the LUN as
    QEMU's ``scsi-generic`` on an ``iscsi`` node, as libvirt 9.0 runs it."""
    from pyvirt.conf import network_disk

    dev = HostdevConfig(type="scsi", managed=e.flag("managed"))
    source = e.child("source")
    if source is None or source.attr("protocol") != "iscsi":
        raise UnsupportedConfig(
            "unsupported configuration: <hostdev type='scsi'>: pyvirt does not hand a host SCSI adapter's "
            "/dev/sg node to QEMU yet (an iSCSI source is taken)"
        )
    dev.iscsi = network_disk.parse(source, "iscsi")  # <auth>: CHAP, as a network disk's (daemon.disk_secrets)
    source.skip("protocol")
    source.done()
    for tag in ("readonly", "shareable"):
        if (node := e.child(tag)) is not None:
            setattr(dev, tag, True)
            node.done()
    return dev


def _parse_mdev(e: Elem, dev: HostdevConfig) -> HostdevConfig:
    dev.model = e.choice("model", ("vfio-pci",), required=True)
    dev.display = e.choice("display", ("on", "off"))
    dev.ramfb = e.choice("ramfb", ("on", "off"))
    source = e.child("source")
    addr = source.child("address") if source is not None else None
    if source is None or addr is None:
        raise XMLError(f"'{e.path}' of type 'mdev' needs <source><address uuid/>")
    uuid = addr.require("uuid")
    if not _UUID.fullmatch(uuid):
        raise XMLError(f"invalid uuid '{uuid}' of '{addr.path}'")
    dev.uuid = uuid.lower()
    addr.done()
    source.done()
    return dev


def write(dev: HostdevConfig, extra: tuple[XNode | None, ...]) -> XNode:
    attrs = {"mode": "subsystem", "type": dev.type, "managed": yes_no(dev.managed)}
    attrs |= {"model": dev.model, "display": dev.display, "ramfb": dev.ramfb}
    node = x("hostdev", attrs)
    if dev.iscsi is not None:
        from pyvirt.conf import network_disk

        node.add(network_disk.write_source(dev.iscsi))
        node.add(x("readonly") if dev.readonly else None, x("shareable") if dev.shareable else None)
        return node.add(*extra)
    node.add(x("driver", {"name": dev.driver}) if dev.driver else None)
    if dev.type == "mdev":
        node.add(x("source").add(x("address", {"uuid": dev.uuid})))
        node.add(x("boot", {"order": dev.boot_order}) if dev.boot_order is not None else None)
        return node.add(*extra)
    source = x("source", {"guestReset": dev.guest_reset})
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
    node.add(source, x("boot", {"order": dev.boot_order}) if dev.boot_order is not None else None)
    node.add(x("rom", dict(dev.rom)) if dev.rom else None)
    return node.add(*extra)


def host_name(dev: HostdevConfig) -> str:
    """The host device as QEMU and sysfs name it."""
    s = dev.source
    if dev.type == "mdev":
        return f"/sys/bus/mdev/devices/{dev.uuid}"
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
    if dev.type == "mdev":
        driver = "vfio-pci-nohotplug" if dev.ramfb == "on" else "vfio-pci"
        mdev: dict[str, str | int | None] = {"id": dev_id, "sysfsdev": host_name(dev), "display": dev.display}
        mdev["ramfb"] = "on" if dev.ramfb == "on" else None
        mdev["bootindex"] = dev.boot_order
        return driver, mdev
    if dev.type == "pci":
        props: dict[str, str | int | None] = {"host": host_name(dev), "id": dev_id}
        props["rombar"] = {"on": 1, "off": 0}.get(dev.rom.get("bar", ""))
        props["romfile"] = dev.rom.get("file")
        props["bootindex"] = dev.boot_order
        return "vfio-pci", props
    usb: dict[str, str | int | None] = {"hostdevice": host_name(dev), "id": dev_id}
    if dev.guest_reset is not None:  # libvirt's mapping onto usb-host's two switches
        usb["guest-reset"] = "off" if dev.guest_reset == "off" else "on"
        usb["guest-resets-all"] = "on" if dev.guest_reset == "on" else "off"
    usb["bootindex"] = dev.boot_order
    return "usb-host", usb


def iscsi_node(index: int) -> str:
    """The node name of hostdev ``index``'s ``iscsi`` node (its secret's id is named after it)."""
    return f"pyvirt-hostdev{index}-backend"


def iscsi_nodes(dev: HostdevConfig, index: int) -> tuple[str, dict[str, object]]:
    """(node name, the ``iscsi`` block node) of an iSCSI hostdev, as libvirt writes it."""
    from pyvirt.conf import network_disk

    assert dev.iscsi is not None
    node = iscsi_node(index)
    props = network_disk.storage_props(dev.iscsi, node)
    return node, {**props, "node-name": node, "read-only": dev.readonly}


def iscsi_addresses(dom: Domain) -> dict[int, tuple[int, int, int, int]]:
    """(controller, bus, target, unit) of each iSCSI hostdev, by index: its drive address, else, in
    order, the first unit on controller 0 that no SCSI disk nor other hostdev takes (libvirt's define
    writes that address into the definition: :func:`assign_addresses`)."""
    from pyvirt.conf.addresses import drive_address, number

    disks = dom.devices.disks
    taken = {drive_address(dom, i) for i, disk in enumerate(disks) if disk.target_bus == "scsi"}
    out: dict[int, tuple[int, int, int, int]] = {}
    for index, dev in enumerate(dom.devices.hostdevs):
        if dev.iscsi is not None and dev.address is not None and dev.address.type == "drive":
            addr = dev.address
            out[index] = (
                number(addr, "controller"),
                number(addr, "bus"),
                number(addr, "target"),
                number(addr, "unit"),
            )
            taken.add(out[index])
    for index, dev in enumerate(dom.devices.hostdevs):
        if dev.iscsi is not None and index not in out:
            unit = next(u for u in range(len(taken) + 1) if (0, 0, 0, u) not in taken)
            out[index] = (0, 0, 0, unit)
            taken.add(out[index])
    return out


def assign_addresses(dom: Domain) -> None:
    """Write the drive address of each iSCSI hostdev without one into ``dom``, as libvirt's define."""
    for index, (controller, bus, target, unit) in iscsi_addresses(dom).items():
        dev = dom.devices.hostdevs[index]
        if dev.address is None:
            attrs = {"controller": str(controller), "bus": str(bus), "target": str(target), "unit": str(unit)}
            dev.address = PCIAddress(type="drive", attrs=attrs)
