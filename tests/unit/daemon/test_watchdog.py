"""QEMU's WATCHDOG event against a scripted QEMU: published as libvirt's watchdog event with QEMU's
action, and a ``pause`` moving the domain to paused (watchdog) as libvirt does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.fakeqmp import Bench, run_bench


def test_pause_publishes_the_event_then_suspends(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        stopped = b.applied("d1", "STOP")  # QEMU's STOP follows its WATCHDOG
        qemu.watchdog_fires("pause")
        await stopped
        assert b.state("d1") == "paused (watchdog)"
        assert b.drain() == [("started", "booted"), ("watchdog", "pause"), ("suspended", "watchdog")]
        await b.reg.resume("d1")
        assert b.state("d1") == "running (unpaused)"

    run_bench(root, body)


@pytest.mark.parametrize("action", ["none", "reset", "inject-nmi"])
def test_other_actions_are_published_and_leave_the_state(
    root: Path, action: str, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        done = b.applied("d1", "WATCHDOG")
        b.host["d1"].watchdog_fires(action)
        await done
        assert b.state("d1") == "running (booted)"
        assert b.drain() == [("started", "booted"), ("watchdog", action)]

    run_bench(root, body)


def test_an_action_qemu_may_add_is_published_as_unknown(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        done = b.applied("d1", "WATCHDOG")
        b.host["d1"].emit("WATCHDOG", {"action": "something-new"})
        await done
        assert b.drain()[-1] == ("watchdog", "unknown")

    run_bench(root, body)
