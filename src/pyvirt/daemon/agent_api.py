"""The guest agent's actions of the API table (``domain.*``): qemu-agent-command, guestinfo, the host
name and the guest's clock here, and those of :mod:`pyvirt.daemon.agent_power`,
:mod:`pyvirt.daemon.agent_fs` and :mod:`pyvirt.daemon.agent_users` gathered with them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import guestinfo
from pyvirt.daemon.agent import AgentHandlers, agent_of, call
from pyvirt.daemon.agent_fs import FileSystemAPI, disk_params, filesystems
from pyvirt.daemon.agent_power import PowerAPI
from pyvirt.daemon.agent_users import UserAPI
from pyvirt.errors import InvalidArgument, InvalidState, NotFound, OperationFailed
from pyvirt.qemu.agent import DEFAULT_TIMEOUT, AgentCommandUnsupported

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.networks import NetworkAPI
    from pyvirt.daemon.routes import Handlers

GUESTINFO_TYPES = ("user", "os", "timezone", "hostname", "filesystem", "disk", "interface")


def _timeout(value: int | None) -> float | None:
    """qemu-agent-command's timeout: -2 blocks, -1 is the default, 0 does not wait, N seconds."""
    if value is None or value == -1:
        return DEFAULT_TIMEOUT
    if value == -2:
        return None
    if value < -2:
        raise InvalidArgument(f"invalid timeout {value}: a number of seconds, -1 (default) or -2 (block)")
    return float(value)


class AgentAPI(AgentHandlers):
    """The handlers of every guest agent action."""

    def __init__(self, networks: NetworkAPI | None = None) -> None:
        super().__init__()
        self.networks = networks
        self.parts: list[AgentHandlers] = [PowerAPI(), FileSystemAPI(), UserAPI()]

    async def startup(self, domains: DomainRegistry) -> None:
        await super().startup(domains)
        for part in self.parts:
            await part.startup(domains)

    def handlers(self) -> Handlers:
        handlers: dict[str, Any] = {
            "domain.agent_command": self.agent_command,
            "domain.guestinfo": self.guestinfo,
            "domain.hostname": self.hostname,
            "domain.time": self.get_time,
            "domain.set_time": self.set_time,
        }
        for part in self.parts:
            handlers.update(part.handlers())
        return handlers

    # qemu-agent-command

    async def agent_command(self, req: Request) -> dict[str, Any]:
        body: types.AgentCommandRequest = req.data
        try:
            request = json.loads(body["command"])
        except ValueError as err:
            raise InvalidArgument(f"internal error: cannot parse json {body['command']}: {err}") from err
        if not isinstance(request, dict) or not isinstance(request.get("execute"), str):
            raise InvalidArgument("the agent command must be a JSON object with an 'execute' member")
        timeout = _timeout(body.get("timeout"))
        client = await agent_of(self._obj(req))
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        reply = await client.request(
            line, command=str(request["execute"]), timeout=timeout, wait=timeout != 0.0
        )
        if reply is None:
            return {"reply": ""}
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            raise OperationFailed(
                f"internal error: unable to execute QEMU agent command '{request['execute']}': "
                f"{error.get('desc', reply['error'])}"
            )
        return {"reply": json.dumps(reply, separators=(",", ":"))}

    # guestinfo and domfsinfo

    async def guestinfo(self, req: Request) -> dict[str, Any]:
        obj = self._obj(req)
        wanted = [t for t in (req.args["types"] or "").split(",") if t]
        for kind in wanted:
            if kind not in GUESTINFO_TYPES:
                raise InvalidArgument(
                    f"unknown guest info type '{kind}' (one of {', '.join(GUESTINFO_TYPES)})"
                )
        explicit = bool(wanted)
        params: dict[str, Any] = {}
        for kind in wanted or GUESTINFO_TYPES:
            try:
                params.update(await self._guestinfo_group(obj, kind))
            except AgentCommandUnsupported:
                if explicit:  # libvirt skips what the agent lacks unless it was asked for
                    raise
        return {"params": params}

    async def _guestinfo_group(self, obj: DomainObject, kind: str) -> dict[str, Any]:
        if kind == "user":
            return guestinfo.user_params(await call(obj, "guest-get-users") or [])
        if kind == "os":
            return guestinfo.os_params(await call(obj, "guest-get-osinfo") or {})
        if kind == "timezone":
            return guestinfo.timezone_params(await call(obj, "guest-get-timezone") or {})
        if kind == "hostname":
            return {"hostname": (await call(obj, "guest-get-host-name") or {}).get("host-name", "")}
        if kind == "filesystem":
            return guestinfo.filesystem_params(await filesystems(obj))
        if kind == "disk":
            return await disk_params(obj)
        return guestinfo.interface_params(await call(obj, "guest-network-get-interfaces") or [])

    # Host name and time

    async def hostname(self, req: Request) -> dict[str, Any]:
        obj = self._obj(req)
        source = req.args["source"] or "agent"
        if source == "agent":
            reply = await call(obj, "guest-get-host-name")
            return {"hostname": str((reply or {}).get("host-name", ""))}
        if source != "lease":
            raise InvalidArgument(f"Unknown data source '{source}' (agent or lease)")
        if not obj.active:
            raise InvalidState("Requested operation is not valid: domain is not running")
        if self.networks is not None:
            for nic in obj.current.devices.interfaces:
                if nic.type != "network" or not nic.source_network or not nic.mac:
                    continue
                try:
                    leases = await self.networks.run(
                        lambda net=nic.source_network, mac=nic.mac: self.networks.driver.leases(net, mac)  # type: ignore[union-attr,misc]
                    )
                except NotFound:
                    continue
                for lease in leases:
                    if lease.hostname:
                        return {"hostname": lease.hostname}
        raise OperationFailed(f"operation failed: no DHCP lease of domain '{obj.name}' has a hostname")

    async def get_time(self, req: Request) -> dict[str, Any]:
        ns = int(await call(self._obj(req), "guest-get-time"))
        return {"seconds": ns // 1_000_000_000, "nseconds": ns % 1_000_000_000}

    async def set_time(self, req: Request) -> dict[str, Any]:
        body: types.SetTimeRequest = req.data
        obj = self._obj(req)
        if body.get("sync"):
            if "seconds" in body or "nseconds" in body:
                raise InvalidArgument("sync takes the time from the guest's RTC: give no seconds with it")
            await call(obj, "guest-set-time")
            return {}
        if "seconds" not in body:
            raise InvalidArgument("set_time needs seconds, or sync")
        seconds, nseconds = body["seconds"], body.get("nseconds", 0)
        if seconds < 0 or not 0 <= nseconds < 1_000_000_000:
            raise InvalidArgument(f"Invalid time {seconds}.{nseconds:09d}")
        await call(obj, "guest-set-time", {"time": seconds * 1_000_000_000 + nseconds})
        return {}
