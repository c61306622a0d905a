"""Provisioning: ``pyvirt install --print-xml`` beside ``virt-install --print-xml``, in one run.

install: the same option sets (a Linux cloud image import, a Debian cdrom install, a Windows 11
install with UEFI) given to ``pyvirt install --print-xml --dry-run`` (a fresh CLI process and a real
pyvirtd in a scratch root) and to virt-install 4.1 ``--print-xml --dry-run`` (a fresh process and a
private libvirtd 9.0, tests/support/virtinstall.py), alternating which goes first; median wall time
of each, and the ratio. Target: pyvirt ≤ 0.2x virt-install.

    python bench/bench_provision.py [--only install] [--repeat N] [--json]

Each part is one function in PARTS; a part returns its figures and prints its own table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.support.daemon import Daemon  # noqa: E402
from tests.support.virtinstall import Oracle  # noqa: E402

INSTALL_TARGET = 0.2


def _install_cases(work: Path) -> dict[str, list[str]]:
    disk = work / "cloud.qcow2"
    iso = work / "installer.iso"
    for path in (disk, iso):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), "64M"], check=True)
    common = ["--print-xml", "--dry-run", "--virt-type", "qemu", "--noautoconsole"]
    return {
        "import": [
            *common,
            *("--name", "b-import", "--memory", "1024", "--vcpus", "2", "--os-variant", "debian11"),
            *("--disk", f"path={disk},bus=virtio", "--import", "--network", "none", "--graphics", "none"),
        ],
        "cdrom": [
            *common,
            *("--name", "b-cdrom", "--memory", "2048", "--os-variant", "debian11", "--cdrom", str(iso)),
            *("--disk", f"path={disk}", "--network", "none", "--graphics", "vnc"),
        ],
        "win11": [
            *common,
            *("--name", "b-win", "--memory", "4096", "--os-variant", "win11", "--cdrom", str(iso)),
            *("--disk", f"path={disk}", "--network", "none", "--graphics", "vnc", "--tpm", "none"),
        ],
    }


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} failed: {result.stderr.strip()}")
    return elapsed * 1000


def bench_install(repeat: int) -> dict[str, object]:
    """``pyvirt install --print-xml`` vs ``virt-install --print-xml``, per option set."""
    why = Oracle.missing()
    if why:
        print(f"install: skipped ({why})")
        return {"skipped": why}
    d = Daemon()
    oracle = Oracle()
    d.start()
    oracle.start()
    results: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-provision-", dir="/var/tmp") as tmp:
            cases = _install_cases(Path(tmp))
            for label, args in cases.items():
                pyvirt = [str(Path(sys.executable).parent / "pyvirt"), "install", *args]
                virt_install = oracle.command(*args)
                _timed(virt_install)  # warm: QEMU's capabilities cached by libvirtd
                times: dict[str, list[float]] = {"pyvirt": [], "virt-install": []}
                for run in range(repeat):
                    order = ["pyvirt", "virt-install"] if run % 2 == 0 else ["virt-install", "pyvirt"]
                    for tool in order:
                        if tool == "pyvirt":
                            times[tool].append(_timed(pyvirt, d.env))
                        else:
                            times[tool].append(_timed(virt_install))
                py, vi = statistics.median(times["pyvirt"]), statistics.median(times["virt-install"])
                results[label] = {
                    "pyvirt_ms": round(py, 1),
                    "virt_install_ms": round(vi, 1),
                    "ratio": round(py / vi, 3),
                }
    finally:
        oracle.stop()
        d.cleanup()
    print(
        f"{'install --print-xml':<22}{'pyvirt ms':>10}{'virt-install ms':>16}{'ratio':>8}"
        f"   target ≤ {INSTALL_TARGET}x"
    )
    for label, r in results.items():
        assert isinstance(r, dict)
        print(f"{label:<22}{r['pyvirt_ms']:>10}{r['virt_install_ms']:>16}{r['ratio']:>8}")
    return results


PARTS: dict[str, Callable[[int], dict[str, object]]] = {"install": bench_install}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=sorted(PARTS), help="run one part")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each tool per case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {name: part(args.repeat) for name, part in PARTS.items() if args.only in (None, name)}
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
