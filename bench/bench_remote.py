"""Remote access: ``list --all`` and ``dominfo`` over ``qemu+ssh://`` to 127.0.0.1, pyvirt beside virsh.

Both clients go through the same sshd (started here, with a generated key) to their own daemon:
``pyvirt -c qemu+ssh://root@127.0.0.1:PORT/system?socket=...`` reaches pyvirtd through
``pyvirt proxy``; ``virsh -c qemu+ssh://root@127.0.0.1:PORT/system`` reaches libvirtd through
virt-ssh-helper or nc. Each call is a fresh client process, so the ssh handshake is part of every
figure, as it is for an administrator. Everything runs inside a network namespace this script makes
(its own loopback); libvirt is installed and started by the script itself, and skipped with a message
when that is not possible. ``qemu+tls://`` latency of pyvirt is reported beside.

    python bench/bench_remote.py [--repeat N] [--domains N] [--json] [--no-libvirt]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.remote.sshd import Sshd, free_port  # noqa: E402

BIN = Path(sys.executable).parent
NETNS = "pvbench-remote"
LIBVIRT_PACKAGES = ["libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients"]
MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def sh(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=check)


def median_ms(fn: Callable[[], subprocess.CompletedProcess[str]], repeat: int) -> float:
    samples = []
    fn()  # warm caches on both ends
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
        if result.returncode != 0:
            raise RuntimeError(f"{result.args}: {result.stderr.strip()}")
    return round(statistics.median(samples) * 1000, 1)


@contextlib.contextmanager
def namespace() -> Iterator[None]:
    sh("ip", "netns", "add", NETNS)
    try:
        yield
    finally:
        sh("ip", "netns", "del", NETNS, check=False)


def start_pyvirtd(root: Path, tls_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYVIRT_ROOT": str(root)}
    for step in (["init"], ["issue-server"], ["issue-client", "--cn", "bench"]):
        sh(str(BIN / "pyvirt"), "pki", *step, env=env)
    proc = subprocess.Popen(
        [str(BIN / "pyvirtd"), "--no-autostart", "--listen-tls", f"127.0.0.1:{tls_port}"],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sock = root / "run/pyvirt/pyvirt-sock"
    for _ in range(400):
        if sock.exists():
            return proc
        time.sleep(0.05)
    raise RuntimeError("pyvirtd did not start")


def install_libvirt() -> str | None:
    """Install libvirt's daemon (outside the namespace: it needs the network); None, or why not."""
    missing = [
        p
        for p in LIBVIRT_PACKAGES
        if sh("dpkg-query", "-W", "-f=${Status}", p, check=False).stdout != "install ok installed"
    ]
    if not missing:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    result = sh(*install, env=env, check=False)
    if result.returncode != 0:
        sh("apt-get", "update", "-q", env=env, check=False)
        result = sh(*install, env=env, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return f"cannot install {' '.join(missing)}: {last}"
    return None


def libvirt_ready() -> str | None:
    """None when libvirtd can be started here, else why not."""
    if not shutil.which("libvirtd"):
        return "libvirtd is not installed"
    pidfile = Path("/run/libvirtd.pid")
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
            return f"a libvirtd (pid {pid}) is already running on this host; not disturbing it"
    return None


def start_libvirtd() -> subprocess.Popen[bytes]:
    # Never let libvirt's default NAT network start (it would be inside our namespace anyway).
    with contextlib.suppress(FileNotFoundError):
        Path("/etc/libvirt/qemu/networks/autostart/default.xml").unlink()
    proc = subprocess.Popen(["libvirtd"], stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(400):
        if sh("virsh", "-c", "qemu:///system", "uri", check=False).returncode == 0:
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"libvirtd exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("libvirtd did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def inside(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    sh("ip", "link", "set", "lo", "up")
    results: dict[str, dict[str, float]] = {}
    work = Path(tempfile.mkdtemp(prefix="pvbr-", dir="/tmp"))
    os.chmod(work, 0o755)
    sshd = Sshd(work / "sshd")
    sshd.start()
    root = work / "root"
    tls_port = free_port()
    pyvirtd = start_pyvirtd(root, tls_port)
    env = {**os.environ, "PYVIRT_ROOT": str(root)}
    try:
        for i in range(args.domains):
            xml = work / f"d{i}.xml"
            xml.write_text(MINI.format(name=f"bench-r{i}"))
            sh(str(BIN / "pyvirt"), "define", str(xml), env=env)
        uri = sshd.uri(socket_path=root / "run/pyvirt/pyvirt-sock")
        tls_uri = f"qemu+tls://127.0.0.1:{tls_port}/system"

        def pyvirt(u: str, *a: str) -> Callable[[], subprocess.CompletedProcess[str]]:
            return lambda: sh(str(BIN / "pyvirt"), "-c", u, *a, env=env, check=False)

        results["pyvirt"] = {
            "list_all_ms": median_ms(pyvirt(uri, "list", "--all"), args.repeat),
            "dominfo_ms": median_ms(pyvirt(uri, "dominfo", "bench-r0"), args.repeat),
        }
        results["pyvirt-tls"] = {
            "list_all_ms": median_ms(pyvirt(tls_uri, "list", "--all"), args.repeat),
            "dominfo_ms": median_ms(pyvirt(tls_uri, "dominfo", "bench-r0"), args.repeat),
        }
        reason = "--no-libvirt" if args.no_libvirt else libvirt_ready()
        if reason:
            print(f"libvirt side skipped: {reason}", file=sys.stderr)
            return results
        libvirtd = start_libvirtd()
        try:
            for i in range(args.domains):
                sh("virsh", "-c", "qemu:///system", "define", str(work / f"d{i}.xml"))
            vuri = sshd.uri()

            def virsh(*a: str) -> Callable[[], subprocess.CompletedProcess[str]]:
                return lambda: sh("virsh", "-c", vuri, *a, check=False)

            results["libvirt"] = {
                "list_all_ms": median_ms(virsh("list", "--all"), args.repeat),
                "dominfo_ms": median_ms(virsh("dominfo", "bench-r0"), args.repeat),
            }
        finally:
            for i in range(args.domains):
                sh("virsh", "-c", "qemu:///system", "undefine", f"bench-r{i}", check=False)
            stop(libvirtd)
    finally:
        stop(pyvirtd)
        sshd.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--domains", type=int, default=20, help="domains defined on each side")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-libvirt", action="store_true")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args)))
        return 0
    if os.geteuid() != 0:
        print("bench_remote needs root (network namespace, sshd, libvirtd)", file=sys.stderr)
        return 1
    if not args.no_libvirt:
        reason = install_libvirt()
        if reason:
            print(f"libvirt side skipped: {reason}", file=sys.stderr)
            args.no_libvirt = True
    with namespace():
        argv = [
            sys.executable,
            __file__,
            "--inside",
            "--repeat",
            str(args.repeat),
            "--domains",
            str(args.domains),
        ]
        if args.no_libvirt:
            argv.append("--no-libvirt")
        proc = subprocess.run(["ip", "netns", "exec", NETNS, *argv], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        return proc.returncode
    results: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    theirs = results.get("libvirt", {})
    print(f"qemu+ssh:// to 127.0.0.1, {args.domains} domains defined, median of {args.repeat} fresh clients")
    print(f"{'metric':<14} {'pyvirt ssh':>11} {'virsh ssh':>10} {'ratio':>6} {'pyvirt tls':>11}")
    for key in results["pyvirt"]:
        ours = results["pyvirt"][key]
        ref = theirs.get(key)
        ratio = f"{ours / ref:.2f}" if ref else "-"
        print(
            f"{key:<14} {ours:>11} {ref if ref is not None else '-':>10} {ratio:>6} "
            f"{results['pyvirt-tls'][key]:>11}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
