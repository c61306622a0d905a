"""Per-CPU accounting from cgroup v1's cpuacct: the twin of a domain's v2 group and its vCPU children, on
a directory tree standing in for the hierarchies (the real ones: tests/integration/daemon/test_stats.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.errors import InvalidState, UnsupportedConfig
from pyvirt.qemu import cgroup, cpuacct


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    v2, acct = tmp_path / "unified", tmp_path / "cpuacct"
    v2.mkdir()
    acct.mkdir()
    monkeypatch.setattr(cgroup, "mount_point", lambda: v2)
    monkeypatch.setattr(cpuacct, "hierarchy", lambda: acct)
    monkeypatch.setattr(cpuacct, "present_cpus", lambda: [0, 1, 3])  # CPU 2 absent
    return v2, acct


def test_mounts_and_cpu_lists(tmp_path: Path) -> None:
    mounts = tmp_path / "mountinfo"
    mounts.write_text(
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    )
    assert cpuacct.hierarchy(mounts) == Path("/sys/fs/cgroup/cpu,cpuacct")
    mounts.write_text("41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n")
    assert cpuacct.hierarchy(mounts) is None
    present = tmp_path / "present"
    present.write_text("0-2,5\n")
    assert cpuacct.present_cpus(str(present)) == [0, 1, 2, 5]


def test_twin_vcpus_and_figures(hosts: tuple[Path, Path]) -> None:
    v2, acct = hosts
    group = v2 / "pyvirt.slice" / "pyvirt-web.scope"
    twin = cpuacct.create(group)
    assert twin == acct / "pyvirt.slice" / "pyvirt-web.scope" and twin.is_dir()
    (twin / "cpuacct.usage_percpu").write_text("100 200 300 \n")  # the present CPUs 0, 1, 3
    for index in (0, 1):
        (twin / f"vcpu{index}").mkdir()
        (twin / f"vcpu{index}" / "cpuacct.usage_percpu").write_text(
            f"{10 + index} {20 + index} {30 + index}\n"
        )
    times = cpuacct.percpu(str(group), [0, 1])
    assert [(t.cpu_time, t.vcpu_time) for t in times] == [(100, 21), (200, 41), (0, 0), (300, 61)]
    # A vCPU whose thread has no group (it came while the daemon was away) counts for nothing.
    assert [t.vcpu_time for t in cpuacct.percpu(str(group), [0, 5])] == [10, 20, 0, 30]
    for child in twin.iterdir():
        if child.is_file():
            child.unlink()
        else:
            (child / "cpuacct.usage_percpu").unlink()
    cpuacct.remove(group)
    assert not twin.exists()


def test_no_cpuacct_is_libvirts_refusal(hosts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    v2, _acct = hosts
    monkeypatch.setattr(cpuacct, "hierarchy", lambda: None)
    assert cpuacct.create(v2 / "g") is None
    with pytest.raises(UnsupportedConfig, match="not supported for backend 'cgroup V2'"):
        cpuacct.percpu(str(v2 / "g"), [0])
    with pytest.raises(InvalidState, match="cgroup CPUACCT controller is not mounted"):
        cpuacct.percpu(None, [0])  # a domain with no cgroup (session daemon)
