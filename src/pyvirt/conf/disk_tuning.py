"""A disk's device tuning as libvirt writes it, and what it becomes on the QEMU device.

- ``<driver error_policy rerror_policy>``: ``werror``/``rerror`` (``enospace`` is QEMU's ``enospc``;
  reads follow the write policy unless told, as libvirt does, except for ``enospace``);
- ``<driver detect_zeroes>``: the format node's ``detect-zeroes`` (``unmap`` only with
  ``discard='unmap'``, else ``on``, as libvirt sets it);
- virtio only: ``<driver ioeventfd event_idx queues queue_size>`` as ``ioeventfd``, ``event_idx``,
  ``num-queues``, ``queue-size``;
- ``<target rotation_rate>`` (IDE, SATA, SCSI), ``<target removable>`` (USB);
- ``<wwn>`` (IDE, SATA, SCSI), ``<vendor>``/``<product>`` (SCSI), ``<geometry cyls heads secs trans>``
  (IDE/SATA disks), ``<blockio logical_block_size physical_block_size>``.

Each is kept in ``DiskConfig.tuning`` under its XML name (``driver.queues``, ``target.removable``,
``wwn``, ``geometry.cyls``...) and refused on a bus where QEMU has no such property.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError
from pyvirt.qemu import keyval

if TYPE_CHECKING:
    from pyvirt.conf.domain import DiskConfig

_ON_OFF = ("on", "off")
ERROR_POLICIES = ("stop", "report", "ignore", "enospace")
_WWN = re.compile(r"(?:0x)?[0-9a-fA-F]{16}")
# tuning key → the buses that have it (None: every bus but fdc)
_BUSES: dict[str, tuple[str, ...] | None] = {
    "driver.ioeventfd": ("virtio",),
    "driver.event_idx": ("virtio",),
    "driver.queues": ("virtio",),
    "driver.queue_size": ("virtio",),
    "target.rotation_rate": ("ide", "sata", "scsi"),
    "target.removable": ("usb",),
    "wwn": ("ide", "sata", "scsi"),
    "vendor": ("scsi",),
    "product": ("scsi",),
    "geometry.cyls": ("ide", "sata"),
    "blockio.logical_block_size": None,
}


def parse_driver(node: Elem, tuning: dict[str, str]) -> None:
    """The tuning attributes of a disk's ``<driver>``."""
    for name, values in (
        ("error_policy", ERROR_POLICIES),
        ("rerror_policy", ("stop", "report", "ignore")),
        ("detect_zeroes", ("off", "on", "unmap")),
        ("ioeventfd", _ON_OFF),
        ("event_idx", _ON_OFF),
    ):
        if (value := node.choice(name, values)) is not None:
            tuning[f"driver.{name}"] = value
    for name in ("queues", "queue_size"):
        if (number := node.integer(name, minimum=1, maximum=1024)) is not None:
            tuning[f"driver.{name}"] = str(number)


def parse_target(node: Elem, tuning: dict[str, str]) -> None:
    if (rate := node.integer("rotation_rate", minimum=1, maximum=65535)) is not None:
        tuning["target.rotation_rate"] = str(rate)
    if (removable := node.choice("removable", _ON_OFF)) is not None:
        tuning["target.removable"] = removable


def parse_children(e: Elem, tuning: dict[str, str]) -> None:
    """``<wwn>``, ``<vendor>``, ``<product>``, ``<geometry>``, ``<blockio>`` of a ``<disk>``."""
    if (node := e.child("wwn")) is not None:
        wwn = node.text()
        if not _WWN.fullmatch(wwn):
            raise XMLError(f"invalid wwn '{wwn}' of '{node.path}' (16 hex digits)")
        tuning["wwn"] = wwn
        node.done()
    for tag, limit in (("vendor", 8), ("product", 16)):
        if (node := e.child(tag)) is not None:
            value = node.text()
            if len(value) > limit or not value.isprintable():
                raise XMLError(f"'{node.path}' must be at most {limit} printable characters")
            tuning[tag] = value
            node.done()
    if (node := e.child("geometry")) is not None:
        for name, high in (("cyls", 65535), ("heads", 255), ("secs", 255)):
            count = node.integer(name, minimum=1, maximum=high)
            if count is None:
                raise XMLError(f"missing attribute '{name}' of '{node.path}'")
            tuning[f"geometry.{name}"] = str(count)
        if (trans := node.choice("trans", ("none", "lba", "auto"))) is not None:
            tuning["geometry.trans"] = trans
        node.done()
    if (node := e.child("blockio")) is not None:
        for name in ("logical_block_size", "physical_block_size"):
            if (size := node.integer(name, minimum=512, maximum=32768)) is not None:
                if size & (size - 1):
                    raise XMLError(f"{name} '{size}' of '{node.path}' must be a power of two")
                tuning[f"blockio.{name}"] = str(size)
        node.done()


def driver_attrs(tuning: dict[str, str]) -> dict[str, str]:
    return {k[7:]: v for k, v in tuning.items() if k.startswith("driver.")}


def target_attrs(tuning: dict[str, str]) -> dict[str, str]:
    return {k[7:]: v for k, v in tuning.items() if k.startswith("target.")}


def children(tuning: dict[str, str]) -> list[XNode]:
    out = [x(tag, text=tuning[tag]) for tag in ("wwn", "vendor", "product") if tag in tuning]
    for tag in ("geometry", "blockio"):
        attrs = {k[len(tag) + 1 :]: v for k, v in tuning.items() if k.startswith(f"{tag}.")}
        if attrs:
            out.append(x(tag, attrs))
    return out


def check(disk: DiskConfig) -> None:
    """Refuse tuning the disk's bus has no property for."""
    bus = disk.target_bus
    for key in disk.tuning:
        group = "blockio.logical_block_size" if key.startswith("blockio.") else key
        group = "geometry.cyls" if key.startswith("geometry.") else group
        if group not in _BUSES:
            continue
        buses = _BUSES[group]
        if (buses is None and bus == "fdc") or (buses is not None and bus not in buses):
            raise UnsupportedConfig(
                f"unsupported configuration: {key.replace('.', ' ')} of disk '{disk.target_dev}' "
                f"(bus '{bus}'): QEMU's device for it has no such property"
            )
    if disk.device != "disk" and any(
        k.startswith("geometry.") or k == "target.rotation_rate" for k in disk.tuning
    ):
        raise InvalidArgument(f"geometry and rotation_rate of '{disk.target_dev}' are for hard disks")


def device_props(disk: DiskConfig) -> dict[str, str]:
    """The QEMU device properties of the disk's tuning."""
    t = disk.tuning
    props: dict[str, str] = {}
    if (werror := t.get("driver.error_policy")) is not None:
        props["werror"] = "enospc" if werror == "enospace" else werror
    rerror = t.get("driver.rerror_policy") or (werror if werror not in (None, "enospace") else None)
    if rerror is not None:
        props["rerror"] = rerror
    names = {
        "driver.ioeventfd": "ioeventfd",
        "driver.event_idx": "event_idx",
        "driver.queues": "num-queues",
        "driver.queue_size": "queue-size",
        "target.rotation_rate": "rotation_rate",
        "target.removable": "removable",
        "vendor": "vendor",
        "product": "product",
        "geometry.cyls": "cyls",
        "geometry.heads": "heads",
        "geometry.secs": "secs",
        "geometry.trans": "bios-chs-trans",
        "blockio.logical_block_size": "logical_block_size",
        "blockio.physical_block_size": "physical_block_size",
    }
    props.update({prop: keyval.escape(t[key]) for key, prop in names.items() if key in t})
    if "wwn" in t:
        props["wwn"] = str(int(t["wwn"].lower().removeprefix("0x"), 16))  # as libvirt: in decimal
    return props


def detect_zeroes(disk: DiskConfig) -> str | None:
    """The format node's ``detect-zeroes``, as libvirt sets it."""
    value = disk.tuning.get("driver.detect_zeroes")
    if value == "unmap" and disk.discard != "unmap":
        return "on"
    return value
