"""The handlers of domain statistics and resources (domstats, dommemstat, setmem, setvcpus...), bound
to their actions of the API table; the work is in :mod:`pyvirt.daemon.stats` and
:mod:`pyvirt.daemon.resources`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyvirt.daemon import iftune, iotune, resources, stats, tuning
from pyvirt.daemon.actions import DomainActions
from pyvirt.daemon.http import RawReply, Request
from pyvirt.daemon.metrics import CONTENT_TYPE, Metrics
from pyvirt.daemon.routes import Handlers

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainRegistry


def scope(body: dict[str, Any], active: bool) -> tuple[bool, bool]:
    """virsh's --live/--config/--current: neither given is the current state (the running domain
    while it runs, else its definition)."""
    live, config = bool(body.get("live")), bool(body.get("config"))
    if not live and not config:
        return (True, False) if active else (False, True)
    return live, config


def _words(text: str | None) -> list[str]:
    return [word for word in (text or "").split(",") if word]


class MonitoringAPI(DomainActions):
    """Statistics and resource handlers of one daemon (the domain registry is bound at start-up)."""

    def __init__(self, networks: Any = None, storage: Any = None) -> None:
        self.metrics = Metrics()
        self.metrics.networks = networks
        self.metrics.storage = storage

    async def startup(self, domains: DomainRegistry) -> None:
        await super().startup(domains)
        self.metrics.domains = domains

    def handlers(self) -> Handlers:
        return {
            "host.metrics": self.scrape,
            "domain.stats": self.domstats,
            "domain.cpu_stats": self.cpu_stats,
            "domain.memstats": self.memstats,
            "domain.memstats_period": self.memstats_period,
            "domain.set_memory": self.set_memory,
            "domain.vcpus": self.vcpus,
            "domain.set_vcpus": self.set_vcpus,
            "domain.pin": self.pin,
            "domain.iotune": self.iotune,
            "domain.set_iotune": self.set_iotune,
            "domain.iothreads": self.iothreads,
            "domain.iftune": self.iftune,
            "domain.set_iftune": self.set_iftune,
            "domain.memtune": self.memtune,
            "domain.set_memtune": self.set_memtune,
            "domain.schedinfo": self.schedinfo,
            "domain.set_schedinfo": self.set_schedinfo,
        }

    async def scrape(self, req: Request) -> RawReply:
        return RawReply(await self.metrics.scrape(), CONTENT_TYPE)

    async def domstats(self, req: Request) -> list[dict[str, Any]]:
        args = req.args
        return await stats.collect(
            self.domains, _words(args["domains"]), _words(args["groups"]), _words(args["filters"])
        )

    async def cpu_stats(self, req: Request) -> dict[str, Any]:
        return await stats.percpu(self.domains.lookup(req.params["name"]), count_only=req.args["count"])

    async def memstats(self, req: Request) -> dict[str, Any]:
        return {"stats": await stats.memory_stats(self.domains.lookup(req.params["name"]))}

    async def memstats_period(self, req: Request) -> dict[str, Any]:
        body: types.ScopedValueRequest = req.data
        name = req.params["name"]
        live, config = scope(dict(body), self.domains.lookup(name).active)
        await stats.set_period(self.domains, name, body["value"], live=live, config=config)
        return {}

    def _scope(self, req: Request) -> tuple[str, bool, bool]:
        name = req.params["name"]
        live, config = scope(dict(req.data), self.domains.lookup(name).active)
        return name, live, config

    async def set_memory(self, req: Request) -> dict[str, Any]:
        body: types.SetMemoryRequest = req.data
        name, live, config = self._scope(req)
        await resources.set_memory(
            self.domains, name, body["kib"], maximum=body.get("maximum", False), live=live, config=config
        )
        return {}

    async def vcpus(self, req: Request) -> dict[str, Any]:
        return await resources.vcpu_info(self.domains, req.params["name"], config=req.args["config"])

    async def set_vcpus(self, req: Request) -> dict[str, Any]:
        body: types.SetVcpusRequest = req.data
        name, live, config = self._scope(req)
        await resources.set_vcpus(
            self.domains, name, body["count"], maximum=body.get("maximum", False), live=live, config=config
        )
        return {}

    async def pin(self, req: Request) -> dict[str, Any]:
        body: types.PinRequest = req.data
        name, live, config = self._scope(req)
        await resources.pin(
            self.domains, name, body["cpulist"], vcpu=body.get("vcpu"), live=live, config=config
        )
        return {}

    async def iotune(self, req: Request) -> dict[str, Any]:
        return await iotune.get_iotune(
            self.domains, req.params["name"], req.params["device"], config=req.args["config"]
        )

    async def set_iotune(self, req: Request) -> dict[str, Any]:
        name = req.params["name"]
        live, config = scope(dict(req.data), self.domains.lookup(name).active)
        changes = {k: v for k, v in req.data.items() if k not in ("live", "config")}
        await iotune.set_iotune(self.domains, name, req.params["device"], changes, live=live, config=config)
        return {}

    async def iothreads(self, req: Request) -> list[dict[str, Any]]:
        return await iotune.iothreads(self.domains, req.params["name"], config=req.args["config"])

    async def memtune(self, req: Request) -> dict[str, int]:
        return await tuning.memtune(self.domains, req.params["name"], config=req.args["config"])

    async def set_memtune(self, req: Request) -> dict[str, Any]:
        name = req.params["name"]
        live, config = scope(dict(req.data), self.domains.lookup(name).active)
        await tuning.set_memtune(self.domains, name, tuning.body_values(req.data), live=live, config=config)
        return {}

    async def schedinfo(self, req: Request) -> dict[str, int]:
        return await tuning.schedinfo(self.domains, req.params["name"], config=req.args["config"])

    async def set_schedinfo(self, req: Request) -> dict[str, Any]:
        name = req.params["name"]
        live, config = scope(dict(req.data), self.domains.lookup(name).active)
        await tuning.set_schedinfo(self.domains, name, tuning.body_values(req.data), live=live, config=config)
        return {}

    async def iftune(self, req: Request) -> dict[str, int]:
        params = req.params
        return await iftune.get_iftune(
            self.domains, params["name"], params["device"], config=req.args["config"]
        )

    async def set_iftune(self, req: Request) -> dict[str, Any]:
        name = req.params["name"]
        live, config = scope(dict(req.data), self.domains.lookup(name).active)
        changes = {k: dict(v) for k, v in req.data.items() if k in ("inbound", "outbound")}
        await iftune.set_iftune(self.domains, name, req.params["device"], changes, live=live, config=config)
        return {}
