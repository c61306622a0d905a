"""The domain registry's lifecycle against a scripted QEMU (tests/support/fakeqmp.py): operations, QMP
events applied under the domain's lock, events racing commands, event storms, and destroy getting
through whatever else is waiting."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from pyvirt.daemon.domains import DomainRegistry
from pyvirt.errors import AlreadyExists, InvalidState
from tests.support.fakeqmp import DOMAIN_XML, Bench, FakeQemu

# A bound on each test so that a deadlock fails it instead of hanging the run (not a timing check).
HANG = 60


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: the monitor socket path must fit a sockaddr_un.
    with tempfile.TemporaryDirectory(prefix="pv", dir="/tmp") as tmp:
        yield Path(tmp)


def run(
    root: Path, body: Callable[[Bench], Awaitable[None]], script: Callable[[FakeQemu], None] | None = None
) -> None:
    async def main() -> None:
        bench = Bench(root, script)
        try:
            async with asyncio.timeout(HANG):
                await body(bench)
        finally:
            await bench.close()

    asyncio.run(main())


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Errors logged by the daemon (an event that could not be applied is one)."""
    caplog.set_level(logging.WARNING)
    found: list[logging.LogRecord] = []
    yield found
    found.extend(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert not found, [r.getMessage() for r in found]


def record(bench: Bench, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((bench.layout.qemu_run_dir / f"{name}.json").read_text())
    return data


def test_start_suspend_resume_shutdown(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        assert b.state("d1") == "running (booted)"
        assert (record(b, "d1")["state"], record(b, "d1")["reason"]) == ("running", "booted")
        qemu = b.host["d1"]
        assert qemu.status == "running"

        await b.reg.suspend("d1")
        assert b.state("d1") == "paused (user)" and qemu.status == "paused"
        assert (record(b, "d1")["state"], record(b, "d1")["reason"]) == ("paused", "user")
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

    run(root, body)


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

    run(root, body, script)


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

    run(root, body)


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

    run(root, body)


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

    run(root, body)


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

    run(root, body)


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

    run(root, body)


def test_pmsuspend_and_wakeup(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        qemu.guest_suspend()
        await b.event("pmsuspended", "memory")
        assert b.state("d1") == "pmsuspended (unknown)"
        assert record(b, "d1")["state"] == "pmsuspended"
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

    run(root, body)


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
        assert record(b, "d1")["state"] == expected

    run(root, body)


def test_detach_waits_without_the_lock_and_destroy_ends_the_wait(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    from pyvirt.daemon import nics

    def script(qemu: FakeQemu) -> None:
        qemu.auto_release = False  # the guest never answers the unplug request

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        detach = asyncio.ensure_future(
            nics.detach_interface(b.reg, "d1", "52:54:00:aa:00:01", live=True, config=False)
        )
        await qemu.received("device_del").wait()
        # While the guest takes its time, the domain is free for other operations.
        await b.reg.suspend("d1")
        await b.reg.resume("d1")
        assert not detach.done()
        await b.reg.destroy("d1")
        assert b.state("d1") == "shut off (destroyed)"
        with pytest.raises(InvalidState, match="domain is not running"):
            await detach

    run(root, body, script)


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

    run(root, body)


def test_detach_completes_when_the_guest_releases_the_device(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    from pyvirt.daemon import nics
    from pyvirt.errors import OperationFailed

    def script(qemu: FakeQemu) -> None:
        qemu.auto_release = False

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        obj = b.reg.lookup("d1")
        assert obj.live is not None and obj.config is not None
        mac = "52:54:00:aa:00:01"
        with pytest.raises(OperationFailed, match="it is removed when the guest releases it"):
            await nics.detach_interface(b.reg, "d1", mac, live=True, config=True, timeout=0.01)
        assert len(obj.config.devices.interfaces) == 0  # the config changed at once
        assert len(obj.live.devices.interfaces) == 1  # the guest still has it
        # A second request waits for the same removal instead of asking QEMU again.
        again = asyncio.ensure_future(nics.detach_interface(b.reg, "d1", mac, live=True, config=False))
        await asyncio.sleep(0.05)
        assert qemu.count("device_del") == 1 and not again.done()
        qemu.guest_release("net0")
        await again
        assert obj.live.devices.interfaces == []
        assert ("netdev_del", {"id": "hostnet0"}) in qemu.commands
        assert "52:54:00:aa:00:01" not in (b.layout.qemu_run_dir / "d1.xml").read_text()

    run(root, body, script)


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

    run(root, body)


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

    run(root, body)


def test_two_destroys_at_once(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        results = await asyncio.gather(b.reg.destroy("d1"), b.reg.destroy("d1"), return_exceptions=True)
        refused = [r for r in results if isinstance(r, InvalidState)]
        assert len(refused) == 1 and "domain is not running" in str(refused[0])
        assert b.state("d1") == "shut off (destroyed)"
        assert b.drain() == [("started", "booted"), ("stopped", "destroyed")]

    run(root, body)


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

    run(root, body)


def test_nics_with_user_aliases_hotplug_and_unplug_with_their_own_netdevs(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    """A NIC's netdev is hostnetN by its place at start, whatever its alias: a detach removes that
    netdev, and a hot-plugged NIC never takes a netdev id already in use."""
    from pyvirt.daemon import nics

    async def body(b: Bench) -> None:
        xml = DOMAIN_XML.format(name="d1", on_poweroff="destroy", on_crash="destroy")
        xml = xml.replace("<model type='virtio'/>", "<model type='virtio'/><alias name='ua-lan'/>")
        await b.reg.define(xml)
        await b.reg.start("d1")
        qemu = b.host["d1"]
        assert "virtio-net-pci,netdev=hostnet0,id=ua-lan,mac=52:54:00:aa:00:01" in b.host.argvs["d1"]
        added = await nics.attach_interface(
            b.reg, "d1", {"type": "user", "mac": "52:54:00:aa:00:02"}, live=True, config=False
        )
        assert added["mac"] == "52:54:00:aa:00:02"
        netdevs = [args["id"] for name, args in qemu.commands if name == "netdev_add"]
        assert netdevs == ["hostnet1"]
        await nics.detach_interface(b.reg, "d1", "52:54:00:aa:00:01", live=True, config=False)
        assert ("netdev_del", {"id": "hostnet0"}) in qemu.commands
        await nics.attach_interface(b.reg, "d1", {"type": "user"}, live=True, config=False)
        netdevs = [args["id"] for name, args in qemu.commands if name == "netdev_add"]
        assert netdevs == ["hostnet1", "hostnet2"]
        assert ("netdev_del", {"id": "hostnet1"}) not in qemu.commands
        assert record(b, "d1")["netdevs"] == {"net1": "hostnet1", "net2": "hostnet2"}

    run(root, body)


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

    run(root, body, script)


def test_a_destroy_that_cannot_end_the_process_says_so_and_can_be_retried(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    from pyvirt.errors import OperationFailed

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

    run(root, body)
