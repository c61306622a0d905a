"""Statistics, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

With 50 running test guests (128 MiB, a virtio balloon reporting every 2 s) on each side in turn, both
daemons inside a network namespace this script makes (bench_domains' helpers):

- ``domstats`` of the 50 domains (one CLI call, every group);
- ``dommemstat`` of one domain;
- a ``/metrics`` scrape with 50 domains (pyvirt only: libvirt has none), over the daemon's socket;
- the daemon's resident memory with the 50 domains running.

One side at a time holds its 50 guests (100 TCG guests at once would measure the CPU, not the tools);
each figure is the median of ``--repeat`` calls, made once every guest has booted and gone idle: a
guest's balloon driver reports long before its init has finished, and fifty TCG guests still booting
saturate two CPUs. The script waits until the 50 QEMUs together use less than ``--idle-cpu`` CPUs
(fifty idle test guests use about 0.1), and reports beside the times what the measurement shared the
machine with: the load average before and after, the QEMUs' CPU and the whole machine's busy CPUs while
measuring, and the CPU each call cost the client (the CLI process) and the daemon.

    flock /work/team/bench.lock python bench/bench_stats.py [--repeat N] [--count N] [--json] [--no-libvirt]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import resource
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


def guest_pids(names: list[str]) -> list[int]:
    """The QEMU processes of these guests (both daemons name them ``-name guest=NAME,...``)."""
    wanted = {f"guest={name}".encode() for name in names}
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-name" in argv[:-1] and argv[argv.index(b"-name") + 1].split(b",")[0] in wanted:
                out.append(int(entry))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields[:8]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_idle(pids: list[int], idle_cpu: float, limit: float) -> float:
    """Wait (up to ``limit`` s) until the guests together use less than ``idle_cpu`` CPUs over 10 s;
    the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(pids)
        time.sleep(10)
        if (cpu_seconds(pids) - before) / 10 < idle_cpu:
            break
    return round(time.monotonic() - start)


class Window:
    """What a measurement shared the machine with: the guests' CPU, the machine's busy CPUs, the CPU
    of the client processes and of the daemon, per call."""

    def __init__(self, guests: list[int], daemon: int) -> None:
        self.guests, self.daemon = guests, daemon

    def __enter__(self) -> Window:
        self.t0 = time.monotonic()
        self.g0, self.d0, self.c0 = cpu_seconds(self.guests), cpu_seconds([self.daemon]), children_cpu()
        self.m0 = machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        m1 = machine_busy()
        self.guests_cpus = round((cpu_seconds(self.guests) - self.g0) / wall, 2)
        self.machine_cpus = round((m1[0] - self.m0[0]) / wall, 2)
        self.daemon_s = cpu_seconds([self.daemon]) - self.d0
        self.client_s = children_cpu() - self.c0

    def report(self, out: dict[str, float], key: str, calls: int) -> None:
        out[f"{key}_guests_cpus"] = self.guests_cpus
        out[f"{key}_machine_busy_cpus"] = self.machine_cpus
        out[f"{key}_daemon_cpu_ms_per_call"] = round(self.daemon_s / calls * 1000, 1)
        if self.client_s:
            out[f"{key}_client_cpu_ms_per_call"] = round(self.client_s / calls * 1000, 1)


def measure(tool: Tool, tmp: Path, count: int, repeat: int, idle_cpu: float) -> dict[str, float]:
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
    out: dict[str, float] = {"load_after_boot": round(os.getloadavg()[0], 1)}
    pids = guest_pids(names)
    assert len(pids) == count, f"{tool.name}: {len(pids)} QEMU processes found for {count} guests"
    out["idle_wait_s"] = wait_idle(pids, idle_cpu, 600)
    out["load_at_measure_start"] = round(os.getloadavg()[0], 1)
    listing = tool.cli("domstats").stdout
    assert listing.count("Domain: ") == count and "block.count" in listing, listing[:500]
    daemon = tool.daemon_pid()
    with Window(pids, daemon) as window:
        out["domstats_50_ms"] = median_ms([timed(lambda: tool.cli("domstats")) for _ in range(repeat)])
    window.report(out, "domstats", repeat)
    with Window(pids, daemon) as window:
        out["dommemstat_ms"] = median_ms(
            [timed(lambda: tool.cli("dommemstat", names[0])) for _ in range(repeat)]
        )
    window.report(out, "dommemstat", repeat)
    if isinstance(tool, Pyvirt):
        sock = tool.root / "run/pyvirt/pyvirt-sock"
        assert scrape(sock).count(b"pyvirt_domain_state{") == count
        with Window(pids, daemon) as window:
            out["metrics_scrape_50_ms"] = median_ms([timed(lambda: scrape(sock)) for _ in range(repeat)])
        window.report(out, "metrics", repeat)
    out["load_at_measure_end"] = round(os.getloadavg()[0], 1)
    out["daemon_rss_kib_with_50_running"] = rss_kib(daemon)
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
    parser.add_argument("--idle-cpu", type=float, default=0.5, help="the guests' CPUs that count as idle")
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
                results[tool.name] = measure(tool, tmp, args.count, args.repeat, args.idle_cpu)
            finally:
                tool.close()
    report: dict[str, object] = {"results": results, "load_before": load_before, "count": args.count}
    report["load_end"] = os.getloadavg()[0]
    if "libvirt" in results:
        p, lv = results["pyvirt"], results["libvirt"]
        timings = ("domstats_50_ms", "dommemstat_ms", "daemon_rss_kib_with_50_running")
        report["ratios"] = {key: round(p[key] / lv[key], 2) for key in timings if lv.get(key)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"load average: {report['load_before']:.1f} before, {report['load_end']:.1f} after")
        for name, values in results.items():
            print(name, values)
        if "ratios" in report:
            print("pyvirt / libvirt:", report["ratios"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
