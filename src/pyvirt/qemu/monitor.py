"""Typed QMP calls, behind QEMU's own ``qemu.qmp`` library.

``qemu.qmp`` is alpha (0.0.x, pinned in pyproject); nothing else in pyvirt imports it, so a change of
its API touches this module alone. Every failure comes out as :class:`~pyvirt.errors.OperationFailed`
with the QMP error's description and the underlying exception kept as the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from qemu.qmp import ConnectError, EventListener, ExecuteError, QMPClient, QMPError

from pyvirt.errors import OperationFailed

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class EventQueue:
    """The events one :meth:`Monitor.events` block listens for, in order."""

    def __init__(self, listener: EventListener) -> None:
        self._listener = listener

    async def get(self) -> tuple[str, dict[str, Any]]:
        event = await self._listener.get()
        data = event.get("data") or {}
        return str(event["event"]), dict(data) if isinstance(data, dict) else {}


class MonitorTimeout(OperationFailed):
    """QEMU never greeted on its monitor: it hangs before its main loop (a backend it waits for)."""


class Monitor:
    """One QMP session with one QEMU process."""

    def __init__(self, domain: str, socket_path: str) -> None:
        self.domain = domain
        self.socket_path = socket_path
        self._client = QMPClient(domain)
        self._listener: EventListener | None = None
        self._pump: asyncio.Task[None] | None = None
        self._fd_lock = asyncio.Lock()  # an fd sent by SCM_RIGHTS belongs to the next command that takes one

    async def connect(self, timeout: float = 30.0) -> None:
        try:
            await asyncio.wait_for(self._client.connect(self.socket_path), timeout)
        except TimeoutError as err:
            raise MonitorTimeout(
                f"QEMU did not open its monitor within {timeout:g} s ('{self.domain}', {self.socket_path})"
            ) from err
        except (ConnectError, OSError) as err:
            raise OperationFailed(
                f"failed to connect to the QEMU monitor of '{self.domain}' at {self.socket_path}: {err}"
            ) from err

    def listen(self, handler: EventHandler) -> None:
        """Deliver every QMP event to ``handler`` in order, from a task of its own."""
        listener = EventListener()
        self._client.register_listener(listener)
        self._listener = listener

        async def pump() -> None:
            async for event in listener:
                try:
                    data = event.get("data") or {}
                    await handler(str(event["event"]), dict(data) if isinstance(data, dict) else {})
                except Exception:
                    log.exception("handling QMP event %s of %s", event.get("event"), self.domain)

        self._pump = asyncio.get_running_loop().create_task(pump(), name=f"qmp-events-{self.domain}")

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        try:
            return await self._client.execute(command, arguments)
        except ExecuteError as err:
            desc = str(err.error.error.desc) if hasattr(err, "error") else str(err)
            raise OperationFailed(f"QEMU refused '{command}' for '{self.domain}': {desc}") from err
        except (QMPError, OSError, EOFError) as err:
            raise OperationFailed(
                f"lost the QEMU monitor of '{self.domain}' during '{command}': {err}"
            ) from err

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if self._listener is not None:
            with contextlib.suppress(QMPError, ValueError):
                self._client.remove_listener(self._listener)
            self._listener = None
        with contextlib.suppress(QMPError, OSError, EOFError):
            await self._client.disconnect()

    @contextlib.asynccontextmanager
    async def events(self, *names: str) -> AsyncIterator[EventQueue]:
        """A queue of the QMP events ``names`` that QEMU sends from now until the block ends, apart
        from the domain's own handler: a job's caller waits on it while it holds the domain's lock."""
        listener = EventListener(names=list(names))
        self._client.register_listener(listener)
        try:
            yield EventQueue(listener)
        finally:
            with contextlib.suppress(QMPError, ValueError):
                self._client.remove_listener(listener)

    async def add_fd(self, fd: int, opaque: str, fdset: int | None = None) -> str:
        """Hand an open file to QEMU (SCM_RIGHTS + ``add-fd``) and return the path QEMU opens it by.

        QEMU is confined to the files it was started with (:mod:`pyvirt.qemu.landlock`, its own user):
        a file that joins later (a hot-plugged disk, a snapshot overlay, a block-copy target) is opened
        by the daemon and passed in. QEMU picks the fdset member whose access mode matches its open, so
        open ``fd`` O_RDWR for a writable node, O_RDONLY for a read-only one. The caller keeps ``fd``;
        it may close it once this returns. ``remove_fdset`` drops the set once QEMU is done with it.
        """
        args: dict[str, Any] = {"opaque": opaque}
        if fdset is not None:
            args["fdset-id"] = fdset
        async with self._fd_lock:
            self._send_fd(fd)
            reply = await self.execute("add-fd", args)
        return f"/dev/fdset/{int(reply['fdset-id'])}"

    async def remove_fdset(self, path: str) -> None:
        """Forget the fdset behind ``path`` (from :meth:`add_fd`); QEMU closes its copies once unused."""
        fdset = int(path.rsplit("/", 1)[1])
        with contextlib.suppress(OperationFailed):  # already gone with its last user
            await self.execute("remove-fd", {"fdset-id": fdset})

    async def get_fd(self, fd: int, name: str) -> None:
        """Hand an open file to QEMU under ``name`` (``getfd``), for ``migrate fd:NAME`` and the like."""
        async with self._fd_lock:
            self._send_fd(fd)
            await self.execute("getfd", {"fdname": name})

    def _send_fd(self, fd: int) -> None:
        try:
            self._client.send_fd_scm(fd)
        except (QMPError, OSError) as err:
            raise OperationFailed(f"cannot pass a file to QEMU for '{self.domain}': {err}") from err

    # Typed helpers for the commands the driver uses.

    async def status(self) -> tuple[bool, str]:
        """(running, QEMU run state such as 'running', 'paused', 'shutdown', 'guest-panicked')."""
        reply = await self.execute("query-status")
        return bool(reply["running"]), str(reply["status"])

    async def cont(self) -> None:
        await self.execute("cont")

    async def stop(self) -> None:
        await self.execute("stop")

    async def system_powerdown(self) -> None:
        await self.execute("system_powerdown")

    async def system_reset(self) -> None:
        await self.execute("system_reset")

    async def quit(self) -> None:
        with contextlib.suppress(OperationFailed):  # QEMU may close the socket before it answers
            await self.execute("quit")

    async def chardev_ptys(self) -> dict[str, str]:
        """Chardev id → pty path, for every pty chardev."""
        out: dict[str, str] = {}
        for dev in await self.execute("query-chardev"):
            filename = str(dev.get("filename", ""))
            if filename.startswith("pty:"):
                out[str(dev["label"])] = filename[4:]
        return out

    async def vnc_port(self) -> int | None:
        info = await self.execute("query-vnc")
        if not info.get("enabled"):
            return None
        service = info.get("service")
        return int(service) if service is not None else None

    async def set_vnc_password(self, password: str) -> None:
        await self.execute("set_password", {"protocol": "vnc", "password": password})

    async def set_link(self, device_id: str, up: bool) -> None:
        await self.execute("set_link", {"name": device_id, "up": up})

    async def balloon_actual(self) -> int | None:
        try:
            reply = await self.execute("query-balloon")
        except OperationFailed:
            return None
        return int(reply["actual"])

    async def cpu_time_ns(self, pid: int) -> int:
        """Total CPU time of the QEMU process (user + system), in nanoseconds, from /proc."""
        return cpu_time_ns(pid)


def cpu_time_ns(pid: int) -> int:
    import os

    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
