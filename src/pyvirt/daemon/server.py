"""The daemon's host and domain handlers, bound to their actions of the API table, and the two streams.

Every route is declared once, in :mod:`pyvirt.api.table`; :meth:`API.handlers` binds this module's
handlers to action names, the network and storage modules add theirs, and
:func:`pyvirt.daemon.routes.build_router` makes the router (refusing a handler without an action or
an action without a handler). Handlers read ``req.data`` and ``req.args``, already checked against
the action's declared types.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyvirt import __version__
from pyvirt.api.table import API_VERSION
from pyvirt.daemon import blockjobs, nics
from pyvirt.daemon.domains import DomainObject, DomainRegistry
from pyvirt.daemon.events import EventBus
from pyvirt.daemon.http import Request, Stream
from pyvirt.daemon.routes import Handlers, build_router
from pyvirt.errors import InvalidArgument, InvalidState, PyvirtError
from pyvirt.qemu import host

if TYPE_CHECKING:
    from pyvirt.api import types

log = logging.getLogger(__name__)


class API:
    """Binds the actions to one daemon's registries."""

    def __init__(self, domains: DomainRegistry, events: EventBus, extra: list[Any] | None = None) -> None:
        self.domains = domains
        self.events = events
        self._openapi: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        handlers = dict(self.handlers())
        for module in extra or []:
            for name, handler in module.handlers().items():
                if name in handlers:
                    raise ValueError(f"two handlers for the action '{name}'")
                handlers[name] = handler
        self.router = build_router(handlers)

    def handlers(self) -> Handlers:
        d = self._domain_action
        return {
            "api.openapi": self.openapi,
            "host.version": self.version,
            "host.nodeinfo": self.nodeinfo,
            "host.capabilities": self.capabilities,
            "host.hostname": self.hostname,
            "host.validate": self.validate,
            "host.events": self.event_stream,
            "host.domxml_to_native": self.domxml_to_native,
            "domain.list": self.list_domains,
            "domain.define": self.define,
            "domain.info": self.dominfo,
            "domain.xml": self.dumpxml,
            "domain.devices": self.devices,
            "domain.undefine": self.undefine,
            "domain.start": self.start,
            "domain.reset": d(self.domains.reset),
            "domain.destroy": self.destroy,
            "domain.suspend": d(self.domains.suspend),
            "domain.resume": d(self.domains.resume),
            "domain.autostart": self.autostart,
            "domain.console": self.console_stream,
            "domain.attach_interface": self.attach_interface,
            "domain.detach_interface": self.detach_interface,
            "domain.set_link": self.set_link,
            **blockjobs.handlers(self.domains),
        }

    @staticmethod
    def _domain_action(
        method: Callable[[str], Awaitable[DomainObject]],
    ) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        """The handler of an action that takes only the domain and replies with its summary."""

        async def handler(req: Request) -> dict[str, Any]:
            return (await method(req.params["name"])).summary()

        return handler

    async def openapi(self, req: Request) -> dict[str, Any]:
        if self._openapi is None:
            from pyvirt.api.openapi import document

            self._openapi = document()
        return self._openapi

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

    async def domxml_to_native(self, req: Request) -> dict[str, Any]:
        from pyvirt.daemon.native import native_argv, shell_line

        body: types.NativeConfigRequest = req.data
        argv = await asyncio.to_thread(native_argv, self.domains, body["format"], body["xml"])
        return {"argv": argv, "text": shell_line(argv)}

    async def list_domains(self, req: Request) -> list[dict[str, Any]]:
        return [obj.summary() for obj in self.domains.all()]

    async def define(self, req: Request) -> dict[str, Any]:
        body: types.DomainDefineRequest = req.data
        if body.get("start"):
            obj = await self.domains.create(body["xml"], paused=body.get("paused", False))
            if body.get("autodestroy"):
                self._autodestroy(req, obj)
            return obj.summary()
        for flag in ("paused", "autodestroy"):
            if body.get(flag):
                raise InvalidArgument(f"field '{flag}' needs 'start': a domain only defined is not running")
        obj, _new = await self.domains.define(body["xml"])
        return obj.summary()

    async def dominfo(self, req: Request) -> dict[str, Any]:
        from pyvirt.daemon.stats import balloon_kib

        info = self.domains.info(req.params["name"])
        obj = self.domains.lookup(info["uuid"])
        if obj.active:  # the balloon's actual size, as virsh shows "Used memory"
            info["used_memory_kib"] = await balloon_kib(obj)
        return info

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        args = req.args
        xml = self.domains.dumpxml(
            req.params["name"],
            inactive=args["inactive"],
            secure=args["security_info"],
            migratable=args["migratable"],
        )
        return {"xml": xml}

    async def devices(self, req: Request) -> dict[str, Any]:
        return self.domains.devices(req.params["name"], inactive=req.args["inactive"])

    async def undefine(self, req: Request) -> dict[str, Any]:
        args = req.args
        if args["nvram"] and args["keep_nvram"]:
            raise InvalidArgument("Options --nvram and --keep-nvram are mutually exclusive")
        nvram = "delete" if args["nvram"] else "keep" if args["keep_nvram"] else None
        if args["tpm"] and args["keep_tpm"]:
            raise InvalidArgument("Options --tpm and --keep-tpm are mutually exclusive")
        tpm = "delete" if args["tpm"] else "keep" if args["keep_tpm"] else None
        name, removed = await self.domains.undefine(
            req.params["name"],
            remove_storage=args["remove_storage"],
            nvram=nvram,
            tpm_flag=tpm,
            snapshots_metadata=args["snapshots_metadata"],
            managed_save=args["managed_save"],
        )
        return {"name": name, "removed": removed}

    async def start(self, req: Request) -> dict[str, Any]:
        body: types.DomainStartRequest = req.data
        obj = await self.domains.start(
            req.params["name"],
            paused=body.get("paused", False),
            force_boot=body.get("force_boot", False),
            bypass_cache=body.get("bypass_cache", False),
        )
        if body.get("autodestroy"):
            self._autodestroy(req, obj)
        return obj.summary()

    def _autodestroy(self, req: Request, obj: DomainObject) -> None:
        """Destroy ``obj`` when the connection of ``req`` closes, if it still runs the QEMU started now."""
        generation = obj.generation
        loop = asyncio.get_running_loop()
        if obj.proc is not None:  # recorded, so that a daemon restarted meanwhile destroys it
            obj.proc.record.autodestroy = True
            self.domains.save_run_state(obj)

        async def destroy() -> None:
            if obj.proc is None or obj.generation != generation:
                return
            log.info("domain %s: destroyed as its client's connection closed (autodestroy)", obj.name)
            try:
                await self.domains.destroy(obj.uuid)
            except PyvirtError as err:
                log.warning("autodestroy of domain %s: %s", obj.name, err)

        def on_close() -> None:
            task = loop.create_task(destroy())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        req.peer.on_close.append(on_close)

    async def destroy(self, req: Request) -> dict[str, Any]:
        body: types.DomainDestroyRequest = req.data
        obj = await self.domains.destroy(req.params["name"], graceful=body.get("graceful", False))
        if body.get("remove_logs"):
            self.domains.remove_logs(obj.name)
        return obj.summary()

    async def autostart(self, req: Request) -> dict[str, Any]:
        body: types.AutostartRequest = req.data
        return (await self.domains.set_autostart(req.params["name"], body["enabled"])).summary()

    async def attach_interface(self, req: Request) -> dict[str, Any]:
        body: types.AttachInterfaceRequest = req.data
        live, config = _scope(
            body.get("live", False), body.get("config", False), self.domains.lookup(req.params["name"]).active
        )
        spec = {k: v for k, v in body.items() if k not in ("live", "config")}
        return await nics.attach_interface(self.domains, req.params["name"], spec, live=live, config=config)

    async def detach_interface(self, req: Request) -> dict[str, Any]:
        live, config = _scope(
            req.args["live"], req.args["config"], self.domains.lookup(req.params["name"]).active
        )
        await nics.detach_interface(
            self.domains, req.params["name"], req.params["mac"], live=live, config=config
        )
        return {}

    async def set_link(self, req: Request) -> dict[str, Any]:
        body: types.LinkStateRequest = req.data
        await nics.set_link(
            self.domains,
            req.params["name"],
            req.params["device"],
            body["state"] == "up",
            config=body.get("config", False),
        )
        return {}

    async def console_stream(self, req: Request, stream: Stream) -> None:
        relay = self.domains.console(req.params["name"], req.args["devname"] or None)
        force = req.flag("force")
        if relay.attached and not force:
            raise InvalidState("operation failed: Active console session exists for this domain")
        if relay.attached:
            relay.detach()
        await stream.accept()
        done = asyncio.get_running_loop().create_future()
        sink = stream.send_nowait

        def on_detach() -> None:
            if not done.done():
                done.set_result(None)

        relay.attach(sink, on_detach, history=req.flag("history"))

        async def pump_input() -> None:
            while (message := await stream.receive()) is not None:
                relay.write(message.encode() if isinstance(message, str) else message)

        reader_task = asyncio.get_running_loop().create_task(pump_input())
        try:
            await asyncio.wait({reader_task, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader_task
            if relay.is_sink(sink):
                relay.detach()

    async def event_stream(self, req: Request, stream: Stream) -> None:
        queue = self.events.subscribe()
        try:
            await stream.accept()  # subscribed first: no event between the reply and the first get
            loop = asyncio.get_running_loop()
            closed = loop.create_task(stream.wait_closed())
            try:
                while True:
                    getter = loop.create_task(queue.get())
                    done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        return
                    await stream.send(json.dumps(getter.result().as_dict()))
            finally:
                closed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await closed
        finally:
            self.events.unsubscribe(queue)


def _scope(live: bool, config: bool, active: bool) -> tuple[bool, bool]:
    """virsh's --live/--config/--current: the running domain by default when it runs, else the config."""
    if not live and not config:
        return (True, False) if active else (False, True)
    return live, config
