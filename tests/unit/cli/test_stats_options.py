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
from pyvirt.errors import InvalidArgument


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


@pytest.mark.parametrize("option", ["--start", "--count"])
def test_cpu_stats_has_no_per_cpu_statistics(monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    with pytest.raises(InvalidArgument, match="per-CPU"):
        run(monkeypatch, "cpu-stats", "d1", option, "0")
