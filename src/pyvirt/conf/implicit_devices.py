"""The devices libvirt's QEMU driver adds to an x86 definition that does not name them, and writes back.

As ``qemuDomainDefAddDefaultDevices`` does for i440fx and q35 machines: a USB controller (``piix3-uhci``
at 00:01.2 on pc, ``qemu-xhci`` on q35) unless the domain has one (``model='none'`` says there is to be
none), and a virtio memory balloon unless it has a ``<memballoon>`` (``model='none'`` likewise). So a
definition from elsewhere runs with the devices libvirt would give it, and ``dumpxml`` shows them.
"""

from __future__ import annotations

from pyvirt.conf.addresses import number, placed_devices
from pyvirt.conf.domain import ControllerConfig, Domain, MemballoonConfig, PCIAddress

# libvirt's fixed place of pc's USB controller: function 2 of the PIIX3 (slot 1), beside its IDE.
_PIIX3_USB = {"domain": "0x0000", "bus": "0x00", "slot": "0x01", "function": "0x2"}


def add(dom: Domain) -> None:
    """Add the implicit USB controller and balloon ``dom`` lacks; idempotent."""
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
