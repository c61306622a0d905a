"""query-migrate's reply as libvirt 9.0's job statistics (domjobinfo --rawstats' names and order)."""

from __future__ import annotations

from pyvirt.qemu.migstats import job_stats

ACTIVE = {
    "status": "active",
    "total-time": 3871,
    "expected-downtime": 300,
    "setup-time": 6,
    "ram": {
        "total": 134750208,
        "transferred": 2141925,
        "remaining": 116006912,
        "duplicate": 4062,
        "normal": 513,
        "normal-bytes": 2101248,
        "mbps": 0,
        "dirty-pages-rate": 0,
        "dirty-sync-count": 1,
        "postcopy-requests": 0,
        "page-size": 4096,
    },
}


def test_an_active_save_as_libvirt_gives_it() -> None:
    # The order and the figures of virsh domjobinfo --rawstats against libvirt 9.0, for this reply.
    assert list(job_stats(ACTIVE).items()) == [
        ("time_elapsed", 3871),
        ("downtime", 300),
        ("setup_time", 6),
        ("data_total", 134750208),
        ("data_processed", 2141925),
        ("data_remaining", 116006912),
        ("memory_total", 134750208),
        ("memory_processed", 2141925),
        ("memory_remaining", 116006912),
        ("memory_constant", 4062),
        ("memory_normal", 513),
        ("memory_normal_bytes", 2101248),
        ("memory_dirty_rate", 0),
        ("memory_iteration", 1),
        ("memory_postcopy_requests", 0),
        ("memory_page_size", 4096),
    ]


def test_bandwidth_downtime_and_setup() -> None:
    done = {**ACTIVE, "downtime": 12, "ram": {**ACTIVE["ram"], "mbps": 80.0}}  # type: ignore[dict-item]
    stats = job_stats(done)
    assert stats["downtime"] == 12 and stats["memory_bps"] == 10_000_000
    assert job_stats({"status": "setup", "total-time": 5}) == {"time_elapsed": 5}  # no figures yet
    throttled = job_stats({**ACTIVE, "cpu-throttle-percentage": 20, "xbzrle-cache": {"cache-size": 64}})
    assert throttled["auto_converge_throttle"] == 20 and throttled["compression_cache"] == 64
