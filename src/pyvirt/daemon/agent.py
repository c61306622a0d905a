"""The guest agent of each running domain: its channel, whether the guest's agent is there, and the
actions that use it (the ``domain.*`` agent actions of the API table).

A domain has an agent when its definition has ``<channel type='unix'><target type='virtio'
name='org.qemu.guest_agent.0'/></channel>``: QEMU listens on the channel's socket and the daemon
connects to it at the first call. Whether the guest's agent holds its end of the port is QEMU's to
say: ``VSERPORT_CHANGE`` events (applied here from :mod:`pyvirt.daemon.qmpevents`, under the domain's
lock, and published as ``agent`` events: connected/disconnected), and ``query-chardev``'s
``frontend-open`` for a domain the daemon re-adopted or has not heard of yet. A call on a domain
whose guest agent is not connected is refused at once, with libvirt's words; a call whose agent does
not answer ends after its timeout (:mod:`pyvirt.qemu.agent`). No call holds the domain's lock while
it waits on the guest.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import guestinfo
from pyvirt.daemon.lifecycle import DomainState
from pyvirt.errors import (
    InvalidArgument,
    InvalidState,
    NotFound,
    OperationFailed,
    PyvirtError,
    UnsupportedConfig,
)
from pyvirt.qemu.agent import (
    DEFAULT_TIMEOUT,
    NOT_RESPONDING,
    AgentClient,
    AgentCommandUnsupported,
)

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.conf.domain import CharDevConfig, Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.networks import NetworkAPI
    from pyvirt.daemon.routes import Handlers

log = logging.getLogger(__name__)

AGENT_CHANNEL = "org.qemu.guest_agent.0"
SHUTDOWN_MODES = ("acpi", "agent", "initctl", "signal", "paravirt")
GUESTINFO_TYPES = ("user", "os", "timezone", "hostname", "filesystem", "disk", "interface")
PM_TARGETS = {"mem": "guest-suspend-ram", "disk": "guest-suspend-disk", "hybrid": "guest-suspend-hybrid"}


def agent_channel(dom: Domain) -> tuple[int, CharDevConfig] | None:
    """The index and definition of ``dom``'s guest agent channel, if it has one."""
    for index, channel in enumerate(dom.devices.channels):
        if channel.target_name == AGENT_CHANNEL and channel.type == "unix":
            return index, channel
    return None


@dataclass(eq=False)
class _Link:
    """The agent of one run (QEMU generation) of one domain."""

    generation: int
    port: str  # the virtserialport's device id: channelN
    path: str
    connected: bool | None = None  # None: not known yet (ask QEMU)
    client: AgentClient | None = None


_LINKS: weakref.WeakKeyDictionary[DomainObject, _Link] = weakref.WeakKeyDictionary()


def _link(obj: DomainObject) -> _Link | None:
    """The agent link of ``obj``'s current run, made afresh for a new run."""
    found = agent_channel(obj.current)
    if found is None or not found[1].source_path:
        return None
    link = _LINKS.get(obj)
    if link is None or link.generation != obj.generation:
        if link is not None and link.client is not None:
            asyncio.get_running_loop().create_task(link.client.close())
        link = _Link(obj.generation, f"channel{found[0]}", found[1].source_path)
        _LINKS[obj] = link
    return link


def port_changed(reg: DomainRegistry, obj: DomainObject, data: dict[str, Any]) -> None:
    """A ``VSERPORT_CHANGE`` event: the guest opened or closed a virtio port (``obj.lock`` held)."""
    link = _link(obj)
    if link is None or data.get("id") != link.port:
        return
    opened = bool(data.get("open"))
    if link.connected is opened:
        return
    link.connected = opened
    log.info("domain %s: guest agent %s", obj.name, "connected" if opened else "disconnected")
    reg.events.publish("agent", obj.name, "connected" if opened else "disconnected", "channel event")


async def _known_connected(obj: DomainObject, link: _Link) -> bool:
    if link.connected is None and obj.proc is not None:
        label = "char" + link.port
        for dev in await obj.proc.monitor.execute("query-chardev"):
            if dev.get("label") == label:
                link.connected = bool(dev.get("frontend-open"))
    return bool(link.connected)


async def agent_of(obj: DomainObject) -> AgentClient:
    """The agent client of running ``obj``, refused with libvirt's words when there is none to ask."""
    if obj.state is not DomainState.RUNNING or obj.proc is None:
        raise InvalidState("Requested operation is not valid: domain is not running")
    link = _link(obj)
    if link is None:
        raise UnsupportedConfig("argument unsupported: QEMU guest agent is not configured")
    if not await _known_connected(obj, link):
        raise OperationFailed(NOT_RESPONDING + "QEMU guest agent is not connected")
    if link.client is None:
        link.client = AgentClient(obj.name, link.path)
    return link.client


def agent_connected(obj: DomainObject) -> bool:
    """Whether ``obj``'s guest agent is known to be connected (no call to QEMU)."""
    link = _LINKS.get(obj)
    return link is not None and link.generation == obj.generation and bool(link.connected)


async def call(
    obj: DomainObject, command: str, arguments: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Any:
    return await (await agent_of(obj)).command(command, arguments, timeout=timeout)


# What the agent reports, with the domain's disks


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


async def _filesystems(obj: DomainObject) -> list[dict[str, Any]]:
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


async def _disk_params(obj: DomainObject) -> dict[str, Any]:
    disks = await call(obj, "guest-get-disks") or []
    return guestinfo.disk_params(disks, await _disk_targets(obj), obj.current)


def parse_modes(text: str | None) -> list[str]:
    """virsh's --mode: a comma-separated list of shutdown/reboot methods, tried in order."""
    if not text:
        return []
    modes = text.split(",")
    for mode in modes:
        if mode not in SHUTDOWN_MODES:
            raise InvalidArgument(
                f"Unknown mode {mode} value, expecting 'acpi', 'agent', 'initctl', 'signal' or 'paravirt'"
            )
    return modes


def _timeout(value: int | None) -> float | None:
    """qemu-agent-command's timeout: -2 blocks, -1 is the default, 0 does not wait, N seconds."""
    if value is None or value == -1:
        return DEFAULT_TIMEOUT
    if value == -2:
        return None
    if value < -2:
        raise InvalidArgument(f"invalid timeout {value}: a number of seconds, -1 (default) or -2 (block)")
    return float(value)


class AgentAPI:
    """The handlers of the guest agent's actions."""

    def __init__(self, networks: NetworkAPI | None = None) -> None:
        self.networks = networks
        self._domains: DomainRegistry | None = None

    async def startup(self, domains: DomainRegistry) -> None:
        self._domains = domains

    @property
    def domains(self) -> DomainRegistry:
        assert self._domains is not None, "AgentAPI used before startup"
        return self._domains

    def handlers(self) -> Handlers:
        return {
            "domain.shutdown": self.shutdown,
            "domain.reboot": self.reboot,
            "domain.agent_command": self.agent_command,
            "domain.guestinfo": self.guestinfo,
            "domain.fsinfo": self.fsinfo,
            "domain.fsfreeze": self.fsfreeze,
            "domain.fsthaw": self.fsthaw,
            "domain.fstrim": self.fstrim,
            "domain.set_user_password": self.set_user_password,
            "domain.sshkeys": self.get_sshkeys,
            "domain.set_sshkeys": self.set_sshkeys,
            "domain.hostname": self.hostname,
            "domain.time": self.get_time,
            "domain.set_time": self.set_time,
            "domain.pmsuspend": self.pmsuspend,
            "domain.pmwakeup": self.pmwakeup,
        }

    def _obj(self, req: Request) -> DomainObject:
        return self.domains.lookup(req.params["name"])

    # Shutdown and reboot: ACPI, the agent, or one then the other

    async def _power(self, req: Request, *, reboot: bool) -> dict[str, Any]:
        body: types.DomainShutdownRequest = req.data
        obj = self._obj(req)
        modes = parse_modes(body.get("mode"))
        if not modes:  # libvirt's default: the agent when one is connected, else (or failing) ACPI
            modes = ["agent", "acpi"] if agent_connected(obj) else ["acpi"]
        error: PyvirtError | None = None
        for mode in modes:
            if mode == "agent":
                try:
                    await call(obj, "guest-shutdown", {"mode": "reboot" if reboot else "powerdown"})
                    return obj.summary()
                except PyvirtError as err:
                    log.info(
                        "domain %s: %s by the agent failed: %s",
                        obj.name,
                        "reboot" if reboot else "shutdown",
                        err,
                    )
                    error = err
            elif mode == "acpi":
                done = await (self.domains.reboot if reboot else self.domains.shutdown)(obj.uuid)
                return done.summary()
            else:
                error = UnsupportedConfig(
                    f"argument unsupported: QEMU cannot {'reboot' if reboot else 'shut down'} a domain "
                    f"by {mode} (it can by acpi or agent)"
                )
        assert error is not None
        raise error

    async def shutdown(self, req: Request) -> dict[str, Any]:
        return await self._power(req, reboot=False)

    async def reboot(self, req: Request) -> dict[str, Any]:
        return await self._power(req, reboot=True)

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
            return guestinfo.filesystem_params(await _filesystems(obj))
        if kind == "disk":
            return await _disk_params(obj)
        return guestinfo.interface_params(await call(obj, "guest-network-get-interfaces") or [])

    async def fsinfo(self, req: Request) -> list[dict[str, Any]]:
        filesystems = await _filesystems(self._obj(req))
        return [
            {
                "mountpoint": fs["mountpoint"],
                "name": fs["name"],
                "fstype": fs["fstype"],
                "targets": [d["alias"] for d in fs["disks"] if d["alias"]],
            }
            for fs in filesystems
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

    # Users: password and SSH keys

    async def set_user_password(self, req: Request) -> dict[str, Any]:
        body: types.UserPasswordRequest = req.data
        password = body["password"]
        await call(
            self._obj(req),
            "guest-set-user-password",
            {
                "username": req.params["user"],
                "password": base64.b64encode(password.encode()).decode(),
                "crypted": body.get("encrypted", False),
            },
        )
        return {}

    async def get_sshkeys(self, req: Request) -> dict[str, Any]:
        reply = await call(self._obj(req), "guest-ssh-get-authorized-keys", {"username": req.params["user"]})
        return {"keys": [str(k) for k in (reply or {}).get("keys", [])]}

    async def set_sshkeys(self, req: Request) -> dict[str, Any]:
        body: types.SSHKeysRequest = req.data
        keys, reset, remove = body["keys"], body.get("reset", False), body.get("remove", False)
        user = req.params["user"]
        if remove and reset:
            raise InvalidArgument("reset and remove are mutually exclusive")
        if remove:
            if not keys:
                raise InvalidArgument("remove needs the keys to remove")
            await call(self._obj(req), "guest-ssh-remove-authorized-keys", {"username": user, "keys": keys})
        else:
            if not keys and not reset:
                raise InvalidArgument("no keys to add")
            await call(
                self._obj(req),
                "guest-ssh-add-authorized-keys",
                {"username": user, "keys": keys, "reset": reset},
            )
        return {}

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

    # Power management: suspend through the agent, wake up through QEMU

    async def pmsuspend(self, req: Request) -> dict[str, Any]:
        body: types.PMSuspendRequest = req.data
        obj = self._obj(req)
        command = PM_TARGETS.get(body["target"])
        if command is None:
            raise InvalidArgument(f"Invalid target: {body['target']} (mem, disk or hybrid)")
        if body.get("duration", 0):
            raise UnsupportedConfig("argument unsupported: Duration not supported. Use 0 for now")
        if body["target"] in ("mem", "hybrid") and obj.current.pm_suspend_to_mem is False:
            raise UnsupportedConfig(
                "argument unsupported: S3 state is disabled for this domain "
                "(<pm><suspend-to-mem enabled='yes'/> enables it)"
            )
        if body["target"] in ("disk", "hybrid") and obj.current.pm_suspend_to_disk is False:
            raise UnsupportedConfig(
                "argument unsupported: S4 state is disabled for this domain "
                "(<pm><suspend-to-disk enabled='yes'/> enables it)"
            )
        await call(obj, command)
        return obj.summary()

    async def pmwakeup(self, req: Request) -> dict[str, Any]:
        obj = self._obj(req)
        if obj.state is not DomainState.PMSUSPENDED or obj.proc is None:
            raise InvalidState("Requested operation is not valid: domain is not suspended")
        await obj.proc.monitor.execute("system_wakeup")
        return obj.summary()
