"""What a domain's memory needs from the host at start (pyvirt.conf.memory_backing, memory_devices).

- huge pages: a directory of the domain's own in the hugetlbfs mount of each page size it uses, owned by
  QEMU's user and open to it (Landlock), removed when the domain stops;
- ``<source type='file'/>`` memory: its files go in the domain's channel directory (QEMU's already);
- NVDIMM and virtio-pmem backing files: created when missing (QEMU sizes them) and handed to QEMU's
  user like disks;
- ``<locked/>``: the QEMU process's locked-memory limit is lifted before it executes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from pyvirt.conf import memory_backing, memory_devices
from pyvirt.conf.domain import Domain
from pyvirt.daemon.confinement import Confinement
from pyvirt.qemu import ownership
from pyvirt.qemu.process import RunRecord

_DIR_PREFIX = "pyvirt-"


def hugepage_dir(mount: str, name: str) -> Path:
    return Path(mount) / f"{_DIR_PREFIX}{name}"


def prepare(
    confinement: Confinement, dom: Domain, record: RunRecord, mounts: dict[int, str]
) -> dict[int, str]:
    """After the confinement's ``prepare``: the huge page directories (page size → path) and the memory
    device files, handed to QEMU's user and recorded in ``record``."""
    ident = confinement.ident
    dirs: dict[int, str] = {}
    for size, mount in mounts.items():
        directory = hugepage_dir(mount, dom.name)
        ownership.make_owned_dir(directory, ident)
        dirs[size] = str(directory)
        record.access[str(directory)] = "dir"
    for path in memory_devices.host_files(dom):
        if not os.path.exists(path):
            if ident is not None:
                ownership.check_traversable(path, ident, "memory device file")
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        confinement.hand_over_more(record, path, writable=True, what="memory device file")
    record.memlock = memory_backing.of(dom).locked
    return dirs


def cleanup(name: str) -> None:
    """Remove the domain's huge page directories (its QEMU has exited)."""
    for mount in memory_backing.hugetlbfs_mounts().values():
        shutil.rmtree(hugepage_dir(mount, name), ignore_errors=True)
