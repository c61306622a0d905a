"""The devices libvirt's QEMU driver adds to an x86 definition that does not name them, and writes back.

As ``qemuDomainDefAddDefaultDevices`` does for i440fx and q35 machines: a USB controller (``piix3-uhci``
at 00:01.2 on pc, ``qemu-xhci`` on q35) unless the domain has one (``model='none'`` says there is to be
none), a virtio memory balloon unless it has a ``<memballoon>`` (``model='none'`` likewise), a SCSI
controller of libvirt's default model for x86 (``lsilogic``, QEMU's ``lsi``, on pc and q35 alike) for
each controller index up to the highest a SCSI disk names that no ``<controller type='scsi'>`` has (a
SCSI controller without a model gets that model too), SATA controllers likewise, and the
virtio-serial controller a virtio channel or console needs. So a definition from elsewhere runs with
the devices libvirt would give it, and ``dumpxml`` shows them. The PCI controllers the devices need are
added with their addresses (:mod:`pyvirt.conf.pci_assign`).
"""

from __future__ import annotations

from pyvirt.conf.addresses import drive_address, number, placed_devices
from pyvirt.conf.domain import ControllerConfig, Domain, MemballoonConfig, PCIAddress

# libvirt's SCSI controller model for x86 when none is named (qemuDomainGetSCSIControllerModel with
# QEMU's lsi53c895a there).
DEFAULT_SCSI_MODEL = "lsilogic"
# libvirt's fixed place of pc's USB controller: function 2 of the PIIX3 (slot 1), beside its IDE.
_PIIX3_USB = {"domain": "0x0000", "bus": "0x00", "slot": "0x01", "function": "0x2"}


def add(dom: Domain) -> None:
    """Add the implicit USB controller, balloon and SCSI controllers ``dom`` lacks; idempotent."""
    if dom.os.arch not in ("x86_64", "i686"):
        return
    devs = dom.devices
    q35 = "q35" in (dom.os.machine or "")
    if not any(ctl.type == "usb" for ctl in devs.controllers):
        if q35:
            usb = ControllerConfig(type="usb", index=0, model="qemu-xhci")
        else:
            taken = any(
                p.address.type == "pci"
                and (number(p.address, "bus"), number(p.address, "slot"), number(p.address, "function"))
                == (0, 1, 2)
                for p in placed_devices(dom)
            )
            address = None if taken else PCIAddress(type="pci", attrs=dict(_PIIX3_USB))
            usb = ControllerConfig(type="usb", index=0, model="piix3-uhci", address=address)
        devs.controllers.append(usb)
    if devs.memballoon is None:
        devs.memballoon = MemballoonConfig(model="virtio")
    _scsi_controllers(dom)
    have = {ctl.index for ctl in devs.controllers if ctl.type == "sata"}
    sata = [drive_address(dom, i)[0] for i, disk in enumerate(devs.disks) if disk.target_bus == "sata"]
    for index in range(max(sata, default=-1) + 1):  # libvirt's: each index up to the highest a disk names
        if index not in have:
            devs.controllers.append(ControllerConfig(type="sata", index=index))
    virtio_chardevs = [c for c in (*devs.channels, *devs.consoles) if c.target_type == "virtio"]
    if virtio_chardevs and not any(ctl.type == "virtio-serial" for ctl in devs.controllers):
        devs.controllers.append(ControllerConfig(type="virtio-serial", index=0))


def _scsi_controllers(dom: Domain) -> None:
    devs = dom.devices
    for ctl in devs.controllers:
        if ctl.type == "scsi" and ctl.model is None:
            ctl.model = DEFAULT_SCSI_MODEL
    have = {ctl.index for ctl in devs.controllers if ctl.type == "scsi"}
    named = [drive_address(dom, i)[0] for i, disk in enumerate(devs.disks) if disk.target_bus == "scsi"]
    for index in range(max(named, default=-1) + 1):  # libvirt's: each index up to the highest named
        if index not in have:
            devs.controllers.append(ControllerConfig(type="scsi", index=index, model=DEFAULT_SCSI_MODEL))
