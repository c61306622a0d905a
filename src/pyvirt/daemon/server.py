"""The daemon's REST API: routes from HTTP requests to the registries, and the two streams.

Routes (all JSON; ``{name}`` is a domain's name, id or UUID):

==========  ==================================  =================================================
GET         /v1/version                         daemon, QEMU and API versions
GET         /v1/host/nodeinfo|capabilities|hostname|validate
GET         /v1/domains                         summaries of every domain
POST        /v1/domains                         ``{"xml"}`` define; ``{"xml", "start": true}`` create
GET         /v1/domains/{name}                  dominfo
GET         /v1/domains/{name}/xml              dumpxml (``?inactive=1``)
GET         /v1/domains/{name}/devices          disks, interfaces, VNC display
DELETE      /v1/domains/{name}                  undefine (``?remove_storage=1``)
POST        /v1/domains/{name}/{action}         start shutdown reboot reset destroy suspend resume autostart
GET+Upgrade /v1/domains/{name}/console          raw serial console stream
GET+Upgrade /v1/events                          newline-delimited JSON lifecycle events
==========  ==================================  =================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from pyvirt import __version__
from pyvirt.daemon import nics
from pyvirt.daemon.domains import DomainObject, DomainRegistry
from pyvirt.daemon.events import EventBus
from pyvirt.daemon.http import Request, Router, Stream, switch_protocols
from pyvirt.errors import InvalidArgument, InvalidState
from pyvirt.qemu import host

API_VERSION = 1


class API:
    """Binds the routes to one daemon's registries."""

    def __init__(self, domains: DomainRegistry, events: EventBus, extra: list[Any] | None = None) -> None:
        self.domains = domains
        self.events = events
        self.router = Router()
        self._routes()
        for module in extra or []:
            module.register(self.router)

    def _routes(self) -> None:
        r = self.router
        r.add("GET", "/v1/version", self.version)
        r.add("GET", "/v1/host/nodeinfo", self.nodeinfo)
        r.add("GET", "/v1/host/capabilities", self.capabilities)
        r.add("GET", "/v1/host/hostname", self.hostname)
        r.add("GET", "/v1/host/validate", self.validate)
        r.add("GET", "/v1/domains", self.list_domains)
        r.add("POST", "/v1/domains", self.define, mutating=True)
        r.add("GET", "/v1/events", stream=self.event_stream)
        r.add("GET", "/v1/domains/{name}", self.dominfo)
        r.add("GET", "/v1/domains/{name}/xml", self.dumpxml)
        r.add("GET", "/v1/domains/{name}/devices", self.devices)
        r.add("DELETE", "/v1/domains/{name}", self.undefine, mutating=True)
        r.add("GET", "/v1/domains/{name}/console", stream=self.console_stream, mutating=True)
        r.add("POST", "/v1/domains/{name}/interfaces", self.attach_interface, mutating=True)
        r.add("DELETE", "/v1/domains/{name}/interfaces/{mac}", self.detach_interface, mutating=True)
        r.add("POST", "/v1/domains/{name}/interfaces/{device}/link", self.set_link, mutating=True)
        r.add("POST", "/v1/domains/{name}/{action}", self.action, mutating=True)

    async def version(self, req: Request) -> dict[str, Any]:
        qemu = await asyncio.to_thread(host.qemu_version)
        return {
            "pyvirt": __version__,
            "api": API_VERSION,
            "hypervisor": "QEMU",
            "hypervisor_version": qemu,
            "hypervisor_version_number": host.version_number(qemu),
            "library_version_number": host.version_number(__version__),
        }

    async def nodeinfo(self, req: Request) -> dict[str, Any]:
        return host.node_info().as_dict()

    async def capabilities(self, req: Request) -> dict[str, Any]:
        return {"xml": host.capabilities_xml()}

    async def hostname(self, req: Request) -> dict[str, Any]:
        return {"hostname": host.hostname()}

    async def validate(self, req: Request) -> dict[str, Any]:
        checks = await asyncio.to_thread(host.validate_host)
        return {"checks": [c.__dict__ for c in checks]}

    async def list_domains(self, req: Request) -> list[dict[str, Any]]:
        return [obj.summary() for obj in self.domains.all()]

    async def define(self, req: Request) -> dict[str, Any]:
        body = req.json()
        xml = body.get("xml")
        if not isinstance(xml, str):
            raise InvalidArgument("missing 'xml' in request")
        if body.get("start"):
            obj = await self.domains.create(xml, paused=bool(body.get("paused")))
            return obj.summary()
        obj, _new = await self.domains.define(xml)
        return obj.summary()

    async def dominfo(self, req: Request) -> dict[str, Any]:
        return self.domains.info(req.params["name"])

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        return {
            "xml": self.domains.dumpxml(
                req.params["name"], inactive=req.flag("inactive"), secure=req.flag("security_info")
            )
        }

    async def devices(self, req: Request) -> dict[str, Any]:
        return self.domains.devices(req.params["name"])

    async def undefine(self, req: Request) -> dict[str, Any]:
        name, removed = await self.domains.undefine(
            req.params["name"], remove_storage=req.flag("remove_storage")
        )
        return {"name": name, "removed": removed}

    async def action(self, req: Request) -> dict[str, Any]:
        name, action = req.params["name"], req.params["action"]
        body = req.json()
        d = self.domains
        obj: DomainObject
        if action == "start":
            obj = await d.start(name, paused=bool(body.get("paused")))
        elif action == "shutdown":
            obj = await d.shutdown(name)
        elif action == "reboot":
            obj = await d.reboot(name)
        elif action == "reset":
            obj = await d.reset(name)
        elif action == "destroy":
            obj = await d.destroy(name, graceful=bool(body.get("graceful")))
        elif action == "suspend":
            obj = await d.suspend(name)
        elif action == "resume":
            obj = await d.resume(name)
        elif action == "autostart":
            obj = d.set_autostart(name, bool(body.get("enabled", True)))
        else:
            raise InvalidArgument(f"unknown domain action '{action}'")
        return obj.summary()

    async def attach_interface(self, req: Request) -> dict[str, Any]:
        body = req.json()
        live, config = _scope(body, self.domains.lookup(req.params["name"]).active)
        return await nics.attach_interface(self.domains, req.params["name"], body, live=live, config=config)

    async def detach_interface(self, req: Request) -> dict[str, Any]:
        body = {"live": req.flag("live"), "config": req.flag("config")}
        live, config = _scope(body, self.domains.lookup(req.params["name"]).active)
        await nics.detach_interface(
            self.domains, req.params["name"], req.params["mac"], live=live, config=config
        )
        return {}

    async def set_link(self, req: Request) -> dict[str, Any]:
        state = str(req.json().get("state", ""))
        if state not in ("up", "down"):
            raise InvalidArgument(f"link state must be 'up' or 'down', not '{state}'")
        await nics.set_link(self.domains, req.params["name"], req.params["device"], state == "up")
        return {}

    async def console_stream(self, req: Request, stream: Stream) -> None:
        relay = self.domains.console(req.params["name"])
        force = req.flag("force")
        if relay.attached and not force:
            raise InvalidState("operation failed: Active console session exists for this domain")
        if relay.attached:
            relay.detach()
        await switch_protocols(stream)
        writer = stream.writer
        done = asyncio.get_running_loop().create_future()

        def sink(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        def on_detach() -> None:
            if not done.done():
                done.set_result(None)

        relay.attach(sink, on_detach, history=req.flag("history"))

        async def pump_input() -> None:
            while True:
                data = await stream.reader.read(4096)
                if not data:
                    break
                relay.write(data)

        reader_task = asyncio.get_running_loop().create_task(pump_input())
        try:
            await asyncio.wait({reader_task, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader_task.cancel()
            if relay._sink is sink:
                relay.detach()
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def event_stream(self, req: Request, stream: Stream) -> None:
        queue = self.events.subscribe()
        await switch_protocols(stream)
        closed = asyncio.get_running_loop().create_task(stream.reader.read(1))
        try:
            while True:
                getter = asyncio.get_running_loop().create_task(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                stream.writer.write(json.dumps(getter.result().as_dict()).encode() + b"\n")
                await stream.writer.drain()
        except ConnectionError:
            pass
        finally:
            closed.cancel()
            self.events.unsubscribe(queue)


def _scope(body: dict[str, Any], active: bool) -> tuple[bool, bool]:
    """virsh's --live/--config/--current: the running domain by default when it runs, else the config."""
    live, config = bool(body.get("live")), bool(body.get("config"))
    if not live and not config:
        return (True, False) if active else (False, True)
    return live, config
