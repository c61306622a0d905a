"""Memory and vCPUs of a running guest: setmem shrinks the guest's balloon (the guest's MemTotal and
dommemstat follow), setvcpus --live hot-plugs a vCPU the guest brings online, vcpupin and emulatorpin
move QEMU's threads; the --config forms change the definition; bad input is refused clearly."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def mem_total_kib(console: Console) -> int:
    match = re.search(r"MemTotal:\s+(\d+) kB", console.run("cat /proc/meminfo"))
    assert match
    return int(match.group(1))


def memstat(d: Daemon, name: str) -> dict[str, int]:
    lines = d.cli("dommemstat", name).ok().out.splitlines()
    return {k: int(v) for k, v in (line.split() for line in lines if line)}


def wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout}s"
        time.sleep(0.3)


def allowed_cpus(pid: int, tid: int) -> str:
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    match = re.search(r"^Cpus_allowed_list:\s*(.*)$", status, re.M)
    assert match
    return match.group(1)


def test_balloon_and_vcpu_hotplug(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    xml = domain_xml("res1", balloon=True, vcpus=2).replace("<vcpu>2</vcpu>", "<vcpu current='1'>2</vcpu>")
    (tmp_path / "res1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "res1.xml")).ok()
    d.cli("start", "res1").ok()
    console = Console(d, "res1")
    console.expect("pyvirt-guest: ready")
    full = mem_total_kib(console)
    assert memstat(d, "res1")["actual"] == 131072

    # setmem: the balloon inflates; the guest loses the memory, dommemstat and dominfo follow.
    assert d.cli("setmem", "res1", "96M", "--live").ok().out == "\n"
    wait_for(lambda: memstat(d, "res1")["actual"] == 98304, "the balloon reaching 96 MiB")
    assert re.search(r"^Used memory:\s+98304 KiB$", d.cli("dominfo", "res1").ok().out, re.M)
    assert full - mem_total_kib(console) >= 30 * 1024, "the guest's MemTotal did not shrink by ~32 MiB"
    assert "<currentMemory unit='KiB'>98304</currentMemory>" in d.cli("dumpxml", "res1").ok().out
    assert "98304" not in d.cli("dumpxml", "--inactive", "res1").ok().out
    d.cli("setmem", "res1", "120000", "--current").ok()  # running: the live balloon, in KiB
    wait_for(lambda: memstat(d, "res1")["actual"] == 120000, "the balloon reaching 120000 KiB")
    too_much = d.cli("setmem", "res1", "200M")
    assert too_much.rc == 1 and "cannot set memory higher than max memory" in too_much.err, too_much.err
    live_max = d.cli("setmaxmem", "res1", "256M", "--live")
    assert live_max.rc == 1 and "cannot resize the maximum memory on an active domain" in live_max.err
    d.cli("setmaxmem", "res1", "256M", "--config").ok()
    d.cli("setmem", "res1", "200M", "--config").ok()
    inactive = d.cli("dumpxml", "--inactive", "res1").ok().out
    assert "<memory unit='KiB'>262144</memory>" in inactive and "204800</currentMemory>" in inactive
    both = d.cli("setmem", "res1", "1000", "--current", "--live")
    assert both.rc == 1 and "mutually exclusive" in both.err

    # setvcpus --live: a second vCPU is plugged; the guest brings it online.
    assert d.cli("vcpucount", "res1").ok().out == (
        "maximum      config         2\nmaximum      live           2\n"
        "current      config         1\ncurrent      live           1\n\n"
    )
    d.cli("setvcpus", "res1", "2", "--live").ok()
    assert d.cli("vcpucount", "res1", "--active", "--live").ok().out == "2\n\n"
    assert d.cli("vcpucount", "res1", "--maximum", "--config").ok().out == "2\n\n"
    console.run("echo 1 > /sys/devices/system/cpu/cpu1/online")
    assert console.run("cat /sys/devices/system/cpu/online") == "0-1"
    assert re.search(r"<vcpu(?! [^>]*current)[^>]*>2</vcpu>", d.cli("dumpxml", "res1").ok().out)
    info = d.cli("vcpuinfo", "res1", "--pretty").ok().out
    assert re.findall(r"^VCPU:\s+(\d+)$", info, re.M) == ["0", "1"], info
    assert re.search(r"^CPU Affinity:\s+\S+ \(out of \d+\)$", info, re.M), info
    over = d.cli("setvcpus", "res1", "3", "--live")
    assert over.rc == 1 and "greater than max allowable vcpus for the live domain: 3 > 2" in over.err
    # ... and unplugged again: the guest releases it.
    d.cli("setvcpus", "res1", "1", "--live").ok()
    assert console.run("cat /sys/devices/system/cpu/online") == "0"
    assert d.cli("vcpucount", "res1", "--live").ok().out == "1\n\n"
    # QEMU 7.2 under TCG dies when a vCPU is plugged into a slot it unplugged: refused, QEMU lives.
    again = d.cli("setvcpus", "res1", "2")  # --current on a running domain: live
    assert again.rc == 1 and "restart the domain" in again.err, again.err
    assert d.state("res1") == "running"
    for flag in ("--guest", "--hotpluggable"):
        refused = d.cli("setvcpus", "res1", "2", flag)
        assert refused.rc == 1 and flag in refused.err
    assert d.cli("vcpucount", "res1", "--guest").rc == 1
    d.cli("setvcpus", "res1", "4", "--maximum", "--config").ok()
    d.cli("setvcpus", "res1", "3", "--config").ok()
    assert re.search(r"<vcpu[^>]* current='3'[^>]*>4</vcpu>", d.cli("dumpxml", "--inactive", "res1").ok().out)

    # vcpupin / emulatorpin: the threads' affinity, live.
    pid = d.qemu_pids()["res1"]
    cpu0 = min(os.sched_getaffinity(0))
    d.cli("vcpupin", "res1", "0", str(cpu0), "--live").ok()
    pins = d.cli("vcpupin", "res1", "--vcpu", "0").ok().out
    assert re.search(rf"^ 0\s+{cpu0}$", pins, re.M), pins
    offline = d.cli("vcpupin", "res1", "1", str(cpu0), "--live")
    assert offline.rc == 1 and "vcpu 1 is not online" in offline.err, offline.err
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    assert str(cpu0) in {allowed_cpus(pid, t) for t in threads}
    d.cli("emulatorpin", "res1", "--cpulist", str(cpu0), "--live").ok()
    assert f"       *: {cpu0}\n" in d.cli("emulatorpin", "res1").ok().out
    assert allowed_cpus(pid, pid) == str(cpu0)
    d.cli("vcpupin", "res1", "1", str(cpu0), "--config").ok()
    assert f"<vcpupin vcpu='1' cpuset='{cpu0}'/>" in d.cli("dumpxml", "--inactive", "res1").ok().out
    assert re.search(rf"^ 1\s+{cpu0}$", d.cli("vcpupin", "res1", "--config").ok().out, re.M)
    d.cli("emulatorpin", "res1", "r", "--current").ok()
    assert allowed_cpus(pid, pid) != str(cpu0) or len(os.sched_getaffinity(0)) == 1

    # Unknown domain.
    for verb in (["setmem", "nosuch", "1000"], ["setvcpus", "nosuch", "1"], ["vcpuinfo", "nosuch"]):
        result = d.cli(*verb)
        assert result.rc == 1 and "failed to get domain 'nosuch'" in result.err, result.err
    console.close()
