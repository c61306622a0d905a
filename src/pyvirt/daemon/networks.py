"""Network routes: the daemon's side of ``net-*`` and ``domifaddr``, over the network driver.

The driver is synchronous (pyroute2's blocking API cannot run inside the daemon's event loop), so
every call runs on one dedicated worker thread: calls never overlap, the driver needs no locking, and
the event loop is never blocked by netlink, nftables or dnsmasq.

Its actions (``network.*`` and ``domain.ifaddr``) are declared in :mod:`pyvirt.api.table`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pyvirt.errors import InvalidArgument, InvalidState, NotFound
from pyvirt.network.driver import NetworkDriver

T = TypeVar("T")

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers
    from pyvirt.paths import Layout


class NetworkHook:
    """The domain registry's view of the driver: tap plumbing, run on the driver's thread."""

    def __init__(self, api: NetworkAPI) -> None:
        self.api = api

    async def plug_tap(
        self,
        *,
        network: str | None,
        bridge: str | None,
        mac: str,
        tap: str | None = None,
        owner: int | None = None,
    ) -> str:
        return await self.api.run(
            lambda: self.api.driver.plug_tap(network=network, bridge=bridge, mac=mac, tap=tap, owner=owner)
        )

    def unplug_tap(self, tap: str) -> None:
        self.api.executor.submit(self.api.driver.unplug_tap, tap)

    async def plug_ethernet(
        self,
        *,
        tap: str | None,
        mac: str,
        owner: int | None,
        addresses: list[tuple[str, int | None, str | None]],
        routes: list[tuple[str, int | None, str]],
    ) -> str:
        driver = self.api.driver
        return await self.api.run(
            lambda: driver.plug_ethernet(tap=tap, mac=mac, owner=owner, addresses=addresses, routes=routes)
        )

    async def tap_kind(self, tap: str) -> str | None:
        return await self.api.run(lambda: self.api.driver.tap_kind(tap))

    async def open_tap(self, tap: str) -> int:
        return await self.api.run(lambda: self.api.driver.open_tap(tap))

    async def set_link(self, tap: str, up: bool) -> None:
        await self.api.run(lambda: self.api.driver.set_link(tap, up))


class NetworkAPI:
    def __init__(self, layout: Layout, events: EventBus, *, default_network: bool | None = None) -> None:
        self.layout = layout
        self.events = events
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="network")
        self.driver: NetworkDriver = self.executor.submit(NetworkDriver, layout).result()
        self.domains: DomainRegistry | None = None
        # libvirt defines 'default' on a real host's first start; a scratch PYVIRT_ROOT (tests, demos)
        # must not grow a NAT bridge in the machine's own namespace unless asked to.
        if default_network is None:
            default_network = layout.mode == "system" and not os.environ.get("PYVIRT_ROOT")
        self.default_network = default_network

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    def hook(self) -> NetworkHook:
        return NetworkHook(self)

    async def startup(self, domains: DomainRegistry) -> None:
        self.domains = domains
        await self.run(self.driver.readopt)
        if self.default_network:
            await self.run(self.driver.ensure_default)

    async def autostart(self) -> None:
        await self.run(self.driver.autostart_all)

    def handlers(self) -> Handlers:
        return {
            "network.list": self.list_networks,
            "network.define": self.define,
            "network.info": self.info,
            "network.xml": self.dumpxml,
            "network.leases": self.leases,
            "network.undefine": self.undefine,
            "network.start": self.start,
            "network.destroy": self.destroy,
            "network.autostart": self.set_autostart,
            "domain.ifaddr": self.domifaddr,
        }

    async def _resolve(self, key: str) -> str:
        """A network by name or UUID."""
        statuses = await self.run(self.driver.list)
        for status in statuses:
            if status.name == key:
                return key
        try:
            wanted = str(uuidlib.UUID(key))
        except ValueError:
            wanted = ""
        for status in statuses:
            if wanted and status.uuid == wanted:
                return status.name
        raise NotFound(f"Network not found: no network with matching name '{key}'")

    async def list_networks(self, req: Request) -> list[dict[str, Any]]:
        return [dataclasses.asdict(s) for s in await self.run(self.driver.list)]

    async def define(self, req: Request) -> dict[str, Any]:
        body: types.DefineRequest = req.data
        xml = body["xml"]
        if body.get("start"):
            status = await self.run(lambda: self.driver.create(xml))
            self.events.publish("network", status.name, "started", "created")
        else:
            status = await self.run(lambda: self.driver.define(xml))
            self.events.publish("network", status.name, "defined", "")
        return dataclasses.asdict(status)

    async def info(self, req: Request) -> dict[str, Any]:
        name = await self._resolve(req.params["name"])
        return dataclasses.asdict(await self.run(lambda: self.driver.info(name)))

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        name = await self._resolve(req.params["name"])
        inactive = req.args["inactive"]
        return {"xml": await self.run(lambda: self.driver.dumpxml(name, inactive=inactive))}

    async def leases(self, req: Request) -> list[dict[str, Any]]:
        name = await self._resolve(req.params["name"])
        mac = req.args["mac"]
        return [dataclasses.asdict(lease) for lease in await self.run(lambda: self.driver.leases(name, mac))]

    async def undefine(self, req: Request) -> dict[str, Any]:
        name = await self._resolve(req.params["name"])
        await self.run(lambda: self.driver.undefine(name))
        self.events.publish("network", name, "undefined", "")
        return {"name": name}

    async def start(self, req: Request) -> dict[str, Any]:
        name = await self._resolve(req.params["name"])
        await self.run(lambda: self.driver.start(name))
        self.events.publish("network", name, "started", "")
        return dataclasses.asdict(await self.run(lambda: self.driver.info(name)))

    async def destroy(self, req: Request) -> dict[str, Any]:
        name = await self._resolve(req.params["name"])
        status = await self.run(lambda: self.driver.destroy(name))
        self.events.publish("network", name, "stopped", "")
        return dataclasses.asdict(status)

    async def set_autostart(self, req: Request) -> dict[str, Any]:
        body: types.AutostartRequest = req.data
        name = await self._resolve(req.params["name"])
        await self.run(lambda: self.driver.set_autostart(name, body["enabled"]))
        return dataclasses.asdict(await self.run(lambda: self.driver.info(name)))

    async def domifaddr(self, req: Request) -> list[dict[str, Any]]:
        assert self.domains is not None
        obj = self.domains.lookup(req.params["name"])
        source = req.args["source"] or "lease"
        if source == "agent":
            from pyvirt.daemon.agent import call
            from pyvirt.daemon.guestinfo import interface_addresses

            return interface_addresses(await call(obj, "guest-network-get-interfaces") or [])
        if source not in ("lease", "arp"):
            raise InvalidArgument(f"Unknown data source '{source}' (lease, arp or agent)")
        if not obj.active:
            raise InvalidState("Requested operation is not valid: domain is not running")
        if source == "arp":
            return await self._arp_addresses(obj.current)
        dom = obj.current
        out: list[dict[str, Any]] = []
        for nic in dom.devices.interfaces:
            if nic.type != "network" or not nic.source_network or not nic.mac:
                continue
            try:
                leases = await self.run(
                    lambda net=nic.source_network, mac=nic.mac: self.driver.leases(net, mac)  # type: ignore[misc]
                )
            except NotFound:
                continue
            for lease in leases:
                out.append(
                    {
                        "name": nic.target_dev,
                        "mac": nic.mac,
                        "protocol": lease.protocol,
                        "address": f"{lease.ip}/{lease.prefix}",
                    }
                )
        return out

    async def _arp_addresses(self, dom: Domain) -> list[dict[str, Any]]:
        """domifaddr --source arp: the host's neighbours with a MAC of the domain (prefix 0, as libvirt)."""
        table = await self.run(self.driver.arp_table)
        out: list[dict[str, Any]] = []
        for nic in dom.devices.interfaces:
            if not nic.mac:
                continue
            for ip, mac in table:
                if mac == nic.mac.lower():
                    out.append(
                        {"name": nic.target_dev, "mac": nic.mac, "protocol": "ipv4", "address": f"{ip}/0"}
                    )
        return out
