"""Virtual networks, pyvirt side by side with libvirt 9.0 (libvirtd + virsh) in one run.

Measures, through each tool's CLI (command issued → command done): ``net-start`` and ``net-destroy``
of a NAT network with DHCP on an RFC1918 /24 (median of N rounds, the two tools interleaved round by
round), and the time to start 20 guests with a virtio NIC on that network from 20 threads until all
report running (then their concurrent destroy). Target (issue 4): <= 0.5x libvirt's times. The network
driver alone (in-process, no daemon or CLI) is timed too, to show where pyvirt's time goes.

Both daemons run only inside a network namespace this script makes and deletes: libvirt's ``default``
network is never started, and the host namespace is checked for bridges and firewall rules of either
tool before and after (any found is reported and fails the run). Needs root.

    python bench/bench_net.py [--rounds N] [--guest-rounds M] [--json] [--no-libvirt]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from pyvirt.network.driver import NetworkDriver  # noqa: E402
from pyvirt.paths import system_layout  # noqa: E402
from tests.support.guest import domain_xml, guest_artifacts  # noqa: E402

BIN = Path(sys.executable).parent
NETWORK = "benchnet"
SUBNET = "10.213.57"  # RFC1918 /24, gateway .1, DHCP .2-.254
GUESTS = 20
DOM_PREFIX = "netbench-"
NET_XML = f"""<network>
  <name>{NETWORK}</name>
  <forward mode='nat'/>
  <ip address='{SUBNET}.1' prefix='24'>
    <dhcp><range start='{SUBNET}.2' end='{SUBNET}.254'/></dhcp>
  </ip>
</network>
"""
DRIVER_NET = """<network><name>drvbench</name><forward mode='nat'/><bridge name='pvbrdrv0'/>
<ip address='10.213.58.1' prefix='24'><dhcp><range start='10.213.58.2' end='10.213.58.254'/></dhcp></ip>
</network>"""
LIBVIRT_ETC = Path("/etc/libvirt/qemu")
LIBVIRT_DEFAULT_AUTOSTART = LIBVIRT_ETC / "networks/autostart/default.xml"


class BenchError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


class LoadSampler(threading.Thread):
    """The 1-minute load average, every second while the benchmark runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = [os.getloadavg()[0]]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        self.done.set()
        return {
            "min": round(min(self.samples), 2),
            "median": round(statistics.median(self.samples), 2),
            "max": round(max(self.samples), 2),
        }


# --- the host namespace must stay untouched ---------------------------------------------------------


def host_leaks() -> list[str]:
    """Bridges and firewall rules of libvirt or pyvirt in the machine's own namespace."""
    found: list[str] = []
    for line in sh("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(("virbr", "pvbr")):
            found.append(f"device {name}")
    ruleset = sh("nft", "list", "ruleset", check=False).stdout
    for line in ruleset.splitlines():
        if re.search(r"libvirt|pyvirt", line, re.IGNORECASE):
            found.append(f"nft: {line.strip()}")
    dumps = [["iptables-save"], ["ip6tables-save"]]
    if Path("/proc/net/ip_tables_names").is_file() and Path("/proc/net/ip_tables_names").read_text():
        dumps.append(["iptables-legacy-save"])  # only read legacy tables that already exist
    for argv in dumps:
        if shutil.which(argv[0]) is None:
            continue
        for line in sh(*argv, check=False).stdout.splitlines():
            if "LIBVIRT" in line.upper() and not line.startswith("#"):
                found.append(f"{argv[0]}: {line.strip()}")
    return found


def check_host(when: str) -> list[str]:
    leaks = host_leaks()
    if leaks:
        print(f"bench_net: WARNING: {when}, the host namespace holds:", file=sys.stderr)
        for leak in leaks:
            print(f"  {leak}", file=sys.stderr)
    return leaks


# --- the namespace and the two tools -----------------------------------------------------------------


class Namespace:
    def __init__(self) -> None:
        self.name = f"pvnetbench-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh(*self.argv(*argv), check=False)

    def pids(self) -> list[int]:
        return [int(p) for p in sh("ip", "netns", "pids", self.name, check=False).stdout.split()]

    def bridge_of(self, ip: str) -> str | None:
        """The device holding ``ip`` inside the namespace."""
        for line in self.run("ip", "-o", "-4", "addr", "show").stdout.splitlines():
            fields = line.split()
            if f"{ip}/" in line:
                return fields[1]
        return None

    def ports_of(self, bridge: str) -> list[str]:
        out = self.run("ip", "-o", "link", "show", "master", bridge).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def delete(self) -> None:
        """Kill whatever still runs in the namespace (only this script's processes can), then delete it."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not self.pids():
                break
            time.sleep(0.1)
        sh("ip", "netns", "del", self.name, check=False)


class Tool:
    """One side of the comparison: a daemon in the namespace and its CLI."""

    name = ""
    cli_argv: list[str] = []
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cli_argv, *args], env=self.env, capture_output=True, text=True)

    def ok(self, *args: str) -> str:
        res = self.cli(*args)
        if res.returncode != 0:
            raise BenchError(f"{self.name}: {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def command(self, *args: str) -> str:
        """The command line as printed for the record."""
        prefix = " ".join(f"{k}={v}" for k, v in (self.env or {}).items() if k == "PYVIRT_ROOT")
        return " ".join(filter(None, [prefix, *self.cli_argv, *args])).replace(str(BIN) + "/", "")

    def running_domains(self) -> set[str]:
        return set(self.cli("list", "--name", "--state-running").stdout.split())

    def stop_daemon(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        """Destroy and undefine what the benchmark made; stop the daemon."""
        if self.proc is not None and self.proc.poll() is None:
            for dom in self.cli("list", "--all", "--name").stdout.split():
                if dom.startswith(DOM_PREFIX):
                    self.cli("destroy", dom)
                    self.cli("undefine", dom)
            self.cli("net-destroy", NETWORK)
            self.cli("net-undefine", NETWORK)
        self.stop_daemon()


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Pyvirt(Tool):
    name = "pyvirt"

    def __init__(self, ns: Namespace) -> None:
        # Short and 0755: dnsmasq drops privileges and must traverse it.
        self.root = Path(tempfile.mkdtemp(prefix="pvn-", dir="/tmp"))
        self.root.chmod(0o755)
        self.env = {**os.environ, "PYVIRT_ROOT": str(self.root)}
        self.cli_argv = [str(BIN / "pyvirt"), "-c", "qemu:///system"]
        self.proc = subprocess.Popen(
            ns.argv(str(BIN / "pyvirtd")),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: self.cli("uri").returncode == 0, 30, "pyvirtd")

    def cleanup(self) -> None:
        super().cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


class Libvirt(Tool):
    name = "libvirt"

    def __init__(self, ns: Namespace) -> None:
        if shutil.which("libvirtd") is None or shutil.which("virsh") is None:
            raise BenchError(
                "libvirt is not installed (see bench_domains.py install_without_starting_services)"
            )
        if sh("pgrep", "-x", "libvirtd", check=False).stdout.strip():
            raise BenchError("a libvirtd is already running on this machine; not touching it, try later")
        # libvirt's default NAT network must never start, not even inside our namespace.
        with contextlib.suppress(FileNotFoundError):
            LIBVIRT_DEFAULT_AUTOSTART.unlink()
        self.cli_argv = ["virsh", "-c", "qemu:///system"]
        # libvirt's QEMU driver logs through virtlogd (systemd socket-activates it; we start it ourselves).
        self.logd: subprocess.Popen[bytes] | None = None
        if not sh("pgrep", "-x", "virtlogd", check=False).stdout.strip():
            self.logd = subprocess.Popen(
                ns.argv("virtlogd"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            wait_for(lambda: Path("/run/libvirt/virtlogd-sock").exists(), 30, "virtlogd")
        self.proc = subprocess.Popen(
            ns.argv("libvirtd"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(lambda: self.cli("uri").returncode == 0, 30, "libvirtd")
        active = self.cli("net-list", "--name").stdout.split()
        if active:
            raise BenchError(f"libvirt started networks by itself: {active}")

    def cleanup(self) -> None:
        super().cleanup()
        if self.logd is not None and self.logd.poll() is None:
            self.logd.terminate()
            self.logd.wait()
        # libvirt leaves the network's dnsmasq pid file and port directory behind.
        shutil.rmtree(f"/run/libvirt/network/{NETWORK}", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            Path(f"/run/libvirt/network/{NETWORK}.pid").unlink()
        for log in Path("/var/log/libvirt/qemu").glob(f"{DOM_PREFIX}*.log"):
            log.unlink()
        # If libvirtd died early, drop the definitions it could not undefine.
        if self.proc is not None and self.proc.poll() is not None:
            leftovers = [
                LIBVIRT_ETC / f"networks/{NETWORK}.xml",
                LIBVIRT_ETC / f"networks/autostart/{NETWORK}.xml",
            ]
            leftovers += LIBVIRT_ETC.glob(f"{DOM_PREFIX}*.xml")
            leftovers += Path("/run/libvirt/qemu").glob(f"{DOM_PREFIX}*.xml")
            leftovers += [Path(f"/run/libvirt/network/{NETWORK}.xml")]
            leftovers += Path("/var/lib/libvirt/dnsmasq").glob(f"{NETWORK}.*")
            for path in leftovers:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


# --- measurements ------------------------------------------------------------------------------------


def check_network(ns: Namespace, tool: Tool, active: bool) -> None:
    """Outside the timings: the network really is up (bridge with its address, dnsmasq) or gone."""
    bridge = ns.bridge_of(f"{SUBNET}.1")
    if active and bridge is None:
        raise BenchError(f"{tool.name}: net-start returned but no device holds {SUBNET}.1")
    if not active and bridge is not None:
        raise BenchError(f"{tool.name}: net-destroy returned but {bridge} still holds {SUBNET}.1")
    dnsmasq = [
        pid
        for pid in ns.pids()
        if Path(f"/proc/{pid}/comm").exists() and Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq"
    ]
    if active and not dnsmasq:
        raise BenchError(f"{tool.name}: net-start returned but no dnsmasq runs in the namespace")


def start_stop(ns: Namespace, tools: list[Tool], rounds: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {t.name: {"net_start": [], "net_destroy": []} for t in tools}
    for i in range(rounds):
        # Interleave the tools round by round, alternating who goes first, so that the machine's noise
        # lands on both sides alike.
        for tool in tools if i % 2 == 0 else tools[::-1]:
            t0 = time.perf_counter()
            tool.ok("net-start", NETWORK)
            t1 = time.perf_counter()
            check_network(ns, tool, active=True)
            t2 = time.perf_counter()
            tool.ok("net-destroy", NETWORK)
            t3 = time.perf_counter()
            check_network(ns, tool, active=False)
            samples[tool.name]["net_start"].append(t1 - t0)
            samples[tool.name]["net_destroy"].append(t3 - t2)
    return samples


def guests(ns: Namespace, tool: Tool, names: list[str]) -> tuple[float, float, list[float]]:
    """Start ``names`` from one thread each until all report running; then destroy them the same way.

    Returns the two wall times and each ``start`` command's own duration."""
    tool.ok("net-start", NETWORK)
    each: list[float] = []

    def start(name: str) -> subprocess.CompletedProcess[str]:
        t0 = time.perf_counter()
        res = tool.cli("start", name)
        each.append(time.perf_counter() - t0)
        return res

    try:
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            t0 = time.perf_counter()
            results = list(pool.map(start, names))
            failed = [(n, r.stderr.strip()) for n, r in zip(names, results, strict=True) if r.returncode]
            if failed:
                raise BenchError(f"{tool.name}: start failed: {failed[:3]}")
            wait_for(lambda: tool.running_domains() >= set(names), 120, f"{tool.name} guests running")
            started = time.perf_counter() - t0
        bridge = ns.bridge_of(f"{SUBNET}.1")
        ports = ns.ports_of(bridge) if bridge else []
        if len(ports) != len(names):
            raise BenchError(f"{tool.name}: {len(ports)} taps on {bridge}, expected {len(names)}")
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            t0 = time.perf_counter()
            results = list(pool.map(lambda n: tool.cli("destroy", n), names))
            wait_for(lambda: not tool.running_domains() & set(names), 120, f"{tool.name} guests stopped")
            destroyed = time.perf_counter() - t0
        failed = [(n, r.stderr.strip()) for n, r in zip(names, results, strict=True) if r.returncode]
        if failed:
            raise BenchError(f"{tool.name}: destroy failed: {failed[:3]}")
    finally:
        for name in tool.running_domains() & set(names):
            tool.cli("destroy", name)
        tool.cli("net-destroy", NETWORK)
    return started, destroyed, sorted(each)


def driver_alone(ns: Namespace, rounds: int) -> dict[str, float]:
    """pyvirt's network driver in-process (no daemon, no CLI), in the same namespace."""
    root = Path(tempfile.mkdtemp(prefix="pvd-", dir="/tmp"))
    root.chmod(0o755)
    try:
        layout = system_layout(root)
        layout.ensure()
        driver = NetworkDriver(layout, netns=ns.name)
        driver.define(DRIVER_NET)
        starts: list[float] = []
        destroys: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            driver.start("drvbench")
            t1 = time.perf_counter()
            driver.destroy("drvbench")
            starts.append(t1 - t0)
            destroys.append(time.perf_counter() - t1)
        driver.start("drvbench")
        t0 = time.perf_counter()
        taps = [
            driver.plug_tap(network="drvbench", bridge=None, mac=f"52:54:00:12:34:{i:02x}")
            for i in range(GUESTS)
        ]
        plug = time.perf_counter() - t0
        for tap in taps:
            driver.unplug_tap(tap)
        driver.destroy("drvbench")
        driver.undefine("drvbench")
        driver.close()
        return {
            "net_start_ms": median_ms(starts),
            "net_destroy_ms": median_ms(destroys),
            "plug_20_taps_ms": round(plug * 1000, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def noop_cli(tools: list[Tool], rounds: int) -> dict[str, float]:
    """A call that does nothing (``uri``): the CLI's own start-up and connection cost."""
    out: dict[str, float] = {}
    for tool in tools:
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            tool.ok("uri")
            samples.append(time.perf_counter() - t0)
        out[tool.name] = median_ms(samples)
    return out


@contextlib.contextmanager
def term_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the clean-up below runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        print(f"bench_net: signal {signum}, cleaning up (takes a minute)", file=sys.stderr)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(args: argparse.Namespace) -> dict[str, object]:
    guest_artifacts()  # build the test guest first if needed (outside any timing)
    ns = Namespace()
    tools: list[Tool] = []
    tmp = Path(tempfile.mkdtemp(prefix="pvnx-", dir="/tmp"))
    tmp.chmod(0o755)
    loads = LoadSampler()
    loads.start()
    try:
        tools.append(Pyvirt(ns))
        if not args.no_libvirt:
            tools.append(Libvirt(ns))
        net_file = tmp / f"{NETWORK}.xml"
        net_file.write_text(NET_XML)
        names = [f"{DOM_PREFIX}{i:02d}" for i in range(GUESTS)]
        for name in names:
            (tmp / f"{name}.xml").write_text(domain_xml(name, nic_network=NETWORK, memory_mib=64))
        for tool in tools:
            tool.ok("net-define", str(net_file))
            for name in names:
                tool.ok("define", str(tmp / f"{name}.xml"))
        result: dict[str, object] = {"noop_cli_ms": noop_cli(tools, args.rounds)}
        ss = start_stop(ns, tools, args.rounds)
        starts: dict[str, list[float]] = {t.name: [] for t in tools}
        destroys: dict[str, list[float]] = {t.name: [] for t in tools}
        each: dict[str, list[float]] = {t.name: [] for t in tools}
        for i in range(args.guest_rounds):
            for tool in tools if i % 2 == 0 else tools[::-1]:
                started, destroyed, durations = guests(ns, tool, names)
                starts[tool.name].append(started)
                destroys[tool.name].append(destroyed)
                each[tool.name] += durations
        result["tools"] = {
            t.name: {
                "net_start_ms": median_ms(ss[t.name]["net_start"]),
                "net_destroy_ms": median_ms(ss[t.name]["net_destroy"]),
                "start_20_guests_ms": median_ms(starts[t.name]),
                "destroy_20_guests_ms": median_ms(destroys[t.name]),
                # each concurrent `start` command's own time, over all rounds
                "one_start_of_20_ms": {
                    "min": round(min(each[t.name]) * 1000, 1),
                    "median": median_ms(each[t.name]),
                    "max": round(max(each[t.name]) * 1000, 1),
                },
                "samples_ms": {
                    "net_start": [round(s * 1000, 1) for s in ss[t.name]["net_start"]],
                    "net_destroy": [round(s * 1000, 1) for s in ss[t.name]["net_destroy"]],
                    "start_20_guests": [round(s * 1000, 1) for s in starts[t.name]],
                    "destroy_20_guests": [round(s * 1000, 1) for s in destroys[t.name]],
                },
            }
            for t in tools
        }
        result["commands"] = {
            t.name: [
                t.command("net-start", NETWORK),
                t.command("net-destroy", NETWORK),
                f"{t.command('start', DOM_PREFIX + 'NN')}  (x{GUESTS}, one thread each)",
            ]
            for t in tools
        }
        for tool in tools:
            tool.cleanup()
        tools.clear()
        result["pyvirt_driver_alone"] = driver_alone(ns, args.rounds)
        result["machine"] = {
            "nproc": os.cpu_count(),
            "load1_while_measuring": loads.summary(),
            "kernel": os.uname().release,
            "libvirt": sh("virsh", "--version", check=False).stdout.strip(),
        }
        result["setup"] = {
            "rounds": args.rounds,
            "guest_rounds": args.guest_rounds,
            "network": f"NAT, {SUBNET}.0/24, DHCP .2-.254",
            "guests": f"{GUESTS} x test guest, 64 MiB, TCG, virtio NIC on {NETWORK}",
        }
        return result
    finally:
        for tool in tools:
            with contextlib.suppress(Exception):
                tool.cleanup()
        ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(result: dict[str, object]) -> None:
    tools: dict[str, dict[str, Any]] = result["tools"]  # type: ignore[assignment]
    mine = tools["pyvirt"]
    theirs = tools.get("libvirt", {})
    print(f"{'metric (median ms)':<26} {'pyvirt':>9} {'libvirt':>9} {'ratio':>6}")
    for key in ("net_start_ms", "net_destroy_ms", "start_20_guests_ms", "destroy_20_guests_ms"):
        ref = theirs.get(key)
        ratio = f"{mine[key] / ref:.2f}" if ref else "-"
        print(f"{key:<26} {mine[key]:>9} {ref if ref is not None else '-':>9} {ratio:>6}")
    for name, row in tools.items():
        one: dict[str, float] = row["one_start_of_20_ms"]
        print(
            f"{name}: each of the 20 concurrent starts took {one['min']}-{one['max']} ms "
            f"(median {one['median']})"
        )
    noop: dict[str, float] = result["noop_cli_ms"]  # type: ignore[assignment]
    ref = noop.get("libvirt")
    ratio = f"{noop['pyvirt'] / ref:.2f}" if ref else "-"
    print(f"{'noop CLI call (uri)':<26} {noop['pyvirt']:>9} {ref if ref is not None else '-':>9} {ratio:>6}")
    drv: dict[str, float] = result["pyvirt_driver_alone"]  # type: ignore[assignment]
    print(
        f"pyvirt driver alone: net-start {drv['net_start_ms']} ms, net-destroy {drv['net_destroy_ms']} ms, "
        f"{GUESTS} taps plugged in {drv['plug_20_taps_ms']} ms"
    )
    machine: dict[str, object] = result["machine"]  # type: ignore[assignment]
    print(f"nproc {machine['nproc']}, load1 while measuring {machine['load1_while_measuring']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="net-start/net-destroy rounds (N>=5)")
    parser.add_argument("--guest-rounds", type=int, default=3, help="rounds of the 20-guest start")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-libvirt", action="store_true", help="measure pyvirt only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_net: needs root (network namespaces)", file=sys.stderr)
        return 1
    if args.rounds < 5:
        parser.error("--rounds must be at least 5")
    if check_host("before the benchmark"):
        print("bench_net: refusing to run on a host namespace that already holds these", file=sys.stderr)
        return 1
    status = 0
    with term_as_exit():
        try:
            result = run(args)
        except BenchError as exc:
            print(f"bench_net: {exc}", file=sys.stderr)
            status = 1
        finally:
            if check_host("after the benchmark"):
                status = 1
    if status:
        return status
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
