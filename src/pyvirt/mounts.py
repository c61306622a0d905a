"""The mount table (``/proc/self/mountinfo``), and folders removed without going through a mount point.

A process killed while it had file systems mounted inside a folder of ours (debootstrap mounts
``proc``, ``sys`` and sometimes ``dev`` in the tree it builds) leaves them mounted. Removing such a
folder recursively would go into them: into ``/proc`` harmlessly, into a bind-mounted ``/dev`` or a
host folder destructively. :func:`remove_tree` unmounts everything at or below the folder first,
deepest first (``umount -l``), reads the table again, and removes nothing while a mount is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import OperationFailed

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo (proc(5)): the mount point and file system type, decoded, and the file
    system's own options (a cgroup v1 hierarchy's controllers, hugetlbfs's ``pagesize=``)."""

    mount_id: int
    parent_id: int
    mountpoint: str
    fstype: str
    source: str
    options: tuple[str, ...] = ()


def unescape(field: str) -> str:
    """A mountinfo field as the path it names: the kernel writes space, tab, newline and backslash
    as ``\\040``, ``\\011``, ``\\012`` and ``\\134``."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = os.fsencode(field)
    index = 0
    while index < len(raw):
        octal = raw[index + 1 : index + 4]
        if raw[index] == 0x5C and len(octal) == 3 and all(0x30 <= c <= 0x37 for c in octal):
            out.append(int(octal, 8))
            index += 4
        else:
            out.append(raw[index])
            index += 1
    return os.fsdecode(bytes(out))


def parse_mountinfo(text: str) -> list[Mount]:
    """Every mount of a mountinfo text, in its order (a mount stacked on another comes after it)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)  # after the optional fields
            options = tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()
            mounts.append(
                Mount(
                    int(fields[0]),
                    int(fields[1]),
                    unescape(fields[4]),
                    fields[sep + 1],
                    unescape(fields[sep + 2]),
                    options,
                )
            )
        except (ValueError, IndexError):
            continue
    return mounts


def read_mounts(path: Path = MOUNTINFO) -> list[Mount]:
    return parse_mountinfo(path.read_text(errors="surrogateescape"))


def below(mounts: list[Mount], folder: str | os.PathLike[str]) -> list[Mount]:
    """The mounts at ``folder`` or inside it, deepest first (and of one mount point, the top first)."""
    top = os.path.realpath(folder)
    prefix = top.rstrip("/") + "/"
    found = [
        (order, mount)
        for order, mount in enumerate(mounts)
        if mount.mountpoint == top or mount.mountpoint.startswith(prefix)
    ]
    found.sort(key=lambda pair: (pair[1].mountpoint.count("/"), pair[0]), reverse=True)
    return [mount for _, mount in found]


def _umount_lazy(mountpoint: str) -> None:
    subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)


def unmount_below(
    folder: str | os.PathLike[str],
    *,
    read: Callable[[], list[Mount]] = read_mounts,
    umount: Callable[[str], None] = _umount_lazy,
) -> None:
    """Unmount (lazily) every mount at or below ``folder``, deepest first; an OperationFailed naming
    those that are still there after it."""
    left = below(read(), folder)
    while left:
        for mount in left:
            umount(mount.mountpoint)
        now = below(read(), folder)
        if len(now) >= len(left):  # no progress: umount refused (not root, or another namespace's)
            names = ", ".join(f"{m.mountpoint} ({m.fstype})" for m in now)
            raise OperationFailed(f"cannot unmount what is mounted in {folder}: {names}")
        left = now


def remove_tree(
    folder: str | os.PathLike[str],
    *,
    read: Callable[[], list[Mount]] = read_mounts,
    umount: Callable[[str], None] = _umount_lazy,
) -> None:
    """Remove ``folder`` and everything in it, after unmounting what is mounted in it (never through
    a mount point: a mount left is an OperationFailed and nothing is removed)."""
    if not os.path.lexists(folder):
        return
    unmount_below(folder, read=read, umount=umount)
    try:
        shutil.rmtree(folder)
    except OSError as err:
        raise OperationFailed(f"cannot remove {folder}: {err}") from err
