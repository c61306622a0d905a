"""Device addresses: libvirt's number syntax, the ranges QEMU can honour, and clashes between devices.

libvirt reads address attributes with C's ``strtoul(..., 0)``: ``0x1f`` is hex, ``010`` is octal (8) and
``10`` decimal. Every value the command builder turns into a bus, slot, unit or port is checked here,
both while parsing (so the error names the element) and again on the whole domain (domains built in code,
duplicate addresses, addresses that name a controller the domain does not have).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.errors import InvalidArgument, UnsupportedConfig

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_USB_PORT = re.compile(r"[0-9]+(?:\.[0-9]+){0,4}")

# (minimum, maximum) of each numeric attribute, per address type. PCI domains other than 0 need a
# pci-expander-bus (not supported); a drive's limits depend on its bus and are checked per disk.
LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "pci": {"domain": (0, 0), "bus": (0, 255), "slot": (0, 31), "function": (0, 7)},
    "drive": {"controller": (0, 255), "bus": (0, 255), "target": (0, 255), "unit": (0, 16383)},
    "virtio-serial": {"controller": (0, 255), "bus": (0, 0), "port": (1, 30)},
    "usb": {"bus": (0, 255)},
    "isa": {"iobase": (0, 0xFFFF), "irq": (0, 15)},
    "dimm": {"slot": (0, 255), "base": (0, 0xFFFFFFFFFFFFFFFF)},
    "ccid": {"controller": (0, 255), "slot": (0, 0)},  # a CCID reader has one slot (conf.smartcard)
}
# Per disk bus: (controller, bus, target, unit) maxima QEMU's devices accept.
DRIVE_LIMITS = {
    "ide": (0, 1, 0, 1),  # the PIIX IDE controller: two buses of two units
    "sata": (255, 0, 0, 5),  # AHCI: six ports
    "scsi": (255, 0, 255, 16383),  # virtio-scsi: scsi-id and lun
    "fdc": (0, 0, 0, 1),  # the ISA floppy controller: drives A and B
}


def parse_number(text: str, what: str) -> int:
    """A number in libvirt's address syntax (hex ``0x..``, octal ``0..``, decimal)."""
    value = text.strip()
    if not _NUMBER.fullmatch(value):
        raise InvalidArgument(f"invalid number '{text}' in {what} (expected decimal, 0x-hex or 0-octal)")
    if value[:2] in ("0x", "0X"):
        return int(value[2:], 16)
    if len(value) > 1 and value[0] == "0":
        return int(value[1:], 8)
    return int(value)


def number(addr: PCIAddress, name: str, default: int = 0) -> int:
    """One numeric attribute of an address (already checked), or ``default`` when absent."""
    text = addr.attrs.get(name)
    return default if text is None else parse_number(text, f"address attribute '{name}'")


def check_address(addr: PCIAddress, where: str) -> None:
    """Refuse an attribute out of range or not a number, naming the device."""
    limits = LIMITS.get(addr.type)
    if limits is None:
        raise UnsupportedConfig(f"unsupported configuration: address type '{addr.type}' of {where}")
    for name, (low, high) in limits.items():
        text = addr.attrs.get(name)
        if text is None:
            continue
        value = parse_number(text, f"address attribute '{name}' of {where}")
        if not low <= value <= high:
            raise InvalidArgument(
                f"address attribute {name}='{text}' of {where} is out of range ({low:#x} to {high:#x})"
            )
    multifunction = addr.attrs.get("multifunction")
    if multifunction not in (None, "on", "off"):
        raise InvalidArgument(
            f"address attribute multifunction='{multifunction}' of {where} must be on or off"
        )
    port = addr.attrs.get("port") if addr.type == "usb" else None
    if port is not None and (
        not _USB_PORT.fullmatch(port) or any(not 1 <= int(p) <= 31 for p in port.split("."))
    ):
        raise InvalidArgument(f"USB port '{port}' of {where} is invalid (1-31, hubs as '1.2')")


@dataclass(frozen=True)
class Placed:
    """A device with an address, named for messages."""

    where: str
    address: PCIAddress


# The address types the command builder places each kind of device by (disks, inputs, watchdogs and
# panics are checked with their bus or model).
_ADDRESS_TYPES = {
    "controller": ("pci",),
    "interface": ("pci",),
    "video": ("pci",),
    "rng": ("pci",),
    "memballoon": ("pci",),
    "sound": ("pci",),
    "iommu": ("pci",),
    "filesystem": ("pci",),
    "vsock": ("pci",),
    "hostdev": ("pci", "usb", "drive"),  # drive: an iSCSI LUN (conf.hostdev)
    "memory": ("pci", "dimm"),
    "serial": ("pci", "isa"),
    "console": ("virtio-serial",),
    "channel": ("virtio-serial",),
    "ccid": ("usb",),  # a smartcard reader is a USB device (conf.smartcard)
    "smartcard": ("ccid",),
}


def placed_devices(dom: Domain) -> Iterator[Placed]:
    """Every device of ``dom`` that carries an address, with a name for error messages."""
    devs = dom.devices
    groups: list[tuple[str, list[object]]] = [
        ("disk", list(devs.disks)),
        ("controller", [c for c in devs.controllers if c.type != "ccid"]),
        ("ccid", [c for c in devs.controllers if c.type == "ccid"]),
        ("smartcard", list(devs.smartcards)),
        ("interface", list(devs.interfaces)),
        ("serial", list(devs.serials)),
        ("console", list(devs.consoles)),
        ("channel", list(devs.channels)),
        ("video", list(devs.videos)),
        ("input", list(devs.inputs)),
        ("rng", list(devs.rngs)),
        ("panic", list(devs.panics)),
        ("watchdog", list(devs.watchdogs)),
        ("memballoon", [devs.memballoon] if devs.memballoon is not None else []),
        ("sound", list(devs.sounds)),
        ("iommu", [devs.iommu] if devs.iommu is not None else []),
        ("filesystem", list(devs.filesystems)),
        ("vsock", [devs.vsock] if devs.vsock is not None else []),
        ("hostdev", list(devs.hostdevs)),
        ("memory", list(devs.memory)),
    ]
    for kind, items in groups:
        for index, item in enumerate(items):
            address = getattr(item, "address", None)
            if address is not None:
                yield Placed(f"{kind} {_label(kind, index, item)}", address)


def _label(kind: str, index: int, item: object) -> str:
    if kind == "disk":
        return f"'{getattr(item, 'target_dev', '')}'"
    if kind == "controller":
        return f"'{getattr(item, 'type', '')}' index {getattr(item, 'index', '')}"
    return f"#{index}"


def drive_address(dom: Domain, index: int) -> tuple[int, int, int, int]:
    """(controller, bus, target, unit) of disk ``index``: its drive address, or libvirt's from the name.

    libvirt's rule for a disk without an address: IDE hdX number n is controller n/4, bus (n%4)/2,
    unit n%2; SATA sdX is controller n/6, unit n%6; SCSI sdX is controller n/7, unit n%7.
    """
    disk = dom.devices.disks[index]
    addr = disk.address
    if addr is not None and addr.type == "drive":
        return number(addr, "controller"), number(addr, "bus"), number(addr, "target"), number(addr, "unit")
    n = _target_number(disk.target_dev)
    if disk.target_bus == "ide":
        return n // 4, (n % 4) // 2, 0, n % 2
    if disk.target_bus == "sata":
        return n // 6, 0, 0, n % 6
    if disk.target_bus == "fdc":
        return 0, 0, 0, n
    return n // 7, 0, 0, n % 7


def _target_number(target: str) -> int:
    """vda → 0, sdb → 1, hdc → 2, vdaa → 26."""
    value = 0
    for char in target[2:] or "a":
        value = value * 26 + (ord(char) - ord("a") + 1)
    return value - 1


def check_addresses(dom: Domain) -> None:
    """Ranges, address types that fit the device, duplicates and the controllers addresses name."""
    controllers = {(c.type, c.index) for c in dom.devices.controllers}
    pci_buses = {0} | {c.index for c in dom.devices.controllers if c.type == "pci"}
    seen: dict[tuple[object, ...], str] = {}

    def claim(key: tuple[object, ...], where: str, text: str) -> None:
        if key in seen:
            raise InvalidArgument(f"{text} is used by both {seen[key]} and {where}")
        seen[key] = where

    for dev in placed_devices(dom):
        addr, where = dev.address, dev.where
        check_address(addr, where)
        kind = where.split(" ", 1)[0]
        if kind in _ADDRESS_TYPES and addr.type not in _ADDRESS_TYPES[kind]:
            raise InvalidArgument(f"{where} cannot have an address of type '{addr.type}'")
        if addr.type == "pci":
            bus, slot, function = number(addr, "bus"), number(addr, "slot"), number(addr, "function")
            if bus not in pci_buses:
                raise InvalidArgument(
                    f"PCI address of {where} is on bus {bus:#04x}, which no pci controller has"
                )
            claim(("pci", bus, slot, function), where, f"PCI address {bus:02x}:{slot:02x}.{function}")
        elif addr.type == "virtio-serial":
            controller = number(addr, "controller")
            if controller and ("virtio-serial", controller) not in controllers:
                raise InvalidArgument(
                    f"{where} is on virtio-serial controller {controller}, which is not defined"
                )
            key = ("virtio-serial", controller, number(addr, "bus"), number(addr, "port", -1))
            if key[3] != -1:
                claim(key, where, f"virtio-serial port {key[3]} of controller {controller}")
        elif addr.type == "usb":
            bus = number(addr, "bus")
            if ("usb", bus) not in controllers:
                raise InvalidArgument(f"{where} is on USB bus {bus}, which no usb controller has")
            if (port := addr.attrs.get("port")) is not None:
                claim(("usb", bus, port), where, f"USB port {port} of bus {bus}")
        elif addr.type == "isa" and (iobase := addr.attrs.get("iobase")) is not None:
            claim(("isa", number(addr, "iobase")), where, f"ISA iobase {iobase}")
    for number_, host in enumerate(dom.devices.hostdevs):
        if host.address is not None and host.address.type == "drive" and host.type != "scsi":
            raise InvalidArgument(f"hostdev #{number_} of type '{host.type}' cannot have a drive address")
    for index, disk in enumerate(dom.devices.disks):
        where = f"disk '{disk.target_dev}'"
        if disk.address is not None and disk.address.type not in ("drive", "pci", "usb"):
            raise InvalidArgument(f"{where} cannot have an address of type '{disk.address.type}'")
        if disk.target_bus not in DRIVE_LIMITS:
            if disk.address is not None and disk.address.type == "drive":
                raise InvalidArgument(f"{where} on bus '{disk.target_bus}' cannot have a drive address")
            continue
        if disk.address is not None and disk.address.type != "drive":
            raise InvalidArgument(
                f"{where} on bus '{disk.target_bus}' needs a drive address, not '{disk.address.type}'"
            )
        controller, bus, target, unit = drive_address(dom, index)
        limits = DRIVE_LIMITS[disk.target_bus]
        names = ("controller", "bus", "target", "unit")
        for name, value, high in zip(names, (controller, bus, target, unit), limits, strict=True):
            if value > high:
                raise InvalidArgument(
                    f"drive address {name} {value} of {where} is out of range on {disk.target_bus} (0-{high})"
                )
        kind = "ide" if disk.target_bus == "ide" else disk.target_bus
        if controller and (kind, controller) not in controllers:
            raise InvalidArgument(f"{where} is on {kind} controller {controller}, which is not defined")
        claim(
            ("drive", kind, controller, bus, target, unit),
            where,
            f"{kind} drive address {controller}:{bus}:{target}:{unit}",
        )
    for alias, count in _alias_counts(dom).items():
        if count > 1:
            raise InvalidArgument(f"device alias '{alias}' is used by more than one device")


def _alias_counts(dom: Domain) -> dict[str, int]:
    devs = dom.devices
    counts: dict[str, int] = {}
    items: list[object] = [
        *devs.disks, *devs.controllers, *devs.interfaces, *devs.serials, *devs.channels,
        *devs.videos, *devs.inputs, *devs.rngs, *devs.panics, *devs.watchdogs,
    ]  # fmt: skip
    if devs.memballoon is not None:
        items.append(devs.memballoon)
    for item in items:
        alias = getattr(item, "alias", None)
        if alias:
            counts[alias] = counts.get(alias, 0) + 1
    return counts
