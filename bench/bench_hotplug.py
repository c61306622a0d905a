"""Disk hot-plug, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

One running test guest per tool (TCG, 128 MiB, pc machine: ACPI hotplug on pci.0), the same raw file
type for both, measured once its serial console (a file) says it has booted. Each round, per tool
(the tools' order alternating round by round): ``attach-disk DOM FILE vdb`` (command issued →
answered; the guest then sees the disk), then ``detach-disk DOM vdb`` and ``domblklist`` polled until
vdb is gone (libvirt's detach returns once the guest let go, or after its 5 s wait; pyvirt's once the
guest let go). A warm-up round per tool first. Both daemons run in a network namespace this script
makes, with the helpers of ``bench_domains.py``.

    flock /tmp/bench.lock python bench/bench_hotplug.py [--repeat N] [--json] [--no-libvirt]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_domains import Tool, arguments, interleaved, median_ms, report, side_by_side, write_xml

from tests.support.guest import guest_artifacts

DOMAIN = "bench-hp"


def gone(tool: Tool, target: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target not in tool.cli("domblklist", DOMAIN).stdout:
            return
        time.sleep(0.01)
    raise SystemExit(f"{tool.name}: {target} still attached after {timeout:.0f}s")


def cycle(tool: Tool, disk: Path, warm_up: bool = False) -> tuple[float, float, float]:
    """(attach, detach command, attach → gone) seconds of one attach-disk + detach-disk; in the
    warm-up a detach the guest is still too busy booting to answer in time is waited for."""
    t0 = time.perf_counter()
    result = tool.cli("attach-disk", DOMAIN, str(disk), "vdb")
    t1 = time.perf_counter()
    assert result.returncode == 0, f"{tool.name}: attach-disk: {result.stderr}"
    result = tool.cli("detach-disk", DOMAIN, "vdb")
    t2 = time.perf_counter()
    assert result.returncode == 0 or warm_up, f"{tool.name}: detach-disk: {result.stderr}"
    gone(tool, "vdb")
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t0


def serial_to_file(xml: Path, log: Path) -> Path:
    """The domain's serial console written to ``log`` (the guest says there when it has booted), and
    128 MiB: the test guest (its initramfs has grown) no longer boots in 64."""
    text = xml.read_text().replace('<memory unit="MiB">64</memory>', '<memory unit="MiB">128</memory>')
    pty = '<serial type="pty">\n      <target port="0" />\n    </serial>'
    console = '<console type="pty">\n      <target type="serial" port="0" />\n    </console>'
    assert pty in text and console in text, text
    text = text.replace(pty, f'<serial type="file"><source path="{log}"/><target port="0"/></serial>')
    xml.write_text(text.replace(console, ""))
    return xml


def booted(tool: Tool, log: Path, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and b"pyvirt-guest: ready" in log.read_bytes():
            return
        time.sleep(0.5)
    raise SystemExit(f"{tool.name}: the guest did not boot in {timeout:.0f}s")


def measure(tools: list[Tool], tmp: Path, repeat: int) -> dict[str, dict[str, float]]:
    disks = {}
    logs = {tool.name: tmp / f"{tool.name}-serial.log" for tool in tools}
    for tool in tools:
        disk = tmp / f"{tool.name}-data.raw"
        with open(disk, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)
        disks[tool.name] = disk
        result = tool.cli("define", str(serial_to_file(write_xml(tmp, DOMAIN), logs[tool.name])))
        assert result.returncode == 0, f"{tool.name}: {result.stderr}"
        result = tool.cli("start", DOMAIN)
        assert result.returncode == 0, f"{tool.name}: {result.stderr}"
    for tool in tools:  # the guests booted (TCG): their ACPI answers hotplug requests
        booted(tool, logs[tool.name])
    for tool in tools:  # warm-up, waiting as long as the guest needs
        cycle(tool, disks[tool.name], warm_up=True)
    parts: dict[str, dict[str, list[float]]] = {t.name: {"a": [], "d": [], "ad": []} for t in tools}

    def run(tool: Tool, i: int) -> float:
        attach, detach, total = cycle(tool, disks[tool.name])
        parts[tool.name]["a"].append(attach)
        parts[tool.name]["d"].append(detach)
        return total

    totals = interleaved(tools, repeat, run)
    out: dict[str, dict[str, float]] = {}
    for tool in tools:
        out[tool.name] = {
            "attach_disk_ms": median_ms(parts[tool.name]["a"]),
            "detach_disk_ms": median_ms(parts[tool.name]["d"]),
            "attach_then_detach_until_gone_ms": median_ms(totals[tool.name]),
        }
        tool.cli("destroy", DOMAIN)
        tool.cli("undefine", DOMAIN)
    return out


def main() -> int:
    args = arguments(__doc__, repeat=15).parse_args()
    guest_artifacts()
    load_before = os.getloadavg()[0]
    with side_by_side(args.no_libvirt) as (tools, tmp):
        results = measure(tools, tmp, args.repeat)
    return report(results, load_before, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
