"""The guest agent of each running domain: its channel, whether the guest's agent is there, and how a
call reaches it. The actions that use it live beside: :mod:`pyvirt.daemon.agent_api` (the table's
``domain.*`` agent actions, with guestinfo, host name, time and qemu-agent-command),
:mod:`pyvirt.daemon.agent_power` (shutdown/reboot modes, PM suspend), :mod:`pyvirt.daemon.agent_fs`
(file systems) and :mod:`pyvirt.daemon.agent_users` (passwords, SSH keys).

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
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.actions import DomainActions
from pyvirt.daemon.lifecycle import DomainState
from pyvirt.errors import InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.qemu.agent import DEFAULT_TIMEOUT, NOT_RESPONDING, AgentClient

if TYPE_CHECKING:
    from pyvirt.conf.domain import CharDevConfig, Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

log = logging.getLogger(__name__)

AGENT_CHANNEL = "org.qemu.guest_agent.0"


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


async def agent_listening(obj: DomainObject) -> bool:
    """Whether running ``obj``'s guest agent is connected, asking QEMU if the daemon has not heard."""
    link = _link(obj) if obj.state is DomainState.RUNNING and obj.proc is not None else None
    if link is None:
        return False
    try:
        return await _known_connected(obj, link)
    except OperationFailed:
        return False


async def call(
    obj: DomainObject, command: str, arguments: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Any:
    return await (await agent_of(obj)).command(command, arguments, timeout=timeout)


class AgentHandlers(DomainActions):
    """What every group of agent action handlers shares: the domain registry, set at start-up."""

    def handlers(self) -> Handlers:
        raise NotImplementedError

    def _obj(self, req: Request) -> DomainObject:
        return self.domains.lookup(req.params["name"])
