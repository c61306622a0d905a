"""``bitmap``: add, remove, clear, enable, disable and merge a qcow2 image's persistent dirty bitmaps,
as qemu-img bitmap does, one operation after another on one open image.

Each operation rewrites what it changes in a safe order: new tables and data clusters are written and
synced before the directory that points to them, the new directory before the header extension that
names it, and the old clusters are freed only after that.
"""

from __future__ import annotations

import os
import struct

from pyvirt.image.errors import ImageError
from pyvirt.image.fileio import pwrite_full
from pyvirt.image.qcow2 import bitmaps as B
from pyvirt.image.qcow2 import header as H

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.base import Image
    from pyvirt.image.qcow2.image import Qcow2Image

MAX_NAME = 1023
MAX_GRANULARITY = 1 << 31
_TYPE_DIRTY_TRACKING = 1


def default_granularity(cluster_size: int) -> int:
    """QEMU's default: the cluster size, kept within 4 KiB … 64 KiB."""
    return min(max(cluster_size, 4096), 65536)


class BitmapEditor:
    """The bitmaps of one writable qcow2 image, edited in place."""

    def __init__(self, img: Qcow2Image, *, edit: bool = True) -> None:
        if edit and img.header.version < 3:
            raise ImageError(
                f"Can't make bitmaps persistent in '{img.path}': Cannot store dirty bitmaps in qcow2 v2 files"
            )
        if edit and img.bitmaps is not None:  # nothing is written through this open: settle the tracker
            img.bitmaps.close()
            img.bitmaps = None
        self.img = img
        found = B.read_bitmaps(img.fd, img.header, os.fstat(img.fd).st_size, source=img.path)
        self.dir_offset = found.directory_offset if found else 0
        self.dir_size = found.directory_size if found else 0
        self.list: list[B.Bitmap] = list(found.bitmaps) if found else []

    def find(self, name: str) -> B.Bitmap:
        for b in self.list:
            if b.name == name:
                return b
        raise ImageError(f"Dirty bitmap '{name}' not found")

    # ------------------------------------------------------------ operations

    def add(self, name: str, granularity: int | None, *, enabled: bool = True) -> None:
        if not name:
            raise ImageError("Bitmap name cannot be empty")
        if len(name.encode()) > MAX_NAME:
            raise ImageError(
                f"Can't make bitmap '{name}' persistent in '{self.img.path}': "
                f"Name length exceeds maximum ({MAX_NAME} characters)"
            )
        if any(b.name == name for b in self.list):
            raise ImageError(f"Bitmap already exists: {name}")
        g = default_granularity(self.img.cs) if granularity is None else granularity
        if g < 512 or g & (g - 1) or g > MAX_GRANULARITY:
            raise ImageError("Granularity must be power of 2 and at least 512")
        if len(self.list) >= B.MAX_BITMAPS:
            raise ImageError(f"Can't make bitmap '{name}' persistent: too many bitmaps")
        entries = self._entries_for(g)
        table_off = self._write_table([0] * entries)
        flags = B.FLAG_AUTO if enabled else 0
        self.list.append(B.Bitmap(name, flags, g, table_off, entries))
        self._write_directory()

    def remove(self, name: str) -> None:
        b = self.find(name)
        self.list.remove(b)
        self._write_directory()
        self._free_bitmap(b)

    def clear(self, name: str) -> None:
        b = self.find(name)
        old = self._table(b)
        self._replace_table(b, [0] * len(old))
        for e in old:
            self._free_data(e)

    def set_enabled(self, name: str, enabled: bool) -> None:
        b = self.find(name)
        b.flags = (b.flags | B.FLAG_AUTO) if enabled else (b.flags & ~B.FLAG_AUTO)
        self._write_directory()

    def merge(self, target: str, source_img: Image | None, source: str) -> None:
        """OR bitmap ``source`` (of ``source_img``, or of this image) into ``target``."""
        t = self.find(target)
        if source_img is None:
            bits, gran = self.bits(self.find(source)), self.find(source).granularity
        else:
            from pyvirt.image.qcow2.image import Qcow2Image

            if not isinstance(source_img, Qcow2Image):
                raise ImageError(f"{source_img.path}: only qcow2 images have persistent bitmaps")
            editor = BitmapEditor(source_img, edit=False)
            s = editor.find(source)
            bits, gran = editor.bits(s), s.granularity
        ranges = [(i * gran, gran) for i in bits]
        table = self._table(t)
        total = -(-self.img.size // t.granularity)
        runs: list[tuple[int, int]] = []
        for off, n in ranges:
            lo, hi = off // t.granularity, min(total, -(-(off + n) // t.granularity))
            if lo < hi:
                if runs and runs[-1][1] >= lo:
                    runs[-1] = (runs[-1][0], max(runs[-1][1], hi))
                else:
                    runs.append((lo, hi))
        new = self._with_bits(table, runs)
        if new != table:
            self._replace_table(t, new, keep_data=True)

    # ------------------------------------------------------------ reading

    def bits(self, b: B.Bitmap) -> list[int]:
        """The indexes of the set bits of ``b``."""
        out: list[int] = []
        per = self.img.cs * 8
        total = -(-self.img.size // b.granularity)
        for i, e in enumerate(self._table(b)):
            base = i * per
            off = e & 0x00FFFFFFFFFFFE00
            if off:
                data = os.pread(self.img.fd, self.img.cs, off)
                for byte_i, byte in enumerate(data):
                    if byte:
                        for bit in range(8):
                            if byte >> bit & 1:
                                out.append(base + byte_i * 8 + bit)
            elif e & 1:
                out.extend(range(base, base + per))
        return [i for i in out if i < total]

    # ------------------------------------------------------------ writing

    def _entries_for(self, granularity: int) -> int:
        bits = -(-self.img.size // granularity)
        return -(-bits // (self.img.cs * 8))

    def _table(self, b: B.Bitmap) -> list[int]:
        if not b.table_size:
            return []
        raw = os.pread(self.img.fd, b.table_size * 8, b.table_offset)
        return [e for (e,) in struct.iter_unpack(">Q", raw)]

    def _with_bits(self, table: list[int], runs: list[tuple[int, int]]) -> list[int]:
        """A copy of ``table`` with the bit ``runs`` set: changed data clusters are written anew."""
        img, per = self.img, self.img.cs * 8
        new = list(table)
        by_cluster: dict[int, list[tuple[int, int]]] = {}
        for lo, hi in runs:
            while lo < hi:
                i = lo // per
                end = min(hi, (i + 1) * per)
                by_cluster.setdefault(i, []).append((lo - i * per, end - i * per))
                lo = end
        for i, spans in by_cluster.items():
            e = table[i]
            if e & 1 and not e & 0x00FFFFFFFFFFFE00:
                continue  # all ones already
            off = e & 0x00FFFFFFFFFFFE00
            buf = bytearray(os.pread(img.fd, img.cs, off)) if off else bytearray(img.cs)
            for lo, hi in spans:
                for bit in range(lo, hi):
                    buf[bit >> 3] |= 1 << (bit & 7)
            fresh = img.refs.alloc(1)
            pwrite_full(img.fd, [bytes(buf)], fresh)
            new[i] = fresh
        return new

    def _write_table(self, table: list[int]) -> int:
        img = self.img
        if not table:
            return 0
        off = img.refs.alloc(-(-len(table) * 8 // img.cs))
        raw = b"".join(struct.pack(">Q", e) for e in table)
        pwrite_full(img.fd, [raw + bytes(-len(raw) % img.cs)], off)
        return off

    def _replace_table(self, b: B.Bitmap, table: list[int], *, keep_data: bool = False) -> None:
        old_table = self._table(b)
        old_off, old_size = b.table_offset, b.table_size
        b.table_offset, b.table_size = self._write_table(table), len(table)
        self._write_directory()
        if old_size:
            self.img.refs.free(old_off, -(-old_size * 8 // self.img.cs) * self.img.cs)
        if keep_data:  # data clusters the new table no longer points to
            kept = {e & 0x00FFFFFFFFFFFE00 for e in table}
            for e in old_table:
                if e & 0x00FFFFFFFFFFFE00 not in kept:
                    self._free_data(e)
        self.img.refs.flush()

    def _free_data(self, e: int) -> None:
        off = e & 0x00FFFFFFFFFFFE00
        if off:
            self.img.refs.free(off, self.img.cs)

    def _free_bitmap(self, b: B.Bitmap) -> None:
        for e in self._table(b):
            self._free_data(e)
        if b.table_size:
            self.img.refs.free(b.table_offset, -(-b.table_size * 8 // self.img.cs) * self.img.cs)
        self.img.refs.flush()

    def _write_directory(self) -> None:
        """Write the directory anew, point the header at it, then free the old one."""
        img, h = self.img, self.img.header
        old_len = len(h.pack(img.cs))
        raw = bytearray()
        for b in self.list:
            name = b.name.encode()
            gbits = b.granularity.bit_length() - 1
            raw += struct.pack(
                ">QIIBBHI", b.table_offset, b.table_size, b.flags, _TYPE_DIRTY_TRACKING, gbits, len(name), 0
            )
            raw += name + bytes(-(len(raw) + len(name)) % 8)
        img.refs.flush()
        os.fdatasync(img.fd)
        old_off, old_size = self.dir_offset, self.dir_size
        others = [e for e in h.other_extensions if e.type != H.EXT_BITMAPS]
        if self.list:
            off = img.refs.alloc(-(-len(raw) // img.cs))
            pwrite_full(img.fd, [bytes(raw) + bytes(-len(raw) % img.cs)], off)
            img.refs.flush()
            os.fdatasync(img.fd)
            data = struct.pack(">IIQQ", len(self.list), 0, len(raw), off)
            h.other_extensions = [*others, H.Extension(H.EXT_BITMAPS, data)]
            h.autoclear_features |= H.AUTOCLEAR_BITMAPS
            self.dir_offset, self.dir_size = off, len(raw)
        else:
            h.other_extensions = others
            h.autoclear_features &= ~H.AUTOCLEAR_BITMAPS
            self.dir_offset = self.dir_size = 0
        header = h.pack(img.cs)
        pwrite_full(img.fd, [header + bytes(max(0, old_len - len(header)))], 0)
        os.fdatasync(img.fd)
        if old_size:
            img.refs.free(old_off, -(-old_size // img.cs) * img.cs)
            img.refs.flush()
        # entry offsets moved with the directory
        pos = self.dir_offset
        for b in self.list:
            b.entry = pos
            pos += (B._ENTRY.size + len(b.name.encode()) + 7) & ~7


def check_copyable(src: Image, out_fmt: str, compat: str | None) -> None:
    """Refuse ``convert --bitmaps`` before anything is written, in qemu-img's words."""
    from pyvirt.image.qcow2.image import Qcow2Image

    if out_fmt != "qcow2" or compat in ("0.10", "v2"):
        raise ImageError(f"Format driver '{out_fmt}' does not support bitmaps")
    if not isinstance(src, Qcow2Image):
        raise ImageError("Source lacks bitmap support")


def copy_bitmaps(src: Qcow2Image, dst: Qcow2Image, *, skip_broken: bool = False) -> None:
    """``convert --bitmaps``: every persistent bitmap of ``src`` recreated in ``dst``, bits and flags."""
    source = BitmapEditor(src, edit=False)
    target = BitmapEditor(dst)
    usable = []
    for b in source.list:
        if b.flags & B.FLAG_IN_USE:
            if skip_broken:
                continue
            raise ImageError(
                f"Cannot copy inconsistent bitmap '{b.name}'; try --skip-broken-bitmaps, or use "
                f"'qemu-img bitmap --remove' to delete it"
            )
        usable.append(b)
    for b in reversed(usable):  # QEMU walks them newest first, so it names the last clash first
        if any(t.name == b.name for t in target.list):
            raise ImageError(f"Failed to create bitmap {b.name}: Bitmap already exists: {b.name}")
    for b in usable:
        target.add(b.name, b.granularity, enabled=bool(b.flags & B.FLAG_AUTO))
        target.merge(b.name, src, b.name)
