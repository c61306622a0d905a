"""virsh's nodedev-list, nodedev-info and nodedev-dumpxml: the host's node devices as libvirt 9.0's udev
backend shows them (read by :mod:`pyvirt.qemu.node_devices`, written by :mod:`pyvirt.conf.nodedev_xml`),
from the same sysfs tree as the daemon's host devices. Read-only: allowed on the read-only socket."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pyvirt.conf.nodedev_xml import device_info, device_xml
from pyvirt.errors import InvalidArgument, NotFound
from pyvirt.qemu.node_devices import CAP_NAMES, NodeDevice, NodeDevices, ScsiHostCap

if TYPE_CHECKING:
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers


def caps_wanted(text: str) -> set[str]:
    """virsh's ``--cap`` list (comma-separated names), each checked."""
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    for name in sorted(wanted):
        if name not in CAP_NAMES:
            raise InvalidArgument(f"invalid argument: Invalid capability type '{name}'")
    return wanted


def listing(devices: NodeDevices, cap: str | None) -> list[dict[str, Any]]:
    """nodedev-list: every device (those with one of ``cap``'s capabilities), by name."""
    wanted = caps_wanted(cap) if cap else None
    found = [d for d in devices.devices() if wanted is None or d.cap_names() & wanted]
    return [_info(d) for d in sorted(found, key=lambda d: d.name)]


def _info(device: NodeDevice) -> dict[str, Any]:
    return {**device_info(device), "caps": sorted(device.cap_names())}


def find(devices: NodeDevices, name: str) -> NodeDevice:
    """The device named ``name``, or (virsh's other form) the SCSI host of a ``WWNN,WWPN`` pair."""
    if "," in name:
        wwnn, _, wwpn = name.partition(",")
        for device in devices.devices():
            cap = device.cap
            if isinstance(cap, ScsiHostCap) and cap.fc_host is not None and cap.fc_host[:2] == (wwnn, wwpn):
                return device
        raise NotFound(f"Node device not found: no node device with matching wwnn '{wwnn}' and wwpn '{wwpn}'")
    found = devices.find(name)
    if found is None:
        raise NotFound(f"Node device not found: no node device with matching name '{name}'")
    return found


class NodedevInfoAPI:
    """Binds nodedev.list, nodedev.info and nodedev.dumpxml to the host's devices (``devices``: a test's
    tree)."""

    def __init__(self, devices: NodeDevices | None = None) -> None:
        self.devices = devices or NodeDevices()

    def handlers(self) -> Handlers:
        return {"nodedev.list": self.list, "nodedev.info": self.info, "nodedev.dumpxml": self.dumpxml}

    async def list(self, req: Request) -> list[dict[str, Any]]:
        return await asyncio.to_thread(listing, self.devices, req.args.get("cap") or None)

    async def info(self, req: Request) -> dict[str, Any]:
        device = await asyncio.to_thread(find, self.devices, req.params["device"])
        return _info(device)

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        device = await asyncio.to_thread(find, self.devices, req.params["device"])
        return {"xml": device_xml(device)}
