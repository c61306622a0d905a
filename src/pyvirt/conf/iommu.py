"""The guest's IOMMU: ``<iommu model='intel'|'virtio'>`` as QEMU's ``intel-iommu`` or ``virtio-iommu``.

``intel`` (q35 only) takes libvirt's ``<driver>`` options: ``intremap`` (interrupt remapping, which
needs the split irqchip of ``<ioapic driver='qemu'/>``), ``caching_mode``, ``eim`` (with ``intremap``),
``iotlb`` and ``aw_bits`` (39 or 48), as the device's ``intremap``, ``caching-mode``, ``eim``,
``device-iotlb`` and ``aw-bits``. ``virtio`` is a PCI device and takes none of them. At most one IOMMU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvirt.conf.domain import PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig

MODELS = ("intel", "virtio")
# <driver> attribute → QEMU property of intel-iommu
_SWITCHES = (
    ("intremap", "intremap"),
    ("caching_mode", "caching-mode"),
    ("eim", "eim"),
    ("iotlb", "device-iotlb"),
)


@dataclass
class IOMMUConfig:
    model: str = "intel"
    driver: dict[str, str] = field(default_factory=dict)  # as written: on/off, aw_bits a number
    address: PCIAddress | None = None
    alias: str | None = None


def parse(e: Elem) -> IOMMUConfig:
    iommu = IOMMUConfig(model=e.choice("model", MODELS, required=True) or "intel")
    if (driver := e.child("driver")) is not None:
        if iommu.model != "intel":
            raise UnsupportedConfig(
                f"unsupported configuration: '{driver.path}' of an IOMMU of model '{iommu.model}'"
            )
        for name, _prop in _SWITCHES:
            if (value := driver.choice(name, ("on", "off"))) is not None:
                iommu.driver[name] = value
        if (bits := driver.choice("aw_bits", ("39", "48"))) is not None:
            iommu.driver["aw_bits"] = bits
        driver.done()
    return iommu


def write(iommu: IOMMUConfig, extra: tuple[XNode | None, ...]) -> XNode:
    node = x("iommu", {"model": iommu.model})
    node.add(x("driver", iommu.driver) if iommu.driver else None)
    return node.add(*extra)


def check(iommu: IOMMUConfig, q35: bool, ioapic: str | None) -> None:
    """libvirt's rules for an IOMMU the machine can have."""
    if iommu.model == "intel":
        if not q35:
            raise UnsupportedConfig("unsupported configuration: the intel IOMMU needs a q35 machine")
        if iommu.address is not None:
            raise InvalidArgument("the intel IOMMU is a system device: it takes no address")
        if iommu.driver.get("intremap") == "on" and ioapic != "qemu":
            raise InvalidArgument("IOMMU interrupt remapping (intremap='on') needs <ioapic driver='qemu'/>")
        if iommu.driver.get("eim") == "on" and iommu.driver.get("intremap") != "on":
            raise InvalidArgument("IOMMU eim='on' needs interrupt remapping (intremap='on')")
    elif iommu.address is not None and iommu.address.type != "pci":
        raise InvalidArgument(f"the virtio IOMMU cannot have an address of type '{iommu.address.type}'")


def device_props(iommu: IOMMUConfig) -> tuple[str, dict[str, str]]:
    """(QEMU driver, properties besides the id and PCI placement)."""
    if iommu.model == "virtio":
        return "virtio-iommu", {}
    props = {prop: iommu.driver[name] for name, prop in _SWITCHES if name in iommu.driver}
    if "aw_bits" in iommu.driver:
        props["aw-bits"] = iommu.driver["aw_bits"]
    return "intel-iommu", props
