"""Clones: linked clones of a 1 GiB and a 100 GiB template (constant time), full clone vs qemu-img convert.

A real pyvirtd in a scratch root. Linked: ``Connection.clone`` (the daemon's clone action), the
whole job (overlay volume created by the daemon, NoCloud seed ISO, domain defined: ready to start),
median of N clones of each template; target ≤ 100 ms and the same for both sizes. One clone of each
is then started paused and destroyed, to show it is ready to start. The CLI's wall time (a fresh
process: interpreter start-up included) is shown beside.

Full: the disk copy a full clone makes (:func:`pyvirt.guest.clone.full_copy`, i.e. pyvirt.image
convert to a standalone qcow2) against ``qemu-img convert -O qcow2`` of the same disk, alternating
which goes first; throughput of the data in the disk. Target ≥ 0.9x qemu-img's.

    python bench/bench_clone.py [--repeat N] [--data-mib M] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from pyvirt.guest.clone import full_copy  # noqa: E402
from pyvirt.image.api import create_image, open_image  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402

LINKED_TARGET_MS = 100.0
FULL_TARGET = 0.9


def _fill(path: Path, size: int, data_mib: int) -> None:
    """A qcow2 of ``size`` with ``data_mib`` MiB of incompressible data spread over its first GiB."""
    create_image(str(path), "qcow2", size)
    block = bytearray(os.urandom(1 << 20))
    with open_image(str(path), readonly=False) as img:
        for mib in range(data_mib):
            block[:8] = mib.to_bytes(8, "little")
            img.write(mib * (1 << 20), bytes(block))


def _linked(d: Daemon, template: str, repeat: int) -> tuple[list[float], float]:
    conn = d.connect()
    times = []
    for i in range(repeat):
        name = f"{template}-l{i}"
        started = time.perf_counter()
        conn.clone(template, name, network="none", memory=256 << 20)
        times.append((time.perf_counter() - started) * 1000)
    dom = conn.domain(f"{template}-l0")
    dom.start(paused=True)
    assert dom.info()["state"] == "paused", dom.info()
    dom.destroy()
    started = time.perf_counter()
    d.cli("clone", "-q", "--original", template, "--name", f"{template}-cli", "--network", "none").ok()
    cli_ms = (time.perf_counter() - started) * 1000
    conn.close()
    return times, cli_ms


def _full(src: Path, work: Path, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"pyvirt": [], "qemu-img": []}
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    for run in range(repeat):
        order = ["pyvirt", "qemu-img"] if run % 2 == 0 else ["qemu-img", "pyvirt"]
        for tool in order:
            dest = work / f"full-{tool}-{run}.qcow2"
            started = time.perf_counter()
            if tool == "pyvirt":
                full_copy(str(src), "qcow2", dest, 0)
            else:
                subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(src), str(dest)], check=True)
            times[tool].append(time.perf_counter() - started)
            dest.unlink()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=10, help="linked clones per template")
    parser.add_argument("--full-repeat", type=int, default=3, help="full copies per tool")
    parser.add_argument("--data-mib", type=int, default=768, help="MiB of data in the full-clone disk")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    d = Daemon()
    d.start()
    results: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-clone-", dir="/var/tmp") as tmp:
            work = Path(tmp)
            for label, size in (("1g", 1 << 30), ("100g", 100 << 30)):
                image = work / f"t{label}.qcow2"
                _fill(image, size, 64)
                d.cli("template", "import", "-q", str(image), f"t{label}").ok()
                times, cli_ms = _linked(d, f"t{label}", args.repeat)
                results[f"linked_{label}"] = {
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                    "cli_ms": round(cli_ms, 1),
                }
            src = work / "full-src.qcow2"
            _fill(src, 1 << 30, args.data_mib)
            full = _full(src, work, args.full_repeat)
            data = args.data_mib << 20
            py, qi = statistics.median(full["pyvirt"]), statistics.median(full["qemu-img"])
            results["full"] = {
                "data_mib": args.data_mib,
                "pyvirt_s": round(py, 3),
                "qemu_img_s": round(qi, 3),
                "pyvirt_mib_s": round(data / py / (1 << 20), 1),
                "qemu_img_mib_s": round(data / qi / (1 << 20), 1),
                "ratio": round(qi / py, 2),
            }
    finally:
        d.cleanup()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    header = f"{'linked clone':<22}{'median ms':>10}{'max ms':>9}{'CLI ms':>9}"
    print(f"{header}   target ≤ {LINKED_TARGET_MS:.0f} ms")
    for label in ("1g", "100g"):
        r = results[f"linked_{label}"]
        assert isinstance(r, dict)
        print(f"{'template ' + label.upper():<22}{r['median_ms']:>10}{r['max_ms']:>9}{r['cli_ms']:>9}")
    f = results["full"]
    assert isinstance(f, dict)
    print(
        f"full copy of {f['data_mib']} MiB: pyvirt {f['pyvirt_s']} s ({f['pyvirt_mib_s']} MiB/s), "
        f"qemu-img convert {f['qemu_img_s']} s ({f['qemu_img_mib_s']} MiB/s): "
        f"ratio {f['ratio']} (target ≥ {FULL_TARGET})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
