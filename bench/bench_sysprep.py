"""Sysprep, pyvirt side by side with virt-sysprep, on copies of the same image in one run.

Both run as their command-line tools with the same customization (``--hostname``), on fresh copies of
one image, alternating which goes first; both use the same libguestfs appliance with the same backend
settings (direct, and TCG when the host's KVM is unusable). The appliance launch dominates both; pyvirt
batches every operation into one launch and skips libguestfs's slow full inspection when the disk
layout is simple. Target: pyvirt ≤ 1.0x virt-sysprep's time.

    python bench/bench_sysprep.py [--image DISK.qcow2] [--repeat N] [--json]

Without --image the Debian-like test disk of tests/integration/guest is used (built and cached on
first use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from pyvirt.guest.appliance import tcg_needed  # noqa: E402

TARGET = 1.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LIBGUESTFS_BACKEND", "direct")
    if tcg_needed()[0]:
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return env


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv[:3])} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", type=Path, help="disk image to sysprep copies of (default: the test disk)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each tool (alternating order)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if shutil.which("virt-sysprep") is None:
        print("error: virt-sysprep is not installed (Debian package libguestfs-tools)", file=sys.stderr)
        return 1
    image = args.image
    if image is None:
        from tests.integration.guest.disks import build_base_disks

        image = build_base_disks()[0]
    env = _env()
    options = ["--hostname", "bench-clone"]
    tools = {
        "pyvirt sysprep": [sys.executable, "-m", "pyvirt.cli.guest", "sysprep", "-q", *options],
        "virt-sysprep": ["virt-sysprep", "-q", *options],
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    with tempfile.TemporaryDirectory(prefix="bench-sysprep-", dir=image.parent) as tmp:
        for run in range(max(1, args.repeat)):
            order = list(tools) if run % 2 == 0 else list(reversed(tools))
            for name in order:
                copy = Path(tmp) / f"copy-{run}-{name.split()[0]}{image.suffix}"
                subprocess.run(["cp", "--reflink=auto", str(image), str(copy)], check=True)
                times[name].append(_timed([*tools[name], "-a", str(copy)], env))
                copy.unlink()
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["pyvirt sysprep"] / medians["virt-sysprep"]
    if args.json:
        print(json.dumps({"image": str(image), "runs": times, "median_s": medians, "ratio": ratio}, indent=1))
    else:
        print(f"sysprep of {image} ({'TCG' if 'LIBGUESTFS_BACKEND_SETTINGS' in env else 'KVM'} appliance)")
        print(f"{'tool':<16}{'median s':>10}   runs")
        for name, values in times.items():
            print(f"{name:<16}{medians[name]:>10.1f}   {', '.join(f'{v:.1f}' for v in values)}")
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(f"ratio pyvirt/virt-sysprep: {ratio:.2f}x (target <= {TARGET:.1f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
