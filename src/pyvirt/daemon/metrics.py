"""Prometheus metrics of the daemon: the host, every domain, network and pool, and the API's own
request counts and latencies, in the text exposition format.

A scrape gathers the domains' statistics (:func:`pyvirt.daemon.stats.collect`, the same numbers as
``domstats``), reads the host's counters from /proc and asks the network and storage drivers for their
status; :mod:`pyvirt.daemon.exposition` writes those families' text as they are filled. Request
counts and latencies are kept as requests end (:meth:`Metrics.observe`, the HTTP server's hook).

A scrape asks QEMU nothing: CPU, vCPU, memory and network counters are read from /proc and the
cgroups, the balloon's size is the one the daemon keeps from QEMU's events, and the guest's memory
report and the block counters are the last ones asked of each QEMU (:mod:`pyvirt.daemon.stats`),
which a background task asks again every :data:`REFRESH_SECONDS` while scrapes keep coming (and any
``domstats`` or ``dommemstat`` refreshes); ``pyvirt_domain_block_stats_timestamp_seconds`` says when
the block counters were asked (the memory report's own time is the guest's ``last_update``). Only a
domain never asked yet is asked during the scrape. On a host whose CPUs the guests saturate, each QEMU
answers a query when the scheduler gets to it: a scrape that waited for fifty of them would take as
long as the slowest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import stats
from pyvirt.daemon.exposition import Family, Requests, counter, gauge, render

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFRESH_SECONDS = 5  # how often the QEMU statistics a scrape shows are asked again
IDLE_SECONDS = 300  # no scrape for this long: the refresh stops (the next scrape starts it again)
_TICK = os.sysconf("SC_CLK_TCK")
_STATES = ("running", "paused", "in shutdown", "shut off", "crashed", "pmsuspended")


class Metrics:
    """One daemon's metrics: request counters kept as requests end, everything else read per scrape."""

    def __init__(self) -> None:
        self.requests = Requests(
            "pyvirt_api_requests",
            "API requests served, by action and HTTP status",
            "pyvirt_api_request_duration_seconds",
            "Time to answer an API request, by action",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.domains: DomainRegistry | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._last_scrape = 0.0
        self.networks: Any = None  # pyvirt.daemon.networks.NetworkAPI
        self.storage: Any = None  # pyvirt.daemon.storage.StorageAPI

    def _keep_refreshing(self) -> None:
        """Refresh the QEMU statistics scrapes show, in the background, while scrapes keep coming."""
        self._last_scrape = time.monotonic()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        assert self.domains is not None
        while time.monotonic() - self._last_scrape < IDLE_SECONDS:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await stats.refresh_kept(self.domains)
            except Exception:  # a domain going away meanwhile: the next round asks the others again
                log.exception("refreshing the statistics /metrics shows")

    def observe(self, action: str, status: int, seconds: float) -> None:
        """A request of ``action`` answered with HTTP ``status`` after ``seconds``."""
        self.requests.observe(action, status, seconds)

    async def scrape(self) -> bytes:
        """Every metric, in the text exposition format."""
        families: list[Family] = []
        families += host_families()
        if self.domains is not None:
            families += await domain_families(self.domains)
            self._keep_refreshing()
        if self.networks is not None:
            families += await self._network_families()
        if self.storage is not None:
            families += await self._pool_families()
        return (render(families) + self.requests.text()).encode()

    async def _network_families(self) -> list[Family]:
        api = self.networks
        active = gauge("pyvirt_network_active", "Whether the network runs", "network")
        leases = gauge("pyvirt_network_dhcp_leases", "DHCP leases the network's dnsmasq holds", "network")
        for status in await api.run(api.driver.list):
            active.add([status.name], 1 if status.active else 0)
            if status.active:
                try:
                    count = len(await api.run(lambda name=status.name: api.driver.leases(name)))
                except Exception:  # a network stopping meanwhile: its leases are left out
                    continue
                leases.add([status.name], count)
        return [active, leases]

    async def _pool_families(self) -> list[Family]:
        driver = self.storage.driver
        out = {
            key: gauge(f"pyvirt_pool_{key}_bytes", text, "pool")
            for key, text in (
                ("capacity", "The pool's capacity"),
                ("allocation", "Bytes allocated in the pool"),
                ("available", "Bytes still free in the pool"),
            )
        }
        active = gauge("pyvirt_pool_active", "Whether the pool is started", "pool")
        volumes = gauge("pyvirt_pool_volumes", "Volumes in the pool", "pool")
        for pool in await asyncio.to_thread(driver.list_pools):
            active.add([pool.name], 1 if pool.active else 0)
            for key, family in out.items():
                value = getattr(pool, key)
                if value is not None:
                    family.add([pool.name], value)
            if pool.volumes is not None:
                volumes.add([pool.name], pool.volumes)
        return [active, *out.values(), volumes]


def host_families() -> list[Family]:
    cpu = counter("pyvirt_host_cpu_seconds", "CPU time of the host, by mode (nodecpustats)", "mode")
    for mode, seconds in host_cpu_seconds().items():
        cpu.add([mode], seconds)
    memory = gauge("pyvirt_host_memory_bytes", "Host memory (nodememstats)", "kind")
    for kind, kib in host_memory_kib().items():
        memory.add([kind], kib * 1024)
    return [cpu, memory]


def host_cpu_seconds() -> dict[str, float]:
    """The host's CPU time per mode, as nodecpustats counts it (user includes nice, system the
    interrupts)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = (fields + [0] * 7)[:7]
    return {
        "user": (user + nice) / _TICK,
        "system": (system + irq + softirq) / _TICK,
        "idle": idle / _TICK,
        "iowait": iowait / _TICK,
    }


def host_memory_kib() -> dict[str, int]:
    """/proc/meminfo's total, free, buffers and cached (nodememstats' fields), and available."""
    wanted = {"MemTotal": "total", "MemFree": "free", "Buffers": "buffers", "Cached": "cached"}
    wanted["MemAvailable"] = "available"
    out: dict[str, int] = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in wanted:
                out[wanted[key]] = int(rest.split()[0])
    return out


_BLOCK = (
    ("rd.bytes", "read_bytes", "Bytes read by the guest from the disk"),
    ("wr.bytes", "write_bytes", "Bytes written by the guest to the disk"),
    ("rd.reqs", "read_requests", "Read requests of the guest to the disk"),
    ("wr.reqs", "write_requests", "Write requests of the guest to the disk"),
    ("fl.reqs", "flush_requests", "Flush requests of the guest to the disk"),
)
_NET = (
    ("rx.bytes", "receive_bytes", "Bytes the guest received on the interface"),
    ("tx.bytes", "transmit_bytes", "Bytes the guest sent on the interface"),
    ("rx.pkts", "receive_packets", "Packets the guest received on the interface"),
    ("tx.pkts", "transmit_packets", "Packets the guest sent on the interface"),
    ("rx.errs", "receive_errors", "Receive errors on the interface"),
    ("tx.errs", "transmit_errors", "Transmit errors on the interface"),
    ("rx.drop", "receive_drops", "Received packets dropped on the interface"),
    ("tx.drop", "transmit_drops", "Sent packets dropped on the interface"),
)


async def domain_families(reg: DomainRegistry) -> list[Family]:
    from pyvirt.daemon.agent import agent_channel, agent_connected

    # No capacity metric (one query less); what the daemon keeps of QEMU's answers (the module's text).
    records = await stats.collect(reg, [], [], capacity=False, kept=True)
    by_state = gauge("pyvirt_host_domains", "Domains by state", "state")
    counts = dict.fromkeys(_STATES, 0)
    for each in reg.all():
        word = each.state.virsh(each.reason)
        counts[word] = counts.get(word, 0) + 1
    for word, count in counts.items():
        by_state.add([word], count)

    state = gauge(
        "pyvirt_domain_state", "libvirt's state number (1 running, 3 paused, 5 shut off...)", "domain"
    )
    reason = gauge("pyvirt_domain_state_reason", "libvirt's number of the state's reason", "domain")
    cpu = counter("pyvirt_domain_cpu_seconds", "CPU time of the domain's QEMU, by mode", "domain", "mode")
    vcpus = gauge("pyvirt_domain_vcpus", "vCPUs online", "domain")
    vcpus_max = gauge("pyvirt_domain_vcpus_maximum", "vCPUs the domain may have", "domain")
    vcpu_time = counter("pyvirt_domain_vcpu_seconds", "CPU time of each vCPU", "domain", "vcpu")
    balloon = gauge(
        "pyvirt_domain_memory_balloon_bytes", "The balloon's size: the guest's memory now", "domain"
    )
    maximum = gauge("pyvirt_domain_memory_maximum_bytes", "The domain's maximum memory", "domain")
    usable = gauge(
        "pyvirt_domain_memory_usable_bytes", "Memory the guest can use (its balloon driver)", "domain"
    )
    unused = gauge(
        "pyvirt_domain_memory_unused_bytes", "Memory the guest leaves unused (its balloon driver)", "domain"
    )
    rss = gauge("pyvirt_domain_memory_rss_bytes", "Resident set of the domain's QEMU", "domain")
    block = {
        key: counter(f"pyvirt_domain_block_{name}", text, "domain", "device") for key, name, text in _BLOCK
    }
    net = {
        key: counter(f"pyvirt_domain_interface_{name}", text, "domain", "interface")
        for key, name, text in _NET
    }
    agent = gauge(
        "pyvirt_domain_agent_up", "Whether the guest agent is connected (domains with one)", "domain"
    )
    block_time = gauge(
        "pyvirt_domain_block_stats_timestamp_seconds",
        "When the block counters shown were asked of QEMU",
        "domain",
    )
    objs = {obj.name: obj for obj in reg.all()}
    for record in records:
        name = record["name"]
        one = [name]
        fields: dict[str, Any] = record["fields"]
        state.add(one, fields["state.state"])
        reason.add(one, fields["state.reason"])
        if "cpu.time" in fields:
            cpu.add([name, "user"], fields["cpu.user"] / 1e9)
            cpu.add([name, "system"], fields["cpu.system"] / 1e9)
        vcpus.add(one, fields["vcpu.current"])
        vcpus_max.add(one, fields["vcpu.maximum"])
        for index in range(int(fields["vcpu.maximum"])):
            if f"vcpu.{index}.time" in fields:
                vcpu_time.add([name, str(index)], fields[f"vcpu.{index}.time"] / 1e9)
        balloon.add(one, fields["balloon.current"] * 1024)
        maximum.add(one, fields["balloon.maximum"] * 1024)
        for family, key in ((usable, "balloon.usable"), (unused, "balloon.unused"), (rss, "balloon.rss")):
            if key in fields:
                family.add(one, fields[key] * 1024)
        for index in range(int(fields.get("block.count", 0))):
            device = str(fields[f"block.{index}.name"])
            for key, family in block.items():
                if f"block.{index}.{key}" in fields:
                    family.add([name, device], fields[f"block.{index}.{key}"])
        for index in range(int(fields.get("net.count", 0))):
            if f"net.{index}.name" not in fields:
                continue
            iface = str(fields[f"net.{index}.name"])
            for key, family in net.items():
                family.add([name, iface], fields[f"net.{index}.{key}"])
        obj = objs.get(name)
        asked = stats.block_stats_time(obj.proc) if obj is not None and obj.proc is not None else None
        if asked is not None and int(fields.get("block.count", 0)):
            block_time.add(one, asked)
        if obj is not None and obj.active and agent_channel(obj.current) is not None:
            agent.add(one, 1 if agent_connected(obj) else 0)
    return [
        by_state,
        state,
        reason,
        cpu,
        vcpus,
        vcpus_max,
        vcpu_time,
        balloon,
        maximum,
        usable,
        unused,
        rss,
        *block.values(),
        block_time,
        *net.values(),
        agent,
    ]
