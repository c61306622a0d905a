"""The messages of ``vol-upload``/``vol-download`` on a WebSocket, shared by daemon and client.

Binary messages carry the volume's bytes, in order from the offset asked for, at most :data:`CHUNK`
bytes each, so neither side ever holds more than one chunk of a multi-gigabyte volume. Text messages
are JSON objects that say what is not data:

``{"type": "hole", "length": N}``     N bytes of zeros, nothing sent for them (sparse transfers only)
``{"type": "end", "bytes": N}``       the transfer is complete (N: the bytes it covered)
``{"type": "error", "error": {"code", "message"}}``  the transfer failed

An upload (``?offset=&length=``) is the client's binary and hole messages and an end message,
answered by the daemon's end or error message; a download (``?offset=&length=&sparse=1``) is the
daemon's binary and hole messages and an end message (or an error message at any point). The daemon
closes the WebSocket after its last message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

CHUNK = 1 << 20
MAX_CONTROL = 64 * 1024
HOLE, END, ERROR = "hole", "end", "error"


def hole_message(length: int) -> str:
    return json.dumps({"type": HOLE, "length": length})


def end_message(count: int) -> str:
    return json.dumps({"type": END, "bytes": count})


def error_message(code: str, message: str) -> str:
    return json.dumps({"type": ERROR, "error": {"code": code, "message": message}})


def parse_control(text: str) -> tuple[str, dict[str, Any]]:
    """A text message's type and fields; ValueError names what is wrong with it."""
    if len(text) > MAX_CONTROL:
        raise ValueError("control message too large")
    message = json.loads(text)
    if not isinstance(message, dict) or message.get("type") not in (HOLE, END, ERROR):
        raise ValueError(f"unknown control message {text[:80]!r}")
    kind = str(message["type"])
    if kind == HOLE:
        length = message.get("length")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise ValueError("a hole message needs a non-negative integer 'length'")
    return kind, message


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
