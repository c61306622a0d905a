"""``<watchdog action='dump'>``: the guest's memory dumped when its watchdog fires, then the guest resumed.

libvirt 9.0 runs such a domain's QEMU with ``-watchdog-action pause``: QEMU sends ``WATCHDOG`` (action
``pause``) and stops the vCPUs; libvirt marks the domain paused (reason watchdog), writes the guest's
memory as an ELF core (``dump-guest-memory``, paging off: its ``virsh dump --memory-only``) into the
auto-dump directory as ``NAME-YYYY-MM-DD-HH:MM:SS``, and resumes the guest. pyvirt does the same, under
the domain's lock as the event is applied. The daemon opens the file (QEMU, confined to the files it
started with, could not) and hands it over with ``getfd``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.daemon.lifecycle import DomainState, Running
from pyvirt.errors import OperationFailed

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

FD_NAME = "pyvirt-watchdog-dump"


def wants_dump(dom: Domain | None) -> bool:
    return dom is not None and any(dog.action == "dump" for dog in dom.devices.watchdogs)


def dump_path(directory: Path, name: str, now: float | None = None) -> Path:
    """libvirt's auto-dump file name: ``NAME-YYYY-MM-DD-HH:MM:SS`` (local time)."""
    stamp = time.strftime("%Y-%m-%d-%H:%M:%S", time.localtime(now))
    return directory / f"{name}-{stamp}"


async def dump_and_resume(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess) -> None:
    """Dump the guest paused by its watchdog (:mod:`pyvirt.daemon.watchdog`), then resume it; the caller
    holds ``obj.lock``."""
    directory = reg.layout.auto_dump_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = dump_path(directory, obj.name)
    try:
        await _dump(proc, path)
    except (OperationFailed, OSError) as err:
        log.error("domain %s: watchdog dump to %s failed: %s", obj.name, path, err)  # libvirt: Dump failed
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        log.info("domain %s: watchdog fired, guest memory dumped to %s", obj.name, path)
    await proc.monitor.cont()
    reg.transition(obj, DomainState.RUNNING, Running.UNPAUSED, ("resumed", "unpaused"))


async def _dump(proc: QemuProcess, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        await proc.monitor.get_fd(fd, FD_NAME)
    finally:
        os.close(fd)
    await proc.monitor.execute("dump-guest-memory", {"paging": False, "protocol": f"fd:{FD_NAME}"})
