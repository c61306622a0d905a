"""``<acpi index='N'/>`` of a PCI device: the index ACPI gives the guest for it (``acpi-index``).

A Linux guest names a NIC with an index ``enoN`` whatever slot it sits in; libvirt 9.0 takes the element
on disks, interfaces, video devices (and other PCI devices pyvirt does not model with it yet), and
refuses an index outside 1-16383, twice the same index, and a device that is not on the PCI bus.
QEMU gets ``acpi-index=N`` on the device.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

MAX_INDEX = 16383


def parse(e: Elem) -> int | None:
    """The ``<acpi index>`` child of device ``e``, if any."""
    node = e.child("acpi")
    if node is None:
        return None
    index = node.integer("index", minimum=1, maximum=MAX_INDEX)
    if index is None:
        raise XMLError(f"missing attribute 'index' of '{node.path}'")
    node.done()
    return index


def write(index: int | None) -> XNode | None:
    return x("acpi", {"index": index}) if index is not None else None


def check(dom: Domain) -> None:
    devs = dom.devices
    owners = [
        *((f"disk '{d.target_dev}'", d.acpi_index, d.target_bus == "virtio") for d in devs.disks),
        *((f"interface {i}", n.acpi_index, True) for i, n in enumerate(devs.interfaces)),
        *((f"video {i}", v.acpi_index, v.model not in ("ramfb", "none")) for i, v in enumerate(devs.videos)),
    ]
    for what, index, on_pci in owners:
        if index is not None and not on_pci:
            raise UnsupportedConfig(f"unsupported configuration: <acpi index> of {what}, not a PCI device")
    for index, count in Counter(index for _w, index, _p in owners if index is not None).items():
        if count > 1:
            raise InvalidArgument(f"acpi index '{index}' is used by more than one device")
