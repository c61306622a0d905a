"""A scripted QEMU for unit tests of the daemon's lifecycle: QMP on a real Unix socket, a real process.

:class:`FakeQemu` speaks QMP as QEMU does (greeting, ``qmp_capabilities``, commands answered in order
with their ``id``, events at any moment) and keeps a small model of QEMU's run state (``query-status``,
STOP/RESUME/SHUTDOWN/RESET/SUSPEND/WAKEUP as QEMU sends them with ``-no-shutdown``). A test scripts it:
``handle(command, fn)`` replaces what a command does, ``hold(command)`` keeps its answer back until the
test releases it (a QEMU busy or hung), ``emit(event)`` sends an event, ``guest_*`` play what a guest
does (power off, panic, suspend to RAM, release a device). Ganeti's and qemu.qmp's own tests use the
same kind of scripted server.

The "QEMU process" is a real child (a sleeping Python whose command line carries ``-uuid UUID``, which
is what the daemon checks before it re-adopts a QEMU): the daemon watches its exit through a pidfd and
ends it with signals, as it does a real QEMU; ``quit`` ends it and closes the socket, as QEMU does.
:class:`FakeHost` stands in for :meth:`QemuProcess.spawn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyvirt.qemu.monitor import Monitor
from pyvirt.qemu.process import QemuProcess, RunRecord

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


async def _returning(value: Any) -> Any:
    return value


class QmpError(Exception):
    """Raised by a handler: answered as a QMP error."""

    def __init__(self, desc: str, klass: str = "GenericError") -> None:
        super().__init__(desc)
        self.desc = desc
        self.klass = klass


class FakeQemu:
    """One scripted QEMU: its QMP server and its process."""

    def __init__(self, socket_path: str, uuid: str) -> None:
        self.socket_path = socket_path
        self.uuid = uuid
        self.status = "prelaunch"  # QEMU's run state; -S starts it here
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.events_sent: list[str] = []
        self.devices: set[str] = set()  # device ids added by device_add or given at start
        self.unplug_requested: set[str] = set()
        self.auto_release = True  # device_del: the guest releases the device at once
        self.popen: subprocess.Popen[bytes] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._handlers: dict[str, Handler] = {}
        self._held: dict[str, asyncio.Event] = {}
        self._received: dict[str, asyncio.Event] = {}
        self._pidfd: int | None = None
        self._defaults()

    # Setting up

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.socket_path)
        self.popen = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(3600)", "-uuid", self.uuid],
            stdin=subprocess.DEVNULL,
        )
        self._pidfd = os.pidfd_open(self.popen.pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._process_gone)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def handle(self, command: str, handler: Handler) -> None:
        """Run ``handler(arguments)`` for ``command``; its return value is the answer."""
        self._handlers[command] = handler

    def hold(self, command: str) -> asyncio.Event:
        """Keep the answers to ``command`` back until the returned event is set."""
        gate = asyncio.Event()
        self._held[command] = gate
        return gate

    def received(self, command: str) -> asyncio.Event:
        """Set once ``command`` has been received (before it is answered)."""
        return self._received.setdefault(command, asyncio.Event())

    def count(self, command: str) -> int:
        return sum(1 for name, _ in self.commands if name == command)

    # What QEMU sends by itself

    def emit(self, event: str, data: dict[str, Any] | None = None) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        now = time.time()
        message: dict[str, Any] = {
            "event": event,
            "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)},
        }
        if data is not None:
            message["data"] = data
        self.events_sent.append(event)
        self._writer.write(json.dumps(message).encode() + b"\r\n")

    def _stop(self, reason: str) -> None:
        was_running = self.status == "running"
        self.status = reason
        if was_running:
            self.emit("STOP")

    def guest_poweroff(self) -> None:
        """The guest powers off: QEMU (-no-shutdown) reports SHUTDOWN and stops."""
        self.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        self._stop("shutdown")

    def guest_panic(self) -> None:
        """The guest panics (pvpanic, -action panic=pause)."""
        self.emit("GUEST_PANICKED", {"action": "pause", "info": {"type": "hyper-v"}})
        self._stop("guest-panicked")

    def watchdog_fires(self, action: str) -> None:
        """The guest's watchdog expires: QEMU (-watchdog-action ACTION) reports WATCHDOG; pause stops it."""
        self.emit("WATCHDOG", {"action": action})
        if action == "pause":
            self._stop("watchdog")

    def guest_suspend(self, to_disk: bool = False) -> None:
        """The guest suspends to RAM (S3), or writes its image and powers off (S4)."""
        if to_disk:
            self.emit("SUSPEND_DISK")
            self.guest_poweroff()
            return
        self.status = "suspended"
        self.emit("SUSPEND")

    def guest_wakeup(self) -> None:
        if self.status == "suspended":
            self.status = "running"
            self.emit("WAKEUP")

    def guest_release(self, device: str) -> None:
        """The guest lets go of a device it was asked to release."""
        if device in self.devices:
            self.devices.discard(device)
            self.unplug_requested.discard(device)
            self.emit("DEVICE_DELETED", {"device": device, "path": f"/machine/peripheral/{device}"})

    def exit(self) -> None:
        """QEMU ends by itself (a crash, a kill from outside)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)

    async def close(self) -> None:
        self.exit()
        if self._server is not None:
            self._server.close()
        self._drop_connection()
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
                os.close(self._pidfd)
            self._pidfd = None
        if self.popen is not None:
            with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
                self.popen.wait(5)

    # The default behaviour of the commands the daemon uses

    def _defaults(self) -> None:
        async def ok(args: dict[str, Any]) -> Any:
            return {}

        async def query_status(args: dict[str, Any]) -> Any:
            return {"running": self.status == "running", "status": self.status, "singlestep": False}

        async def cont(args: dict[str, Any]) -> Any:
            if self.status == "suspended":
                raise QmpError("Resetting the Virtual Machine is required")
            if self.status != "running":
                self.status = "running"
                self.emit("RESUME")
            return {}

        async def stop(args: dict[str, Any]) -> Any:
            if self.status == "running":
                self._stop("paused")
            elif self.status == "prelaunch":
                self.status = "paused"
            return {}

        async def system_reset(args: dict[str, Any]) -> Any:
            self.emit("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
            if self.status in ("shutdown", "guest-panicked", "suspended"):
                self.status = "paused"
            return {}

        async def system_wakeup(args: dict[str, Any]) -> Any:
            self.guest_wakeup()
            return {}

        async def quit_(args: dict[str, Any]) -> Any:
            self.emit("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
            asyncio.get_running_loop().call_soon(self.exit)
            return {}

        async def query_chardev(args: dict[str, Any]) -> Any:
            return [{"label": "charmonitor", "filename": "unix:", "frontend-open": True}]

        async def query_vnc(args: dict[str, Any]) -> Any:
            return {"enabled": False}

        async def device_add(args: dict[str, Any]) -> Any:
            if args["id"] in self.devices:
                raise QmpError(f"Duplicate device ID '{args['id']}'")
            self.devices.add(str(args["id"]))
            return {}

        async def device_del(args: dict[str, Any]) -> Any:
            device = str(args["id"])
            if device not in self.devices:
                raise QmpError(f"Device '{device}' not found", "DeviceNotFound")
            if device in self.unplug_requested:
                raise QmpError(f"Device {device} is already in the process of unplug")
            self.unplug_requested.add(device)
            if self.auto_release:
                asyncio.get_running_loop().call_soon(self.guest_release, device)
            return {}

        fdsets = iter(range(1, 1 << 30))

        async def add_fd(args: dict[str, Any]) -> Any:
            fdset = args.get("fdset-id", next(fdsets))
            return {"fdset-id": fdset, "fd": 100 + fdset}

        self._handlers.update(
            {
                "add-fd": add_fd,
                "remove-fd": ok,
                "blockdev-add": ok,
                "blockdev-del": ok,
                "query-block": lambda args: _returning([]),
                "query-status": query_status,
                "cont": cont,
                "stop": stop,
                "system_powerdown": ok,
                "system_reset": system_reset,
                "system_wakeup": system_wakeup,
                "quit": quit_,
                "query-chardev": query_chardev,
                "query-vnc": query_vnc,
                "set_link": ok,
                "set_password": ok,
                "netdev_add": ok,
                "netdev_del": ok,
                "device_add": device_add,
                "device_del": device_del,
                "query-balloon": ok,
            }
        )

    # The QMP session

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        greeting = {
            "QMP": {
                "version": {"qemu": {"micro": 0, "minor": 2, "major": 8}, "package": "fakeqmp"},
                "capabilities": [],
            }
        }
        writer.write(json.dumps(greeting).encode() + b"\r\n")
        decoder = json.JSONDecoder()
        buffer = ""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                buffer += chunk.decode()
                while buffer.strip():  # QMP is a stream of JSON objects, newlines optional
                    try:
                        message, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break  # the rest of the object has not arrived yet
                    buffer = buffer.lstrip()[end:]
                    await self._command(message)
                    if self._writer is not None:
                        await self._writer.drain()
        if self._writer is writer:  # a newer client may have connected since: its connection stays
            self._drop_connection()
        else:
            writer.close()

    async def _command(self, message: dict[str, Any]) -> None:
        command = str(message["execute"])
        args = dict(message.get("arguments") or {})
        reply: dict[str, Any]
        if command != "qmp_capabilities":
            self.commands.append((command, args))
        self.received(command).set()
        if (gate := self._held.get(command)) is not None:
            await gate.wait()
        handler = self._handlers.get(command)
        if command == "qmp_capabilities":
            reply = {"return": {}}
        elif handler is None:
            reply = {
                "error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}
            }
        else:
            try:
                reply = {"return": await handler(args)}
            except QmpError as err:
                reply = {"error": {"class": err.klass, "desc": err.desc}}
        if "id" in message:
            reply["id"] = message["id"]
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(reply).encode() + b"\r\n")

    def _process_gone(self) -> None:
        """The process ended: QEMU's socket closes with it."""
        assert self._pidfd is not None
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        for gate in self._held.values():
            gate.set()  # a hung command dies with its process
        self._drop_connection()
        if self._server is not None:
            self._server.close()

    def _drop_connection(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class FakeHost:
    """Stands in for :meth:`QemuProcess.spawn`: every start gets a new :class:`FakeQemu`.

    ``script(qemu)`` runs on each new QEMU before the daemon connects, to set its behaviour up.
    """

    def __init__(self, script: Callable[[FakeQemu], None] | None = None) -> None:
        self.script = script
        self.qemus: dict[str, FakeQemu] = {}  # the latest QEMU of each domain
        self.all: list[FakeQemu] = []
        self.argvs: dict[str, list[str]] = {}
        self.envs: dict[str, dict[str, str]] = {}  # the environment each start gave QEMU

    def __getitem__(self, name: str) -> FakeQemu:
        return self.qemus[name]

    async def spawn(
        self,
        *,
        argv_for_fd: Callable[[int], list[str]],
        record: RunRecord,
        log_path: Path,
        on_event: Callable[[str, dict[str, Any]], Awaitable[None]],
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> QemuProcess:
        argv = argv_for_fd(3)  # a start builds its command line: keep it for the test to look at
        self.argvs[record.name] = argv
        self.envs[record.name] = dict(env or {})
        qemu = FakeQemu(record.monitor, record.uuid)
        for index, arg in enumerate(argv[:-1]):
            if arg == "-device":
                device_id = dict(
                    part.split("=", 1) for part in argv[index + 1].split(",") if "=" in part
                ).get("id")
                if device_id:
                    qemu.devices.add(device_id)
        if self.script is not None:
            self.script(qemu)
        await qemu.start()
        self.qemus[record.name] = qemu
        self.all.append(qemu)
        record.pid = qemu.pid
        assert qemu.popen is not None
        proc = QemuProcess(record, Monitor(record.name, record.monitor), os.pidfd_open(qemu.pid), None)
        try:
            await proc.monitor.connect(timeout=10)
            proc.monitor.listen(on_event)
        except BaseException:
            await proc.monitor.close()
            await qemu.close()
            raise
        return proc

    async def close(self) -> None:
        for qemu in self.all:
            await qemu.close()


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='KiB'>131072</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>{on_poweroff}</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices>
    <interface type='user'><mac address='52:54:00:aa:00:01'/><model type='virtio'/></interface>
    <serial type='pty'/>
  </devices>
</domain>
"""


#: A bound on a test's body, so that a deadlock fails it instead of hanging the run (not a timing check).
HANG = 60


def run_bench(
    root: Path, body: Callable[[Bench], Awaitable[None]], script: Callable[[FakeQemu], None] | None = None
) -> None:
    """Run ``body`` on a fresh :class:`Bench` in a new event loop; every fake QEMU is ended after."""

    async def main() -> None:
        bench = Bench(root, script)
        try:
            async with asyncio.timeout(HANG):
                await body(bench)
        finally:
            await bench.close()

    asyncio.run(main())


class Bench:
    """A :class:`~pyvirt.daemon.domains.DomainRegistry` over :class:`FakeHost`, with its event stream.

    Use inside a running event loop; ``await bench.close()`` at the end ends every fake QEMU.
    """

    def __init__(self, root: Path, script: Callable[[FakeQemu], None] | None = None) -> None:
        from pyvirt.daemon.domains import DomainRegistry
        from pyvirt.daemon.events import EventBus
        from pyvirt.paths import system_layout

        self.layout = system_layout(root)
        self.layout.ensure()
        self.bus = EventBus()
        self.queue = self.bus.subscribe()
        self.seen: list[tuple[str, str]] = []  # (event, detail) of the domain events so far
        self.host = FakeHost(script)
        self.reg = DomainRegistry(
            self.layout, self.bus, accel_check=lambda: (False, "no KVM in unit tests"), spawn=self.host.spawn
        )

    async def define(self, name: str, *, on_poweroff: str = "destroy", on_crash: str = "destroy") -> None:
        await self.reg.define(DOMAIN_XML.format(name=name, on_poweroff=on_poweroff, on_crash=on_crash))
        self.drain()
        self.seen.clear()

    def state(self, name: str) -> str:
        """``virsh domstate --reason``'s text."""
        summary = self.reg.lookup(name).summary()
        return f"{summary['state']} ({summary['reason']})"

    async def event(self, event: str, detail: str | None = None) -> None:
        """Wait for the next domain ``event`` (with ``detail``) on the stream; every event is kept."""
        while True:
            item = await self.queue.get()
            self.seen.append((item.event, item.detail))
            if item.event == event and detail in (None, item.detail):
                return

    def drain(self) -> list[tuple[str, str]]:
        while not self.queue.empty():
            item = self.queue.get_nowait()
            self.seen.append((item.event, item.detail))
        return self.seen

    def record(self, name: str) -> dict[str, Any]:
        """The run record the daemon saved for ``name``."""
        data: dict[str, Any] = json.loads((self.layout.qemu_run_dir / f"{name}.json").read_text())
        return data

    async def restart_daemon(self) -> None:
        """A new daemon on the same host: the old one detaches, the new one re-adopts every QEMU."""
        from pyvirt.daemon.domains import DomainRegistry

        await self.reg.shutdown_all()
        self.reg = DomainRegistry(
            self.layout, self.bus, accel_check=lambda: (False, "no KVM in unit tests"), spawn=self.host.spawn
        )
        self.reg.load_configs()
        await self.reg.reattach_all()

    def applied(self, name: str, event: str) -> asyncio.Future[dict[str, Any]]:
        """Resolved once the domain has applied its next QMP ``event`` (whatever it did with it)."""
        return self.reg.expect_event(self.reg.lookup(name), event, lambda data: True)

    async def close(self) -> None:
        await self.reg.shutdown_all()
        await self.host.close()
