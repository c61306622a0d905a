"""domstats' and cpu-stats' options become the request the daemon gets, or are refused by name. The
daemon's side is a fake here; the statistics themselves are shown on a real guest in
tests/integration/daemon/test_stats.py."""

from __future__ import annotations

from typing import Any

import pytest

from pyvirt.cli import stats
from pyvirt.cli.args import parse
from pyvirt.cli.commands import find
from pyvirt.cli.main import GlobalOptions
from pyvirt.errors import InvalidArgument, PyvirtError, UnsupportedConfig
from pyvirt.qemu.cpuacct import NO_PERCPU


class FakeConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def domain_stats(
        self, domains: list[str] | None = None, *, groups: Any = None, filters: Any = None
    ) -> list[dict[str, Any]]:
        self.calls.append((domains, groups, filters))
        return [{"name": "d1", "fields": {"state.state": 1, "state.reason": 1}}]


def run(monkeypatch: pytest.MonkeyPatch, verb: str, *argv: str) -> FakeConnection:
    conn = FakeConnection()
    monkeypatch.setattr(GlobalOptions, "connect", lambda self: conn)
    cmd = find(verb)
    assert cmd is not None
    func = getattr(stats, "cmd_" + verb.replace("-", "_"))
    assert func(GlobalOptions(), parse(cmd, list(argv))) == 0
    return conn


def test_domstats_groups_filters_and_domains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = run(monkeypatch, "domstats", "--cpu-total", "--balloon", "--state", "d1", "d2")
    assert conn.calls == [(["d1", "d2"], ["state", "cpu-total", "balloon"], None)]
    assert capsys.readouterr().out == "Domain: 'd1'\n  state.state=1\n  state.reason=1\n\n"
    flags = ["--list-active", "--list-persistent", "--list-transient", "--list-paused"]
    flags += ["--list-shutoff", "--list-other"]
    conn = run(monkeypatch, "domstats", *flags, "--enforce", "--nowait", "--raw")
    assert conn.calls == [(None, None, ["active", "persistent", "transient", "paused", "shutoff", "other"])]


@pytest.mark.parametrize("flag", ["--perf", "--iothread", "--memory", "--dirtyrate", "--vm", "--backing"])
def test_domstats_refuses_what_it_has_not(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    with pytest.raises(InvalidArgument, match=flag):
        run(monkeypatch, "domstats", flag, "d1")


def test_domstats_filters_and_names_exclude_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match="cannot be combined"):
        run(monkeypatch, "domstats", "--list-running", "d1")


class FakeDomain:
    """A running domain on a host of 3 CPUs, or (``v2``) one whose host keeps no per-CPU figures."""

    name = "d1"

    def __init__(self, v2: bool = False) -> None:
        self.v2 = v2

    def info(self) -> dict[str, Any]:
        return {"id": 7}

    def percpu_stats(self, *, count: bool = False) -> dict[str, Any]:
        if count:
            return {"host_cpus": 3, "cpus": []}
        if self.v2:
            raise UnsupportedConfig(NO_PERCPU)
        return {
            "host_cpus": 3,
            "cpus": [{"cpu_time": c * 1_500_000_000 + 7, "vcpu_time": c} for c in range(3)],
        }


def run_cpu_stats(monkeypatch: pytest.MonkeyPatch, *argv: str, v2: bool = False) -> None:
    conn = FakeConnection()
    conn.domain = lambda key: FakeDomain(v2)  # type: ignore[attr-defined]
    conn.domain_stats = lambda names, groups: [  # type: ignore[method-assign]
        {"name": "d1", "fields": {"cpu.time": 12_000_000_001, "cpu.user": 2, "cpu.system": 3}}
    ]
    monkeypatch.setattr(GlobalOptions, "connect", lambda self: conn)
    cmd = find("cpu-stats")
    assert cmd is not None
    assert stats.cmd_cpu_stats(GlobalOptions(), parse(cmd, ["d1", *argv])) == 0


CPU = "CPU{0}:\n\tcpu_time     {1:>9}.{2:09d} seconds\n\tvcpu_time            0.{0:09d} seconds\n"
TOTAL = (
    "Total:\n\tcpu_time            12.000000001 seconds\n"
    "\tuser_time            0.000000002 seconds\n\tsystem_time          0.000000003 seconds\n"
)


def test_cpu_stats_per_cpu_then_total(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cpu_stats(monkeypatch)
    cpus = CPU.format(0, 0, 7) + CPU.format(1, 1, 500_000_007) + CPU.format(2, 3, 7)
    assert capsys.readouterr().out == cpus + TOTAL + "\n"
    run_cpu_stats(monkeypatch, "--total")
    assert capsys.readouterr().out == TOTAL + "\n"
    run_cpu_stats(monkeypatch, "--start", "1", "--count", "1")
    assert capsys.readouterr().out == CPU.format(1, 1, 500_000_007) + "\n"
    run_cpu_stats(monkeypatch, "--start", "2", "--total")
    assert capsys.readouterr().out == CPU.format(2, 3, 7) + TOTAL + "\n"
    run_cpu_stats(monkeypatch, "--count", "5")
    out = capsys.readouterr().out
    assert out.startswith("Only 3 CPUs available to show\nCPU0:\n") and out.count("CPU") == 3 + 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "-1"], "Invalid value for start CPU"),
        (["--count", "-2"], "Invalid value for number of CPUs to show"),
        (["--start", "3"], r"Start CPU 3 is out of range \(min: 0, max: 2\)"),
    ],
)
def test_cpu_stats_refuses_as_virsh(monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run_cpu_stats(monkeypatch, *argv)


def test_cpu_stats_without_per_cpu_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PyvirtError) as err:
        run_cpu_stats(monkeypatch, v2=True)
    assert str(err.value) == (
        "Failed to retrieve CPU statistics for domain 'd1'\nerror: Operation not supported: "
        "operation 'getCpuacctPercpuUsage' not supported for backend 'cgroup V2'"
    )
