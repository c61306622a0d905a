"""Copying a migration stream between QEMU's pipe and a save image with O_DIRECT (``--bypass-cache``).

QEMU writes and reads its stream in pieces of any size at any offset; O_DIRECT needs both, and the
buffer, aligned to the file system's block. So with ``--bypass-cache`` QEMU gets a pipe and these
copiers, run in a worker thread, move the stream through a page-aligned buffer (libvirt's iohelper
does the same). The unaligned tail of a save is written after O_DIRECT is cleared again.
"""

from __future__ import annotations

import fcntl
import mmap
import os

from pyvirt.errors import OperationFailed

CHUNK = 1024 * 1024  # a multiple of every block size O_DIRECT may need


def enable(fd: int, path: str, on: bool = True) -> None:
    """Turn O_DIRECT on (or off) for ``fd``; a file system that cannot is refused, naming the file."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError as err:
        raise OperationFailed(
            f"operation failed: --bypass-cache: the file system of '{path}' does not support "
            f"O_DIRECT ({err.strerror}); save or restore without it"
        ) from err


def pipe_to_file(pipe: int, fd: int, offset: int, path: str) -> int:
    """Copy ``pipe`` until EOF into ``fd`` (O_DIRECT set) from ``offset`` (aligned); returns the bytes
    copied. Closes ``pipe``."""
    buf = mmap.mmap(-1, CHUNK)
    view = memoryview(buf)
    total = 0
    try:
        while True:
            filled = 0
            while filled < CHUNK:
                got = os.readv(pipe, [view[filled:]])
                if got == 0:
                    break
                filled += got
            whole = filled - filled % mmap.PAGESIZE
            if whole:
                _pwrite_all(fd, view[:whole], offset + total)
            if filled < CHUNK:  # EOF: the tail, unaligned, without O_DIRECT
                if filled > whole:
                    enable(fd, path, on=False)
                    _pwrite_all(fd, view[whole:filled], offset + total + whole)
                return total + filled
            total += filled
    finally:
        view.release()
        buf.close()
        os.close(pipe)


def file_to_pipe(fd: int, offset: int, length: int, pipe: int) -> None:
    """Copy ``length`` bytes of ``fd`` (O_DIRECT set) from ``offset`` (aligned) into ``pipe``; closes
    ``pipe``. A reader that went away (QEMU failed) ends the copy quietly."""
    buf = mmap.mmap(-1, CHUNK)
    view = memoryview(buf)
    done = 0
    try:
        while done < length:
            got = os.preadv(fd, [view], offset + done)
            if got == 0:
                raise OperationFailed("operation failed: save image ended before its stream did")
            got = min(got, length - done)
            sent = 0
            while sent < got:
                sent += os.write(pipe, view[sent:got])
            done += got
    except BrokenPipeError:
        pass
    finally:
        view.release()
        buf.close()
        os.close(pipe)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    written = 0
    while written < len(data):
        written += os.pwritev(fd, [data[written:]], offset + written)
