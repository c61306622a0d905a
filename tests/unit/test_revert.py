"""The undo helper: reverse order, success forgets, failing undo steps do not hide the error."""

from __future__ import annotations

import logging

import pytest

from pyvirt.revert import Revert


def test_failure_undoes_in_reverse() -> None:
    done: list[str] = []
    with pytest.raises(RuntimeError, match="step 3"), Revert() as revert:
        for step in ("1", "2"):
            revert.add(lambda step=step: done.append(step))  # type: ignore[misc]
        raise RuntimeError("step 3")
    assert done == ["2", "1"]


def test_success_keeps_everything() -> None:
    done: list[str] = []
    with Revert() as revert:
        revert.add(lambda: done.append("undo"))
        revert.success()
    assert done == []


def test_leaving_without_success_undoes() -> None:
    done: list[str] = []
    with Revert() as revert:
        revert.add(lambda: done.append("undo"))
    assert done == ["undo"]


def test_a_failing_undo_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def broken() -> None:
        raise OSError("gone")

    revert = Revert()
    revert.add(lambda: done.append("first"))
    revert.add(broken, "remove the bridge")
    revert.add(lambda: done.append("last"))
    with caplog.at_level(logging.ERROR, "pyvirt.revert"):
        revert.fail()
    assert done == ["last", "first"]
    assert "remove the bridge" in caplog.text
    revert.fail()  # each step runs once
    assert done == ["last", "first"]


def test_clone_hands_the_steps_over() -> None:
    done: list[str] = []
    with Revert() as revert:
        revert.add(lambda: done.append("undo"))
        later = revert.clone()
        revert.success()
    assert done == [] and len(later) == 1
    later.fail()
    assert done == ["undo"]
