"""Post-parse defaults: the values libvirt fills in after parsing and writes back into the config.

A separate pass, as in libvirt, so that parsing stays a faithful reading of the document. Only what
libvirt itself writes is added: the UUID (the dataclass default), MAC addresses, the machine type, the
disk bus implied by the target name, the serial/console pairing, the model of a PCI controller that
names none, the primary video first, the USB controller and balloon libvirt adds
(:mod:`pyvirt.conf.implicit_devices`), and, as libvirt's define does, a NUMA guest's ``<memory>`` as the
sum of its cells and memory modules. Last, every PCI device gets the address libvirt gives it, with the
PCI controllers it needs (:mod:`pyvirt.conf.pci_assign`).
"""

from __future__ import annotations

from pyvirt.conf import implicit_devices, pci_assign
from pyvirt.conf.domain import CharDevConfig, Domain
from pyvirt.conf.mac import random_mac
from pyvirt.conf.memory_devices import aligned
from pyvirt.errors import XMLError

DEFAULT_MACHINE = "pc"
# An <interface> without <model>: libvirt 9.0's choice for x86 guests (qemuDomainDefaultNetModel), which
# it writes into the definition (a vdpa interface gets virtio; a vhostuser one must name it).
DEFAULT_NET_MODEL = "rtl8139"
# The pcie-root-ports the tools that write a q35 guest's XML give it (virt-install's default, pyvirt
# install, clone and launch): define puts the guest's devices on the first ones, as libvirt does
# (pyvirt.conf.pci_assign), the rest take hot-plugged devices.
HOTPLUG_ROOT_PORTS = 14
# libvirt maps sd* to scsi; pyvirt maps it to sata, which needs no extra controller model on q35.
_BUS_BY_PREFIX = (("vd", "virtio"), ("sd", "sata"), ("hd", "ide"), ("fd", "fdc"))


def infer_disk_bus(target_dev: str) -> str | None:
    """The bus a target name implies (vda → virtio, sda → sata, hda → ide), or None."""
    for prefix, bus in _BUS_BY_PREFIX:
        if target_dev.startswith(prefix):
            return bus
    return None


def _pair_console_with_serial(dom: Domain) -> None:
    """libvirt's rule: the first console, when of (or defaulting to) target type serial, is serial 0."""
    devs = dom.devices
    for index, serial in enumerate(devs.serials):
        if serial.target_port is None:
            serial.target_port = index
        if serial.target_type is None and dom.os.arch in ("x86_64", "i686"):
            serial.target_type = "isa-serial"
        if serial.target_model is None and serial.target_type is not None:
            serial.target_model = {"isa-debug": "isa-debugcon"}.get(serial.target_type, serial.target_type)
    if not devs.consoles:
        return
    console = devs.consoles[0]
    if console.target_type not in (None, "serial"):
        return
    if not devs.serials and dom.os.arch in ("x86_64", "i686"):
        devs.serials.append(
            CharDevConfig(
                kind="serial",
                type=console.type,
                source_path=console.source_path,
                source_mode=console.source_mode,
                source_extra=dict(console.source_extra),
                target_type="isa-serial",
                target_port=0,
                target_model="isa-serial",
            )
        )
    if devs.serials:
        console.target_type = "serial"
        console.target_port = devs.serials[0].target_port
        if console.address is not None and console.address == devs.serials[0].address:
            console.address = None  # libvirt's copy of the serial port's own address


def apply_defaults(dom: Domain, *, pci: bool = True) -> None:
    """Fill in what libvirt fills in after parsing; idempotent. ``pci=False`` leaves PCI addresses
    unassigned: a running domain's devices are where QEMU has them, and a device plugged into it
    takes a free hot-pluggable slot (:func:`pyvirt.qemu.hotplug.pci_slot`)."""
    if dom.os.machine is None:
        dom.os.machine = DEFAULT_MACHINE
    for disk in dom.devices.disks:
        if not disk.target_bus:
            disk.target_bus = infer_disk_bus(disk.target_dev) or ""
    taken = {nic.mac for nic in dom.devices.interfaces if nic.mac}
    for nic in dom.devices.interfaces:
        if not nic.mac:
            nic.mac = random_mac(taken)
            taken.add(nic.mac)
    _pair_console_with_serial(dom)
    q35 = "q35" in dom.os.machine
    for ctl in dom.devices.controllers:
        if ctl.type == "pci" and ctl.model is None:  # libvirt's choice, written into the config
            if ctl.index == 0:
                ctl.model = "pcie-root" if q35 else "pci-root"
            else:
                ctl.model = "pcie-root-port" if q35 else "pci-bridge"
        if ctl.type == "pci" and ctl.index == 0 and ctl.model != (root := "pcie-root" if q35 else "pci-root"):
            raise XMLError(  # libvirt 9.0's words (a first root port given without an index gets 0 too)
                f"XML error: The PCI controller with index='0' must be model='{root}' for this machine "
                f"type, but model='{ctl.model}' was found instead"
            )
    implicit_devices.add(dom)
    if dom.devices.hostdevs:  # an iSCSI LUN's drive address, written into the definition as libvirt does
        from pyvirt.conf import hostdev

        hostdev.assign_addresses(dom)
    if dom.cpu is not None and dom.cpu.numa:  # libvirt's define: <memory> is the cells and the modules
        modules = sum(aligned(mem.size_kib) for mem in dom.devices.memory)
        total = sum(cell.memory_kib for cell in dom.cpu.numa) + modules
        current = dom.current_memory_kib
        if current is not None and (current > total or current == dom.memory_kib):
            dom.current_memory_kib = total  # all of it stays all of it; libvirt's clamp otherwise
        dom.memory_kib = total
    videos = dom.devices.videos
    primary = next((i for i, video in enumerate(videos) if video.primary), 0)
    if primary:  # libvirt keeps the primary video first
        videos.insert(0, videos.pop(primary))
    if pci:
        pci_assign.assign(dom)
