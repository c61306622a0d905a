"""The statistics helpers: libvirt's state and reason numbers, the guest's balloon statistics in libvirt's
names and units, disks found in QMP replies by their node name, the kernel counters read from /proc, and
the QMP replies kept between calls (the guest's memory report, the block statistics of /metrics)."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.daemon import stats
from pyvirt.daemon.domains import DomainObject
from pyvirt.daemon.lifecycle import Paused, Running, Shutoff
from pyvirt.daemon.stats import block_entries, guest_memory, reason_code
from pyvirt.qemu import procstats

XML = """<domain type='qemu'><name>u1</name><memory unit='MiB'>128</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices>
  <disk type='file' device='disk'><source file='/tmp/a.qcow2'/><driver name='qemu' type='qcow2'/>
    <target dev='vda' bus='virtio'/></disk>
  <disk type='file' device='disk'><source file='/tmp/b.raw'/><driver name='qemu' type='raw'/>
    <target dev='vdb' bus='virtio'/></disk>
</devices></domain>"""


def test_reason_numbers_are_libvirts() -> None:
    assert reason_code(Running.BOOTED) == 1 and reason_code(Running.UNPAUSED) == 5
    assert reason_code(Shutoff.DESTROYED) == 2 and reason_code(Shutoff.DAEMON) == 8
    assert reason_code(Paused.USER) == 1 and reason_code(Paused.SNAPSHOT) == 9
    assert reason_code(Paused.STARTING_UP) == 11  # libvirt's 10 is 'crashed', which pyvirt never gives


def test_guest_memory_in_libvirts_names_and_units() -> None:
    reply = {
        "last-update": 1700000000,
        "stats": {
            "stat-swap-in": 4096,
            "stat-free-memory": 100 * 1024 * 1024,
            "stat-total-memory": 128 * 1024 * 1024,
            "stat-major-faults": 7,
            "stat-htlb-pgfail": -1,
        },
    }
    stats = guest_memory(reply)
    assert stats == {
        "swap_in": 4,
        "major_fault": 7,
        "unused": 102400,
        "available": 131072,
        "last_update": 1700000000,
    }
    assert list(stats) == ["swap_in", "major_fault", "unused", "available", "last_update"]
    assert guest_memory({"last-update": 0, "stats": {"stat-swap-in": 1}}) == {}  # no report yet


def test_disks_found_by_node_name_then_device_id() -> None:
    dom = load_domain_xml(XML)
    dom.devices.disks[1].alias = "ua-data"
    obj = DomainObject(config=dom)
    replies = [
        {"node-name": "pyvirt-1-format", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend"},
        {"node-name": "somewhere-else", "qdev": "/machine/peripheral/ua-data/virtio-backend"},
        {"inserted": {"node-name": "pyvirt-9-format"}},
    ]
    found = block_entries(obj, replies)
    assert found == {0: replies[0], 1: replies[1]}
    assert block_entries(obj, None) == {}


def test_kernel_counters() -> None:
    nets = procstats.net_devices()
    assert "lo" in nets
    lo = nets["lo"]
    assert lo.guest_view().rx_bytes == lo.tx_bytes and lo.guest_view().tx_packets == lo.rx_packets
    cpu = procstats.process_cpu(os.getpid())
    assert cpu.total == cpu.user + cpu.system and cpu.total > 0
    run, _wait = procstats.thread_schedstat(os.getpid(), os.getpid())
    assert run > 0
    assert procstats.thread_schedstat(os.getpid(), 2**22 + 7) == (0, 0)
    assert (procstats.rss_kib(os.getpid()) or 0) > 0
    assert procstats.thread_cpu(os.getpid(), os.getpid()) in os.sched_getaffinity(0)


class _Monitor:
    """Answers the statistics queries and counts them."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.asked: list[str] = []

    async def execute(self, command: str, args: dict[str, Any] | None = None) -> Any:
        name = f"{command}:{args['property']}" if command == "qom-get" and args else command
        self.asked.append(name)
        return {
            "query-balloon": {"actual": 128 << 20},
            "qom-get:guest-stats": self.report,
            "query-blockstats": [{"qdev": "/machine/peripheral/virtio-disk0/virtio-backend", "stats": {}}],
        }[name]


class _Proc:
    def __init__(self, monitor: _Monitor) -> None:
        self.monitor = monitor


def _running(report: dict[str, Any], period: int | None) -> tuple[Any, _Monitor]:
    dom = load_domain_xml(XML.replace("</devices>", "<memballoon model='virtio'/></devices>"))
    assert dom.devices.memballoon is not None
    dom.devices.memballoon.stats_period = period
    monitor = _Monitor(report)
    obj = SimpleNamespace(proc=_Proc(monitor), current=dom, live=dom)
    return obj, monitor


def test_guest_report_kept_until_the_next_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU changes the guest's memory report only when the guest reports, once per polling period:
    it is asked again only once the next report may have come (or while there is none yet)."""
    now = 1_000_000.0
    monkeypatch.setattr(stats.time, "time", lambda: now)
    obj, monitor = _running({"last-update": 999_999, "stats": {"stat-free-memory": 4096}}, period=2)
    for _ in range(2):
        replies = asyncio.run(stats._query(obj, ["balloon"]))
        assert replies["guest-stats"]["stats"] == {"stat-free-memory": 4096}
    assert monitor.asked.count("qom-get:guest-stats") == 1
    now = 1_000_001.0  # last-update + period: the guest may have reported again
    asyncio.run(stats._query(obj, ["balloon"]))
    assert monitor.asked.count("qom-get:guest-stats") == 2
    # No report yet (last-update 0): asked every time.
    obj, monitor = _running({"last-update": 0, "stats": {}}, period=2)
    for _ in range(2):
        asyncio.run(stats._query(obj, ["balloon"]))
    assert monitor.asked.count("qom-get:guest-stats") == 2
    # No polling: the last report stays.
    obj, monitor = _running({"last-update": 5, "stats": {}}, period=None)
    for _ in range(3):
        asyncio.run(stats._query(obj, ["balloon"]))
    assert monitor.asked.count("qom-get:guest-stats") == 1


def test_kept_block_statistics() -> None:
    """domstats asks for block statistics every time; a /metrics scrape takes the last ones kept."""
    obj, monitor = _running({"last-update": 0}, period=None)
    asyncio.run(stats._query(obj, ["block"], capacity=False))
    asyncio.run(stats._query(obj, ["block"], capacity=False))
    assert monitor.asked == ["query-blockstats"] * 2
    assert stats.block_stats_time(obj.proc) is not None
    replies = asyncio.run(stats._query(obj, ["block"], capacity=False, kept=True))
    assert monitor.asked == ["query-blockstats"] * 2 and replies["query-blockstats"][0]["stats"] == {}


def test_kept_guest_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """A /metrics scrape shows the guest's last memory report even once a newer one may have come
    (the background refresh asks for it); with none kept yet it asks."""
    now = 1_000_000.0
    monkeypatch.setattr(stats.time, "time", lambda: now)
    obj, monitor = _running({"last-update": 999_990, "stats": {"stat-free-memory": 4096}}, period=2)
    replies = asyncio.run(stats._query(obj, ["balloon"], kept=True))  # none kept: asked
    assert monitor.asked.count("qom-get:guest-stats") == 1
    for _ in range(2):  # the report is 10 s old, past its period: still the one shown
        replies = asyncio.run(stats._query(obj, ["balloon"], kept=True))
        assert replies["guest-stats"]["stats"] == {"stat-free-memory": 4096}
    assert monitor.asked.count("qom-get:guest-stats") == 1
    asyncio.run(stats._query(obj, ["balloon"]))  # domstats or dommemstat: asked again
    assert monitor.asked.count("qom-get:guest-stats") == 2


def test_refresh_kept_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrapes' background refresh asks each running QEMU for its block statistics and, once the
    next one may have come, the guest's memory report."""
    now = 1_000_000.0
    monkeypatch.setattr(stats.time, "time", lambda: now)
    obj, monitor = _running({"last-update": 999_999, "stats": {}}, period=2)
    stopped = SimpleNamespace(proc=None)
    reg = SimpleNamespace(all=lambda: [obj, stopped])
    asyncio.run(stats.refresh_kept(reg))  # type: ignore[arg-type]
    asyncio.run(stats.refresh_kept(reg))  # type: ignore[arg-type]
    assert monitor.asked.count("query-blockstats") == 2 and monitor.asked.count("qom-get:guest-stats") == 1
    now = 1_000_001.0
    asyncio.run(stats.refresh_kept(reg))  # type: ignore[arg-type]
    assert monitor.asked.count("qom-get:guest-stats") == 2
