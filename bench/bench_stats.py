"""Statistics, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

With 50 running test guests (128 MiB, a virtio balloon reporting every 2 s) on each side in turn, both
daemons inside a network namespace this script makes (bench_domains' helpers):

- ``domstats`` of the 50 domains (one CLI call, every group);
- ``dommemstat`` of one domain;
- a ``/metrics`` scrape with 50 domains (pyvirt only: libvirt has none), over the daemon's socket;
- the daemon's resident memory with the 50 domains running.

One side at a time holds its 50 guests (100 TCG guests at once would measure the CPU, not the tools);
each figure is the median of ``--repeat`` calls, made once every guest has booted.

    flock /tmp/bench.lock python bench/bench_stats.py [--repeat N] [--count N] [--json] [--no-libvirt]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_domains import Libvirt, Pyvirt, Tool, median_ms, netns, rss_kib, timed  # noqa: E402

from tests.support.guest import domain_xml, guest_artifacts  # noqa: E402


def guest_xml(tmp: Path, name: str) -> Path:
    xml = domain_xml(name, memory_mib=128, balloon=True)
    xml = xml.replace(
        '<memballoon model="virtio" />', "<memballoon model='virtio'><stats period='2'/></memballoon>"
    )
    assert "stats period" in xml, xml
    path = tmp / f"{name}.xml"
    path.write_text(xml)
    return path


def scrape(sock_path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sock_path))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: pyvirt\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    reply = b"".join(chunks)
    assert b" 200 " in reply.split(b"\r\n", 1)[0], reply[:200]
    return reply


def measure(tool: Tool, tmp: Path, count: int, repeat: int) -> dict[str, float]:
    names = [f"bench-st{i}" for i in range(count)]
    for name in names:
        result = tool.cli("define", str(guest_xml(tmp, name)))
        assert result.returncode == 0, f"{tool.name}: {result.stderr}"
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda n: tool.cli("start", n), names))
    failed = [r.stderr for r in results if r.returncode != 0]
    assert not failed, f"{tool.name}: {failed[:3]}"
    # Booted: every guest's balloon driver has reported (its last_update is set).
    deadline = time.monotonic() + 900
    for name in names:
        while "last_update" not in tool.cli("dommemstat", name).stdout:
            assert time.monotonic() < deadline, f"{tool.name}: {name} never reported memory statistics"
            time.sleep(1)
    out: dict[str, float] = {}
    listing = tool.cli("domstats").stdout
    assert listing.count("Domain: ") == count and "block.count" in listing, listing[:500]
    out["domstats_50_ms"] = median_ms([timed(lambda: tool.cli("domstats")) for _ in range(repeat)])
    out["dommemstat_ms"] = median_ms([timed(lambda: tool.cli("dommemstat", names[0])) for _ in range(repeat)])
    if isinstance(tool, Pyvirt):
        sock = tool.root / "run/pyvirt/pyvirt-sock"
        assert scrape(sock).count(b"pyvirt_domain_state{") == count
        out["metrics_scrape_50_ms"] = median_ms([timed(lambda: scrape(sock)) for _ in range(repeat)])
    out["daemon_rss_kib_with_50_running"] = rss_kib(tool.daemon_pid())
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda n: tool.cli("destroy", n), names))
    for name in names:
        tool.cli("undefine", name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-libvirt", action="store_true")
    args = parser.parse_args()
    guest_artifacts()
    results: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()[0]
    with netns(), tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)
        for make in [Pyvirt] if args.no_libvirt else [Pyvirt, Libvirt]:
            tool = make()
            if isinstance(tool, Pyvirt):
                os.chmod(tool.root, 0o755)  # QEMU's own user traverses it, as a host's /run
            try:
                results[tool.name] = measure(tool, tmp, args.count, args.repeat)
            finally:
                tool.close()  # type: ignore[attr-defined]
    report: dict[str, object] = {"results": results, "load_before": load_before, "count": args.count}
    if "libvirt" in results:
        p, lv = results["pyvirt"], results["libvirt"]
        report["ratios"] = {key: round(p[key] / lv[key], 2) for key in p if lv.get(key)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, values in results.items():
            print(name, values)
        if "ratios" in report:
            print("pyvirt / libvirt:", report["ratios"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
