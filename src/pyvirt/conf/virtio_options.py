"""virtio's transport options on a device's ``<driver>``: ``iommu``, ``ats``, ``packed``, ``page_per_vq``.

libvirt accepts them on every virtio device (disk, interface, controller, input, balloon, RNG, video,
filesystem) and turns them into the same properties of the ``virtio-*-pci`` device:
``iommu_platform``, ``ats``, ``packed`` and ``page-per-vq``, each on or off as written. On a device
that is not virtio they mean nothing, so they are refused there by name.
"""

from __future__ import annotations

from pyvirt.conf.xmlutil import Elem
from pyvirt.errors import UnsupportedConfig

# XML attribute → QEMU property
OPTIONS: tuple[tuple[str, str], ...] = (
    ("iommu", "iommu_platform"),
    ("ats", "ats"),
    ("packed", "packed"),
    ("page_per_vq", "page-per-vq"),
)


def parse(driver: Elem | None) -> dict[str, str]:
    """The virtio options of a ``<driver>`` element (attribute → on/off), consuming only them."""
    if driver is None:
        return {}
    return {name: value for name, _ in OPTIONS if (value := driver.choice(name, ("on", "off"))) is not None}


def parse_driver(e: Elem) -> dict[str, str]:
    """The ``<driver>`` child of a device that has nothing but virtio options there."""
    driver = e.child("driver")
    options = parse(driver)
    if driver is not None:
        driver.done()
    return options


def attrs(options: dict[str, str]) -> dict[str, str]:
    """The attributes to write back on ``<driver>``, in libvirt's order."""
    return {name: options[name] for name, _ in OPTIONS if name in options}


def props(options: dict[str, str], *, virtio: bool = True, what: str = "device") -> dict[str, str]:
    """The QEMU device properties for ``options``; refused on a device that is not virtio."""
    if options and not virtio:
        names = ", ".join(sorted(options))
        raise UnsupportedConfig(
            f"unsupported configuration: virtio options ({names}) of {what}: it is not a virtio device"
        )
    return {prop: options[name] for name, prop in OPTIONS if name in options}
