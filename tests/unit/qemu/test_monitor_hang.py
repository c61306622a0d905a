"""A QEMU that hangs before it opens its monitor (blocked on a backend that accepted its connection and
never answers): the start fails after pyvirtd.conf's monitor_timeout, saying so, what the process waits
in, the socket it is connected to and its last output, and nothing is left running."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu import blocked, process
from pyvirt.qemu.process import QemuProcess, RunRecord

# Stands in for QEMU: says something, connects to the backend and waits for a reply that never comes.
HANGS = (
    "import socket, sys\n"
    "print('qemu-system-x86_64: -chardev socket,id=charnet0: connecting', file=sys.stderr, flush=True)\n"
    "c = socket.socket(socket.AF_UNIX)\n"
    "c.connect(sys.argv[1])\n"
    "c.recv(1)\n"
)


def _record(tmp_path: Path) -> RunRecord:
    return RunRecord(
        name="hang1",
        uuid="00000000-0000-0000-0000-000000000001",
        pid=0,
        id=1,
        monitor=str(tmp_path / "m.sock"),
        started_at=time.time(),
        accel="tcg",
    )


def test_a_qemu_that_never_opens_its_monitor_is_named_with_what_it_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_path = tmp_path / "vhu.sock"
    backend = socket.socket(socket.AF_UNIX)
    backend.bind(str(backend_path))
    backend.listen(1)
    backend.setblocking(False)
    monkeypatch.setattr(process, "MONITOR_TIMEOUT", 1.0)
    record = _record(tmp_path)

    async def start() -> None:
        await QemuProcess.spawn(
            argv_for_fd=lambda _fd: [sys.executable, "-c", HANGS, str(backend_path)],
            record=record,
            log_path=tmp_path / "hang1.log",
            on_event=lambda _name, _data: None,
        )

    async def accept_then_start() -> BaseException:
        loop = asyncio.get_running_loop()
        task = loop.create_task(start())
        conn, _ = await loop.sock_accept(backend)  # accepted, never answered
        try:
            with pytest.raises(OperationFailed) as err:
                await task
            return err.value
        finally:
            conn.close()

    try:
        error = asyncio.run(accept_then_start())
    finally:
        backend.close()
    message = str(error)
    assert "QEMU did not open its monitor within 1 s" in message
    assert f"connected to {backend_path}" in message, message
    assert "waiting in recv" in message, message  # recvfrom: the fake's blocking read
    assert "charnet0: connecting" in message  # its own last output
    assert str(tmp_path / "m.sock") not in message.split("; QEMU is")[1]  # the monitor is not a lead
    with pytest.raises(ProcessLookupError):
        os.kill(record.pid, 0)  # killed and reaped: nothing left running
    assert not (tmp_path / "m.sock").exists()


def test_describe_says_listening_sockets_and_nothing_of_a_process_gone(tmp_path: Path) -> None:
    path = tmp_path / "l.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        assert f"listening on {path}" in blocked.unix_sockets(os.getpid())
        assert f"listening on {path}" not in blocked.unix_sockets(os.getpid(), skip=frozenset({str(path)}))
    finally:
        server.close()
    assert blocked.describe(2**22 + 1) == ""  # beyond pid_max's default: no such process
