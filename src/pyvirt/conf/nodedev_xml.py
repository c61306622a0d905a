"""libvirt's node device XML (``virsh nodedev-dumpxml``) of a :class:`~pyvirt.qemu.node_devices.NodeDevice`,
element for element and line for line as libvirt 9.0 writes it (virNodeDeviceDefFormat), and
``nodedev-info``'s fields."""

from __future__ import annotations

from pyvirt.qemu.node_devices import (
    DrmCap,
    MdevCap,
    MdevType,
    NetCap,
    NodeDevice,
    PciAddress,
    PciCap,
    ScsiCap,
    ScsiGenericCap,
    ScsiHostCap,
    ScsiTargetCap,
    StorageCap,
    SystemCap,
    UsbDeviceCap,
    UsbInterfaceCap,
    VdpaCap,
)

_ESCAPES = str.maketrans({"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;"})
#: PCIe link speeds (the link registers' encoding) as libvirt writes them.
_LINK_SPEEDS = {1: "2.5", 2: "5", 3: "8", 4: "16", 5: "32", 6: "64"}


def _esc(text: str) -> str:
    return text.translate(_ESCAPES)


def _address(a: PciAddress) -> str:
    where = f"domain='0x{a.domain:04x}' bus='0x{a.bus:02x}' slot='0x{a.slot:02x}'"
    return f"<address {where} function='0x{a.function}'/>"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def add(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def opt(self, tag: str, value: str | None) -> None:
        if value is not None:
            self.add(f"<{tag}>{_esc(value)}</{tag}>")

    def open(self, text: str) -> None:
        self.add(text)
        self.depth += 1

    def close(self, text: str) -> None:
        self.depth -= 1
        self.add(text)


def device_xml(device: NodeDevice) -> str:
    """The device's XML, as ``virsh nodedev-dumpxml`` prints it."""
    out = _Lines()
    out.open("<device>")
    out.opt("name", device.name)
    out.opt("path", device.path)
    if device.devnode is not None:
        out.add(f"<devnode type='dev'>{_esc(device.devnode)}</devnode>")
    for link in device.devlinks:
        out.add(f"<devnode type='link'>{_esc(link)}</devnode>")
    out.opt("parent", device.parent)
    if device.driver is not None:
        out.open("<driver>")
        out.opt("name", device.driver)
        out.close("</driver>")
    out.open(f"<capability type='{device.cap_type}'>")
    _cap(out, device)
    out.close("</capability>")
    out.close("</device>")
    return "\n".join(out.lines) + "\n"


def _cap(out: _Lines, device: NodeDevice) -> None:
    cap = device.cap
    if isinstance(cap, SystemCap):
        _system(out, cap)
    elif isinstance(cap, PciCap):
        _pci(out, cap)
    elif isinstance(cap, UsbDeviceCap):
        out.add(f"<bus>{cap.bus}</bus>")
        out.add(f"<device>{cap.device}</device>")
        out.add(_named("product", cap.product, cap.product_name, " />"))
        out.add(_named("vendor", cap.vendor, cap.vendor_name, " />"))
    elif isinstance(cap, UsbInterfaceCap):
        for tag, value in (("number", cap.number), ("class", cap.klass), ("subclass", cap.subclass)):
            out.add(f"<{tag}>{value}</{tag}>")
        out.add(f"<protocol>{cap.protocol}</protocol>")
    elif isinstance(cap, NetCap):
        _net(out, cap)
    elif isinstance(cap, ScsiHostCap):
        _scsi_host(out, cap)
    elif isinstance(cap, ScsiTargetCap):
        out.opt("target", cap.target)
    elif isinstance(cap, ScsiCap):
        for tag, value in (("host", cap.host), ("bus", cap.bus), ("target", cap.target), ("lun", cap.lun)):
            out.add(f"<{tag}>{value}</{tag}>")
        out.opt("type", cap.type)
    elif isinstance(cap, StorageCap):
        _storage(out, cap)
    elif isinstance(cap, ScsiGenericCap):
        out.opt("char", cap.char)
    elif isinstance(cap, DrmCap):
        out.opt("type", cap.type)
    elif isinstance(cap, VdpaCap):
        out.opt("chardev", cap.chardev)
    elif isinstance(cap, MdevCap):
        out.add(f"<type id='{_esc(cap.type)}'/>")
        out.opt("uuid", cap.uuid)
        out.opt("parent_addr", cap.parent_addr)
        out.add(f"<iommuGroup number='{cap.iommu_group}'/>")


def _named(tag: str, ident: int, name: str | None, empty: str) -> str:
    head = f"<{tag} id='0x{ident:04x}'"
    return f"{head}>{_esc(name)}</{tag}>" if name is not None else head + empty


def _system(out: _Lines, cap: SystemCap) -> None:
    out.opt("product", cap.product)
    out.open("<hardware>")
    vendor, version, serial, uuid = cap.hardware
    out.opt("vendor", vendor)
    out.opt("version", version)
    out.opt("serial", serial)
    out.add(f"<uuid>{_esc(uuid)}</uuid>")
    out.close("</hardware>")
    out.open("<firmware>")
    vendor, version, date = cap.firmware
    out.opt("vendor", vendor)
    out.opt("version", version)
    out.opt("release_date", date)
    out.close("</firmware>")


def _mdev_types(out: _Lines, types: list[MdevType]) -> None:
    if not types:
        return
    out.open("<capability type='mdev_types'>")
    for kind in types:
        out.open(f"<type id='{_esc(kind.id)}'>")
        out.opt("name", kind.name)
        out.opt("deviceAPI", kind.device_api)
        out.add(f"<availableInstances>{kind.available}</availableInstances>")
        out.close("</type>")
    out.close("</capability>")


def _pci(out: _Lines, cap: PciCap) -> None:
    if cap.klass is not None and cap.klass >= 0:
        out.add(f"<class>0x{cap.klass:06x}</class>")
    a = cap.address
    for tag, value in (("domain", a.domain), ("bus", a.bus), ("slot", a.slot), ("function", a.function)):
        out.add(f"<{tag}>{value}</{tag}>")
    out.add(_named("product", cap.product, cap.product_name, "/>"))
    out.add(_named("vendor", cap.vendor, cap.vendor_name, "/>"))
    if cap.physical_function is not None:
        out.open("<capability type='phys_function'>")
        out.add(_address(cap.physical_function))
        out.close("</capability>")
    if cap.virtual_functions is not None:
        head = "<capability type='virt_functions'" + (
            f" maxCount='{cap.max_virtual_functions}'" if cap.max_virtual_functions else ""
        )
        if not cap.virtual_functions:
            out.add(head + "/>")
        else:
            out.open(head + ">")
            for vf in cap.virtual_functions:
                out.add(_address(vf))
            out.close("</capability>")
    if cap.header_type is not None:
        out.add(f"<capability type='{cap.header_type}'/>")
    _mdev_types(out, cap.mdev_types)
    if cap.iommu_group is not None and cap.iommu_devices:
        out.open(f"<iommuGroup number='{cap.iommu_group}'>")
        for member in cap.iommu_devices:
            out.add(_address(member))
        out.close("</iommuGroup>")
    if cap.numa_node >= 0:
        out.add(f"<numa node='{cap.numa_node}'/>")
    if cap.express is not None:
        if not cap.express:
            out.add("<pci-express/>")
        else:
            port, cap_speed, cap_width, sta_speed, sta_width = cap.express
            out.open("<pci-express>")
            out.add(_link("cap", port, cap_speed, cap_width))
            out.add(_link("sta", None, sta_speed, sta_width))
            out.close("</pci-express>")


def _link(validity: str, port: int | None, speed: int, width: int) -> str:
    text = f"<link validity='{validity}'"
    if port is not None:
        text += f" port='{port}'"
    if speed:
        text += f" speed='{_LINK_SPEEDS.get(speed, '(null)')}'"
    return text + f" width='{width}'/>"


def _net(out: _Lines, cap: NetCap) -> None:
    out.opt("interface", cap.interface)
    out.opt("address", cap.address)
    states = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
    state = cap.state if cap.state in states else None
    if cap.speed or state:
        link = "<link"
        if cap.speed:
            link += f" speed='{cap.speed}'"
        if state:
            link += f" state='{state}'"
        out.add(link + "/>")
    for feature in cap.features:
        out.add(f"<feature name='{feature}'/>")
    out.add(f"<capability type='{cap.subtype}'/>")


def _scsi_host(out: _Lines, cap: ScsiHostCap) -> None:
    out.add(f"<host>{cap.host}</host>")
    if cap.unique_id is not None and cap.unique_id != -1:
        out.add(f"<unique_id>{cap.unique_id}</unique_id>")
    if cap.fc_host is not None:
        out.open("<capability type='fc_host'>")
        for tag, value in zip(("wwnn", "wwpn", "fabric_wwn"), cap.fc_host, strict=True):
            out.opt(tag, value)
        out.close("</capability>")
    if cap.vports is not None:
        out.open("<capability type='vport_ops'>")
        out.add(f"<max_vports>{cap.vports[0]}</max_vports>")
        out.add(f"<vports>{cap.vports[1]}</vports>")
        out.close("</capability>")


def _storage(out: _Lines, cap: StorageCap) -> None:
    out.opt("block", cap.block)
    out.opt("bus", cap.bus)
    out.opt("drive_type", cap.drive_type)
    out.opt("model", cap.model)
    out.opt("vendor", cap.vendor)
    out.opt("serial", cap.serial)
    if cap.removable:
        out.open("<capability type='removable'>")
        out.add(f"<media_available>{1 if cap.media_available else 0}</media_available>")
        out.add(f"<media_size>{cap.media_size}</media_size>")
        out.opt("media_label", cap.media_label)
    else:
        out.add(f"<size>{cap.size}</size>")
    if cap.logical_block_size > 0:
        out.add(f"<logical_block_size>{cap.logical_block_size}</logical_block_size>")
    if cap.num_blocks > 0:
        out.add(f"<num_blocks>{cap.num_blocks}</num_blocks>")
    if cap.removable:
        out.close("</capability>")


def device_info(device: NodeDevice) -> dict[str, object]:
    """``nodedev-info``'s fields: every device the host has is active; ``computer`` alone is persistent
    and autostarted (libvirt's own answer for it)."""
    root = device.name == "computer"
    return {
        "name": device.name,
        "parent": device.parent or "",
        "active": True,
        "persistent": root,
        "autostart": root,
    }
