"""QEMU's background jobs (``snapshot-save``, ``snapshot-load``, ``snapshot-delete``, ``block-commit``)
run to their end: started with a job id, followed through ``JOB_STATUS_CHANGE`` until ``concluded``
(a job that becomes ``ready``, an active commit, is told to complete), its error read from
``query-jobs`` when it went through ``aborting`` (a job that fails or is cancelled does; one that
succeeds does not, and costs no query), then dismissed.

The events are read from a queue of their own (:meth:`Monitor.events`), not through the domain's
event handler, so the caller may hold the domain's lock throughout. A QEMU that exits meanwhile ends
the wait with an error.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from pyvirt.errors import OperationFailed
from pyvirt.qemu.monitor import Monitor

_ids = itertools.count(1)


def job_id(kind: str) -> str:
    return f"pyvirt-{kind}-{next(_ids)}"


async def run_job(
    monitor: Monitor,
    command: str,
    arguments: dict[str, Any],
    *,
    exited: asyncio.Future[None],
    kind: str = "job",
    complete_when_ready: bool = False,
) -> None:
    """Run ``command`` (with a new ``job-id`` added to ``arguments``) as a QEMU job to its end.

    Raises :class:`OperationFailed` with QEMU's error if the job fails, or if QEMU exits first.
    """
    jid = job_id(kind)
    aborted = False
    async with monitor.events("JOB_STATUS_CHANGE") as events:
        await monitor.execute(command, {"job-id": jid, **arguments})
        while True:
            getter: asyncio.Future[Any] = asyncio.ensure_future(events.get())
            waits: set[asyncio.Future[Any]] = {getter, exited}
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                raise OperationFailed(f"operation failed: QEMU exited during '{command}'")
            _event, data = getter.result()
            if data.get("id") != jid:
                continue
            status = data.get("status")
            aborted = aborted or status == "aborting"
            if status == "ready" and complete_when_ready:
                await monitor.execute("job-complete", {"id": jid})
            elif status == "concluded":
                break
    error = None
    if aborted:
        for job in await monitor.execute("query-jobs"):
            if job.get("id") == jid:
                error = job.get("error") or "the job was aborted"
    await monitor.execute("job-dismiss", {"id": jid})
    if error:
        raise OperationFailed(f"operation failed: {command}: {error}")
