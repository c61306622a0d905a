"""memtune, schedinfo and cpu-stats' per-CPU figures on a real TCG guest: <memtune> and <cputune><shares>
reach QEMU's cgroup at start, live changes reach the kernel's cgroup files (v2, or the v1 controllers of
a hybrid host) and the live XML, --config changes the definition only, bad values are refused by name;
cpu-stats lists each host CPU's time from cgroup v1's cpuacct (compared with virsh's format in
tests/integration/daemon/test_libvirt_jobs_oracle.py, where libvirt has per-CPU figures)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pyvirt.qemu import cpuacct
from tests.support.daemon import Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow
UNLIMITED = 9007199254740991


def _controller_dir(pid: int, controller: str) -> Path:
    """Where the kernel keeps QEMU's ``controller`` files: its v1 hierarchy's group when the host has
    one, else its cgroup v2 group."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    for _, controllers, path in lines:
        if controller in controllers.split(","):
            for m in mounts:
                if m[2] == "cgroup" and controller in m[3].split(","):
                    return Path(m[1]) / path.lstrip("/")
    v2 = next(path for ident, _, path in lines if ident == "0")
    mount = next(m[1] for m in mounts if m[2] == "cgroup2")
    return Path(mount) / v2.lstrip("/")


def _memory_limit(pid: int) -> int:
    d = _controller_dir(pid, "memory")
    file = d / ("memory.max" if (d / "memory.max").exists() else "memory.limit_in_bytes")
    return int(file.read_text())


def _cpu(pid: int) -> tuple[int, int]:
    """(shares or weight, quota in µs; -1 unlimited)."""
    d = _controller_dir(pid, "cpu")
    if (d / "cpu.max").exists():
        quota = (d / "cpu.max").read_text().split()[0]
        return int((d / "cpu.weight").read_text()), -1 if quota == "max" else int(quota)
    return int((d / "cpu.shares").read_text()), int((d / "cpu.cfs_quota_us").read_text())


def _values(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)\s*: (\S+)$", text, re.M))


def test_memtune_and_schedinfo(daemon: Daemon, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("domain cgroups are the system daemon's: needs root")
    d = daemon
    disk = copy_disk(guest_artifacts(), tmp_path / "tune1.qcow2")
    xml = domain_xml("tune1", disk=disk).replace(
        "<os>",
        "<memtune><hard_limit unit='MiB'>512</hard_limit></memtune>"
        "<cputune><shares>512</shares><global_period>100000</global_period></cputune><os>",
        1,
    )
    (tmp_path / "tune1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "tune1.xml")).ok()
    assert "<hard_limit unit='KiB'>524288</hard_limit>" in d.cli("dumpxml", "tune1").ok().out
    offline = _values(d.cli("memtune", "tune1").ok().out)
    assert offline == {"hard_limit": "524288", "soft_limit": "unlimited", "swap_hard_limit": "unlimited"}
    d.cli("start", "tune1").ok()
    pid = d.qemu_pids()["tune1"]
    record = json.loads((d.run_dir / "tune1.json").read_text())
    assert _memory_limit(pid) == 512 * 1024 * 1024  # applied at start
    shares, quota = _cpu(pid)
    assert shares == 512 and quota == -1

    # Live: the kernel's files move, the live XML follows, the definition does not.
    d.cli("memtune", "tune1", "--hard-limit", "400M", "--soft-limit", "300000").ok()
    assert _memory_limit(pid) == 400 * 1024 * 1024
    live = _values(d.cli("memtune", "tune1", "--live").ok().out)
    assert live["hard_limit"] == str(400 * 1024) and live["soft_limit"] == "300000", live
    assert "<soft_limit unit='KiB'>300000</soft_limit>" in d.cli("dumpxml", "tune1").ok().out
    assert "<soft_limit" not in d.cli("dumpxml", "tune1", "--inactive").ok().out
    d.cli("memtune", "tune1", "--hard-limit", "-1", "--current").ok()
    assert _values(d.cli("memtune", "tune1").ok().out)["hard_limit"] == "unlimited"
    # --config: the definition only.
    d.cli("memtune", "tune1", "--swap-hard-limit", "2G", "--config").ok()
    assert (
        "<swap_hard_limit unit='KiB'>2097152</swap_hard_limit>"
        in d.cli("dumpxml", "tune1", "--inactive").ok().out
    )
    assert _values(d.cli("memtune", "tune1", "--config").ok().out)["swap_hard_limit"] == "2097152"
    assert _values(d.cli("memtune", "tune1").ok().out)["swap_hard_limit"] == "unlimited"
    below = d.cli("memtune", "tune1", "--hard-limit", "1G", "--swap-hard-limit", "512M", "--live")
    assert below.rc == 1 and "swap_hard_limit" in below.err
    refused = d.cli("memtune", "tune1", "--min-guarantee", "1G")
    assert refused.rc == 1 and "min-guarantee" in refused.err

    # schedinfo: shares and bandwidth on the cgroup.
    out = d.cli("schedinfo", "tune1").ok().out
    assert out.startswith("Scheduler      : posix\ncpu_shares     : 512\n"), out
    after = _values(d.cli("schedinfo", "tune1", "--set", "cpu_shares=256", "--live").ok().out)
    assert after["cpu_shares"] == "256" and _cpu(pid)[0] == 256
    d.cli("schedinfo", "tune1", "global_quota=50000").ok()
    assert _cpu(pid)[1] == 50000
    assert _values(d.cli("schedinfo", "tune1").ok().out)["global_quota"] == "50000"
    d.cli("schedinfo", "tune1", "--set", "global_quota=-1", "--current").ok()
    assert _cpu(pid)[1] == -1
    d.cli("schedinfo", "tune1", "--set", "cpu_shares=1024", "--config").ok()
    assert "<shares>1024</shares>" in d.cli("dumpxml", "tune1", "--inactive").ok().out
    assert _values(d.cli("schedinfo", "tune1", "--config").ok().out)["cpu_shares"] == "1024"
    for bad, word in (
        (["--set", "vcpu_quota=20000"], "vcpu_quota"),
        (["--set", "global_period=10"], "global_period"),
        (["--set", "nonsense=1"], "nonsense"),
        (["--weight", "10"], "--weight"),
        (["--cap", "10"], "--cap"),
    ):
        result = d.cli("schedinfo", "tune1", *bad)
        assert result.rc == 1 and word in result.err, (bad, result.err)

    percpu_figures(d, "tune1", pid)

    # Gone with QEMU: the groups pyvirt made for it, v1 twins included.
    twins = [_controller_dir(pid, c) for c in ("memory", "cpu", "cpuacct")]
    d.cli("destroy", "tune1").ok()
    assert not Path(record["cgroup"]).exists()
    assert not any(t.exists() and t.name == "pyvirt-tune1.scope" for t in twins)
    assert not any(
        t.parent.exists() for t in twins if t.parent.name.startswith("pyvirt-")
    )  # the daemon's slice
    # The definition's values apply at the next start.
    d.cli("start", "tune1").ok()
    pid = d.qemu_pids()["tune1"]
    assert _cpu(pid)[0] == 1024
    d.cli("destroy", "tune1").ok()


def percpu_figures(d: Daemon, name: str, pid: int) -> None:
    """cpu-stats' per-CPU figures: cgroup v1's cpuacct on a hybrid host (QEMU in a twin of its group,
    its vCPU threads in groups of their own), libvirt's refusal on a host with cgroup v2 alone."""
    result = d.cli("cpu-stats", name)
    if cpuacct.hierarchy() is None:
        assert result.rc == 1 and "not supported for backend 'cgroup V2'" in result.err, result.err
        return
    assert _controller_dir(pid, "cpuacct").name == f"pyvirt-{name}.scope"
    blocks = re.findall(
        r"CPU(\d+):\n\tcpu_time +(\d+)\.(\d{9}) seconds\n\tvcpu_time +(\d+)\.(\d{9}) seconds\n",
        result.ok().out,
    )
    host_cpus = cpuacct.host_cpus()
    assert [int(b[0]) for b in blocks] == list(range(host_cpus)), result.out
    cpu = [int(b[1]) * 10**9 + int(b[2]) for b in blocks]
    vcpu = [int(b[3]) * 10**9 + int(b[4]) for b in blocks]
    # The guest has run (its vCPU's time is counted), and a vCPU's time is part of QEMU's on each CPU.
    assert sum(vcpu) > 0 and all(v <= c for v, c in zip(vcpu, cpu, strict=True)), (cpu, vcpu)
    assert result.out.endswith("seconds\n\n") and "\nTotal:\n\tcpu_time" in result.out
    # --start/--count: those CPUs only, no total; virsh's checks and messages.
    last = host_cpus - 1
    out = d.cli("cpu-stats", name, "--start", str(last), "--count", "1").ok().out
    assert out.startswith(f"CPU{last}:\n\tcpu_time") and "Total" not in out and out.count("CPU") == 1, out
    out = d.cli("cpu-stats", name, "--count", str(host_cpus + 1)).ok().out
    assert out.startswith(f"Only {host_cpus} CPUs available to show\nCPU0:"), out
    result = d.cli("cpu-stats", name, "--start", str(host_cpus))
    assert result.rc == 1
    assert result.err == f"error: Start CPU {host_cpus} is out of range (min: 0, max: {last})\n"
    result = d.cli("cpu-stats", name, "--start", "-1")
    assert result.rc == 1 and result.err == "error: Invalid value for start CPU\n"
