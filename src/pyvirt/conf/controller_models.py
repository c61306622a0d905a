"""Controller models beyond the defaults: SCSI HBAs, PCIe switches and the DMI bridge, NEC's xHCI, and
a virtio-scsi controller's ``<driver>`` tuning.

libvirt's model names map onto QEMU 7.2's devices: ``lsilogic`` → ``lsi``, ``lsisas1068`` →
``mptsas1068``, ``lsisas1078`` → ``megasas``, ``vmpvscsi`` → ``pvscsi``, ``am53c974``, ``dc390``;
``dmi-to-pci-bridge`` → ``i82801b11-bridge``, ``pcie-switch-upstream-port`` → ``x3130-upstream``,
``pcie-switch-downstream-port`` → ``xio3130-downstream`` (which takes a port, chassis and hotplug as a
root port does). A virtio-scsi ``<driver>`` takes ``queues``, ``cmd_per_lun``, ``max_sectors``,
``ioeventfd`` and ``iothread`` (as ``num_queues``, ``cmd_per_lun``, ``max_sectors``, ``ioeventfd`` and
``iothread=iothreadN``), kept in the controller's ``extra`` as ``driver.NAME``.
"""

from __future__ import annotations

from pyvirt.conf.xmlutil import Elem

SCSI_DEVICES = {
    "virtio-scsi": "virtio-scsi-pci",
    "lsilogic": "lsi",
    "lsisas1068": "mptsas1068",
    "lsisas1078": "megasas",
    "vmpvscsi": "pvscsi",
    "am53c974": "am53c974",
    "dc390": "dc390",
}
PCI_DEVICES = {
    "dmi-to-pci-bridge": "i82801b11-bridge",
    "pcie-switch-upstream-port": "x3130-upstream",
    "pcie-switch-downstream-port": "xio3130-downstream",
}
PCI_MODEL_NAMES = tuple(PCI_DEVICES.values())
# virtio-scsi <driver> attribute → QEMU property
SCSI_DRIVER = {
    "queues": "num_queues",
    "cmd_per_lun": "cmd_per_lun",
    "max_sectors": "max_sectors",
    "ioeventfd": "ioeventfd",
    "iothread": "iothread",
}


def parse_scsi_driver(driver: Elem, extra: dict[str, str]) -> None:
    """A virtio-scsi ``<driver>``'s tuning into ``extra`` (the virtio options are read elsewhere)."""
    for name in ("queues", "cmd_per_lun", "max_sectors", "iothread"):
        if (value := driver.integer(name, minimum=1)) is not None:
            extra[f"driver.{name}"] = str(value)
    if (ioeventfd := driver.choice("ioeventfd", ("on", "off"))) is not None:
        extra["driver.ioeventfd"] = ioeventfd


def scsi_driver_attrs(extra: dict[str, str]) -> dict[str, str]:
    return {name: extra[f"driver.{name}"] for name in SCSI_DRIVER if f"driver.{name}" in extra}


def scsi_driver_props(extra: dict[str, str]) -> dict[str, str]:
    props = {SCSI_DRIVER[name]: value for name, value in scsi_driver_attrs(extra).items()}
    if "iothread" in props:
        props["iothread"] = f"iothread{props['iothread']}"
    return props
