"""The memory state of external snapshots: the domain's RAM and device state in a file of the save
format (:mod:`pyvirt.qemu.savefile`: a checked header, the domain XML, QEMU's migration stream), written
and read back through the save helpers (:mod:`pyvirt.daemon.saves`): QEMU migrates to a descriptor the
daemon opened, and a revert starts QEMU with ``-incoming defer`` fed from the file. The file is a valid
save image: ``save-image-dumpxml`` reads it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from pyvirt.daemon import saves
from pyvirt.errors import OperationFailed
from pyvirt.qemu import savefile
from pyvirt.qemu.savefile import SaveHeader

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess


def check_new(path: str) -> None:
    if os.path.lexists(path):
        raise OperationFailed(f"operation failed: memory state file '{path}' already exists")
    if not os.path.isdir(os.path.dirname(path)):
        raise OperationFailed(f"operation failed: no directory for the memory state file '{path}'")


async def save_memory(proc: QemuProcess, xml: str, running: bool, path: str) -> None:
    """QEMU's state into the new file ``path`` (the caller paused the guest, or lets the migration
    pause it at its end); the file is removed again if that fails."""
    check_new(path)
    header = SaveHeader(xml, running, complete=False)
    fd = await asyncio.to_thread(saves._create_image, path, header)
    try:
        header.stream_len = await saves._migrate_out(proc, fd, path, header.stream_offset, False)
        await asyncio.to_thread(saves._complete_image, fd, header)
    except BaseException:
        await asyncio.to_thread(saves._discard, fd, path)
        raise
    os.close(fd)


async def restore_memory(
    reg: DomainRegistry, obj: DomainObject, dom: Domain, path: str, *, paused: bool
) -> None:
    """Start ``obj`` (lock held, shut off) as ``dom`` from the memory state in ``path``."""
    header = await asyncio.to_thread(savefile.read, path)
    await saves.restore_into(reg, obj, dom, path, header, paused=paused, bypass_cache=False)
