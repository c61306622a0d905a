"""pyvirt.qemu.cgtune on a cgroup v2 group (a directory laid out as the kernel's: this host's memory and
cpu controllers are cgroup v1, which tests/integration/daemon/test_tuning.py drives for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.qemu.cgtune import UNLIMITED_KIB, DomainGroup


@pytest.fixture
def group(tmp_path: Path) -> DomainGroup:
    files = {
        "cgroup.controllers": "cpu memory io pids\n",
        "memory.max": "max\n",
        "memory.high": "max\n",
        "memory.swap.max": "max\n",
        "cpu.weight": "100\n",
        "cpu.max": "max 100000\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return DomainGroup(str(tmp_path), 1)


def test_memory_limits_as_v2_files(group: DomainGroup) -> None:
    assert group.memory() == dict.fromkeys(("hard_limit", "soft_limit", "swap_hard_limit"), UNLIMITED_KIB)
    group.set_memory({"hard_limit": 524288, "soft_limit": 262144})
    assert (group.v2 / "memory.max").read_text() == str(512 << 20)
    assert (group.v2 / "memory.high").read_text() == str(256 << 20)
    assert group.memory()["hard_limit"] == 524288
    group.set_memory({"hard_limit": UNLIMITED_KIB})
    assert (group.v2 / "memory.max").read_text() == "max"
    with pytest.raises(InvalidArgument, match="swap_hard_limit"):
        group.set_memory({"hard_limit": 1024, "swap_hard_limit": 512})
    assert (group.v2 / "memory.max").read_text() == "max"  # refused before anything was written


def test_cpu_weight_and_bandwidth_as_v2_files(group: DomainGroup) -> None:
    assert group.cpu() == {"cpu_shares": 100, "global_period": 100000, "global_quota": -1}
    group.set_cpu({"cpu_shares": 512, "global_quota": 50000})
    assert (group.v2 / "cpu.weight").read_text() == "512"
    assert (group.v2 / "cpu.max").read_text() == "50000 100000"
    group.set_cpu({"global_period": 200000})
    assert (group.v2 / "cpu.max").read_text() == "50000 200000"
    group.set_cpu({"global_quota": -1})
    assert group.cpu()["global_quota"] == -1 and (group.v2 / "cpu.max").read_text() == "max 200000"
    with pytest.raises(InvalidArgument, match="cpu_shares"):
        group.set_cpu({"cpu_shares": 20000})  # above cpu.weight's 10000
    with pytest.raises(InvalidArgument, match="global_period"):
        group.set_cpu({"global_period": 10})


def test_no_group_is_refused() -> None:
    with pytest.raises(OperationFailed, match="no cgroup"):
        DomainGroup(None, 1)
