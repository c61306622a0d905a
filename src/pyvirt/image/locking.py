"""Image locks compatible with QEMU's: open-file-description byte locks on the image file.

QEMU (block/file-posix.c) takes a shared lock on byte ``100 + bit`` for each permission it holds and
on byte ``200 + bit`` for each permission it will not share with others (bits: consistent read 0,
write 1, write-unchanged 2, resize 3). Before taking permissions it tests for conflicting locks.
Doing the same here means a running VM refuses to start on an image pyvirt is writing, and pyvirt
refuses to write (or, without ``force_share``, even read) an image a VM is using.
"""

from __future__ import annotations

import fcntl
import os
import struct

from pyvirt.image.errors import ImageError

PERM_BASE = 100
SHARED_BASE = 200
CONSISTENT_READ, WRITE, WRITE_UNCHANGED, RESIZE = 0, 1, 2, 3
NAMES = {
    CONSISTENT_READ: "consistent read",
    WRITE: "write",
    WRITE_UNCHANGED: "write unchanged",
    RESIZE: "resize",
}
ALL = (CONSISTENT_READ, WRITE, WRITE_UNCHANGED, RESIZE)
_FLOCK = "hhqqi4x"


def _flock(kind: int, start: int) -> bytes:
    return struct.pack(_FLOCK, kind, 0, start, 1, 0)


def _conflicts(fd: int, byte: int) -> bool:
    res = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK, byte))
    return bool(struct.unpack(_FLOCK, res)[0] != fcntl.F_UNLCK)


def lock_image(fd: int, path: str, *, readonly: bool, force_share: bool = False) -> None:
    """Take QEMU-style permissions on ``fd`` or raise ImageError naming the conflicting one."""
    if readonly and force_share:
        return
    perms = {CONSISTENT_READ} if readonly else {CONSISTENT_READ, WRITE, RESIZE}
    unshared = {WRITE} if readonly else {WRITE, RESIZE}
    try:
        # Take ours first, then look for others': two openers racing both see the conflict.
        for bit in perms:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_RDLCK, PERM_BASE + bit))
        for bit in unshared:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_RDLCK, SHARED_BASE + bit))
        for bit in perms:
            if _conflicts(fd, SHARED_BASE + bit):
                raise ImageError(
                    f"Failed to get \"{NAMES[bit]}\" lock on '{path}'\nIs another process using the image?"
                )
        for bit in unshared:
            if _conflicts(fd, PERM_BASE + bit):
                raise ImageError(
                    f"Failed to get shared \"{NAMES[bit]}\" lock on '{path}'\n"
                    "Is another process using the image?"
                )
    except OSError as err:
        if err.errno in (22, 95, 38):  # EINVAL, EOPNOTSUPP, ENOSYS: no OFD locks here
            return
        raise ImageError(f"Failed to lock '{path}': {err.strerror}") from err


def open_locked(path: str, *, readonly: bool, force_share: bool = False) -> int:
    """``path`` opened (read-only or read-write) and locked as :func:`lock_image` locks it; the
    descriptor is closed again when the lock is refused."""
    try:
        fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
    except OSError as err:
        raise ImageError(f"Could not open '{path}': {err.strerror}") from err
    try:
        lock_image(fd, path, readonly=readonly, force_share=force_share)
    except BaseException:
        os.close(fd)
        raise
    return fd
