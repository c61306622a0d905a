"""Snapshots, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

The same test guest under TCG (direct kernel boot, ``--memory`` MiB, default 256, its own copy of the
qcow2 root disk per tool), booted once in each daemon and left to settle. Then ``--repeat`` rounds of
each step below, each round timing both tools (the order alternating round by round), each command a
fresh CLI process (``pyvirt`` vs ``virsh -c qemu:///system``):

- ``snapshot-create-as DOM mN`` of the running guest: an internal snapshot, disks and RAM into the
  qcow2 image (QEMU's ``snapshot-save`` job for pyvirt, HMP ``savevm`` for libvirt);
- ``snapshot-revert DOM mN`` (the guest running again from it), then ``snapshot-delete DOM mN``;
- ``snapshot-create-as DOM xN --memspec FILE --diskspec vda,file=OVERLAY``: an external snapshot with
  memory (new overlay, RAM into FILE); pyvirt alone then reverts to it (libvirt 9.0 cannot);
- ``snapshot-create-as DOM dN --disk-only``: an external disk-only snapshot; pyvirt alone then
  deletes it (the overlay committed back into its base; libvirt 9.0 refuses to delete an external
  snapshot), so libvirt's chain grows by one overlay a round where pyvirt's does not;
- ``snapshot-list`` of a shut-off domain with 100 (internal, disk-only) snapshots.

The daemons run in a network namespace of the script's own (bench_domains.py's helpers, which install
and start libvirt). Hold the benchmark lock, as only one libvirtd may run::

    flock /tmp/bench.lock python bench/bench_snapshots.py [--repeat N] [--memory MIB] [--json] [--no-libvirt]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_domains as bd

from tests.support.guest import domain_xml, guest_artifacts

LIST_COUNT = 100
DOM = "bench-snap"
LISTED = "bench-list"


def ok(tool: bd.Tool, *argv: str) -> str:
    result = tool.cli(*argv)
    assert result.returncode == 0, f"{tool.name} {' '.join(argv)}: {result.stderr}"
    return result.stdout


def timed_ok(tool: bd.Tool, *argv: str) -> float:
    return bd.timed(lambda: ok(tool, *argv))


def state(tool: bd.Tool) -> str:
    return tool.cli("domstate", DOM).stdout.strip()


def define(tool: bd.Tool, tmp: Path, name: str, memory: int) -> Path:
    disk = tmp / f"{tool.name}-{name}.qcow2"
    shutil.copyfile(guest_artifacts().disk, disk)
    xml = tmp / f"{tool.name}-{name}.xml"
    xml.write_text(domain_xml(name, memory_mib=memory, disk=disk))
    ok(tool, "define", str(xml))
    return disk


def measure(
    tools: list[bd.Tool], tmp: Path, repeat: int, memory: int, settle: float
) -> dict[str, dict[str, float]]:
    samples: dict[str, dict[str, list[float]]] = {}

    def record(metric: str, values: dict[str, list[float]]) -> None:
        samples[metric] = values

    for tool in tools:
        define(tool, tmp, DOM, memory)
        ok(tool, "start", DOM)
    time.sleep(settle)  # the guests boot and go idle (their RAM is what the snapshots save)

    def create(tool: bd.Tool, i: int) -> float:
        elapsed = timed_ok(tool, "snapshot-create-as", DOM, f"m{i}")
        assert state(tool) == "running", state(tool)
        return elapsed

    def revert(tool: bd.Tool, i: int) -> float:
        elapsed = timed_ok(tool, "snapshot-revert", DOM, f"m{i}")
        assert state(tool) == "running", state(tool)
        return elapsed

    def delete(tool: bd.Tool, i: int) -> float:
        return timed_ok(tool, "snapshot-delete", DOM, f"m{i}")

    record("create_internal_memory_ms", bd.interleaved(tools, repeat, create))
    record("revert_internal_memory_ms", bd.interleaved(tools, repeat, revert))
    record("delete_internal_memory_ms", bd.interleaved(tools, repeat, delete))
    for tool in tools:
        assert " m0 " not in ok(tool, "snapshot-list", DOM)

    external_revert: list[float] = []

    def create_external(tool: bd.Tool, i: int) -> float:
        mem, overlay = tmp / f"{tool.name}-x{i}.mem", tmp / f"{tool.name}-x{i}.qcow2"
        elapsed = timed_ok(
            tool, "snapshot-create-as", DOM, f"x{i}", "--memspec", f"file={mem},snapshot=external",
            "--diskspec", f"vda,snapshot=external,file={overlay}",
        )  # fmt: skip
        assert state(tool) == "running" and mem.is_file() and overlay.is_file(), state(tool)
        if isinstance(tool, bd.Pyvirt):
            external_revert.append(timed_ok(tool, "snapshot-revert", DOM, f"x{i}"))
            assert state(tool) == "running", state(tool)
        return elapsed

    record("create_external_memory_ms", bd.interleaved(tools, repeat, create_external))
    samples["revert_external_memory_ms"] = {"pyvirt": external_revert}

    external_delete: list[float] = []

    def create_disk_only(tool: bd.Tool, i: int) -> float:
        elapsed = timed_ok(tool, "snapshot-create-as", DOM, f"d{i}", "--disk-only")
        if isinstance(tool, bd.Pyvirt):
            external_delete.append(timed_ok(tool, "snapshot-delete", DOM, f"d{i}"))
        return elapsed

    record("create_disk_only_ms", bd.interleaved(tools, repeat, create_disk_only))
    samples["delete_disk_only_ms"] = {"pyvirt": external_delete}
    for tool in tools:
        tool.cli("destroy", DOM)
        tool.cli("undefine", DOM, "--snapshots-metadata")

    for tool in tools:  # 100 snapshots of a shut-off domain (internal, disk only)
        define(tool, tmp, LISTED, memory)
        for i in range(LIST_COUNT):
            ok(tool, "snapshot-create-as", LISTED, f"s{i:03d}")
        listing = ok(tool, "snapshot-list", LISTED)
        assert sum(f" s{i:03d} " in listing for i in range(LIST_COUNT)) == LIST_COUNT, listing
    record(
        "list_100_ms",
        bd.interleaved(tools, repeat * 4, lambda t, _i: timed_ok(t, "snapshot-list", LISTED)),
    )
    for tool in tools:
        tool.cli("undefine", LISTED, "--snapshots-metadata")
    return {t.name: {m: bd.median_ms(v[t.name]) for m, v in samples.items() if v.get(t.name)} for t in tools}


def main() -> int:
    args = bd.arguments(__doc__, repeat=5, guest=True).parse_args()
    guest_artifacts()
    load_before = os.getloadavg()[0]
    with bd.side_by_side(args.no_libvirt) as (tools, tmp):
        try:
            results = measure(tools, tmp, args.repeat, args.memory, args.settle)
        finally:
            for tool in tools:
                for name in (DOM, LISTED):
                    tool.cli("destroy", name)
                    tool.cli("undefine", name, "--snapshots-metadata")
    note = f"; guest {args.memory} MiB, {args.repeat} rounds, median ms"
    return bd.report(results, load_before, as_json=args.json, note=note)


if __name__ == "__main__":
    sys.exit(main())
