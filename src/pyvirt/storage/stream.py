"""The framing of ``vol-upload``/``vol-download`` on an upgraded connection, shared by daemon and client.

Each frame is a 9-byte header, a kind byte and a big-endian 64-bit length, then the payload:

``D`` data      ``length`` bytes of the volume follow
``H`` hole      ``length`` bytes of zeros, nothing follows (sparse transfers only)
``E`` end       the transfer is complete; a JSON summary of ``length`` bytes follows
``X`` error     the transfer failed; a JSON ``{"error": {"code", "message"}}`` of ``length`` bytes follows

An upload is the client's D/H frames and an E frame, answered by the daemon's E or X frame; a download is
the daemon's D/H frames and an E frame (or an X frame at any point). Data frames are at most
:data:`CHUNK` bytes, so neither side ever holds more than one chunk of a multi-gigabyte volume.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any

HEADER = struct.Struct(">cQ")
CHUNK = 1 << 20
MAX_CONTROL = 64 * 1024
DATA, HOLE, END, ERROR = b"D", b"H", b"E", b"X"


def header(kind: bytes, length: int) -> bytes:
    return HEADER.pack(kind, length)


def control(kind: bytes, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return HEADER.pack(kind, len(body)) + body


def extents(fd: int, start: int, end: int, *, sparse: bool) -> Iterator[tuple[bool, int, int]]:
    """``(is_data, offset, length)`` pieces of ``fd`` between ``start`` and ``end``.

    With ``sparse``, holes come from SEEK_DATA/SEEK_HOLE; otherwise (or where the file system cannot
    tell) everything is data.
    """
    pos = start
    while pos < end:
        if not sparse:
            yield True, pos, end - pos
            return
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains up to EOF
            data = end
        data = min(data, end)
        if data > pos:
            yield False, pos, data - pos
            pos = data
            continue
        try:
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
        except OSError:
            hole = end
        hole = min(max(hole, pos + 1), end)
        yield True, pos, hole - pos
        pos = hole


_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate a range inside the file (it then reads as zeros); False where the file system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return False
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return int(fallocate(fd, _PUNCH_HOLE, offset, length)) == 0


def _already_hole(fd: int, offset: int, end: int) -> bool:
    try:
        return os.lseek(fd, offset, os.SEEK_DATA) >= end
    except OSError:  # ENXIO: no data after offset
        return True


def write_zeroes(fd: int, offset: int, length: int, *, file_size: int) -> None:
    """Make ``length`` bytes at ``offset`` read as zeros: a hole punched inside the file (zeros written
    where the file system cannot punch), a sparse extension past its end."""
    end = offset + length
    inside_end = min(end, file_size)
    needs_zeroes = inside_end > offset and not _already_hole(fd, offset, inside_end)
    if needs_zeroes and not _punch_hole(fd, offset, inside_end - offset):
        zero = bytes(min(CHUNK, inside_end - offset))
        pos = offset
        while pos < inside_end:
            pos += os.pwrite(fd, zero[: min(len(zero), inside_end - pos)], pos)
    if end > file_size:
        os.ftruncate(fd, end)
