"""CPU pinning from ``<vcpu cpuset current>`` and ``<cputune>``: the affinity of the real QEMU's threads,
and the vCPUs the guest sees online."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def threads_affinity(pid: int) -> dict[str, str]:
    """Thread name → Cpus_allowed_list (QEMU names its threads with debug-threads=on)."""
    out: dict[str, str] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        name = re.search(r"^Name:\s*(.*)$", status, re.M)
        allowed = re.search(r"^Cpus_allowed_list:\s*(.*)$", status, re.M)
        assert name and allowed
        out[f"{name.group(1)}#{tid}"] = allowed.group(1)
    return out


def pinned_xml(name: str, vcpu: str, cputune: str = "") -> str:
    text = domain_xml(name, vcpus=2)
    text, count = re.subn(r"<vcpu[^>]*>2</vcpu>", vcpu + cputune, text, count=1)
    assert count == 1
    return text


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two host CPUs")
def test_vcpupin_emulatorpin_and_current(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "pin1.xml"
    path.write_text(
        pinned_xml(
            "pin1",
            "<vcpu placement='static' cpuset='0-1' current='1'>2</vcpu>",
            "<cputune><vcpupin vcpu='0' cpuset='0'/><emulatorpin cpuset='1'/></cputune>",
        )
    )
    daemon.cli("define", str(path)).ok()
    assert "<emulatorpin cpuset='1'/>" in daemon.cli("dumpxml", "pin1").ok().out
    daemon.cli("start", "pin1").ok()
    affinity = threads_affinity(daemon.qemu_pids()["pin1"])
    vcpu_threads = {name: cpus for name, cpus in affinity.items() if name.startswith("CPU ")}
    assert list(vcpu_threads.values()) == ["0"], affinity  # one vCPU online, on CPU 0
    others = {name: cpus for name, cpus in affinity.items() if not name.startswith("CPU ")}
    assert others and set(others.values()) == {"1"}, affinity
    assert re.search(r"^CPU\(s\):\s+1$", daemon.cli("dominfo", "pin1").ok().out, re.M)
    console = Console(daemon, "pin1")
    console.expect("pyvirt-guest: ready")
    out = console.run("cat /sys/devices/system/cpu/online /sys/devices/system/cpu/possible")
    assert re.search(r"^0\s*$", out, re.M) and re.search(r"^0-1\s*$", out, re.M), out
    console.close()
    daemon.cli("destroy", "pin1").ok()


def test_cpuset_the_host_lacks_fails_the_start(daemon: Daemon, tmp_path: Path) -> None:
    missing = max(os.sched_getaffinity(0)) + 100
    path = tmp_path / "pin2.xml"
    path.write_text(pinned_xml("pin2", f"<vcpu cpuset='{missing}'>2</vcpu>"))
    daemon.cli("define", str(path)).ok()
    result = daemon.cli("start", "pin2")
    assert result.rc == 1 and "cannot pin to the CPUs of vcpu/@cpuset" in result.err, result.err
    assert daemon.state("pin2") == "shut off"
    assert "pin2" not in daemon.qemu_pids()
