"""Positional file I/O on whole buffers: short reads zero-filled, short writes retried.

A module of their own (they were in :mod:`pyvirt.image.raw`) so that writing a new qcow2 does not
load the :class:`~pyvirt.image.base.Image` classes.
"""

from __future__ import annotations

import os

IOV_MAX = 1024


def pread_full(fd: int, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset``; bytes past the end of the file are zeroed. Returns bytes read."""
    done = 0
    total = len(buf)
    while done < total:
        n = os.preadv(fd, [buf[done:]], offset + done)
        if n <= 0:
            buf[done:] = bytes(total - done)
            break
        done += n
    return done


def pwrite_full(fd: int, bufs: list[memoryview] | list[bytes], offset: int) -> None:
    """Write the buffers back to back at ``offset``, looping on short writes."""
    pending = [memoryview(b).cast("B") for b in bufs]
    while pending:
        batch = pending[:IOV_MAX]
        want = sum(len(b) for b in batch)
        n = os.pwritev(fd, batch, offset)
        offset += n
        if n == want:
            pending = pending[IOV_MAX:]
            continue
        # A short write: drop the bytes written and retry the rest.
        while n:
            if n >= len(pending[0]):
                n -= len(pending[0])
                pending.pop(0)
            else:
                pending[0] = pending[0][n:]
                n = 0
