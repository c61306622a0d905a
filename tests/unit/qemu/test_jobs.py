"""run_job against a scripted QEMU: a job that succeeds costs no ``query-jobs``, one that went through
``aborting`` raises QEMU's error; both are dismissed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu.jobs import run_job
from pyvirt.qemu.monitor import Monitor
from tests.support.fakeqmp import FakeQemu


async def _run(tmp_path: Path, statuses: list[str], error: str | None) -> FakeQemu:
    qemu = FakeQemu(str(tmp_path / "qmp.sock"), str(uuid.uuid4()))
    await qemu.start()

    async def snapshot_save(args: dict[str, Any]) -> Any:
        async def later() -> None:
            await asyncio.sleep(0)
            for status in statuses:
                qemu.emit("JOB_STATUS_CHANGE", {"id": args["job-id"], "status": status})

        asyncio.get_running_loop().create_task(later())
        return {}

    async def query_jobs(args: dict[str, Any]) -> Any:
        return [{"id": "other", "status": "running"}, {"id": "pyvirt-snapshot-save-x", "error": "no"}] + [
            {"id": jid, "status": "concluded", "error": error}
            for name, a in qemu.commands
            if name == "snapshot-save"
            for jid in [a["job-id"]]
        ]

    async def ok(args: dict[str, Any]) -> Any:
        return {}

    qemu.handle("snapshot-save", snapshot_save)
    qemu.handle("query-jobs", query_jobs)
    qemu.handle("job-dismiss", ok)
    monitor = Monitor("dom", qemu.socket_path)
    exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        await monitor.connect(timeout=10)
        await run_job(monitor, "snapshot-save", {"tag": "s"}, exited=exited, kind="snapshot-save")
    finally:
        await monitor.close()
        await qemu.close()
    return qemu


def test_a_job_that_succeeds_is_dismissed_without_a_query(tmp_path: Path) -> None:
    qemu = asyncio.run(_run(tmp_path, ["created", "running", "waiting", "pending", "concluded"], None))
    assert qemu.count("query-jobs") == 0 and qemu.count("job-dismiss") == 1


def test_a_job_that_aborts_raises_qemus_error(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="snapshot-save: Device 'x' is writable but does not support"):
        asyncio.run(
            _run(
                tmp_path,
                ["created", "running", "aborting", "concluded"],
                "Device 'x' is writable but does not support snapshots",
            )
        )
