"""One device's XML (``attach-device``, ``detach-device``, ``update-device``): parsed by the domain
parser's own readers, so a device is refused here exactly as inside ``<devices>``, and written back in
libvirt's layout.

:func:`parse_device` returns the device's kind (its element name) and its model object;
:func:`device_list` names the list of a domain's devices that kind lives in; :func:`format_device`
writes one device as ``dumpxml`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf import domain_xml as dx
from pyvirt.conf.domain import ControllerConfig, Devices, DiskConfig, Domain, InterfaceConfig
from pyvirt.conf.xmlutil import Elem, Node, parse_document, serialize, unsupported
from pyvirt.errors import XMLError

# The device elements of <devices> pyvirt models, with the Devices list (or attribute) each goes in.
KINDS = {
    "disk": "disks",
    "controller": "controllers",
    "interface": "interfaces",
    "serial": "serials",
    "console": "consoles",
    "channel": "channels",
    "graphics": "graphics",
    "video": "videos",
    "input": "inputs",
    "rng": "rngs",
    "panic": "panics",
    "sound": "sounds",
    "watchdog": "watchdogs",
    "memballoon": "memballoon",
    "memory": "memory",
    "hostdev": "hostdevs",
}


@dataclass
class Device:
    """One parsed device: its element name and model object (DiskConfig, InterfaceConfig, ...)."""

    kind: str
    obj: object
    index_given: bool = True  # a <controller> without index= takes the next free one of its type


def parse_device(text: str, *, live: bool = False) -> Device:
    """Parse one device element, refusing what the domain parser refuses (and other roots)."""
    root = parse_document(text)
    if root.tag == "devices" or root.tag not in KINDS:
        raise unsupported(
            f"device '{root.tag}' is not supported (one of: {', '.join(sorted(KINDS))})"
            if root.tag not in ("domain", "devices")
            else f"expected one device element, found <{root.tag}>"
        )
    wrapper = Node("devices", {}, "devices", root.line, children=[root])
    devs = dx._Parser(live).devices(Elem(wrapper))
    attr = KINDS[root.tag]
    value = getattr(devs, attr)
    obj = value if attr == "memballoon" else value[0]
    if obj is None:
        raise XMLError(f"cannot read the <{root.tag}> element")
    return Device(root.tag, obj, index_given=root.tag != "controller" or "index" in root.attrib)


def device_list(devs: Devices, kind: str) -> list[object]:
    """The list of ``devs`` that devices of ``kind`` are in (a copy for the single memballoon)."""
    attr = KINDS[kind]
    if attr == "memballoon":
        return [devs.memballoon] if devs.memballoon is not None else []
    items: list[object] = getattr(devs, attr)
    return items


def format_device(dev: Device, *, live: bool = False) -> str:
    """One device as ``dumpxml`` writes it (``live``: with its runtime alias and state)."""
    holder = Domain(name="device")
    if dev.kind == "memballoon":
        assert dev.obj is None or hasattr(dev.obj, "model")
        holder.devices.memballoon = dev.obj  # type: ignore[assignment]
    else:
        device_list(holder.devices, dev.kind).append(dev.obj)
    node = dx._devices(holder.devices, live, True)
    node.children = [child for child in node.children if child.tag == dev.kind]
    if len(node.children) != 1:
        raise XMLError(f"cannot write the <{dev.kind}> element")
    return serialize(node.children[0])


def disk_xml(disk: DiskConfig, *, live: bool = False) -> str:
    return format_device(Device("disk", disk), live=live)


def interface_xml(nic: InterfaceConfig, *, live: bool = False) -> str:
    return format_device(Device("interface", nic), live=live)


def next_controller_index(dom: Domain, ctl: ControllerConfig) -> int:
    same = [c.index for c in dom.devices.controllers if c.type == ctl.type]
    return max(same, default=-1) + 1
