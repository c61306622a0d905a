"""save + restore and managedsave + start, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

The same test guest under TCG (direct kernel boot, ``--memory`` MiB, default 256), booted once in each
daemon and left to settle; then ``--repeat`` rounds, each timing for both tools (the order alternating
round by round) ``save DOMAIN FILE`` (command issued → domain shut off, the image on disk),
``restore FILE`` (→ running again), then ``managedsave DOMAIN`` and ``start DOMAIN`` (which resumes
it). Each command is a fresh CLI process (``pyvirt`` vs ``virsh -c qemu:///system``). The daemons run
in a network namespace this script makes, with bench_domains.py's helpers (libvirt is installed and
started by them). Run it under ``flock /tmp/bench.lock`` so that no other benchmark shares the CPUs.

    python bench/bench_save.py [--repeat N] [--memory MIB] [--settle S] [--json] [--no-libvirt]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_domains as bd

from tests.support.guest import domain_xml, guest_artifacts

NAME = "bench-save"


def ok(tool: bd.Tool, *argv: str) -> float:
    """Time one CLI command, which must succeed."""
    result: list[object] = []
    elapsed = bd.timed(lambda: result.append(tool.cli(*argv)))
    done = result[0]
    assert getattr(done, "returncode", 1) == 0, f"{tool.name} {' '.join(argv)}: {getattr(done, 'stderr', '')}"
    return elapsed


def state(tool: bd.Tool) -> str:
    return tool.cli("domstate", NAME).stdout.strip()


def measure(
    tools: list[bd.Tool], tmp: Path, repeat: int, memory: int, settle: float
) -> dict[str, dict[str, float]]:
    xml = tmp / f"{NAME}.xml"
    xml.write_text(domain_xml(NAME, memory_mib=memory))
    for tool in tools:
        ok(tool, "define", str(xml))
        ok(tool, "start", NAME)
    time.sleep(settle)  # the guests boot and go idle
    samples: dict[str, dict[str, list[float]]] = {
        metric: {t.name: [] for t in tools}
        for metric in (
            "save_ms",
            "restore_ms",
            "save_plus_restore_ms",
            "managedsave_ms",
            "start_from_managed_ms",
        )
    }
    sizes: dict[str, int] = {}
    for i in range(repeat):
        for tool in tools if i % 2 == 0 else list(reversed(tools)):
            image = tmp / f"{tool.name}-{i}.save"
            save = ok(tool, "save", NAME, str(image))
            assert state(tool) == "shut off", state(tool)
            restore = ok(tool, "restore", str(image))
            assert state(tool) == "running", state(tool)
            sizes[tool.name] = image.stat().st_size
            image.unlink()
            managed = ok(tool, "managedsave", NAME)
            start = ok(tool, "start", NAME)
            assert state(tool) == "running", state(tool)
            for metric, value in (
                ("save_ms", save),
                ("restore_ms", restore),
                ("save_plus_restore_ms", save + restore),
                ("managedsave_ms", managed),
                ("start_from_managed_ms", start),
            ):
                samples[metric][tool.name].append(value)
    for tool in tools:
        tool.cli("destroy", NAME)
        tool.cli("undefine", NAME, "--managed-save")
    out = {t.name: {m: bd.median_ms(v[t.name]) for m, v in samples.items()} for t in tools}
    for name, size in sizes.items():
        out[name]["image_mib"] = round(size / 2**20, 1)
    return out


def main() -> int:
    args = bd.arguments(__doc__, repeat=7, guest=True).parse_args()
    guest_artifacts()
    load_before = os.getloadavg()[0]
    with bd.side_by_side(args.no_libvirt) as (tools, tmp):
        results = measure(tools, tmp, args.repeat, args.memory, args.settle)
    note = f"; guest {args.memory} MiB, {args.repeat} rounds, median ms"
    return bd.report(results, load_before, as_json=args.json, note=note)


if __name__ == "__main__":
    sys.exit(main())
