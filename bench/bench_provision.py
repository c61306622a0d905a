"""Provisioning: ``pyvirt install --print-xml`` beside ``virt-install --print-xml``, in one run.

install: the same option sets (a Linux cloud image import, a Debian cdrom install, a Windows 11
install with UEFI) given to ``pyvirt install --print-xml --dry-run`` (a fresh CLI process and a real
pyvirtd in a scratch root) and to virt-install 4.1 ``--print-xml --dry-run`` (a fresh process and a
private libvirtd 9.0, tests/support/virtinstall.py), alternating which goes first; median wall time
of each, and the ratio. Target: pyvirt ≤ 0.2x virt-install.

launch: ``pyvirt launch TEMPLATE NAME`` (a linked clone, a cloud-init seed, the start, one daemon
action) beside ``virt-clone`` + ``virsh start`` on the same template (a BIOS-bootable test-guest disk,
tests/support/bootable.py, 64 MiB, no NIC), with libvirt 9.0's libvirtd and pyvirtd both in a network
namespace (bench/bench_domains.py's helpers), alternating which goes first; command issued → the
domain running. The daemon's time (request → running) is split into QEMU's own (spawned → answering
QMP, from pyvirtd -v's log) and pyvirt's management time (the rest: the overlay, the seed ISO, the
definition, QEMU's command line and its confinement, QMP, cont). Targets: ≤ 200 ms of management
time, ≤ 0.3x virt-clone + virsh start. Run it under
``flock /tmp/bench.lock`` (libvirtd is the machine's own, as in bench_domains.py).

    python bench/bench_provision.py [--only install|launch] [--repeat N] [--json]

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


LAUNCH_TARGET_MS = 200
LAUNCH_TARGET_RATIO = 0.3


def _libvirt_template_xml(disk: Path) -> str:
    return f"""<domain type='qemu'>
  <name>bench-tmpl</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _qemu_up_ms(log: Path, name: str) -> float:
    """QEMU's own share of a start, as pyvirtd -v logs it: spawned → answering QMP."""
    import re

    found = re.findall(
        rf"started {name} \(pid \d+\): QEMU up and monitor connected in (\d+) ms", log.read_text()
    )
    assert found, f"pyvirtd's log has no start of {name}"
    return float(found[-1])


def bench_launch(repeat: int) -> dict[str, object]:
    """``pyvirt launch`` vs ``virt-clone`` + ``virsh start`` on the same template disk."""
    import os
    import shutil

    sys.path.insert(0, str(REPO / "bench"))
    import bench_domains as bd

    from tests.support import bootable

    for tool in ("virt-clone", "virsh", "libvirtd", *bootable.TOOLS):
        if shutil.which(tool) is None:
            print(f"launch: skipped ({tool} is not installed)")
            return {"skipped": f"{tool} is not installed"}
    results: dict[str, object] = {}
    with bd.netns(), tempfile.TemporaryDirectory(prefix="bench-launch-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        disk = bootable.make_disk(work / "template.qcow2")
        libvirt = bd.Libvirt()  # first: it refuses to run beside another libvirtd
        pyvirt = bd.Pyvirt(debug_log=True)
        try:
            imported = pyvirt.cli("template", "import", "--os", "busybox", str(disk), "bench-tmpl")
            assert imported.returncode == 0, imported.stderr
            clones = work / "libvirt"
            clones.mkdir()
            tmpl_disk = clones / "bench-tmpl.qcow2"
            shutil.copyfile(disk, tmpl_disk)
            xml = work / "bench-tmpl.xml"
            xml.write_text(_libvirt_template_xml(tmpl_disk))
            defined = libvirt.cli("define", str(xml))
            assert defined.returncode == 0, defined.stderr
            times: dict[str, list[float]] = {"pyvirt": [], "libvirt": [], "pyvirt_daemon": [], "qemu": []}
            for run in range(repeat):
                name = f"bench-l{run}"
                order = ["pyvirt", "libvirt"] if run % 2 == 0 else ["libvirt", "pyvirt"]
                for tool in order:
                    if tool == "pyvirt":
                        argv = ["launch", "--json", "bench-tmpl", name, "--network", "none", "--memory", "64"]
                        started = time.perf_counter()
                        result = pyvirt.cli(*argv)
                        times["pyvirt"].append((time.perf_counter() - started) * 1000)
                        assert result.returncode == 0, result.stderr
                        times["pyvirt_daemon"].append(json.loads(result.stdout)["seconds"] * 1000)
                        times["qemu"].append(_qemu_up_ms(pyvirt.log, name))
                        assert pyvirt.running(name)
                        pyvirt.cli("destroy", name)
                        pyvirt.cli("undefine", "--remove-all-storage", name)
                        pyvirt.cli("vol-delete", f"{name}-seed.iso", "--pool", "default")
                    else:
                        virt_clone = [
                            "virt-clone", "--connect", "qemu:///system", "--original", "bench-tmpl",
                            "--name", name, "--file", str(clones / f"{name}.qcow2"),
                        ]  # fmt: skip
                        started = time.perf_counter()
                        cloned = subprocess.run(virt_clone, capture_output=True, text=True)
                        start = libvirt.cli("start", name)
                        times["libvirt"].append((time.perf_counter() - started) * 1000)
                        assert cloned.returncode == 0 and start.returncode == 0, cloned.stderr + start.stderr
                        assert libvirt.running(name)
                        libvirt.cli("destroy", name)
                        libvirt.cli("undefine", "--remove-all-storage", name)
            py, lv = statistics.median(times["pyvirt"]), statistics.median(times["libvirt"])
            daemon = statistics.median(times["pyvirt_daemon"])
            own = [d - q for d, q in zip(times["pyvirt_daemon"], times["qemu"], strict=True)]
            results = {
                "pyvirt_launch_ms": round(py, 1),
                "pyvirt_daemon_ms": round(daemon, 1),
                "qemu_up_ms": round(statistics.median(times["qemu"]), 1),
                "pyvirt_management_ms": round(statistics.median(own), 1),
                "virt_clone_and_start_ms": round(lv, 1),
                "ratio": round(py / lv, 3),
                "load": round(os.getloadavg()[0], 1),
            }
        finally:
            libvirt.close()
            pyvirt.close()
    print(
        f"{'launch → running':<20}{'pyvirt ms':>10}{'daemon ms':>10}{'QEMU ms':>9}{'mgmt ms':>9}"
        f"{'virt-clone+start ms':>21}{'ratio':>7}"
        f"   targets: mgmt ≤ {LAUNCH_TARGET_MS} ms, ≤ {LAUNCH_TARGET_RATIO}x"
    )
    print(
        f"{'linked clone, seed':<20}{results['pyvirt_launch_ms']:>10}{results['pyvirt_daemon_ms']:>10}"
        f"{results['qemu_up_ms']:>9}{results['pyvirt_management_ms']:>9}"
        f"{results['virt_clone_and_start_ms']:>21}{results['ratio']:>7}"
    )
    return results


PARTS: dict[str, Callable[[int], dict[str, object]]] = {"install": bench_install, "launch": bench_launch}


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
