"""attach-disk, detach-disk, attach-device, detach-device, detach-device-alias, update-device and
change-media, with virsh's options and messages.

As in virsh, the disk verbs are built on the device actions: attach-disk writes a ``<disk>`` element
from its options, detach-disk and change-media take the disk's element from the domain's XML (found
by target or source path), change it, and hand it to detach-device or update-device.
"""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.hotplug import _scope
from pyvirt.cli.output import emit, message
from pyvirt.conf.xmlutil import XNode, editable, parse_document, serialize, x
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Domain

SOURCE_TYPES = ("file", "block", "network")


def _connect(opts: GlobalOptions, a: Parsed) -> tuple[Domain, bool, bool]:
    dom = _domain(opts.connect(), a.text("domain"))
    live, config = _scope(a, dom.info(cached=True)["id"] is not None)
    return dom, live, config


# ---------------------------------------------------------------------------------------- attach-disk


def _address(text: str, multifunction: bool) -> dict[str, str]:
    """virsh's --address: pci:D.B.S.F, scsi|sata|ide:C.B.U, usb:B.P (numbers in hex for pci)."""
    kind, _, rest = text.partition(":")
    parts = rest.split(".")
    try:
        if kind == "pci" and len(parts) == 4:
            domain, bus, slot, function = (int(p, 16) for p in parts)
            out = {
                "type": "pci",
                "domain": f"{domain:#06x}",
                "bus": f"{bus:#04x}",
                "slot": f"{slot:#04x}",
                "function": f"{function:#x}",
            }
            if multifunction:
                out["multifunction"] = "on"
            return out
        if kind in ("scsi", "sata", "ide") and len(parts) == 3:
            controller, bus, unit = (int(p) for p in parts)
            return {"type": "drive", "controller": str(controller), "bus": str(bus), "unit": str(unit)}
        if kind == "usb" and len(parts) == 2:
            usb_bus, port = (int(p) for p in parts)
            return {"type": "usb", "bus": str(usb_bus), "port": str(port)}
    except ValueError:
        pass
    raise InvalidArgument(
        f"Invalid address '{text}' (pci:D.B.S.F, scsi:C.B.U, sata:C.B.U, ide:C.B.U or usb:B.P)"
    )


def disk_xml(a: Parsed) -> str:
    """The ``<disk>`` element virsh's attach-disk makes from its options."""
    import os

    if a.get("rawio"):
        raise InvalidArgument("--rawio: rawio needs a device='lun' disk, which pyvirt does not support")
    source = a.text("source")
    protocol = a.opt("source_protocol")
    stype = a.opt("sourcetype") or ("network" if protocol else None)
    if stype is None:
        import stat

        try:
            stype = "block" if stat.S_ISBLK(os.stat(source).st_mode) else "file"
        except OSError:
            stype = "file"
    if stype not in SOURCE_TYPES:
        raise InvalidArgument(f"Unknown source type: '{stype}' (file, block or network)")
    if stype == "network" and not protocol:
        raise InvalidArgument("--source-protocol is required for --sourcetype network")
    mode = a.opt("mode")
    if mode not in (None, "readonly", "shareable"):
        raise InvalidArgument(f"No support for {mode} in command 'attach-disk'")
    disk = x("disk", {"type": stype, "device": a.opt("type") or "disk"})
    driver = {
        key: value
        for key, value in (
            ("name", a.opt("driver")),
            ("type", a.opt("subdriver")),
            ("cache", a.opt("cache")),
            ("io", a.opt("io")),
            ("iothread", a.opt("iothread")),
        )
        if value
    }
    if driver:
        disk.add(x("driver", driver))
    if stype == "network":
        src = x("source", {"protocol": str(protocol), "name": source})
        host: dict[str, str] = {}
        if a.opt("source_host_name"):
            name, _, port = str(a.opt("source_host_name")).partition(":")
            host["name"] = name
            if port:
                host["port"] = port
        for key in ("transport", "socket"):
            if a.opt(f"source_host_{key}"):
                host[key] = str(a.opt(f"source_host_{key}"))
        disk.add(src.add(x("host", host)))
    else:
        disk.add(x("source", {"dev" if stype == "block" else "file": source}))
    target = {"dev": a.text("target")}
    if a.opt("targetbus"):
        target["bus"] = str(a.opt("targetbus"))
    disk.add(x("target", target))
    if mode:
        disk.add(x(mode))
    if a.opt("serial"):
        disk.add(x("serial", text=a.opt("serial")))
    if a.opt("wwn"):
        disk.add(x("wwn", text=a.opt("wwn")))
    if a.opt("alias"):
        disk.add(x("alias", {"name": str(a.opt("alias"))}))
    if a.opt("address"):
        disk.add(x("address", _address(str(a.opt("address")), a.flag("multifunction"))))
    elif a.flag("multifunction"):
        raise InvalidArgument("--multifunction needs a PCI --address")
    return serialize(disk)


def attach_disk(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    xml = disk_xml(a)
    if a.flag("print_xml"):
        emit(xml)
        return 0
    _guard("Failed to attach disk", lambda: dom.attach_device(xml, live=live, config=config))
    message("Disk attached successfully")
    return 0


# ---------------------------------------------------------------------------------------- by path


def _find_disk(dom: Domain, path: str, inactive: bool) -> tuple[XNode, str]:
    """The ``<disk>`` element whose target or source is ``path``, and its device type."""
    devices = editable(parse_document(dom.xml(inactive=inactive))).find("devices")
    for disk in devices.findall("disk") if devices is not None else []:
        target = disk.find("target")
        source = disk.find("source")
        names = {target.get("dev") if target is not None else None}
        if source is not None:
            names.update((source.get("file"), source.get("dev"), source.get("volume")))
        if path in names:
            for runtime in disk.findall("alias"):
                if not (runtime.get("name") or "").startswith("ua-"):
                    disk.children.remove(runtime)
            return disk, disk.get("device") or "disk"
    raise InvalidArgument(f"No disk found whose source path or target is {path}")


def detach_disk(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    disk, _device = _find_disk(dom, a.text("target"), config and not live)
    if a.flag("print_xml"):
        emit(serialize(disk))
        return 0
    for chain in disk.findall("backingStore"):  # the running chain: no part of a device's definition
        disk.children.remove(chain)
    xml = serialize(disk)
    _guard("Failed to detach disk", lambda: dom.detach_device(xml, live=live, config=config))
    message("Disk detached successfully")
    return 0


def change_media(opts: GlobalOptions, a: Parsed) -> int:
    chosen = [name for name in ("eject", "insert", "update") if a.flag(name)]
    if len(chosen) > 1:
        raise InvalidArgument(f"Options --{chosen[0]} and --{chosen[1]} are mutually exclusive")
    action = chosen[0] if chosen else "update"
    source = a.opt("source")
    if action == "insert" and not source:
        raise InvalidArgument("No source is specified for inserting media")
    if action == "eject" and source:
        raise InvalidArgument("--source cannot be given with --eject")
    dom, live, config = _connect(opts, a)
    path = a.text("path")
    disk, device = _find_disk(dom, path, config and not live)
    target = disk.find("target")
    name = target.get("dev") if target is not None else path
    if device not in ("cdrom", "floppy"):
        raise InvalidArgument(f"The disk device '{name}' is not removable")
    old = disk.find("source")
    if action == "eject" and old is None:
        raise InvalidArgument(f"The disk device '{name}' doesn't have media")
    if action == "insert" and old is not None:
        raise InvalidArgument(f"The disk device '{name}' already has media")
    position = disk.children.index(old) if old is not None else _source_position(disk)
    if old is not None:
        disk.children.remove(old)
    if source:
        block = a.flag("block")
        disk.set("type", "block" if block else "file")
        disk.children.insert(position, x("source", {"dev" if block else "file": source}))
    xml = serialize(disk)
    if a.flag("print_xml"):
        emit(xml)
        return 0
    _guard(
        f"Failed to complete action {action} on media",
        lambda: dom.update_device(xml, live=live, config=config, force=a.flag("force")),
    )
    done = {"eject": "ejected", "insert": "inserted", "update": "updated"}[action]
    message(f"Successfully {done} media.")
    return 0


def _source_position(disk: XNode) -> int:
    tags = [child.tag for child in disk.children]
    return tags.index("driver") + 1 if "driver" in tags else 0


# ---------------------------------------------------------------------------------------- devices


def attach_device(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    path = a.text("file")
    xml = _read_file(path)
    _guard(f"Failed to attach device from {path}", lambda: dom.attach_device(xml, live=live, config=config))
    message("Device attached successfully")
    return 0


def detach_device(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    path = a.text("file")
    xml = _read_file(path)
    _guard(f"Failed to detach device from {path}", lambda: dom.detach_device(xml, live=live, config=config))
    message("Device detached successfully")
    return 0


def update_device(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    path = a.text("file")
    xml = _read_file(path)
    _guard(
        f"Failed to update device from {path}",
        lambda: dom.update_device(xml, live=live, config=config, force=a.flag("force")),
    )
    message("Device updated successfully")
    return 0


def detach_device_alias(opts: GlobalOptions, a: Parsed) -> int:
    dom, live, config = _connect(opts, a)
    alias = a.text("alias")
    _guard(
        f"Failed to detach device with alias {alias}",
        lambda: dom.detach_device_alias(alias, live=live, config=config),
    )
    message("Device detach request sent successfully")
    return 0
