"""qcow2 persistent dirty bitmaps: read, named, and kept up to date by a writable open, as QEMU.

A writable open marks the enabled (``auto``) bitmaps in use, records every guest range written,
and on close sets their bits, resizes their tables to the image's size and clears the mark, so
an image written by this library keeps valid bitmaps exactly as one written by qemu-img.
Disabled bitmaps are kept unchanged (resized only); bitmaps already in use (inconsistent) are
left as they are.
"""

from __future__ import annotations

import os
import struct

from pyvirt.image.errors import CorruptImage
from pyvirt.image.fileio import pwrite_full
from pyvirt.image.qcow2 import header as H
from pyvirt.image.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.qcow2.image import Qcow2Image

MAX_BITMAPS = 65535
MAX_DIRECTORY = 64 << 20
_ENTRY = struct.Struct(">QIIBBHI")
FLAG_IN_USE = 1 << 0
FLAG_AUTO = 1 << 1


class Bitmap(Record):
    def __init__(
        self, name: str, flags: int, granularity: int, table_offset: int, table_size: int, entry: int = 0
    ) -> None:
        #: the byte offset of its directory entry in the file
        self.entry = entry
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
        out.append(Bitmap(name, flags, 1 << gbits, toff, tsize, doff + pos))
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


class Tracker:
    """Keeps an open image's enabled bitmaps up to date (see the module docstring)."""

    def __init__(self, img: Qcow2Image, bm: Bitmaps) -> None:
        self.img = img
        self.bm = bm
        self.dirty: list[tuple[int, int]] = []
        self.old_size = img.size
        self.live = [b for b in bm.bitmaps if b.flags & FLAG_AUTO and not b.flags & FLAG_IN_USE]
        self.kept = [b for b in bm.bitmaps if not b.flags & FLAG_IN_USE]
        for b in self.live:
            self._set_flags(b, b.flags | FLAG_IN_USE)
        if self.live:
            os.fdatasync(img.fd)

    def _set_flags(self, b: Bitmap, flags: int) -> None:
        pwrite_full(self.img.fd, [struct.pack(">I", flags)], b.entry + 12)

    def mark(self, offset: int, length: int) -> None:
        if self.live and length > 0:
            self.dirty.append((offset, length))

    def close(self) -> None:
        """Resize every consistent bitmap to the image, set the written bits, clear the marks."""
        img = self.img
        for b in self.kept:
            bits = -(-img.size // b.granularity)
            table = self._table(b)
            need = -(-bits // (img.cs * 8))
            changed = need != len(table)
            for i in range(need, len(table)):
                self._free_entry(table[i])
            del table[need:]
            table.extend([0] * (need - len(table)))
            ranges = list(self.dirty) if b in self.live else []
            if bits % (img.cs * 8) and table and img.size < self.old_size:
                ranges.append((-1, bits))  # clear the bits past a shrunk end
            for lo, hi, clear in self._bit_runs(b, ranges, bits):
                changed |= self._set_bits(table, lo, hi, clear)
            if changed:
                self._write_table(b, table)
        if self.live:
            os.fdatasync(img.fd)
            for b in self.live:
                self._set_flags(b, b.flags)

    def _bit_runs(self, b: Bitmap, ranges: list[tuple[int, int]], bits: int) -> list[tuple[int, int, bool]]:
        out: list[tuple[int, int, bool]] = []
        per = self.img.cs * 8
        for off, n in ranges:
            if off < 0:  # the tail of the last table cluster
                out.append((bits, -(-bits // per) * per, True))
                continue
            lo, hi = off // b.granularity, min(bits, -(-(off + n) // b.granularity))
            if lo < hi:
                out.append((lo, hi, False))
        return out

    def _table(self, b: Bitmap) -> list[int]:
        if not b.table_size:
            return []
        raw = os.pread(self.img.fd, b.table_size * 8, b.table_offset)
        return [e for (e,) in struct.iter_unpack(">Q", raw)]

    def _free_entry(self, e: int) -> None:
        off = e & 0x00FFFFFFFFFFFE00
        if off:
            self.img.refs.free(off, self.img.cs)

    def _set_bits(self, table: list[int], lo: int, hi: int, clear: bool) -> bool:
        img, per = self.img, self.img.cs * 8
        changed = False
        while lo < hi:
            i = lo // per
            end = min(hi, (i + 1) * per)
            e = table[i]
            off = e & 0x00FFFFFFFFFFFE00
            if not off and bool(e & 1) != clear:  # already all ones, or all zeros
                lo = end
                continue
            if off:
                buf = bytearray(os.pread(img.fd, img.cs, off))
            else:
                buf = bytearray(b"\xff" * img.cs if e & 1 else img.cs)
                off = img.refs.alloc(1)
                table[i] = off
                changed = True
            for bit in range(lo - i * per, end - i * per):
                if clear:
                    buf[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
                else:
                    buf[bit >> 3] |= 1 << (bit & 7)
            pwrite_full(img.fd, [bytes(buf)], off)
            lo = end
        return changed

    def _write_table(self, b: Bitmap, table: list[int]) -> None:
        img = self.img
        old_off, old_size = b.table_offset, b.table_size
        new_off = img.refs.alloc(-(-len(table) * 8 // img.cs)) if table else 0
        if table:
            raw = b"".join(struct.pack(">Q", e) for e in table)
            pwrite_full(img.fd, [raw + bytes(-len(raw) % img.cs)], new_off)
        img.refs.flush()
        os.fdatasync(img.fd)
        b.table_offset, b.table_size = new_off, len(table)
        pwrite_full(img.fd, [struct.pack(">QI", new_off, len(table))], b.entry)
        if old_size:
            img.refs.free(old_off, old_size * 8)
