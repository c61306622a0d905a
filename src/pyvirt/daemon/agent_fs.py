"""The guest's file systems through its agent: what it has mounted on which of the domain's disks
(domfsinfo, guestinfo's filesystem and disk groups), and freezing, thawing and trimming them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import guestinfo
from pyvirt.daemon.agent import AgentHandlers, call
from pyvirt.errors import InvalidArgument, OperationFailed, UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainObject
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers


async def _disk_targets(obj: DomainObject) -> guestinfo.Targets:
    """PCI address (as the guest sees it) → the domain's disk target, for the virtio disks."""
    assert obj.proc is not None
    ids: dict[str, str] = {}
    for disk in obj.current.devices.disks:
        if disk.target_bus == "virtio" and disk.target_dev:
            number = 0
            for char in disk.target_dev[2:]:
                number = number * 26 + (ord(char) - ord("a") + 1)
            ids[disk.alias or f"virtio-disk{number - 1}"] = disk.target_dev
    out: guestinfo.Targets = {}
    with contextlib.suppress(OperationFailed):
        for bus in await obj.proc.monitor.execute("query-pci"):
            for dev in bus.get("devices", []):
                target = ids.get(str(dev.get("qdev_id", "")))
                if target is not None:
                    out[(0, int(dev["bus"]), int(dev["slot"]), int(dev["function"]))] = target
    return out


async def filesystems(obj: DomainObject) -> list[dict[str, Any]]:
    """guest-get-fsinfo, each file system with the domain's disk targets it lives on."""
    fsinfo = await call(obj, "guest-get-fsinfo")
    targets = await _disk_targets(obj)
    out = []
    for fs in fsinfo or []:
        disks = []
        for disk in fs.get("disk") or []:
            disks.append(
                {
                    "alias": guestinfo.disk_target(disk, targets, obj.current),
                    "serial": disk.get("serial"),
                    "device": disk.get("dev"),
                }
            )
        out.append(
            {
                "name": str(fs.get("name", "")),
                "mountpoint": str(fs.get("mountpoint", "")),
                "fstype": str(fs.get("type", "")),
                "total_bytes": fs.get("total-bytes"),
                "used_bytes": fs.get("used-bytes"),
                "disks": disks,
            }
        )
    return out


async def disk_params(obj: DomainObject) -> dict[str, Any]:
    disks = await call(obj, "guest-get-disks") or []
    return guestinfo.disk_params(disks, await _disk_targets(obj), obj.current)


class FileSystemAPI(AgentHandlers):
    """domfsinfo, domfsfreeze, domfsthaw and domfstrim."""

    def handlers(self) -> Handlers:
        return {
            "domain.fsinfo": self.fsinfo,
            "domain.fsfreeze": self.fsfreeze,
            "domain.fsthaw": self.fsthaw,
            "domain.fstrim": self.fstrim,
        }

    async def fsinfo(self, req: Request) -> list[dict[str, Any]]:
        found = await filesystems(self._obj(req))
        return [
            {
                "mountpoint": fs["mountpoint"],
                "name": fs["name"],
                "fstype": fs["fstype"],
                "targets": [d["alias"] for d in fs["disks"] if d["alias"]],
            }
            for fs in found
        ]

    # File systems: freeze, thaw, trim

    async def fsfreeze(self, req: Request) -> dict[str, Any]:
        body: types.FSFreezeRequest = req.data
        obj = self._obj(req)
        mountpoints = body.get("mountpoints") or []
        if mountpoints:
            count = await call(obj, "guest-fsfreeze-freeze-list", {"mountpoints": mountpoints})
        else:
            count = await call(obj, "guest-fsfreeze-freeze")
        return {"count": int(count or 0)}

    async def fsthaw(self, req: Request) -> dict[str, Any]:
        body: types.FSFreezeRequest = req.data
        if body.get("mountpoints"):
            raise UnsupportedConfig(
                "argument unsupported: specifying mountpoints is not supported (the guest agent thaws "
                "every file system it froze)"
            )
        return {"count": int(await call(self._obj(req), "guest-fsfreeze-thaw") or 0)}

    async def fstrim(self, req: Request) -> dict[str, Any]:
        body: types.FSTrimRequest = req.data
        if body.get("mountpoint"):
            raise UnsupportedConfig(
                "argument unsupported: Specifying mount point is not supported for now (the guest agent "
                "trims every mounted file system)"
            )
        minimum = body.get("minimum", 0)
        if minimum < 0:
            raise InvalidArgument("minimum must not be negative")
        await call(self._obj(req), "guest-fstrim", {"minimum": minimum} if minimum else None)
        return {}
