"""Files handed to a real QEMU through the monitor (``Monitor.add_fd``/``get_fd``): QEMU opens them by
the descriptor it was sent, never by path, so a file it could not open itself (here: one already
unlinked) still becomes a block node."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu.monitor import Monitor

pytestmark = pytest.mark.slow


async def _with_qemu(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Monitor]:
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-machine",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-qmp",
            f"unix:{sock},server=on,wait=off",
        ],
        stdin=subprocess.DEVNULL,
    )
    for _ in range(200):
        if sock.exists():
            break
        await asyncio.sleep(0.05)
    mon = Monitor("fdtest", str(sock))
    await mon.connect()
    return proc, mon


def test_add_fd_gives_qemu_an_unlinked_file(tmp_path: Path) -> None:
    async def run() -> None:
        proc, mon = await _with_qemu(tmp_path)
        try:
            disk = tmp_path / "gone.raw"
            disk.write_bytes(b"\0" * 1024 * 1024)
            fd = os.open(disk, os.O_RDWR)
            disk.unlink()
            try:
                path = await mon.add_fd(fd, "gone.raw")
            finally:
                os.close(fd)
            assert path.startswith("/dev/fdset/")
            await mon.execute(
                "blockdev-add",
                {"driver": "raw", "node-name": "n0", "file": {"driver": "file", "filename": path}},
            )
            nodes = {n["node-name"]: n for n in await mon.execute("query-named-block-nodes")}
            assert nodes["n0"]["image"]["virtual-size"] == 1024 * 1024
            await mon.execute("blockdev-del", {"node-name": "n0"})
            await mon.cont()  # QEMU closes removed fds only while the machine runs
            await mon.remove_fdset(path)
            fdsets = await mon.execute("query-fdsets")
            assert all(f"/dev/fdset/{s['fdset-id']}" != path for s in fdsets)
            with pytest.raises(OperationFailed, match="blockdev-add"):
                await mon.execute(
                    "blockdev-add",
                    {"driver": "raw", "node-name": "n1", "file": {"driver": "file", "filename": path}},
                )
        finally:
            await mon.quit()
            await mon.close()
            proc.wait(10)

    asyncio.run(run())


def test_get_fd_names_a_file_for_qemu(tmp_path: Path) -> None:
    async def run() -> None:
        proc, mon = await _with_qemu(tmp_path)
        try:
            r, w = os.pipe()
            try:
                await mon.get_fd(w, "out")
            finally:
                os.close(w)
            await mon.execute("closefd", {"fdname": "out"})
            os.close(r)
            with pytest.raises(OperationFailed, match="closefd"):
                await mon.execute("closefd", {"fdname": "out"})
        finally:
            await mon.quit()
            await mon.close()
            proc.wait(10)

    asyncio.run(run())
