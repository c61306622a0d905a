"""Positional file I/O on whole buffers: short reads zero-filled, short writes retried.

A module of their own (they were in :mod:`pyvirt.image.raw`) so that writing a new qcow2 does not
load the :class:`~pyvirt.image.base.Image` classes.
"""

from __future__ import annotations

import os

IOV_MAX = 1024
WRITE_PIECE = 256 << 10  # bytes a write call at most (see pwrite_full)


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
    """Write the buffers back to back at ``offset``, looping on short writes.

    At most :data:`WRITE_PIECE` bytes a system call: the page cache gives a write folios as large
    as the call (up to 2 MiB on ext4 and XFS), and whole 2 MiB blocks of free memory are those a
    VM has most likely handed back to its host (free page reporting reports nothing smaller), so
    they fault in from the host as they are written: 1 GiB written in 2 MiB calls took 0.6 to
    7 s, in 256 KiB calls 0.6 to 0.9 s, on this project's VM (bench_img.py, docs/BENCHMARKS.md).
    """
    pending = [m for m in (memoryview(b).cast("B") for b in bufs) if len(m)]
    i = 0  # pending[:i] is written
    while i < len(pending):
        batch = [pending[i]]
        want = len(batch[0])
        if want > WRITE_PIECE:
            batch[0], want = batch[0][:WRITE_PIECE], WRITE_PIECE
        for b in pending[i + 1 : i + IOV_MAX]:
            if want + len(b) > WRITE_PIECE:
                break
            batch.append(b)
            want += len(b)
        n = os.pwritev(fd, batch, offset)
        offset += n
        while n:  # drop the bytes written (a short write leaves the rest of a buffer)
            if n >= len(pending[i]):
                n -= len(pending[i])
                i += 1
            else:
                pending[i] = pending[i][n:]
                n = 0
