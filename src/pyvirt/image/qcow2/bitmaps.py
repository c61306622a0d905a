"""qcow2 persistent dirty bitmaps, read-only: enough to account for their clusters and name them.

This library does not maintain bitmaps. ``check`` counts their clusters as used while they are
valid (autoclear bit set); a writable open drops them cleanly (extension removed, clusters freed)
instead of leaving QEMU to find them inconsistent and leaked.
"""

from __future__ import annotations

import os
import struct

from pyvirt.image.errors import CorruptImage
from pyvirt.image.qcow2 import header as H
from pyvirt.image.record import Record

MAX_BITMAPS = 65535
MAX_DIRECTORY = 64 << 20
_ENTRY = struct.Struct(">QIIBBHI")
FLAG_IN_USE = 1 << 0
FLAG_AUTO = 1 << 1


class Bitmap(Record):
    def __init__(self, name: str, flags: int, granularity: int, table_offset: int, table_size: int) -> None:
        self.name = name
        self.flags = flags
        self.granularity = granularity
        self.table_offset = table_offset
        self.table_size = table_size


class Bitmaps(Record):
    def __init__(self, directory_offset: int, directory_size: int, bitmaps: list[Bitmap]) -> None:
        self.directory_offset = directory_offset
        self.directory_size = directory_size
        self.bitmaps = bitmaps


def extension(h: H.Header) -> H.Extension | None:
    for e in h.other_extensions:
        if e.type == H.EXT_BITMAPS:
            return e
    return None


def read_bitmaps(fd: int, h: H.Header, file_size: int, *, source: str) -> Bitmaps | None:
    """The bitmap directory, if the image has a valid one (extension present, autoclear bit set)."""
    ext = extension(h)
    if ext is None or not h.autoclear_features & H.AUTOCLEAR_BITMAPS or len(ext.data) < 24:
        return None
    nb, _res, dsize, doff = struct.unpack_from(">IIQQ", ext.data, 0)
    if nb > MAX_BITMAPS or dsize > MAX_DIRECTORY or doff % h.cluster_size or doff + dsize > file_size:
        raise CorruptImage(f"{source}: bitmap directory out of range")
    raw = os.pread(fd, dsize, doff)
    out: list[Bitmap] = []
    pos = 0
    for _ in range(nb):
        if pos + _ENTRY.size > len(raw):
            raise CorruptImage(f"{source}: bitmap directory truncated")
        toff, tsize, flags, _type, gbits, nsize, esize = _ENTRY.unpack_from(raw, pos)
        end = pos + _ENTRY.size + esize + nsize
        if end > len(raw) or gbits > 63 or tsize * 8 > MAX_DIRECTORY:
            raise CorruptImage(f"{source}: bitmap directory entry out of range")
        name = raw[pos + _ENTRY.size + esize : end].decode("utf-8", "replace")
        out.append(Bitmap(name, flags, 1 << gbits, toff, tsize))
        pos = (end + 7) & ~7
    return Bitmaps(doff, dsize, out)


def bitmap_ranges(fd: int, bm: Bitmaps, cluster_size: int, file_size: int) -> list[tuple[int, int]]:
    """``(offset, bytes)`` of every cluster the bitmaps use: directory, tables, data."""
    ranges = [(bm.directory_offset, bm.directory_size)]
    for b in bm.bitmaps:
        if not b.table_size:
            continue
        ranges.append((b.table_offset, b.table_size * 8))
        raw = os.pread(fd, b.table_size * 8, b.table_offset)
        for (e,) in struct.iter_unpack(">Q", raw[: len(raw) // 8 * 8]):
            off = e & 0x00FFFFFFFFFFFE00
            if off and off + cluster_size <= file_size + cluster_size:
                ranges.append((off, cluster_size))
    return ranges


def info(bm: Bitmaps) -> list[dict[str, object]]:
    """qemu-img info's ``bitmaps`` list."""
    out: list[dict[str, object]] = []
    for b in bm.bitmaps:
        flags = []
        if b.flags & FLAG_IN_USE:
            flags.append("in-use")
        if b.flags & FLAG_AUTO:
            flags.append("auto")
        out.append({"flags": flags, "name": b.name, "granularity": b.granularity})
    return out
