"""The per-domain ``qemu-pr-helper`` of ``<reservations managed='yes'>`` (conf.disk_reservations), run
as libvirt 9.0 runs it: ``qemu-pr-helper -k SOCKET -f PIDFILE`` (daemonized) with the daemon's
privileges (the SCSI persistent-reservation commands need CAP_SYS_RAWIO, which the unprivileged QEMU
lacks), its socket in the domain's run directory handed to QEMU's user, started before QEMU and ended
when the domain stops (its pid is in the run record, so a later daemon ends it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf.disk_reservations import MANAGED_SOCKET
from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu.process import kill_and_wait

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.qemu.ownership import Identity
    from pyvirt.qemu.process import RunRecord

log = logging.getLogger(__name__)
BINARY = "qemu-pr-helper"
READY_TIMEOUT = 30.0  # seconds for the helper to listen before the start fails
_RUN: dict[str, Any] = {
    "stdin": subprocess.DEVNULL,
    "capture_output": True,
    "text": True,
    "timeout": READY_TIMEOUT,
}


def needed(dom: Domain) -> bool:
    return any(d.reservations is not None and d.reservations.managed for d in dom.devices.disks)


def require_host(dom: Domain) -> None:
    if needed(dom) and shutil.which(BINARY) is None:
        raise UnsupportedConfig(
            "unsupported configuration: <reservations managed='yes'> needs qemu-pr-helper "
            "(Debian's qemu-system-common)"
        )


async def start(folder: Path, ident: Identity | None) -> tuple[int, str]:
    """Run a helper listening in ``folder``: (its pid, its socket). It daemonizes (``-d``) once it
    listens, so no child of the daemon is left to reap."""
    sock, pidfile = folder / MANAGED_SOCKET, folder / "pr-helper0.pid"
    for stale in (sock, pidfile):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    argv = [BINARY, "-d", "-k", str(sock), "-f", str(pidfile)]
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
        )
    except subprocess.TimeoutExpired as err:
        raise OperationFailed("operation failed: qemu-pr-helper did not start") from err
    if done.returncode != 0 or not sock.exists():
        raise OperationFailed(f"operation failed: qemu-pr-helper did not start: {done.stderr.strip()}")
    pid = await _pid_from(pidfile)
    if ident is not None:
        os.chown(sock, ident.uid, ident.gid)
    return pid, str(sock)


async def _pid_from(pidfile: Path) -> int:
    """The helper's pid, once its daemonized child has written it: the parent exits at the fork (the
    socket already listens), before the child writes the file."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    while True:
        with contextlib.suppress(FileNotFoundError):
            text = pidfile.read_text()
            if text.endswith("\n") and text.strip().isdigit():
                return int(text)
        if asyncio.get_running_loop().time() > deadline:
            raise OperationFailed("operation failed: qemu-pr-helper did not write its pid file")
        await asyncio.sleep(0.01)


def stop(pid: int | None) -> None:
    """End the helper ``pid`` (gone already is fine) and wait for it: SIGTERM, then SIGKILL after a
    second. The helper drops a SIGTERM that comes between its pid file and its main loop (its handler
    acts only once it runs), so a stop right after a start would otherwise leave it running."""
    if pid:
        with contextlib.suppress(OperationFailed):
            kill_and_wait(pid, timeout=1.0, term=True)


def release(record: RunRecord) -> None:
    stop(record.pr_helper)
    record.pr_helper = None
