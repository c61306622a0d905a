"""The host's node devices as libvirt 9.0's udev backend finds them (node_device_udev.c): PCI devices,
USB devices and interfaces, network interfaces, disks, SCSI hosts, targets and devices, SCSI generic
devices and mediated devices, each named as libvirt names it (``pci_0000_00_1f_2``, ``net_eth0_MAC``,
``block_sda_SERIAL``), with its parent, driver and the capability data of ``virsh nodedev-dumpxml``.

A device is what sysfs shows below ``sys`` plus, where udevd runs, its udev database record
(``/run/udev/data``: ``ID_TYPE``, ``ID_SERIAL``, ``ID_BUS``, the ``/dev`` links), read the way libudev
reads them; a device libvirt would drop (a loop disk udev gave no type, a partition) is dropped here too.
Vendor and product names of PCI devices come from the PCI ID database (``pci.ids``, as libpciaccess
reads it); a host without one lists ids only, as libvirt does. The root is ``computer`` (the DMI data).
The XML is written by :mod:`pyvirt.conf.nodedev_xml`.
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pyvirt.qemu.host_devices import link_name

PCI_IDS = (Path("/usr/share/misc/pci.ids"), Path("/usr/share/hwdata/pci.ids"))

#: virsh nodedev-list --cap names (libvirt 9.0's virNodeDevCapType), in its order.
CAP_NAMES = (
    "system",
    "pci",
    "usb_device",
    "usb",
    "net",
    "scsi_host",
    "scsi_target",
    "scsi",
    "storage",
    "fc_host",
    "vports",
    "scsi_generic",
    "drm",
    "mdev_types",
    "mdev",
    "ccw",
    "css",
    "vdpa",
    "ap_card",
    "ap_queue",
    "ap_matrix",
    "vpd",
)


@dataclass(frozen=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress | None:
        """``0000:00:1f.2`` (sysfs' name of a PCI device)."""
        try:
            dom, bus, rest = text.split(":")
            slot, fn = rest.split(".")
            return cls(int(dom, 16), int(bus, 16), int(slot, 16), int(fn, 16))
        except ValueError:
            return None


@dataclass(frozen=True)
class MdevType:
    id: str
    name: str | None
    device_api: str
    available: int


@dataclass
class PciCap:
    klass: int | None
    address: PciAddress
    product: int
    vendor: int
    product_name: str | None = None
    vendor_name: str | None = None
    physical_function: PciAddress | None = None
    virtual_functions: list[PciAddress] | None = None  # None: not SR-IOV capable
    max_virtual_functions: int = 0
    header_type: str | None = None  # "pci-bridge", "cardbus-bridge"; None: an endpoint (or unknown)
    mdev_types: list[MdevType] = field(default_factory=list)
    iommu_group: int | None = None
    iommu_devices: list[PciAddress] = field(default_factory=list)
    numa_node: int = -1
    #: None: not PCI Express (or unprivileged); (): no link; else (cap port, cap speed, cap width,
    #: status speed, status width)
    express: tuple[int, ...] | None = None


@dataclass
class UsbDeviceCap:
    bus: int
    device: int
    product: int
    vendor: int
    product_name: str | None
    vendor_name: str | None


@dataclass
class UsbInterfaceCap:
    number: int
    klass: int
    subclass: int
    protocol: int


@dataclass
class NetCap:
    interface: str
    address: str | None
    state: str | None  # the operstate, None: unknown to libvirt's list
    speed: int | None
    features: list[str]
    subtype: str  # "80203" or "80211"


@dataclass
class StorageCap:
    block: str
    bus: str | None
    drive_type: str
    model: str | None
    vendor: str | None
    serial: str | None
    size: int = 0
    logical_block_size: int = 0
    num_blocks: int = 0
    removable: bool = False
    media_available: bool = False
    media_size: int = 0
    media_label: str | None = None


@dataclass
class ScsiHostCap:
    host: int
    unique_id: int | None
    fc_host: tuple[str, str, str] | None = None  # wwnn, wwpn, fabric_wwn
    vports: tuple[int, int] | None = None  # max_vports, vports


@dataclass
class ScsiTargetCap:
    target: str


@dataclass
class ScsiCap:
    host: int
    bus: int
    target: int
    lun: int
    type: str | None


@dataclass
class ScsiGenericCap:
    char: str


@dataclass
class DrmCap:
    type: str  # primary, control, render


@dataclass
class VdpaCap:
    chardev: str | None


@dataclass
class MdevCap:
    type: str
    uuid: str
    parent_addr: str  # the parent device's sysfs name (0000:00:02.0)
    iommu_group: int


@dataclass
class SystemCap:
    product: str | None
    hardware: tuple[str | None, str | None, str | None, str]  # vendor, version, serial, uuid
    firmware: tuple[str | None, str | None, str | None]  # vendor, version, release date


Cap = (
    PciCap
    | UsbDeviceCap
    | UsbInterfaceCap
    | NetCap
    | StorageCap
    | ScsiHostCap
    | ScsiTargetCap
    | ScsiCap
    | ScsiGenericCap
    | DrmCap
    | MdevCap
    | VdpaCap
    | SystemCap
)

_CAP_TYPES: dict[type, str] = {
    SystemCap: "system",
    PciCap: "pci",
    UsbDeviceCap: "usb_device",
    UsbInterfaceCap: "usb",
    NetCap: "net",
    ScsiHostCap: "scsi_host",
    ScsiTargetCap: "scsi_target",
    ScsiCap: "scsi",
    StorageCap: "storage",
    ScsiGenericCap: "scsi_generic",
    DrmCap: "drm",
    VdpaCap: "vdpa",
    MdevCap: "mdev",
}


@dataclass
class NodeDevice:
    name: str
    path: str | None  # the sysfs path (None: computer)
    parent: str | None
    driver: str | None
    cap: Cap
    devnode: str | None = None
    devlinks: list[str] = field(default_factory=list)

    @property
    def cap_type(self) -> str:
        return _CAP_TYPES[type(self.cap)]

    def cap_names(self) -> set[str]:
        """The capabilities ``nodedev-list --cap`` matches: its own and the nested ones libvirt counts."""
        names = {self.cap_type}
        cap = self.cap
        if isinstance(cap, PciCap) and cap.mdev_types:
            names.add("mdev_types")
        if isinstance(cap, ScsiHostCap):
            if cap.fc_host is not None:
                names.add("fc_host")
            if cap.vports is not None:
                names.add("vports")
        return names


def device_name(subsystem: str, sysname: str, suffix: str | None = None) -> str:
    """libvirt's name of a udev device: ``SUBSYSTEM_SYSNAME[_SUFFIX]``, every other character than a
    letter or digit made ``_``."""
    text = f"{subsystem}_{sysname}" + (f"_{suffix}" if suffix is not None else "")
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in text)


@cache
def _pci_ids(path: Path) -> dict[int, tuple[str, dict[int, str]]]:
    """vendor id → (name, device id → name) of a ``pci.ids`` file."""
    table: dict[int, tuple[str, dict[int, str]]] = {}
    devices: dict[int, str] | None = None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return table
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("C "):  # the class list follows the vendors
            break
        try:
            if not line.startswith("\t"):
                devices = {}
                table[int(line[:4], 16)] = (line[4:].strip(), devices)
            elif not line.startswith("\t\t") and devices is not None:
                devices[int(line[1:5], 16)] = line[5:].strip()
        except ValueError:
            continue
    return table


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _uint32(text: str | None) -> int | None:
    """virStrToLong_ui's reading: a negative value wraps (``-1`` is 4294967295)."""
    value = _int(text)
    return None if value is None else value & 0xFFFFFFFF


class NodeDevices:
    """The node devices below ``sys``, ``dev`` and ``udev_data`` (a test's tree in unit tests)."""

    def __init__(
        self,
        sys: Path = Path("/sys"),
        dev: Path = Path("/dev"),
        udev_data: Path = Path("/run/udev/data"),
        pci_ids: Path | None = None,
        *,
        ethtool: bool = True,
    ) -> None:
        self.sys = sys
        self.dev = dev
        self.udev_data = udev_data
        self.pci_ids = pci_ids if pci_ids is not None else next((p for p in PCI_IDS if p.is_file()), None)
        self.ethtool = ethtool

    # What sysfs and udev say

    @staticmethod
    def _read(path: Path) -> str | None:
        """A sysfs attribute without its control characters; None when absent or empty (libvirt's
        udevGetStringSysfsAttr)."""
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None
        text = "".join(c for c in text if c >= " " or c == "\t").strip()
        return text or None

    def _properties(self, syspath: Path, subsystem: str) -> tuple[dict[str, str], list[str]]:
        """The udev properties of the device at ``syspath`` (its uevent, then its udev database
        record) and its ``/dev`` links."""
        props: dict[str, str] = {}
        try:
            uevent = (syspath / "uevent").read_text(errors="replace")
        except OSError:
            uevent = ""
        for line in uevent.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props[key] = value
        if "MAJOR" in props and "MINOR" in props:
            ident = f"{'b' if subsystem == 'block' else 'c'}{props['MAJOR']}:{props['MINOR']}"
        elif subsystem == "net" and (index := self._read(syspath / "ifindex")):
            ident = f"n{index}"
        else:
            ident = f"+{subsystem}:{syspath.name}"
        links = []
        try:
            record = (self.udev_data / ident).read_text(errors="replace")
        except OSError:
            record = ""
        for line in record.splitlines():
            if line.startswith("E:"):
                key, sep, value = line[2:].partition("=")
                if sep:
                    props[key] = value
            elif line.startswith("S:"):
                links.append(f"/dev/{line[2:]}")
        return props, sorted(links)

    def _syspaths(self) -> list[Path]:
        """Every device of the subsystems with node devices, by its real sysfs path."""
        found: dict[str, Path] = {}
        dirs = [self.sys / "bus" / bus / "devices" for bus in ("pci", "usb", "scsi", "mdev", "vdpa")]
        dirs += [self.sys / "class" / cls for cls in ("net", "block", "scsi_generic", "drm")]
        for base in dirs:
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                real = os.path.realpath(base / name)
                found.setdefault(real, Path(real))
        return [found[key] for key in sorted(found)]

    # The devices

    def devices(self) -> list[NodeDevice]:
        """``computer`` and every node device of the host, each with its parent."""
        made: list[NodeDevice] = []
        for syspath in self._syspaths():
            device = self._device(syspath)
            if device is not None:
                made.append(device)
        by_path = {d.path: d.name for d in made}
        root = str(self.sys.resolve()) if self.sys.exists() else str(self.sys)
        for device in made:
            device.parent = "computer"
            up = os.path.dirname(device.path or "")
            while up.startswith(root) and up != root:
                if up in by_path:
                    device.parent = by_path[up]
                    break
                up = os.path.dirname(up)
        return [self.computer(), *made]

    def find(self, name: str) -> NodeDevice | None:
        return next((d for d in self.devices() if d.name == name), None)

    def computer(self) -> NodeDevice:
        """The host itself: its DMI data (libvirt's ``system`` capability)."""
        dmi = self.sys / "class/dmi/id"
        if not dmi.is_dir():
            dmi = self.sys / "devices/virtual/dmi/id"

        def attr(name: str) -> str | None:
            return self._read(dmi / name)

        uuid = attr("product_uuid") or "00000000-0000-0000-0000-000000000000"
        return NodeDevice(
            "computer",
            None,
            None,
            None,
            SystemCap(
                attr("product_name"),
                (attr("sys_vendor"), attr("product_version"), attr("product_serial"), uuid.lower()),
                (attr("bios_vendor"), attr("bios_version"), attr("bios_date")),
            ),
        )

    def _device(self, syspath: Path) -> NodeDevice | None:
        subsystem = link_name(syspath / "subsystem")
        if subsystem is None:
            return None
        props, links = self._properties(syspath, subsystem)
        devtype = props.get("DEVTYPE")
        node = props.get("DEVNAME")
        devnode = None if node is None else (node if node.startswith("/") else f"/dev/{node}")
        made: tuple[str, Cap] | None
        if devtype == "usb_device":
            made = self._usb_device(syspath, subsystem, props)
        elif devtype == "usb_interface":
            made = self._usb_interface(syspath, subsystem)
        elif devtype == "scsi_host":
            made = self._scsi_host(syspath, subsystem)
        elif devtype == "scsi_target":
            made = device_name(subsystem, syspath.name), ScsiTargetCap(syspath.name)
        elif devtype == "scsi_device":
            made = self._scsi(syspath, subsystem)
        elif devtype == "disk":
            made = self._storage(syspath, subsystem, props, devnode)
        elif devtype == "wlan" or (devtype is None and "INTERFACE" in props):
            made = self._net(syspath, subsystem, props, devtype)
        elif devtype == "drm_minor":
            minor = _int(props.get("MINOR"))
            kind = None if minor is None else {0: "primary", 1: "control", 2: "render"}.get(minor >> 6)
            made = (device_name(subsystem, syspath.name), DrmCap(kind)) if kind else None
        elif devtype is None and subsystem == "vdpa":
            made = self._vdpa(syspath, subsystem)
        elif devtype is None and subsystem == "scsi_generic":
            made = (device_name(subsystem, syspath.name), ScsiGenericCap(devnode)) if devnode else None
        elif devtype is None and subsystem == "mdev":
            made = self._mdev(syspath, subsystem)
        elif devtype is None and "PCI_CLASS" in props:
            made = self._pci(syspath, subsystem, props)
        else:
            made = None
        if made is None:
            return None
        return NodeDevice(made[0], str(syspath), None, props.get("DRIVER"), made[1], devnode, links)

    def _pci(self, syspath: Path, subsystem: str, props: dict[str, str]) -> tuple[str, Cap] | None:
        address = PciAddress.parse(syspath.name)
        vendor = _int(self._read(syspath / "vendor"), 16)
        product = _int(self._read(syspath / "device"), 16)
        if address is None or vendor is None or product is None:
            return None
        cap = PciCap(_int(props.get("PCI_CLASS"), 16), address, product, vendor)
        if self.pci_ids is not None:
            vendor_name, devices = _pci_ids(self.pci_ids).get(vendor, (None, {}))
            cap.vendor_name, cap.product_name = vendor_name, devices.get(product)
        numa = _int(self._read(syspath / "numa_node"))
        cap.numa_node = numa if numa is not None else -1
        physfn = link_name(syspath / "physfn")
        if physfn is not None:
            cap.physical_function = PciAddress.parse(physfn)
        total = _int(self._read(syspath / "sriov_totalvfs"))
        if total is not None:
            cap.max_virtual_functions = total
            vfs = [n for n in os.listdir(syspath) if n.startswith("virtfn") and n[6:].isdigit()]
            vfs.sort(key=lambda n: int(n[6:]))
            cap.virtual_functions = [a for n in vfs if (a := PciAddress.parse(link_name(syspath / n) or ""))]
        cap.mdev_types = self._mdev_types(syspath / "mdev_supported_types")
        group = link_name(syspath / "iommu_group")
        if group is not None and group.isdigit():
            cap.iommu_group = int(group)
            try:
                members = os.listdir(syspath / "iommu_group/devices")
            except OSError:
                members = []
            cap.iommu_devices = [a for n in members if (a := PciAddress.parse(n))]
        self._pci_config(syspath, cap)
        return device_name(subsystem, syspath.name), cap

    @staticmethod
    def _pci_config(syspath: Path, cap: PciCap) -> None:
        """The header type and PCI Express link of the config space; only root reads past its first
        64 bytes (libvirt reads neither unprivileged). Without a capability list, a config space
        larger than legacy PCI's 256 bytes is PCI Express (libvirt's guess)."""
        try:
            config = (syspath / "config").read_bytes()
        except OSError:
            return
        if len(config) < 256:
            return
        cap.header_type = {1: "pci-bridge", 2: "cardbus-bridge"}.get(config[0x0E] & 0x7F)
        if not config[0x06] & 0x10:  # no capability list
            cap.express = () if len(config) != 256 else None
            return
        pos, seen = config[0x34] & 0xFC, set()
        while pos and pos not in seen and pos + 0x14 <= len(config):
            seen.add(pos)
            if config[pos] == 0x10:  # PCI Express
                flags = struct.unpack_from("<H", config, pos + 2)[0]
                if (flags >> 4) & 0xF in (0x9, 0xA):  # root complex integrated endpoint, event collector
                    cap.express = ()
                    return
                lnkcap = struct.unpack_from("<I", config, pos + 0x0C)[0]
                lnksta = struct.unpack_from("<H", config, pos + 0x12)[0]
                link = (lnkcap >> 24, lnkcap & 0xF, (lnkcap >> 4) & 0x3F, lnksta & 0xF, (lnksta >> 4) & 0x3F)
                cap.express = link
                return
            pos = config[pos + 1] & 0xFC

    def _mdev_types(self, base: Path) -> list[MdevType]:
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return []
        types = []
        for name in names:
            api = self._read(base / name / "device_api")
            available = _int(self._read(base / name / "available_instances"))
            if api is not None and available is not None:
                types.append(MdevType(name, self._read(base / name / "name"), api, available))
        return types

    def _usb_device(self, syspath: Path, subsystem: str, props: dict[str, str]) -> tuple[str, Cap] | None:
        bus, device = _int(props.get("BUSNUM")), _int(props.get("DEVNUM"))
        vendor = _int(props.get("ID_VENDOR_ID") or self._read(syspath / "idVendor"), 16)
        product = _int(props.get("ID_MODEL_ID") or self._read(syspath / "idProduct"), 16)
        if bus is None or device is None or vendor is None or product is None:
            return None
        cap = UsbDeviceCap(
            bus,
            device,
            product,
            vendor,
            props.get("ID_MODEL_FROM_DATABASE") or self._read(syspath / "product"),
            props.get("ID_VENDOR_FROM_DATABASE") or self._read(syspath / "manufacturer"),
        )
        return device_name(subsystem, syspath.name), cap

    def _usb_interface(self, syspath: Path, subsystem: str) -> tuple[str, Cap] | None:
        values = [
            _int(self._read(syspath / a), 16)
            for a in ("bInterfaceNumber", "bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol")
        ]
        if None in values:
            return None
        number, klass, subclass, protocol = (v or 0 for v in values)
        return device_name(subsystem, syspath.name), UsbInterfaceCap(number, klass, subclass, protocol)

    def _net(
        self, syspath: Path, subsystem: str, props: dict[str, str], devtype: str | None
    ) -> tuple[str, Cap] | None:
        ifname = props.get("INTERFACE")
        if ifname is None:
            return None
        address = self._read(syspath / "address")
        state = self._read(syspath / "operstate")
        speed = None
        if state == "up" and self._read(syspath / "type") == "1":
            speed = _uint32(self._read(syspath / "speed")) or None
        features = _ethtool_features(ifname) if self.ethtool else []
        if self._rdma(syspath):
            features.insert(len([f for f in features if f != "txudptnl"]), "rdma")
        cap = NetCap(ifname, address, state, speed, features, "80211" if devtype == "wlan" else "80203")
        return device_name(subsystem, syspath.name, address), cap

    def _rdma(self, syspath: Path) -> bool:
        """An RDMA device shares the interface's PCI device (the same ``resource`` table: libvirt's
        test)."""
        resource = self._read(syspath / "device/resource")
        ib = self.sys / "class/infiniband"
        if resource is None or not ib.is_dir():
            return False
        return any(self._read(ib / name / "device/resource") == resource for name in sorted(os.listdir(ib)))

    def _scsi_host(self, syspath: Path, subsystem: str) -> tuple[str, Cap] | None:
        host = _int(syspath.name.removeprefix("host")) if syspath.name.startswith("host") else None
        if host is None:
            return None
        unique = _int(self._read(self.sys / "class/scsi_host" / syspath.name / "unique_id"))
        cap = ScsiHostCap(host, unique)
        fc = self.sys / "class/fc_host" / syspath.name
        if fc.is_dir():
            names = [
                (self._read(fc / a) or "").removeprefix("0x")
                for a in ("node_name", "port_name", "fabric_name")
            ]
            cap.fc_host = (names[0], names[1], names[2])
            if (fc / "vport_create").exists():
                cap.vports = (
                    _int(self._read(fc / "max_npiv_vports")) or 0,
                    _int(self._read(fc / "npiv_vports_inuse")) or 0,
                )
        return device_name(subsystem, syspath.name), cap

    def _scsi(self, syspath: Path, subsystem: str) -> tuple[str, Cap] | None:
        try:
            host, bus, target, lun = (int(p) for p in syspath.name.split(":"))
        except ValueError:
            return None
        kind = _int(self._read(syspath / "type"), 0)
        names = {0: "disk", 1: "tape", 3: "processor", 4: "worm", 5: "cdrom", 6: "scanner", 7: "mod"}
        names |= {8: "changer", 0xD: "enclosure", 12: "raid"}
        return device_name(subsystem, syspath.name), ScsiCap(
            host, bus, target, lun, names.get(kind or 0) if kind is not None else None
        )

    def _storage(
        self, syspath: Path, subsystem: str, props: dict[str, str], devnode: str | None
    ) -> tuple[str, Cap] | None:
        if devnode is None:
            return None
        vendor = self._read(syspath / "device/vendor")
        model = self._read(syspath / "device/model")
        serial = props.get("ID_SERIAL")
        drive = props.get("ID_TYPE")
        if drive is None or drive == "generic":
            if props.get("ID_DRIVE_FLOPPY") == "1":
                drive = "floppy"
            elif props.get("ID_CDROM") == "1":
                drive = "cd"
            elif props.get("ID_DRIVE_FLASH_SD") == "1":
                drive = "sd"
            elif devnode.startswith("/dev/vd"):
                drive = "disk"
            else:
                return None
        cap = StorageCap(devnode, props.get("ID_BUS"), drive, model, vendor, serial)
        blocks = _int(self._read(syspath / "size"), 0) or 0
        block_size = _int(self._read(syspath / "queue/logical_block_size"), 0) or 0
        if drive in ("disk", "sd"):
            cap.num_blocks, cap.logical_block_size, cap.size = blocks, block_size, blocks * block_size
        elif drive in ("cd", "floppy"):
            if drive == "cd":
                cap.drive_type = "cdrom"
                media = props.get("ID_CDROM_MEDIA") == "1"
            elif "ID_CDROM_MEDIA" in props:
                media = props.get("DKD_MEDIA_AVAILABLE") == "1"
            else:
                media = "ID_FS_LABEL" in props
            cap.removable = self._read(syspath / "removable") == "1"
            if media:
                cap.media_available, cap.media_label = True, props.get("ID_FS_LABEL")
                cap.num_blocks, cap.logical_block_size = blocks, block_size
                cap.media_size = blocks * block_size
        else:
            return None
        return device_name(subsystem, syspath.name, serial), cap

    def _vdpa(self, syspath: Path, subsystem: str) -> tuple[str, Cap] | None:
        """A vDPA device and its ``/dev/vhost-vdpa-N`` (its ``vhost-vdpa-N`` child), dropped as libvirt
        drops it when that node is missing."""
        try:
            names = os.listdir(syspath)
        except OSError:
            return None
        node = next((n for n in sorted(names) if n.startswith("vhost-vdpa")), None)
        if node is not None and not (self.dev / node).exists():
            return None
        return device_name(subsystem, syspath.name), VdpaCap(None if node is None else f"/dev/{node}")

    def _mdev(self, syspath: Path, subsystem: str) -> tuple[str, Cap] | None:
        kind = link_name(syspath / "mdev_type")
        group = link_name(syspath / "iommu_group")
        if kind is None or group is None or not group.isdigit():
            return None
        parent = syspath.parent.name
        return device_name(subsystem, syspath.name, parent), MdevCap(kind, syspath.name, parent, int(group))


# ethtool's feature queries (libvirt's virNetDevGetFeatures, the ones that need no netlink)
_SIOCETHTOOL = 0x8946
_ETHTOOL_VALUES = (("rx", 0x14), ("tx", 0x16), ("sg", 0x18), ("tso", 0x1E), ("gso", 0x23), ("gro", 0x2B))
_ETHTOOL_GFLAGS = 0x25
_ETHTOOL_GFEATURES = 0x3A
_ETHTOOL_FLAGS = (
    ("lro", 1 << 15),
    ("rxvlan", 1 << 8),
    ("txvlan", 1 << 7),
    ("ntuple", 1 << 27),
    ("rxhash", 1 << 28),
)


def _ethtool_features(ifname: str) -> list[str]:
    """The offload features ethtool reports on, in libvirt's order (``rdma`` aside); none for an
    interface this network namespace does not have."""
    found: list[str] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return found
    with sock:

        def query(payload: bytes) -> bytes | None:
            buf = array.array("B", payload)
            addr, _ = buf.buffer_info()
            ifreq = struct.pack("16sP", ifname.encode()[:15], addr)
            try:
                fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
            except OSError:
                return None
            return buf.tobytes()

        def value(cmd: int) -> int:
            reply = query(struct.pack("<II", cmd, 0))
            return 0 if reply is None else int(struct.unpack_from("<I", reply, 4)[0])

        found += [name for name, cmd in _ETHTOOL_VALUES if value(cmd)]
        flags = value(_ETHTOOL_GFLAGS)
        found += [name for name, bit in _ETHTOOL_FLAGS if flags & bit]
        # ETHTOOL_GFEATURES: two blocks of (available, requested, active, never_changed); libvirt reads
        # "tx-udp_tnl-segmentation" as bit 25 of the first block's active features
        reply = query(struct.pack("<II", _ETHTOOL_GFEATURES, 2) + bytes(32))
        if reply is not None and struct.unpack_from("<I", reply, 16)[0] & (1 << 25):
            found.append("txudptnl")
    return found
