"""QMP events applied to a domain under its lock, against a scripted QEMU: events racing commands,
stale STOPs, guest power-off, panic and S3/S4 suspend, and an event storm."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pyvirt.errors import InvalidState
from tests.support.fakeqmp import Bench, run_bench


def test_events_wait_for_the_operation_holding_the_lock(root: Path, errors: list[logging.LogRecord]) -> None:
    """The guest powers off while `suspend` waits for QEMU's answer: the SHUTDOWN event is applied
    after the suspend, under the lock, and the domain ends shut off (shutdown)."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        gate = qemu.hold("stop")
        suspend = asyncio.ensure_future(b.reg.suspend("d1"))
        await qemu.received("stop").wait()
        shutdown_applied = b.applied("d1", "SHUTDOWN")
        qemu.guest_poweroff()
        await asyncio.sleep(0.05)
        assert b.state("d1") == "running (booted)"  # the event waits for the lock
        assert not shutdown_applied.done()
        gate.set()
        await suspend
        await shutdown_applied
        await b.event("stopped")
        assert b.state("d1") == "shut off (shutdown)"
        assert b.seen == [
            ("started", "booted"),
            ("suspended", "paused"),
            ("shutdown", "finished"),
            ("stopped", "shutdown"),
        ]

    run_bench(root, body)


def test_a_stale_stop_does_not_pause_a_rebooted_guest(root: Path, errors: list[logging.LogRecord]) -> None:
    """on_poweroff=restart: QEMU's STOP (sent with its SHUTDOWN) is applied after the daemon reset and
    resumed the guest; query-status says it runs, so the domain stays running."""

    async def body(b: Bench) -> None:
        await b.define("d1", on_poweroff="restart")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        stop_applied = b.applied("d1", "STOP")
        qemu.guest_poweroff()
        await stop_applied
        assert b.state("d1") == "running (booted)"
        assert qemu.status == "running" and qemu.count("system_reset") == 1
        assert b.drain() == [("started", "booted"), ("rebooted", "acpi")]

    run_bench(root, body)


def test_reboot_is_a_shutdown_the_daemon_turns_into_a_reset(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        await b.reg.reboot("d1")
        qemu.guest_poweroff()
        await b.event("rebooted", "acpi")
        assert b.state("d1") == "running (booted)" and qemu.status == "running"
        await b.reg.reset("d1")
        assert qemu.count("system_reset") == 2

    run_bench(root, body)


@pytest.mark.parametrize(
    ("on_crash", "expected"),
    [("destroy", "shut off (crashed)"), ("preserve", "crashed (panicked)"), ("restart", "running (crashed)")],
)
def test_guest_panic(root: Path, on_crash: str, expected: str, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1", on_crash=on_crash)
        await b.reg.start("d1")
        qemu = b.host["d1"]
        done = b.applied("d1", "STOP")  # QEMU's STOP follows GUEST_PANICKED
        qemu.guest_panic()
        if on_crash == "destroy":
            await b.event("stopped")
        else:
            await done
        assert b.state("d1") == expected
        if on_crash == "preserve":
            with pytest.raises(InvalidState, match="domain is crashed"):
                await b.reg.suspend("d1")
            await b.reg.resume("d1")
            assert b.state("d1") == "running (unpaused)"

    run_bench(root, body)


def test_pmsuspend_and_wakeup(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        qemu.guest_suspend()
        await b.event("pmsuspended", "memory")
        assert b.state("d1") == "pmsuspended (unknown)"
        assert b.record("d1")["state"] == "pmsuspended"
        with pytest.raises(InvalidState, match="domain is pmsuspended"):
            await b.reg.suspend("d1")
        with pytest.raises(InvalidState, match="domain is not paused"):
            await b.reg.resume("d1")
        qemu.guest_wakeup()
        await b.event("started", "wakeup")
        assert b.state("d1") == "running (event wakeup)"

        qemu.guest_suspend(to_disk=True)  # S4: the guest writes its image and powers off
        await b.event("stopped")
        assert b.drain()[-3:] == [("pmsuspended", "disk"), ("shutdown", "finished"), ("stopped", "shutdown")]
        assert b.state("d1") == "shut off (shutdown)"

    run_bench(root, body)


def test_event_storm_racing_commands(root: Path, errors: list[logging.LogRecord]) -> None:
    """Hundreds of STOP/RESUME/RESET events, some stale, interleaved with suspend and resume: every
    change goes through the transition table (a refused one is logged as an error) and the domain
    ends in the state QEMU is in."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        for round_ in range(100):
            qemu.emit("RESET", {"guest": True, "reason": "guest-reset"})
            qemu.emit("STOP")  # stale: QEMU is still running
            qemu.emit("RESUME")
            if round_ % 3 == 0:
                qemu.status = "paused"  # something paused QEMU behind the daemon's back
                qemu.emit("STOP")
            ops = [b.reg.suspend("d1"), b.reg.resume("d1")] if round_ % 2 else [b.reg.resume("d1")]
            for op in ops:
                try:
                    await op
                except InvalidState as err:
                    assert "not paused" in str(err)
        last = b.applied("d1", "RESUME")
        qemu.emit("RESUME")
        await last
        expected = "running" if qemu.status == "running" else "paused"
        assert b.reg.lookup("d1").summary()["state"] == expected
        assert b.record("d1")["state"] == expected

    run_bench(root, body)
