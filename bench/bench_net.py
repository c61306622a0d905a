"""Benchmark: net-start / net-destroy latency and plugging 20 guest taps, inside a throw-away namespace.

Run as root: ``python bench/bench_net.py [--rounds N] [--json]``. Everything happens in a network
namespace made (and deleted) by this script, under a temporary PYVIRT root. The libvirt side of the
comparison (issue 4: target <= 0.5x libvirt 9.0) is to be run by the same harness once libvirt is set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pyvirt.network.driver import NetworkDriver
from pyvirt.paths import system_layout

NET = """<network><name>bench</name><forward mode='nat'/><bridge name='pvbrb0'/>
<ip address='10.123.0.1' prefix='24'><dhcp><range start='10.123.0.2' end='10.123.0.254'/></dhcp></ip>
</network>"""


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


def run(rounds: int) -> dict[str, object]:
    ns = f"pvbench-{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix="pvbench-"))
    root.chmod(0o755)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        layout = system_layout(root)
        layout.ensure()
        driver = NetworkDriver(layout, netns=ns)
        driver.define(NET)
        starts: list[float] = []
        destroys: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            driver.start("bench")
            t1 = time.perf_counter()
            driver.destroy("bench")
            t2 = time.perf_counter()
            starts.append(t1 - t0)
            destroys.append(t2 - t1)
        driver.start("bench")
        t0 = time.perf_counter()
        taps = [
            driver.plug_tap(network="bench", bridge=None, mac=f"52:54:00:12:34:{i:02x}") for i in range(20)
        ]
        plug = time.perf_counter() - t0
        for tap in taps:
            driver.unplug_tap(tap)
        driver.destroy("bench")
        driver.close()
        return {
            "rounds": rounds,
            "net_start": _ms(starts),
            "net_destroy": _ms(destroys),
            "plug_20_taps_ms": round(plug * 1000, 2),
        }
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_net: needs root (network namespaces)", file=sys.stderr)
        return 1
    result = run(args.rounds)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"net-start   median {result['net_start']['median_ms']} ms")  # type: ignore[index]
        print(f"net-destroy median {result['net_destroy']['median_ms']} ms")  # type: ignore[index]
        print(f"20 taps plugged in {result['plug_20_taps_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
