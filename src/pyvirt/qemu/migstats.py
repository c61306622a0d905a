"""A migration's statistics (QMP ``query-migrate``, also a save's) as libvirt 9.0 gives them to
domjobinfo: virDomainGetJobStats' typed parameters (``time_elapsed``, ``data_total``,
``memory_constant``...) in libvirt's order and units (ms, bytes, pages, bytes per second). Those QEMU
does not report are left out, as libvirt leaves them out."""

from __future__ import annotations

from typing import Any


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def job_stats(info: dict[str, Any]) -> dict[str, int]:
    """libvirt's job statistics of a ``query-migrate`` reply."""
    out: dict[str, int] = {}

    def put(name: str, value: Any) -> None:
        number = _int(value)
        if number is not None:
            out[name] = number

    put("time_elapsed", info.get("total-time"))
    # A finished migration's downtime, else the one QEMU expects (virsh: "Expected downtime").
    put("downtime", info.get("downtime", info.get("expected-downtime")))
    put("setup_time", info.get("setup-time"))
    ram: dict[str, Any] = info.get("ram") or {}
    disk: dict[str, Any] = info.get("disk") or {}
    if ram:  # not while QEMU sets the migration up: no figures rather than zeros
        for name, key in (
            ("data_total", "total"),
            ("data_processed", "transferred"),
            ("data_remaining", "remaining"),
        ):
            out[name] = int(ram.get(key, 0)) + int(disk.get(key, 0))
        put("memory_total", ram.get("total"))
        put("memory_processed", ram.get("transferred"))
        put("memory_remaining", ram.get("remaining"))
        put("memory_constant", ram.get("duplicate"))
        put("memory_normal", ram.get("normal"))
        put("memory_normal_bytes", ram.get("normal-bytes"))
        bps = _int(ram.get("mbps"))
        if bps:  # Mbit/s
            out["memory_bps"] = int(float(ram["mbps"]) * 1_000_000 / 8)
        put("memory_dirty_rate", ram.get("dirty-pages-rate"))
        put("memory_iteration", ram.get("dirty-sync-count"))
        put("memory_postcopy_requests", ram.get("postcopy-requests"))
        if _int(ram.get("page-size")):
            put("memory_page_size", ram.get("page-size"))
    cache: dict[str, Any] = info.get("xbzrle-cache") or {}
    for name, key in (
        ("compression_cache", "cache-size"),
        ("compression_bytes", "bytes"),
        ("compression_pages", "pages"),
        ("compression_cache_misses", "cache-miss"),
        ("compression_overflow", "overflow"),
    ):
        put(name, cache.get(key))
    put("auto_converge_throttle", info.get("cpu-throttle-percentage"))
    return out
