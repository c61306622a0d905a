"""pyvirtd --listen-metrics ADDR:PORT: plain HTTP on loopback serving /metrics only, read by
Prometheus' own parser, counting the requests it answers; a bad address stops the daemon's start."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Daemon


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_listener_serves_metrics_only() -> None:
    port = free_port()
    d = Daemon()
    try:
        d.start("--listen-metrics", f"127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}"
        for _ in range(2):
            with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
                assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = reply.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"pyvirt_host_cpu_seconds", "pyvirt_host_memory_bytes", "pyvirt_host_domains"} <= set(families)
        served = [
            s.value
            for s in families["pyvirt_api_requests"].samples
            if s.name == "pyvirt_api_requests_total" and s.labels == {"action": "host.metrics", "code": "200"}
        ]
        assert served and served[0] >= 1, families["pyvirt_api_requests"].samples
        with urllib.request.urlopen(f"{url}/v1/metrics", timeout=30) as reply:
            assert reply.status == 200
        for path, method, status in (("/v1/domains", "GET", 404), ("/metrics", "POST", 405)):
            request = urllib.request.Request(
                f"{url}{path}", method=method, data=b"" if method == "POST" else None
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == status, (path, method)
        assert "domain.list" not in text
    finally:
        d.cleanup()


def test_bad_metrics_address_stops_the_start() -> None:
    d = Daemon()
    try:
        with pytest.raises(RuntimeError, match="--listen-metrics nowhere: expected ADDR:PORT"):
            d.start("--listen-metrics", "nowhere", wait=15)
    finally:
        d.cleanup()
