"""Domain management, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

Measures, on the same test guest under TCG: start (command issued → domain running), ``list --all``
with 200 domains defined, ``dominfo``, ``define``, 20 concurrent starts, and the daemon's resident
memory. Both daemons run inside a network namespace this script makes, so libvirt's default NAT
network cannot touch the host; libvirt is installed and started by the script itself.

    python bench/bench_domains.py [--repeat N] [--json] [--no-libvirt] [--cli-only [--rounds R]]

``--cli-only`` measures only ``list --all`` (200 domains defined) and ``dominfo``: R rounds (default
40), each round one call of each tool for each metric, the tools' order alternating round by round;
the load average is sampled every round. It takes a few minutes and starts no guest.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.guest import domain_xml, guest_artifacts  # noqa: E402

BIN = Path(sys.executable).parent
NETNS = f"pvbench-{os.getpid()}"
LIBVIRT_PACKAGES = ["libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients"]


def sh(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=check)


def in_ns(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def _listening(path: str) -> bool:
    """Whether a process answers on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def rss_kib(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total


def install_without_starting_services(packages: list[str]) -> None:
    """apt-get install, with a policy-rc.d that forbids starting services: libvirtd must never start
    (and autostart its NAT network) in the machine's own namespace."""
    policy = Path("/usr/sbin/policy-rc.d")
    existed = policy.exists()
    if not existed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, env=env)
    finally:
        if not existed:
            policy.unlink()
    with contextlib.suppress(FileNotFoundError):
        Path("/etc/libvirt/qemu/networks/autostart/default.xml").unlink()


class Tool:
    """One side of the comparison: a daemon and its CLI."""

    name = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def daemon_pid(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def running(self, dom: str) -> bool:
        return self.cli("domstate", dom).stdout.strip() == "running"


class Pyvirt(Tool):
    name = "pyvirt"

    def __init__(self, *, debug_log: bool = False) -> None:
        """``debug_log``: pyvirtd -v, its log in ``self.log`` (where a start says how long QEMU took)."""
        self.root = Path(tempfile.mkdtemp(prefix="pvb-", dir="/tmp"))
        os.chmod(self.root, 0o755)  # like /run and /var: the unprivileged QEMU user traverses it
        # A user's environment: the caller's PYTHON* settings (e.g. PYTHONDONTWRITEBYTECODE, which
        # makes every edited module compile on each start) would be measured too.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.env = {**env, "PYVIRT_ROOT": str(self.root)}
        self.log = self.root / "pyvirtd.log"
        with open(self.log, "wb") if debug_log else contextlib.nullcontext() as log:
            self.proc = subprocess.Popen(
                in_ns(str(BIN / "pyvirtd"), *(["-v"] if debug_log else [])),
                env=self.env,
                stderr=log if debug_log else subprocess.DEVNULL,
                start_new_session=True,
            )
        sock = self.root / "run/pyvirt/pyvirt-sock"
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "pyvirt"), *args], env=self.env, capture_output=True, text=True)

    def daemon_pid(self) -> int:
        return self.proc.pid if self.proc.pid else 0

    def close(self) -> None:
        for rec in (self.root / "run/pyvirt/qemu").glob("*.json"):
            with contextlib.suppress(Exception):
                os.kill(json.loads(rec.read_text())["pid"], signal.SIGKILL)
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class Libvirt(Tool):
    name = "libvirt"

    def __init__(self) -> None:
        missing = [
            p
            for p in LIBVIRT_PACKAGES
            if sh("dpkg-query", "-W", "-f=${Status}", p, check=False).stdout != "install ok installed"
        ]
        if missing:
            install_without_starting_services(missing)
        # Never let libvirt's default NAT network start (it would be inside our netns anyway).
        with contextlib.suppress(FileNotFoundError):
            Path("/etc/libvirt/qemu/networks/autostart/default.xml").unlink()
        # One answering on the machine's socket (the install oracle's libvirtds live in mount
        # namespaces of their own, with a /run/libvirt of their own, and do not meet this one).
        if self.cli("uri").returncode == 0:
            raise SystemExit("error: a libvirtd is already running; stop it before benchmarking")
        # libvirt's QEMU driver logs through virtlogd, which systemd would socket-activate.
        self.virtlogd: subprocess.Popen[bytes] | None = None
        if not _listening("/run/libvirt/virtlogd-sock"):  # absent, or left by a killed virtlogd
            self.virtlogd = subprocess.Popen(
                in_ns("virtlogd"), stderr=subprocess.DEVNULL, start_new_session=True
            )
            for _ in range(200):
                if _listening("/run/libvirt/virtlogd-sock"):
                    break
                time.sleep(0.05)
        self.proc = subprocess.Popen(in_ns("libvirtd"), stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(200):
            if self.cli("uri").returncode == 0:
                break
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True)

    def daemon_pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        out = self.cli("list", "--all", "--name").stdout.split()
        for dom in out:
            if dom.startswith("bench-"):
                self.cli("destroy", dom)
                self.cli("undefine", dom)
        self.proc.terminate()
        self.proc.wait()
        if self.virtlogd is not None:
            self.virtlogd.terminate()
            self.virtlogd.wait()


@contextlib.contextmanager
def netns() -> Iterator[None]:
    sh("ip", "netns", "add", NETNS, check=False)
    sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    try:
        yield
    finally:
        sh("ip", "netns", "del", NETNS, check=False)


def arguments(doc: str | None, repeat: int, *, guest: bool = False) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes: --repeat, --json, --no-libvirt; with ``guest``,
    those of one booted guest per tool: --memory, --settle."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-libvirt", action="store_true")
    if guest:
        parser.add_argument("--memory", type=int, default=256, help="guest memory, MiB")
        parser.add_argument("--settle", type=float, default=15.0, help="seconds to let the guests boot")
    return parser


@contextlib.contextmanager
def side_by_side(no_libvirt: bool) -> Iterator[tuple[list[Tool], Path]]:
    """pyvirtd and (unless ``no_libvirt``) libvirtd in this run's network namespace, and a scratch
    folder QEMU's unprivileged users traverse; every daemon closed at the end."""
    with netns(), tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)
        makers: list[Callable[[], Tool]] = [Pyvirt] if no_libvirt else [Pyvirt, Libvirt]
        tools: list[Tool] = []
        try:
            for make in makers:
                tools.append(make())
            yield tools, tmp
        finally:
            for tool in tools:
                tool.close()


def report(results: dict[str, dict[str, float]], load_before: float, *, as_json: bool, note: str = "") -> int:
    """The results as JSON, or the machine's load before and after and a row per metric: each tool's
    figure and their ratio. The exit status."""
    if as_json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after{note}"
    )
    width = max(len("metric"), *(len(key) for key in results["pyvirt"])) + 2
    print(f"{'metric':<{width}} {'pyvirt':>10} {'libvirt':>10} {'ratio':>7}")
    for key, ours in results["pyvirt"].items():
        theirs = results.get("libvirt", {}).get(key)
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"{key:<{width}} {ours:>10} {theirs if theirs is not None else '-':>10} {ratio:>7}")
    return 0


def write_xml(tmp: Path, name: str, *, bzimage: bool = False) -> Path:
    path = tmp / f"{name}.xml"
    xml = domain_xml(name, memory_mib=64)
    if bzimage:
        art = guest_artifacts()
        assert art.vmlinuz is not None, "the test guest has no vmlinuz (rebuild it: make guest)"
        xml = xml.replace(f"<kernel>{art.kernel}</kernel>", f"<kernel>{art.vmlinuz}</kernel>")
        assert f"<kernel>{art.vmlinuz}</kernel>" in xml
    path.write_text(xml)
    return path


def interleaved(tools: list[Tool], repeat: int, run: Callable[[Tool, int], float]) -> dict[str, list[float]]:
    """``repeat`` rounds; in each, every tool once, in alternating order, so both see the same load."""
    samples: dict[str, list[float]] = {t.name: [] for t in tools}
    for i in range(repeat):
        for tool in tools if i % 2 == 0 else list(reversed(tools)):
            samples[tool.name].append(run(tool, i))
    return samples


def define_all(tools: list[Tool], tmp: Path, first: int, count: int = 200) -> None:
    for tool in tools:
        for i in range(first, count):
            result = tool.cli("define", str(write_xml(tmp, f"bench-def{i}")))
            assert result.returncode == 0, f"{tool.name}: {result.stderr}"


def measure_cli(tools: list[Tool], tmp: Path, rounds: int, loads: list[float]) -> dict[str, dict[str, float]]:
    """``dominfo`` and ``list --all`` with 200 domains defined; each round both metrics for every tool
    (alternating who goes first), so a load change touches both tools alike."""
    define_all(tools, tmp, 0)
    for tool in tools:  # the outputs are checked once, outside the timings
        listing = tool.cli("list", "--all").stdout
        assert sum(f" bench-def{i} " in listing for i in range(200)) == 200, f"{tool.name}: {listing}"
        assert "bench-def0" in tool.cli("dominfo", "bench-def0").stdout
    samples: dict[str, dict[str, list[float]]] = {"dominfo_ms": {}, "list_all_200_ms": {}}
    for metric in samples:
        samples[metric] = {t.name: [] for t in tools}
    for i in range(rounds):
        loads.append(os.getloadavg()[0])
        for tool in tools if i % 2 == 0 else list(reversed(tools)):
            for metric, argv in (
                ("dominfo_ms", ("dominfo", "bench-def0")),
                ("list_all_200_ms", ("list", "--all")),
            ):
                samples[metric][tool.name].append(timed(lambda t=tool, a=argv: t.cli(*a)))
    for tool in tools:
        for i in range(200):
            tool.cli("undefine", f"bench-def{i}")
    return {t.name: {metric: median_ms(values[t.name]) for metric, values in samples.items()} for t in tools}


def measure(tools: list[Tool], tmp: Path, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {t.name: {} for t in tools}

    def record(metric: str, samples: dict[str, list[float]]) -> None:
        for name, values in samples.items():
            out[name][metric] = median_ms(values)

    def define(tool: Tool, i: int) -> float:
        xml = write_xml(tmp, f"bench-def{i}")
        return timed(lambda: tool.cli("define", str(xml)))

    record("define_ms", interleaved(tools, repeat, define))

    def start(tool: Tool, i: int) -> float:
        name = f"bench-def{i}"
        t = timed(lambda: tool.cli("start", name))
        assert tool.running(name), tool.cli("start", name).stderr
        tool.cli("destroy", name)
        return t

    record("start_ms", interleaved(tools, repeat, start))

    # The same start with the guest's compressed kernel (bzImage): QEMU then loads 8 MB instead of the
    # 66 MB vmlinux and answers QMP in ~33 ms instead of ~67 ms, the "bare QEMU ~40 ms" of issue 2.
    def start_bzimage(tool: Tool, i: int) -> float:
        name = f"bench-bz{i}"
        xml = write_xml(tmp, name, bzimage=True)
        tool.cli("define", str(xml))
        t = timed(lambda: tool.cli("start", name))
        assert tool.running(name), tool.cli("start", name).stderr
        tool.cli("destroy", name)
        tool.cli("undefine", name)
        return t

    record("start_bzimage_ms", interleaved(tools, repeat, start_bzimage))
    define_all(tools, tmp, repeat)
    record(
        "dominfo_ms",
        interleaved(tools, repeat * 4, lambda t, i: timed(lambda: t.cli("dominfo", "bench-def0"))),
    )
    record(
        "list_all_200_ms", interleaved(tools, repeat * 4, lambda t, i: timed(lambda: t.cli("list", "--all")))
    )
    names = [f"bench-def{i}" for i in range(20)]
    for tool in tools:  # one tool at a time: 40 TCG guests at once would measure the CPU, not the tools
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda n, tool=tool: tool.cli("start", n), names))
            out[tool.name]["concurrent_20_starts_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out[tool.name]["daemon_rss_kib_with_20_running"] = rss_kib(tool.daemon_pid())
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda n, tool=tool: tool.cli("destroy", n), names))
    for tool in tools:
        for i in range(200):
            tool.cli("undefine", f"bench-def{i}")
    return out


def main() -> int:
    parser = arguments(__doc__, repeat=5)
    parser.add_argument("--cli-only", action="store_true", help="only list --all and dominfo")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of --cli-only")
    args = parser.parse_args()
    guest_artifacts()
    load_before = os.getloadavg()[0]
    loads: list[float] = []
    with side_by_side(args.no_libvirt) as (tools, tmp):
        if args.cli_only:
            results = measure_cli(tools, tmp, args.rounds, loads)
        else:
            results = measure(tools, tmp, args.repeat)
    during = f", median {statistics.median(loads):.1f} while measuring ({len(loads)} rounds)" if loads else ""
    return report(results, load_before, as_json=args.json, note=during)


if __name__ == "__main__":
    sys.exit(main())
