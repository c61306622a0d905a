"""PCI addresses assigned at define, as libvirt 9.0's QEMU driver assigns them, written into the definition.

libvirt gives every PCI device of a definition an address when it parses it (``qemuDomainAssignAddresses``),
so a guest's layout stays the same when devices are added later, and adds the PCI controllers the devices
need. This module follows the same rules on pc (i440fx) and q35 machines:

- each device plugs in as a conventional PCI device, a PCI Express one (on q35: virtio devices, which QEMU
  7.2 makes PCIe when they sit on a PCIe port, ``qemu-xhci``, ``e1000e``, ``bochs``, host devices) or a
  controller, and each bus accepts some of these (:data:`_BUS_MODELS`);
- the chipset's places first: pc's PIIX3 at 00:01 (its IDE at .1, USB at .2), the primary video at 00:02
  on pc and 00:01 on q35, q35's SATA at 00:1f.2 (00:1f.0 and .3 are its ISA bridge and SMBus), an ICH9
  sound card at 00:1b, ICH9 USB companions at 00:1d or 00:1a;
- then, in libvirt's order, PCI controllers, filesystems, interfaces, sound cards, other controllers,
  virtio disks, host devices, the balloon, RNGs, watchdogs, videos, virtio inputs, PCI serial ports, the
  virtio IOMMU, vsock, virtio memory and pvpanic, each in the first free slot of the first bus that takes
  it; pcie-root-ports share slots (00:02.0 to 00:02.7, then 00:03.0...);
- a first dry pass counts the buses needed, adding a ``pcie-root-port`` per PCIe device that finds no free
  port, a ``pcie-root-port`` + ``pcie-to-pci-bridge`` for the first conventional PCI device of a q35 guest,
  a ``pci-bridge`` when pc's 29 slots are full (pc keeps a slot back for it), and on a q35 guest that had
  no PCI controllers one spare root port for hot-plug; then the controllers are added and the real pass
  places everything;
- each PCI controller gets libvirt's ``<model name>``, root ports ``<target chassis port>`` (chassis = the
  index, port = slot * 8 + function), pci-bridges ``chassisNr``; function 0 of a slot with other functions
  in use gets ``multifunction='on'``.

Devices with an address keep it (it is checked against the bus it names). Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pyvirt.conf.addresses import number
from pyvirt.conf.domain import ControllerConfig, Domain, PCIAddress
from pyvirt.errors import InvalidArgument, UnsupportedConfig

# How a device connects (libvirt's VIR_PCI_CONNECT_TYPE_*), and what a bus accepts.
PCI_DEVICE = 1 << 0
PCIE_DEVICE = 1 << 1
ROOT_PORT = 1 << 2
UPSTREAM_PORT = 1 << 3
DOWNSTREAM_PORT = 1 << 4
DMI_BRIDGE = 1 << 5
PCIE_TO_PCI_BRIDGE = 1 << 6
PCI_BRIDGE = 1 << 7
_TYPES = (1 << 8) - 1
_ENDPOINT = PCI_DEVICE | PCIE_DEVICE
AUTOASSIGN = 1 << 8  # the device takes an address chosen for it; the bus gives such addresses
HOTPLUGGABLE = 1 << 9
INTEGRATED = 1 << 10  # only on bus 0
AGGREGATE = 1 << 11  # several of these share a slot, one per function (pcie-root-port)

_LAST_SLOT = 31
_CONNECT_NAMES = (
    (PCI_DEVICE, "standard PCI device"),
    (PCIE_DEVICE, "PCI Express device"),
    (ROOT_PORT, "pcie-root-port"),
    (UPSTREAM_PORT, "pcie-switch-upstream-port"),
    (DOWNSTREAM_PORT, "pcie-switch-downstream-port"),
    (DMI_BRIDGE, "dmi-to-pci-bridge"),
    (PCIE_TO_PCI_BRIDGE, "pcie-to-pci-bridge"),
    (PCI_BRIDGE, "pci-bridge"),
)
# PCI controller model → (what its bus accepts, first slot, last slot, hot-pluggable unless hotplug='off')
_BUS_MODELS: dict[str, tuple[int, int, int, bool]] = {
    "pci-root": (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE, 1, _LAST_SLOT, True),
    "pci-bridge": (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE, 1, _LAST_SLOT, True),
    "pcie-root": (PCIE_DEVICE | ROOT_PORT | DMI_BRIDGE, 1, _LAST_SLOT, False),
    "dmi-to-pci-bridge": (PCI_DEVICE | PCI_BRIDGE, 0, _LAST_SLOT, False),
    "pcie-to-pci-bridge": (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE, 1, _LAST_SLOT, True),
    "pcie-root-port": (AUTOASSIGN | PCIE_DEVICE | UPSTREAM_PORT | PCIE_TO_PCI_BRIDGE, 0, 0, True),
    "pcie-switch-downstream-port": (
        AUTOASSIGN | PCIE_DEVICE | UPSTREAM_PORT | PCIE_TO_PCI_BRIDGE,
        0,
        0,
        True,
    ),
    "pcie-switch-upstream-port": (DOWNSTREAM_PORT, 0, _LAST_SLOT, False),
}
# How each PCI controller model plugs in (the roots plug into nothing).
_CONTROLLER_CONNECT = {
    "pci-bridge": PCI_BRIDGE,
    "dmi-to-pci-bridge": DMI_BRIDGE,
    "pcie-to-pci-bridge": PCIE_TO_PCI_BRIDGE,
    "pcie-root-port": ROOT_PORT | AGGREGATE,
    "pcie-switch-upstream-port": UPSTREAM_PORT,
    "pcie-switch-downstream-port": DOWNSTREAM_PORT,
}
# libvirt's <model name> of each PCI controller model (QEMU's device).
MODEL_NAMES = {
    "pci-bridge": "pci-bridge",
    "dmi-to-pci-bridge": "i82801b11-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
    "pcie-root-port": "pcie-root-port",
    "pcie-switch-upstream-port": "x3130-upstream",
    "pcie-switch-downstream-port": "xio3130-downstream",
}
_USB2_FUNCTIONS = {
    "ich9-ehci1": (7, False),
    "ich9-uhci1": (0, True),
    "ich9-uhci2": (1, False),
    "ich9-uhci3": (2, False),
}
_PCIE_USB = ("qemu-xhci", "nec-xhci")
_PCI_SOUND = ("es1370", "ac97", "ich6", "ich9")

Address = tuple[int, int, int]  # bus, slot, function


class Addressed(Protocol):
    """Any device of the model: it has an ``<address>``."""

    address: PCIAddress | None


@dataclass
class _Bus:
    model: str
    flags: int
    min_slot: int
    max_slot: int
    functions: list[int] = field(default_factory=lambda: [0] * (_LAST_SLOT + 1))  # bit mask per slot
    aggregate: list[bool] = field(default_factory=lambda: [False] * (_LAST_SLOT + 1))

    def empty(self) -> bool:
        return not any(self.functions[self.min_slot : self.max_slot + 1])

    def full(self) -> bool:
        return all(self.functions[self.min_slot : self.max_slot + 1])


def _bus(model: str, hotplug: bool = True) -> _Bus:
    flags, low, high, pluggable = _BUS_MODELS[model]
    return _Bus(model, flags | (HOTPLUGGABLE if pluggable and hotplug else 0), low, high)


def _text(addr: Address) -> str:
    return f"0000:{addr[0]:02x}:{addr[1]:02x}.{addr[2]}"


def _incompatible(addr: Address, bus_flags: int, flags: int, from_config: bool) -> str | None:
    """Why a device connecting as ``flags`` cannot have ``addr`` on a bus accepting ``bus_flags``."""
    where = _text(addr)
    if flags & INTEGRATED:
        if addr[0] != 0:
            return f"The device at PCI address {where} needs to be an integrated device (bus=0)"
        bus_flags |= AUTOASSIGN
    if from_config:  # an address the user chose: a PCI device may sit on a PCIe bus and the other way
        if bus_flags & _ENDPOINT:
            bus_flags |= _ENDPOINT
        if flags & PCI_BRIDGE:
            flags |= PCI_DEVICE
    elif flags & AUTOASSIGN and not bus_flags & AUTOASSIGN:
        return (
            f"The device at PCI address {where} was auto-assigned this address, but the PCI controller "
            f"with index='{addr[0]}' doesn't allow auto-assignment"
        )
    if flags & HOTPLUGGABLE and not bus_flags & HOTPLUGGABLE:
        return (
            f"The device at PCI address {where} requires hotplug capability, but the PCI controller "
            f"with index='{addr[0]}' doesn't support hotplug"
        )
    if not flags & bus_flags & _TYPES:
        kind = next((name for bit, name in _CONNECT_NAMES if flags & bit), "device")
        return (
            f"The device at PCI address {where} cannot be plugged into the PCI controller with "
            f"index='{addr[0]}'. It requires a controller that accepts a {kind}."
        )
    return None


class _AddressSet:
    """The buses of a domain and the functions of their slots in use (libvirt's virDomainPCIAddressSet).

    In a dry run, buses are added as devices need them and no device is given its address.
    """

    def __init__(self, buses: list[_Bus], dry_run: bool) -> None:
        self.buses = buses
        self.dry_run = dry_run

    def grow(self, addr: Address, flags: int) -> Address:
        """Add the buses up to ``addr``'s (dry run): root ports for PCIe, bridges for PCI."""
        bus, slot, function = addr
        add = bus - len(self.buses) + 1
        if add <= 0:
            return addr
        need_bridge = False
        if flags & PCI_DEVICE:
            model = "pci-bridge"
            # a PCIe-only guest: a pcie-root-port and a pcie-to-pci-bridge in it are the PCI bus
            need_bridge = not any(b.flags & PCI_BRIDGE for b in self.buses)
            if need_bridge and add == 1:
                add += 1
                bus += 1
        elif flags & (PCIE_DEVICE | UPSTREAM_PORT):
            model = "pcie-root-port"
        else:
            kind = next((name for bit, name in _CONNECT_NAMES if flags & bit), "device")
            raise UnsupportedConfig(
                f"unsupported configuration: a PCI slot is needed for a {kind}, but none is available "
                "and none can be added automatically"
            )
        new: list[_Bus] = []
        if need_bridge:
            port = _bus("pcie-root-port")
            port.flags = PCIE_TO_PCI_BRIDGE  # for the bridge only: the spare port is another one
            new += [port, _bus("pcie-to-pci-bridge")]
        while len(new) < add:
            new.append(_bus(model))
        self.buses += new
        return bus, slot, function

    def taken(self, addr: Address) -> bool:
        """Whether this very function is reserved."""
        bus, slot, function = addr
        return bus < len(self.buses) and bool(self.buses[bus].functions[slot] & (1 << function))

    def in_use(self, addr: Address) -> bool:
        return bool(self.buses[addr[0]].functions[addr[1]])

    def validate(self, addr: Address, flags: int, from_config: bool) -> None:
        bus_index, slot, _ = addr
        where = _text(addr)
        if not self.buses:
            raise InvalidArgument("No PCI buses available")
        if bus_index >= len(self.buses):
            raise InvalidArgument(
                f"Invalid PCI address {where}. Only PCI buses up to {len(self.buses) - 1} are available"
            )
        bus = self.buses[bus_index]
        if (why := _incompatible(addr, bus.flags, flags, from_config)) is not None:
            raise InvalidArgument(why)
        if bus.min_slot and slot < bus.min_slot:
            raise InvalidArgument(f"Invalid PCI address {where}. slot must be >= {bus.min_slot}")
        if slot > bus.max_slot:
            raise InvalidArgument(f"Invalid PCI address {where}. slot must be <= {bus.max_slot}")

    def reserve(self, addr: Address, flags: int, from_config: bool = True) -> Address:
        if self.dry_run:
            addr = self.grow(addr, flags)
        self.validate(addr, flags, from_config)
        bus = self.buses[addr[0]]
        slot, function = addr[1], addr[2]
        if bus.functions[slot] & (1 << function):
            raise InvalidArgument(f"Attempted double use of PCI Address {_text(addr)}")
        if not bus.functions[slot] and flags & AGGREGATE:
            bus.aggregate[slot] = True
        bus.functions[slot] |= 1 << function
        return addr

    def next_addr(self, flags: int, function: int = -1) -> Address:
        """The first free slot (or, for aggregating devices, function) of the first bus that takes
        ``flags``; in a dry run a new bus when there is none."""
        start = 0 if function == -1 else function
        for index, bus in enumerate(self.buses):
            if _incompatible((index, bus.min_slot, start), bus.flags, flags, False) is not None:
                continue
            fn = start
            for slot in range(bus.min_slot, bus.max_slot + 1):
                used = bus.functions[slot]
                if not used:
                    return index, slot, fn
                if flags & AGGREGATE and bus.aggregate[slot]:
                    if not used & (1 << fn):
                        return index, slot, fn
                    if function == -1:
                        free = next((f for f in range(fn, 8) if not used & (1 << f)), None)
                        if free is not None:
                            return index, slot, free
                        fn = 0
        if not self.dry_run:
            raise InvalidArgument("No more available PCI slots")
        bus_index, _, fn = self.grow((len(self.buses), 0, start), flags)
        return bus_index, self.buses[bus_index].min_slot, fn

    def reserve_next(self, flags: int, function: int = -1) -> Address:
        return self.reserve(self.next_addr(flags, function), flags, from_config=False)


# ----------------------------------------------------------------------------------------- devices


def _address_of(addr: PCIAddress | None) -> Address | None:
    """A PCI address that names a place (libvirt's "present"): not all zeros."""
    if addr is None or addr.type != "pci":
        return None
    numbers = (number(addr, "domain"), number(addr, "bus"), number(addr, "slot"), number(addr, "function"))
    return None if not any(numbers) else numbers[1:]


def _wanted(addr: PCIAddress | None) -> bool:
    """Whether a device asks for a PCI address: none, or an empty ``<address type='pci'/>``."""
    return addr is None or (addr.type == "pci" and _address_of(addr) is None)


def _set(dev: Addressed, addr: Address, multifunction: str | None = None) -> None:
    bus, slot, function = addr
    old = dev.address.attrs.get("multifunction") if dev.address is not None else None
    attrs = {"domain": "0x0000", "bus": f"{bus:#04x}", "slot": f"{slot:#04x}", "function": f"{function:#x}"}
    if (multi := multifunction or old) is not None:
        attrs["multifunction"] = multi
    dev.address = PCIAddress(type="pci", attrs=attrs)


@dataclass
class _Placeholder:
    """A slot reserved for no device (libvirt's dummy device info), or for the default video."""

    address: PCIAddress | None = None


@dataclass
class _Machine:
    q35: bool
    pcie: int  # how a PCIe device connects here
    pci: int = PCI_DEVICE | AUTOASSIGN

    @property
    def virtio(self) -> int:  # QEMU 7.2's virtio devices are PCIe on a PCIe port
        return self.pcie


def _usb_model(ctl: ControllerConfig, m: _Machine) -> str:
    return ctl.model or ("qemu-xhci" if m.q35 else "piix3-uhci")


def _controller_flags(ctl: ControllerConfig, m: _Machine) -> int:
    if ctl.type == "pci":
        return _CONTROLLER_CONNECT.get(ctl.model or "", 0)
    if ctl.type in ("sata", "ide"):
        return m.pci
    if ctl.type == "usb":
        model = _usb_model(ctl, m)
        return 0 if model == "none" else m.pcie if model in _PCIE_USB else m.pci
    if ctl.type == "scsi":
        return m.virtio if ctl.model == "virtio-scsi" else m.pci
    if ctl.type == "virtio-serial":
        return m.virtio
    return 0  # fdc, ccid


def _devices(dom: Domain, m: _Machine) -> list[tuple[str, Addressed, int]]:
    """Every device that can sit on PCI, with how it connects, in libvirt's order of assignment (the
    controllers' own order aside)."""
    d = dom.devices
    out: list[tuple[str, Addressed, int]] = []
    out += [("filesystem", fs, m.virtio) for fs in d.filesystems]
    nics = {"e1000e": m.pcie, "virtio": m.virtio}
    out += [("interface", nic, nics.get(nic.model, m.pci)) for nic in d.interfaces]
    out += [("sound", s, m.pci) for s in d.sounds if s.model in _PCI_SOUND]
    out += [("disk", disk, m.virtio) for disk in d.disks if disk.target_bus == "virtio"]
    out += [("hostdev", h, m.pcie) for h in d.hostdevs if h.type in ("pci", "mdev")]
    if d.memballoon is not None and d.memballoon.model != "none":
        out.append(("memballoon", d.memballoon, m.virtio))
    out += [("rng", rng, m.virtio) for rng in d.rngs]
    out += [("watchdog", dog, m.pci) for dog in d.watchdogs if dog.model == "i6300esb"]
    videos = {"virtio": m.virtio, "bochs": m.pcie, "none": 0, "ramfb": 0}
    out += [("video", v, videos.get(v.model, m.pci)) for v in d.videos if videos.get(v.model, m.pci)]
    out += [("input", i, m.virtio) for i in d.inputs if i.bus == "virtio"]
    out += [("serial", s, m.pci) for s in d.serials if s.target_type == "pci-serial"]
    if d.iommu is not None and d.iommu.model == "virtio":
        out.append(("iommu", d.iommu, m.virtio | INTEGRATED))
    if d.vsock is not None:
        out.append(("vsock", d.vsock, m.virtio))
    out += [("memory", mem, m.virtio) for mem in d.memory if mem.model in ("virtio-pmem", "virtio-mem")]
    # pvpanic-pci: libvirt's flags are conventional PCI on bus 0, which q35's pcie.0 does not take
    # (libvirt 9.0 has no pvpanic model yet): an integrated endpoint there, as QEMU places it
    out += [("panic", p, m.pcie | INTEGRATED) for p in d.panics if p.model == "pvpanic"]
    return out


def controller_order(controllers: list[ControllerConfig]) -> list[ControllerConfig]:
    """The controllers in libvirt's order: each inserted after those of its type with a lower index
    (a USB companion after its master), as libvirt inserts them while parsing."""
    out: list[ControllerConfig] = []
    for ctl in controllers:
        _insert(out, ctl)
    return out


def _insert(out: list[ControllerConfig], ctl: ControllerConfig) -> None:
    at = -1
    master = "master.startport" not in ctl.extra
    for i in range(len(out) - 1, -1, -1):
        cur = out[i]
        if cur.type != ctl.type:
            continue
        if cur.index > ctl.index or (master and "master.startport" in cur.extra and cur.index == ctl.index):
            at = i
        elif at == -1:
            at = i + 1
    if at == -1:
        out.append(ctl)
    else:
        out.insert(at, ctl)


# ----------------------------------------------------------------------------------------- passes


class _Assigner:
    def __init__(self, dom: Domain, m: _Machine) -> None:
        self.dom = dom
        self.m = m
        self.controllers = controller_order(dom.devices.controllers)

    def pci_controllers(self) -> list[ControllerConfig]:
        return [c for c in self.controllers if c.type == "pci"]

    def address_set(self, nbuses: int, dry_run: bool) -> _AddressSet:
        buses: list[_Bus | None] = [None] * nbuses
        root = False
        for ctl in self.pci_controllers():
            model = ctl.model or ("pcie-root" if self.m.q35 else "pci-root")
            if model not in _BUS_MODELS:
                raise UnsupportedConfig(f"unsupported configuration: pci controller model '{model}'")
            buses[ctl.index] = _bus(model, ctl.extra.get("target.hotplug") != "off")
            root = root or model == "pcie-root"
        if nbuses and buses[0] is None:
            buses[0] = _bus("pcie-root" if self.m.q35 else "pci-root")
            root = root or self.m.q35
        default = "pcie-root-port" if root else "pci-bridge"
        addrs = _AddressSet([b if b is not None else _bus(default) for b in buses], dry_run)
        self.collect(addrs)
        return addrs

    def everything(self) -> list[tuple[str, Addressed, int]]:
        ctls: list[tuple[str, Addressed, int]] = [
            ("controller", c, _controller_flags(c, self.m)) for c in self.controllers
        ]
        return ctls + _devices(self.dom, self.m)

    def collect(self, addrs: _AddressSet) -> None:
        """Reserve the addresses the definition gives (PIIX3's own functions are the chipset's)."""
        for kind, dev, flags in self.everything():
            addr = _address_of(dev.address)
            if addr is None:
                continue
            if kind == "controller" and addr[:2] == (0, 1) and isinstance(dev, ControllerConfig):
                piix3_usb = dev.type == "usb" and _usb_model(dev, self.m) == "piix3-uhci" and addr[2] == 2
                if dev.index == 0 and ((dev.type == "ide" and addr[2] == 1) or piix3_usb):
                    continue
            if addrs.taken(addr):
                continue  # two devices at one address: validate_domain names both
            addrs.reserve(addr, flags or PCI_DEVICE)

    def chipset(self, addrs: _AddressSet) -> None:
        """The places the machine's own devices have (qemuDomainValidateDevicePCISlotsChipsets)."""
        return self.q35_chipset(addrs) if self.m.q35 else self.piix3(addrs)

    def piix3(self, addrs: _AddressSet) -> None:
        for ctl in self.controllers:
            fixed = None
            if ctl.type == "ide" and ctl.index == 0:
                fixed, name = (0, 1, 1), "Primary IDE controller"
            elif ctl.type == "usb" and ctl.index == 0 and _usb_model(ctl, self.m) == "piix3-uhci":
                fixed, name = (0, 1, 2), "PIIX3 USB controller at index 0"
            if fixed is None:
                continue
            given = _address_of(ctl.address)
            if given is not None and given != fixed:
                raise InvalidArgument(f"{name} must have PCI address 0:0:1.{fixed[2]}")
            if given is None:
                _set(ctl, fixed)
            addrs.reserve(fixed, self.m.pci)
        addrs.reserve((0, 1, 0), self.m.pci)  # the ISA bridge
        addrs.reserve((0, 1, 3), self.m.pci)  # the ACPI/SMBus function
        self.primary_video(addrs, 2, self.m.pci)

    def q35_chipset(self, addrs: _AddressSet) -> None:
        for ctl in self.controllers:
            if ctl.type == "sata" and ctl.index == 0:
                given = _address_of(ctl.address)
                if given is not None and given != (0, 0x1F, 2):
                    raise InvalidArgument("Primary SATA controller must have PCI address 0:0:1f.2")
                if given is None:
                    _set(ctl, (0, 0x1F, 2))
            elif ctl.type == "usb" and ctl.model == "ich9-uhci1" and ctl.address is None:
                for slot in (0x1D, 0x1A):  # where real ICH9 has its USB2 controllers
                    if not addrs.in_use((0, slot, 0)):
                        addrs.reserve((0, slot, 0), PCIE_DEVICE)
                        _set(ctl, (0, slot, 0), "on")
                        break
            elif (
                ctl.type == "pci"
                and ctl.model == "dmi-to-pci-bridge"
                and ctl.address is None
                and not addrs.in_use((0, 0x1E, 0))  # where real ICH9 has its DMI-to-PCI bridge
            ):
                addrs.reserve((0, 0x1E, 0), PCIE_DEVICE)
                _set(ctl, (0, 0x1E, 0))
        addrs.reserve((0, 0x1F, 0), PCIE_DEVICE)  # the ISA bridge (LPC)
        addrs.reserve((0, 0x1F, 3), PCIE_DEVICE)  # SMBus
        self.primary_video(addrs, 1, PCIE_DEVICE)
        if not addrs.in_use((0, 0x1B, 0)):  # ICH9's HD audio place
            sound = next(
                (s for s in self.dom.devices.sounds if s.model == "ich9" and _wanted(s.address)), None
            )
            if sound is not None:
                addrs.reserve((0, 0x1B, 0), PCIE_DEVICE)
                _set(sound, (0, 0x1B, 0))

    def primary_video(self, addrs: _AddressSet, slot: int, flags: int) -> None:
        d = self.dom.devices
        primary: Addressed
        if d.videos:
            video = d.videos[0]
            if video.model in ("none", "ramfb") or not _wanted(video.address):
                return
            primary, own = video, {"virtio": self.m.virtio, "bochs": self.m.pcie}.get(video.model, self.m.pci)
        elif d.graphics:  # the default video the command line gets is QEMU's first free slot: this one
            primary, own = _Placeholder(), self.m.pci
        else:
            return
        addrs.validate((0, slot, 0), flags, True)
        if addrs.in_use((0, slot, 0)):
            self.take_next(addrs, primary, own)
        else:
            addrs.reserve((0, slot, 0), flags)
            _set(primary, (0, slot, 0))

    def take_next(self, addrs: _AddressSet, dev: Addressed, flags: int, function: int = -1) -> Address:
        addr = addrs.reserve_next(flags, function)
        if not addrs.dry_run:
            _set(dev, addr)
        return addr

    def assign(self, addrs: _AddressSet) -> None:
        """Addresses for the devices that want one (qemuDomainAssignDevicePCISlots)."""
        m = self.m
        for ctl in self.pci_controllers():
            if ctl.model not in (None, "pci-root", "pcie-root") and _wanted(ctl.address):
                self.take_next(addrs, ctl, _controller_flags(ctl, m))
        devices = _devices(self.dom, m)
        early = [d for d in devices if d[0] in ("filesystem", "interface", "sound")]
        for _, dev, flags in early:
            if _wanted(dev.address):
                self.take_next(addrs, dev, flags)
        for ctl in self.controllers:
            flags = _controller_flags(ctl, m)
            if ctl.type == "pci" or not flags or (ctl.type == "ide" and ctl.index == 0):
                continue
            if _wanted(ctl.address):
                self.controller(addrs, ctl, flags)
        for kind, dev, flags in devices:
            if kind not in ("filesystem", "interface", "sound") and _wanted(dev.address):
                self.take_next(addrs, dev, flags)

    def controller(self, addrs: _AddressSet, ctl: ControllerConfig, flags: int) -> None:
        usb2 = _USB2_FUNCTIONS.get(ctl.model or "") if ctl.type == "usb" else None
        if usb2 is None:
            self.take_next(addrs, ctl, flags)
            return
        function, multi = usb2  # the companions of one USB2 bus share its slot
        sibling = next(
            (
                a
                for c in self.controllers
                if c.type == "usb" and c.index == ctl.index and c.model in _USB2_FUNCTIONS
                if (a := _address_of(c.address)) is not None
            ),
            None,
        )
        if sibling is not None:
            addr = addrs.reserve((sibling[0], sibling[1], function), flags)
        else:
            addr = addrs.reserve_next(flags, function)
        if not addrs.dry_run or sibling is not None:
            _set(ctl, addr, "on" if multi else None)

    def run(self) -> None:
        pci = self.pci_controllers()
        max_index = max((c.index for c in pci), default=0)
        nbuses = max_index + 1
        dry = self.address_set(nbuses, dry_run=True)
        self.chipset(dry)
        if dry.buses[0].model == "pci-root" and not all(b.full() for b in dry.buses):
            dry.reserve_next(self.m.pci)  # a slot kept for a pci-bridge, should pc's bus fill up
        self.assign(dry)
        if max_index <= 0 and len(dry.buses) > max_index + 1 and dry.buses[0].model == "pcie-root":
            dry.reserve_next(PCIE_DEVICE | AUTOASSIGN)  # one empty root port, for hot-plug
        have = {c.index for c in pci}
        index = 1
        while index < len(dry.buses):  # the buses added become controllers (which need slots too)
            model = dry.buses[index].model
            if index not in have:
                ctl = ControllerConfig(type="pci", index=index, model=model)
                _insert(self.dom.devices.controllers, ctl)
                _insert(self.controllers, ctl)
                dry.reserve_next(_controller_flags(ctl, self.m))
            index += 1
        real = self.address_set(len(dry.buses), dry_run=False)
        self.chipset(real)
        self.assign(real)
        self.multifunction()
        self.controller_defaults()

    def multifunction(self) -> None:
        """Function 0 of a slot whose other functions are in use says so (unless it says off)."""
        placed = [(dev, a) for _, dev, _ in self.everything() if (a := _address_of(dev.address)) is not None]
        shared = {a[:2] for _, a in placed if a[2] != 0}
        for dev, addr in placed:
            if addr[2] == 0 and addr[:2] in shared and dev.address is not None:
                dev.address.attrs.setdefault("multifunction", "on")

    def controller_defaults(self) -> None:
        for ctl in self.pci_controllers():
            model = ctl.model or ""
            if model in MODEL_NAMES:
                ctl.extra.setdefault("model.name", MODEL_NAMES[model])
            addr = _address_of(ctl.address) or (0, 0, 0)
            if model == "pci-bridge":
                ctl.extra.setdefault("target.chassisNr", str(ctl.index))
                if ctl.index <= addr[0]:
                    raise InvalidArgument(
                        f"PCI controller at index {ctl.index} ({ctl.index:#04x}) has bus='{addr[0]:#04x}', "
                        "but index must be larger than bus"
                    )
            elif model == "pcie-root-port":
                ctl.extra.setdefault("target.chassis", str(ctl.index))
                ctl.extra.setdefault("target.port", f"{(addr[1] << 3) + addr[2]:#x}")
            elif model == "pcie-switch-downstream-port":
                ctl.extra.setdefault("target.chassis", str(ctl.index))
                ctl.extra.setdefault("target.port", f"{addr[1]:#x}")


def hotplug_address(dom: Domain) -> PCIAddress | None:
    """The address libvirt gives a conventional PCI device plugged into running pc ``dom``
    (``qemuDomainEnsurePCIAddress``): the first free slot of a hot-pluggable bus. None when some PCI
    device of ``dom`` has no address (a domain started before addresses were assigned: QEMU placed
    its devices, and chooses this one too)."""
    if machine_kind(dom) != "i440fx":
        return None
    assigner = _Assigner(dom, _Machine(q35=False, pcie=PCI_DEVICE | AUTOASSIGN))
    if any(flags and _wanted(dev.address) for _, dev, flags in assigner.everything()):
        return None
    nbuses = max((c.index for c in assigner.pci_controllers()), default=0) + 1
    addrs = assigner.address_set(nbuses, dry_run=False)
    assigner.chipset(addrs)
    try:
        bus, slot, function = addrs.next_addr(PCI_DEVICE | AUTOASSIGN | HOTPLUGGABLE)
    except InvalidArgument as err:
        raise InvalidArgument(f"no free hot-pluggable PCI slot for the device ({err})") from err
    placeholder = _Placeholder()
    _set(placeholder, (bus, slot, function))
    return placeholder.address


def machine_kind(dom: Domain) -> str | None:
    """ "q35", "i440fx", or None for a machine whose PCI layout is not assigned here."""
    machine = dom.os.machine or "pc"
    if dom.os.arch not in ("x86_64", "i686"):
        return None
    if machine == "q35" or machine.startswith("pc-q35-"):
        return "q35"
    if machine == "pc" or machine.startswith("pc-i440fx-"):
        return "i440fx"
    return None


def assign(dom: Domain) -> None:
    """Give every PCI device of ``dom`` that has no address the one libvirt 9.0 gives it, adding the
    PCI controllers needed; idempotent."""
    kind = machine_kind(dom)
    if kind is None:
        return
    q35 = kind == "q35"
    _Assigner(dom, _Machine(q35=q35, pcie=(PCIE_DEVICE if q35 else PCI_DEVICE) | AUTOASSIGN)).run()
