"""The integration tests' order and work units (tests/support/schedule.py): longest files first, each
file's tests together and in their order, grouped files one unit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import schedule


def _items(*nodeids: str) -> list[Any]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_longest_units_first_each_file_whole_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "SECONDS", {"t/slow.py": 300.0, "t/mid.py": 60.0})
    monkeypatch.setattr(schedule, "GROUPS", {})
    items = _items(
        "t/a.py::one", "t/mid.py::x", "t/slow.py::p[1]", "t/a.py::two", "t/b.py::z", "t/slow.py::p[2]"
    )
    schedule.longest_first(items)
    assert [i.nodeid for i in items] == [
        "t/slow.py::p[1]", "t/slow.py::p[2]", "t/mid.py::x", "t/a.py::one", "t/a.py::two", "t/b.py::z"
    ]  # fmt: skip


def test_grouped_files_are_one_unit_weighing_what_its_files_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "SECONDS", {"t/g1.py": 40.0, "t/g2.py": 30.0, "t/solo.py": 50.0})
    monkeypatch.setattr(schedule, "GROUPS", {"t/g1.py": "shared", "t/g2.py": "shared"})
    assert schedule.unit_of("t/g2.py::test_x[a::b]") == "shared"
    assert schedule.unit_of("t/solo.py::test_y") == "t/solo.py"
    assert schedule.weight("shared") == 70.0
    items = _items("t/solo.py::s", "t/g1.py::a", "t/other.py::o", "t/g2.py::b")
    schedule.longest_first(items)
    assert [i.nodeid for i in items] == ["t/g1.py::a", "t/g2.py::b", "t/solo.py::s", "t/other.py::o"]
