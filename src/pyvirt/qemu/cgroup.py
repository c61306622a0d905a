"""A cgroup v2 per domain: QEMU is moved in before it executes, the group is removed after it exits.

The group is ``PARTITION/pyvirt-NAME.scope`` under the cgroup2 mount (``/sys/fs/cgroup`` on a unified
host, ``/sys/fs/cgroup/unified`` on a hybrid one). ``PARTITION`` is the domain's
``<resource><partition>`` when it has one (libvirt's meaning: a path from the cgroup root), otherwise
``pyvirt.slice`` for the system daemon, and a slice of its own inside it for a daemon over another root
(two daemons on one host may both run a domain called ``web``). CPU accounting (``cpu.stat``) is
always there; the cpu, memory, io and pids controllers are enabled on the slices pyvirt makes
wherever the host gives them to cgroup v2 (on a hybrid host they stay with v1, and
``memory.current`` is missing).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import time
from pathlib import Path

from pyvirt.errors import OperationFailed
from pyvirt.mounts import read_mounts

log = logging.getLogger(__name__)

DEFAULT_SLICE = "pyvirt.slice"
CONTROLLERS = ("cpu", "memory", "io", "pids")  # enabled below our slices where the host has them


def mount_point() -> Path | None:
    """Where cgroup v2 is mounted, or None (no cgroup v2, or not writable by this process)."""
    try:
        table = read_mounts()
    except OSError:
        return None
    for mount in table:
        if mount.fstype == "cgroup2" and os.access(mount.mountpoint, os.W_OK):
            return Path(mount.mountpoint)
    return None


def parent_for(root_tag: str, partition: str | None) -> str:
    """The parent of a domain's group, relative to the cgroup2 mount.

    ``root_tag`` says which daemon this is: ``""`` for the system daemon, else its run directory."""
    if partition:
        return partition.strip("/")
    if not root_tag:
        return DEFAULT_SLICE
    digest = hashlib.sha256(root_tag.encode()).hexdigest()[:12]
    return f"{DEFAULT_SLICE}/pyvirt-{digest}.slice"


def scope_name(name: str) -> str:
    return f"pyvirt-{name}.scope"


def create(mount: Path, parent: str, name: str) -> Path:
    """Make the domain's group (removing a stale empty one first); its path."""
    path = mount / parent / scope_name(name)
    try:
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            for ancestor in reversed(path.parents):
                if ancestor.is_relative_to(mount) and ancestor != mount:
                    _enable_controllers(ancestor)
            try:
                path.mkdir()
            except FileExistsError:
                if _populated(path):
                    raise OperationFailed(f"cgroup {path} is in use by other processes") from None
            except FileNotFoundError:
                if attempt < 2:  # the daemon's slice went with its last other domain meanwhile
                    continue
                raise
            break
    except OSError as err:
        raise OperationFailed(f"cannot create cgroup {path}: {err.strerror}") from err
    return path


def _enable_controllers(path: Path) -> None:
    """Turn on, for the groups below ``path``, the accounting controllers ``path`` has."""
    try:
        have = (path / "cgroup.controllers").read_text().split()
        enabled = (path / "cgroup.subtree_control").read_text().split()
    except OSError:
        return
    wanted = [c for c in CONTROLLERS if c in have and c not in enabled]
    if wanted:
        try:
            (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
        except OSError as err:
            log.warning("cannot enable %s for the groups under %s: %s", ", ".join(wanted), path, err.strerror)


def drop_daemon_slice(slice_dir: Path) -> None:
    """Remove a daemon's own slice (``pyvirt-HASH.slice``, of a daemon over another root) once empty;
    the shared ``pyvirt.slice`` and a ``<partition>`` stay."""
    if slice_dir.name.startswith("pyvirt-") and slice_dir.parent.name == DEFAULT_SLICE:
        with contextlib.suppress(OSError):  # busy: the daemon's other domains still have groups
            slice_dir.rmdir()


def open_procs(path: Path) -> int:
    """A descriptor on the group's ``cgroup.procs``: writing ``0`` to it moves the writer in."""
    return os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)


def _populated(path: Path) -> bool:
    try:
        return "populated 1" in (path / "cgroup.events").read_text()
    except OSError:
        return False


def remove(path: str | Path) -> None:
    """Remove a domain's group once its processes are gone (an exiting QEMU may take a moment), and the
    slice of its daemon when that was its last group."""
    path = Path(path)
    for _ in range(50):
        try:
            path.rmdir()
            drop_daemon_slice(path.parent)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                log.warning("cannot remove cgroup %s: %s", path, err.strerror)
                return
        time.sleep(0.02)
    log.warning("cannot remove cgroup %s: it still has processes", path)
