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
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf.disk_reservations import MANAGED_SOCKET
from pyvirt.errors import OperationFailed, UnsupportedConfig

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
    pid = int(pidfile.read_text().split()[0])
    if ident is not None:
        os.chown(sock, ident.uid, ident.gid)
    return pid, str(sock)


def stop(pid: int | None) -> None:
    """End the helper ``pid`` (gone already is fine)."""
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def release(record: RunRecord) -> None:
    stop(record.pr_helper)
    record.pr_helper = None
