"""The domain registry's operations against a scripted QEMU (tests/support/fakeqmp.py): the state is
checked inside the domain's lock, destroy gets through whatever else waits, re-adoption takes QEMU's
word, and definitions decide "was a UUID given" from the document."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pyvirt.daemon.domains import DomainRegistry
from pyvirt.errors import AlreadyExists, InvalidState, OperationFailed
from tests.support.fakeqmp import DOMAIN_XML, Bench, FakeQemu, run_bench


def test_start_suspend_resume_shutdown(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        assert b.state("d1") == "running (booted)"
        assert (b.record("d1")["state"], b.record("d1")["reason"]) == ("running", "booted")
        qemu = b.host["d1"]
        assert qemu.status == "running"

        await b.reg.suspend("d1")
        assert b.state("d1") == "paused (user)" and qemu.status == "paused"
        assert (b.record("d1")["state"], b.record("d1")["reason"]) == ("paused", "user")
        await b.reg.suspend("d1")  # already paused: nothing to do, as virsh
        assert qemu.count("stop") == 1
        await b.reg.resume("d1")
        assert b.state("d1") == "running (unpaused)"

        await b.reg.shutdown("d1")
        assert qemu.count("system_powerdown") == 1
        assert b.state("d1") == "running (unpaused)"  # the guest decides when it powers off
        qemu.guest_poweroff()
        await b.event("stopped")
        assert b.state("d1") == "shut off (shutdown)"
        assert qemu.count("quit") == 1
        assert not (b.layout.qemu_run_dir / "d1.json").exists()
        assert b.seen == [
            ("started", "booted"),
            ("suspended", "paused"),
            ("resumed", "unpaused"),
            ("shutdown", "finished"),
            ("stopped", "shutdown"),
        ]

        with pytest.raises(InvalidState, match="domain is not running"):
            await b.reg.suspend("d1")
        await b.reg.start("d1", paused=True)
        assert b.state("d1") == "paused (user)"
        with pytest.raises(InvalidState, match="domain is already running"):
            await b.reg.start("d1")
        await b.reg.destroy("d1")
        assert b.state("d1") == "shut off (destroyed)"

    run_bench(root, body)


OPERATIONS: dict[str, tuple[Callable[[DomainRegistry], Awaitable[object]], str]] = {
    "shutdown": (lambda reg: reg.shutdown("d1"), "system_powerdown"),
    "reboot": (lambda reg: reg.reboot("d1"), "system_powerdown"),
    "reset": (lambda reg: reg.reset("d1"), "system_reset"),
    "suspend": (lambda reg: reg.suspend("d1"), "stop"),
    "resume": (lambda reg: reg.resume("d1"), "cont"),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_an_operation_during_a_start_waits_for_it(root: Path, operation: str) -> None:
    """The state is checked inside the lock: an operation asked while the domain starts acts on the
    started domain, instead of being refused with 'not running' by a check made before the lock."""
    gates: list[asyncio.Event] = []

    def script(qemu: FakeQemu) -> None:
        gates.append(qemu.hold("query-chardev"))

    async def body(b: Bench) -> None:
        await b.define("d1")
        start = asyncio.ensure_future(b.reg.start("d1", paused=operation == "resume"))
        while not b.host.qemus:
            await asyncio.sleep(0.01)
        qemu = b.host["d1"]
        await qemu.received("query-chardev").wait()
        call, command = OPERATIONS[operation]
        before = qemu.count(command)
        op = asyncio.ensure_future(call(b.reg))
        await asyncio.sleep(0.05)
        assert not op.done()
        gates[0].set()
        await start
        await op
        assert qemu.count(command) == before + 1

    run_bench(root, body, script)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_an_operation_queued_behind_an_exit_is_refused(root: Path, operation: str) -> None:
    """QEMU exits while an operation waits for the lock: it is refused as 'not running', not sent to
    the monitor of a QEMU that is gone."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1", paused=operation == "resume")
        qemu = b.host["d1"]
        obj = b.reg.lookup("d1")
        proc = obj.proc
        assert proc is not None
        async with obj.lock:  # an operation in progress
            qemu.exit()
            await asyncio.shield(proc.exited)  # the exit watcher now waits for the lock
            call, _command = OPERATIONS[operation]
            op = asyncio.ensure_future(call(b.reg))
            await asyncio.sleep(0)
        with pytest.raises(InvalidState, match="domain is not running"):
            await op
        assert b.state("d1") == "shut off (crashed)"

    run_bench(root, body)


def test_destroy_gets_through_a_command_qemu_never_answers(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        qemu.hold("stop")  # never released: a hung QEMU
        suspend = asyncio.ensure_future(b.reg.suspend("d1"))
        await qemu.received("stop").wait()
        await b.reg.destroy("d1")
        assert b.state("d1") == "shut off (destroyed)"
        with pytest.raises(Exception, match="lost the QEMU monitor"):
            await suspend
        assert b.drain() == [("started", "booted"), ("stopped", "destroyed")]

    run_bench(root, body)


def test_set_autostart_takes_the_lock(root: Path) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        obj = b.reg.lookup("d1")
        link = b.layout.autostart_dir / "d1.xml"
        async with obj.lock:
            task = asyncio.ensure_future(b.reg.set_autostart("d1", True))
            await asyncio.sleep(0.05)
            assert not task.done() and not link.is_symlink()
        await task
        assert link.is_symlink() and obj.autostart

    run_bench(root, body)


@pytest.mark.parametrize(
    "extra",
    [
        "<!-- was <uuid>00000000-0000-0000-0000-000000000001</uuid> -->",
        "<metadata><uuid xmlns='urn:example'>not the domain's</uuid></metadata>",
    ],
)
def test_a_redefinition_without_uuid_keeps_the_uuid(root: Path, extra: str) -> None:
    """Whether a UUID was given is read from the parsed document, not from the text containing "<uuid"."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        uuid = b.reg.lookup("d1").uuid
        xml = DOMAIN_XML.format(name="d1", on_poweroff="destroy", on_crash="destroy")
        obj, new = await b.reg.define(xml.replace("<memory", extra + "\n  <memory"))
        assert not new and obj.uuid == uuid
        other = xml.replace(
            "<name>d1</name>", "<name>d1</name><uuid>00000000-0000-0000-0000-00000000000a</uuid>"
        )
        with pytest.raises(AlreadyExists, match=f"already exists with uuid {uuid}"):
            await b.reg.define(other)

    run_bench(root, body)


def test_two_destroys_at_once(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        results = await asyncio.gather(b.reg.destroy("d1"), b.reg.destroy("d1"), return_exceptions=True)
        refused = [r for r in results if isinstance(r, InvalidState)]
        assert len(refused) == 1 and "domain is not running" in str(refused[0])
        assert b.state("d1") == "shut off (destroyed)"
        assert b.drain() == [("started", "booted"), ("stopped", "destroyed")]

    run_bench(root, body)


@pytest.mark.parametrize(
    ("status", "before", "after"),
    [
        ("running", "suspend-resume", "running (unpaused)"),
        ("paused", "suspend", "paused (user)"),
        ("suspended", "", "pmsuspended (unknown)"),
        ("guest-panicked", "", "crashed (panicked)"),
        ("shutdown", "", "shut off (shutdown)"),  # powered off while no daemon watched: ended now
    ],
)
def test_a_new_daemon_takes_the_state_from_qemu(
    root: Path, status: str, before: str, after: str, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        if "suspend" in before:
            await b.reg.suspend("d1")
        if "resume" in before:
            await b.reg.resume("d1")
        await b.reg.shutdown_all()
        qemu.status = status  # what happened while no daemon was there
        await b.restart_daemon()
        if status == "shutdown":
            await b.event("stopped", "shutdown")
        assert b.state("d1") == after
        if after.startswith("shut off"):
            assert qemu.count("quit") == 1
        else:
            assert b.reg.lookup("d1").proc is not None and qemu.count("quit") == 0

    run_bench(root, body)


def test_destroy_during_a_start_ends_the_started_domain(root: Path, errors: list[logging.LogRecord]) -> None:
    gates: list[asyncio.Event] = []

    def script(qemu: FakeQemu) -> None:
        gates.append(qemu.hold("query-chardev"))

    async def body(b: Bench) -> None:
        await b.define("d1")
        start = asyncio.ensure_future(b.reg.start("d1"))
        while not b.host.qemus:
            await asyncio.sleep(0.01)
        await b.host["d1"].received("query-chardev").wait()
        destroy = asyncio.ensure_future(b.reg.destroy("d1"))
        await asyncio.sleep(0.05)
        assert not destroy.done()
        gates[0].set()
        await start
        await destroy
        assert b.state("d1") == "shut off (destroyed)"
        assert b.drain() == [("started", "booted"), ("stopped", "destroyed")]

    run_bench(root, body, script)


def test_a_destroy_that_cannot_end_the_process_says_so_and_can_be_retried(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        proc = b.reg.lookup("d1").proc
        assert proc is not None
        real_terminate = proc.terminate

        async def unkillable(graceful: bool, timeout: float = 10.0) -> None:
            raise TimeoutError  # as QemuProcess.terminate when SIGKILL did not end the process

        proc.terminate = unkillable  # type: ignore[method-assign]
        with pytest.raises(OperationFailed, match=f"Failed to terminate process {proc.pid}"):
            await b.reg.destroy("d1")
        assert b.state("d1") == "running (booted)"
        proc.terminate = real_terminate  # type: ignore[method-assign]
        await b.reg.destroy("d1")
        assert b.state("d1") == "shut off (destroyed)"

    run_bench(root, body)


def test_run_state_rewrites_the_running_definition_only_when_it_changed(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    """A change of state alone (suspend, resume) rewrites the run record, not the running definition's
    file; a changed definition, or a new QEMU, writes it again."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        xml = b.layout.qemu_run_dir / "d1.xml"
        first = xml.stat().st_ino
        await b.reg.suspend("d1")
        await b.reg.resume("d1")
        assert xml.stat().st_ino == first and b.record("d1")["reason"] == "unpaused"
        obj = b.reg.lookup("d1")
        assert obj.live is not None
        obj.live.description = "changed"
        b.reg.save_run_state(obj)
        assert xml.stat().st_ino != first and "changed" in xml.read_text()
        await b.reg.destroy("d1")
        assert not xml.exists()
        await b.reg.start("d1")
        assert xml.exists() and b.record("d1")["state"] == "running"

    run_bench(root, body)
