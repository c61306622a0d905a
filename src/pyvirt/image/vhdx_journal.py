"""VHDX metadata written through the log, as the VHDX specification and QEMU's vhdx driver do it.

A metadata update (the BAT sectors new blocks changed) is made safe against a crash at any point:
the data it points to is made stable; the headers get a new log GUID; one log entry holding the
new sectors (a header, a descriptor a sector, the sectors themselves, under one CRC-32C) is
written at the start of the log and made stable; the sectors are written in place and made
stable; the log GUID is cleared (the log is empty). A crash before the entry is stable leaves the
old metadata; one after it leaves an entry that every opener replays (QEMU, and
:meth:`VhdxImage._replay_log`), so the update happens whole or not at all.
"""

from __future__ import annotations

import os
import struct
import uuid

from pyvirt.image.errors import ImageError
from pyvirt.image.fileio import pwrite_full

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.vhdx import VhdxImage

SECTOR = 4096


def _desc_sectors(count: int) -> int:
    """Sectors of an entry's header (64 bytes) and ``count`` 32-byte descriptors."""
    return -(-(64 + 32 * count) // SECTOR)


def build_entry(sectors: list[tuple[int, bytes]], seq: int, log_guid: bytes, file_size: int) -> bytes:
    """A log entry writing each ``(file offset, 4 KiB)`` of ``sectors``; it is the log's oldest (tail 0)."""
    from pyvirt.image.vhdx import DESCRIPTOR, LOG_ENTRY, checksum

    n = len(sectors)
    first_data = _desc_sectors(n)
    buf = bytearray((first_data + n) * SECTOR)
    LOG_ENTRY.pack_into(buf, 0, b"loge", 0, len(buf), 0, seq, n, 0, log_guid, file_size, file_size)
    for i, (offset, data) in enumerate(sectors):
        assert len(data) == SECTOR and offset % SECTOR == 0
        # The descriptor carries the sector's first 8 and last 4 bytes, the data sector the rest
        # between its signature and the two halves of the sequence number.
        (trailing,) = struct.unpack_from("<I", data, SECTOR - 4)
        (leading,) = struct.unpack_from("<Q", data, 0)
        DESCRIPTOR.pack_into(buf, 64 + 32 * i, b"desc", trailing, leading, offset, seq)
        at = (first_data + i) * SECTOR
        struct.pack_into("<4sI", buf, at, b"data", seq >> 32)
        buf[at + 8 : at + SECTOR - 4] = data[8 : SECTOR - 4]
        struct.pack_into("<I", buf, at + SECTOR - 4, seq & 0xFFFFFFFF)
    struct.pack_into("<I", buf, 4, checksum(buf))
    return bytes(buf)


def most_per_entry(log_length: int) -> int:
    """The most sectors one entry can carry: it must leave one log sector free (a full circular
    log is told from an empty one by that sector, as QEMU writes it)."""
    room = log_length // SECTOR - 1
    n = room
    while n > 0 and n + _desc_sectors(n) > room:
        n -= 1
    return n


def write_through_log(img: VhdxImage, sectors: list[tuple[int, bytes]]) -> None:
    """Write metadata ``sectors`` (file offset, 4 KiB) through the log, in as many entries as the
    log's size needs (each applied and the log emptied before the next)."""
    h = img.header
    per = most_per_entry(h.log_length)
    if per <= 0:
        raise ImageError(f"{img.path}: the VHDX log is too small for a metadata update")
    sync = img.durable
    for k in range(0, len(sectors), per):
        part = sectors[k : k + per]
        if sync:
            os.fdatasync(img.fd)  # the blocks the new entries point to come first
        h.log_guid = uuid.uuid4().bytes_le
        img._write_headers(new_guids=False)
        img.log_seq += 1
        entry = build_entry(part, img.log_seq, h.log_guid, os.fstat(img.fd).st_size)
        pwrite_full(img.fd, [entry], h.log_offset)
        if sync:
            os.fdatasync(img.fd)
        for offset, data in part:
            pwrite_full(img.fd, [data], offset)
        if sync:
            os.fdatasync(img.fd)
        h.log_guid = bytes(16)
        img._write_headers(new_guids=False)
