"""qcow2 extended L2 entries (incompatible feature bit 4): 32 subclusters a cluster.

Each L2 entry is 16 bytes: the usual descriptor, then a bitmap whose low 32 bits say which
subclusters are allocated (read from the host cluster) and whose high 32 bits say which read as
zeros; a subcluster with neither bit reads from the backing file. Both bits set is invalid, as is
an allocation bit in an entry without a host cluster; a compressed cluster's bitmap is 0.

Tables are held as :class:`ExtTable`: the descriptors in the array itself (so code walking
descriptors, refcounts and snapshots works unchanged) and the bitmaps alongside in ``bits``.
Writes allocate and copy on write per subcluster, as QEMU does: a write into a cluster touches
only the subclusters it covers, and copies from the backing file only the parts of those
subclusters it does not cover.
"""

from __future__ import annotations

from array import array

from pyvirt.image.base import Extent, merge_extent
from pyvirt.image.errors import CorruptImage, ImageError
from pyvirt.image.qcow2 import header as H
from pyvirt.image.qcow2.image import Qcow2Image, _fill_zero
from pyvirt.image.qcow2.refcount import dump_be64, load_be64
from pyvirt.image.qcow2.tables import L2_OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    _Array = array[int]
else:
    _Array = array

ALL_ALLOC = 0xFFFFFFFF
ALL_ZERO = ALL_ALLOC << 32

#: what a run of guest bytes reads as
ZERO, DATA, BACKING, COMPRESSED = 0, 1, 2, 3


class ExtTable(_Array):
    """An extended L2 table: descriptors (the array), and their subcluster bitmaps in ``bits``."""

    bits: array[int]


def sc_range(first: int, last: int) -> int:
    """The allocation bits of subclusters ``first`` to ``last`` inclusive (shift by 32 for zero bits)."""
    return ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)


def bitmap_error(entry: int, bits: int, index: int, alloc_mask: int) -> str | None:
    """What ``qemu-img check`` says of an invalid bitmap for this L2 entry (None if valid)."""
    if entry & OFLAG_COMPRESSED:
        if bits:
            return (
                f"ERROR compressed cluster {index} with non-zero subcluster allocation bitmap, "
                f"entry=0x{entry:x}"
            )
    elif entry & alloc_mask:
        if (bits >> 32) & bits:
            return (
                f"ERROR offset={entry & L2_OFFSET_MASK:x}: Allocated cluster has corrupted "
                "subcluster allocation bitmap"
            )
    elif bits & ALL_ALLOC:
        return "ERROR: Unallocated cluster has non-zero subcluster allocation map"
    return None


class Qcow2ExtL2Image(Qcow2Image):
    """A qcow2 image with extended L2 entries; :meth:`Qcow2Image.open` returns one for such files."""

    def __init__(self, path: str, fd: int, header: H.Header, *, readonly: bool, file_size: int) -> None:
        super().__init__(path, fd, header, readonly=readonly, file_size=file_size)
        self.scb = self.cb - 5
        self.scs = 1 << self.scb

    # ------------------------------------------------------------ tables

    def _decode_l2(self, raw: bytearray) -> array[int]:
        both = load_be64(raw)
        t = ExtTable("Q", both[0::2])
        t.bits = both[1::2]
        return t

    def _encode_l2(self, table: array[int]) -> bytes:
        assert isinstance(table, ExtTable)
        both = array("Q", bytes(self.cs))
        both[0::2] = table
        both[1::2] = table.bits
        return dump_be64(both)

    def _copy_l2(self, table: array[int] | None) -> array[int]:
        n = self.cs // 16
        if table is None:
            t = ExtTable("Q", bytes(8 * n))
            t.bits = array("Q", bytes(8 * n))
        else:
            assert isinstance(table, ExtTable)
            t = ExtTable("Q", table)
            t.bits = array("Q", table.bits)
        return t

    def _ext_l2(self, l1i: int) -> ExtTable | None:
        t = self._l2(l1i)
        assert t is None or isinstance(t, ExtTable)
        return t

    def _ext_l2_for_write(self, l1i: int) -> tuple[ExtTable, int]:
        t, off = self._l2_for_write(l1i)
        assert isinstance(t, ExtTable)
        return t, off

    # ------------------------------------------------------------ lookup

    def _runs(self, c: int, e: int, bits: int, a: int, b: int) -> list[tuple[int, int, int, int | None]]:
        """``(start, end, kind, host offset of start)`` runs of bytes ``[a, b)`` of cluster ``c``."""
        if e & OFLAG_COMPRESSED:
            return [(a, b, COMPRESSED, None)]
        alloc = bool(e & self.alloc_mask)
        lo, hi = bits & ALL_ALLOC, bits >> 32
        if (lo & hi) if alloc else lo:
            raise CorruptImage(
                f"{self.path}: invalid subcluster bitmap {bits:#018x} in the L2 entry of cluster {c}"
            )
        host = self._host(e) if alloc else None
        if alloc and lo == ALL_ALLOC:
            return [(a, b, DATA, None if host is None else host + a)]
        if not lo and hi in (0, ALL_ALLOC):
            return [(a, b, ZERO if hi else BACKING, None if host is None else host + a)]
        scb = self.scb
        out: list[tuple[int, int, int, int | None]] = []
        s = a
        while s < b:
            k = s >> scb
            kind = ZERO if hi >> k & 1 else DATA if lo >> k & 1 else BACKING
            t = min(b, (k + 1) << scb)
            while t < b:
                k = t >> scb
                if (ZERO if hi >> k & 1 else DATA if lo >> k & 1 else BACKING) != kind:
                    break
                t = min(b, (k + 1) << scb)
            out.append((s, t, kind, None if host is None else host + s))
            s = t
        return out

    def _extents(self, offset: int, length: int) -> Iterator[tuple[int, int, int, int | None, int]]:
        """``(start, length, kind, host offset, L2 entry)`` runs of ``[offset, offset + length)``."""
        cs, cb = self.cs, self.cb
        pos, end = offset, offset + length
        while pos < end:
            l1i = pos >> self.l2_shift
            seg_end = min(end, (l1i + 1) << self.l2_shift)
            table = self._ext_l2(l1i)
            if table is None:
                yield pos, seg_end - pos, BACKING, None, 0
                pos = seg_end
                continue
            while pos < seg_end:
                c = pos >> cb
                cstart = c << cb
                i = c & self.l2_mask
                e = table[i]
                b = min(seg_end - cstart, cs)
                for s, t, kind, host in self._runs(c, e, table.bits[i], pos - cstart, b):
                    yield cstart + s, t - s, kind, host, e
                pos = cstart + b

    # ------------------------------------------------------------ reading

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        if self._cbuf:
            self._cstream_flush()
        cmask = self.cs - 1
        kind, rstart, rhost, rlen = -1, 0, 0, 0
        for pos, n, k, host, e in self._extents(offset, len(buf)):
            if k == COMPRESSED:
                if rlen:
                    self._emit(kind, buf, rstart - offset, rhost, rlen)
                    rlen = 0
                inoff = pos & cmask
                buf[pos - offset : pos - offset + n] = self._decompress(e)[inoff : inoff + n]
                continue
            where = 0 if k == ZERO else pos if k == BACKING else host
            assert where is not None
            if rlen and k == kind and (k == ZERO or where == rhost + rlen):
                rlen += n
            else:
                if rlen:
                    self._emit(kind, buf, rstart - offset, rhost, rlen)
                kind, rstart, rhost, rlen = k, pos, where, n
        if rlen:
            self._emit(kind, buf, rstart - offset, rhost, rlen)

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        hole_start, hole_len = -1, 0
        bsize = -1 if self.backing is None else self.backing.size
        for pos, n, kind, host in self._status_runs(offset, length, bsize):
            if kind == BACKING and pos < bsize:
                if hole_len and hole_start + hole_len == pos:
                    hole_len += n
                else:
                    if hole_len:
                        self._hole_status(out, hole_start, hole_len)
                    hole_start, hole_len = pos, n
                continue
            if hole_len:
                self._hole_status(out, hole_start, hole_len)
                hole_len = 0
            # An encrypted cluster holds ciphertext: no offset a reader could copy from, as in QEMU.
            at = None if self.encrypted else host
            if kind == COMPRESSED:
                ext = Extent(pos, n, data=True, zero=False, compressed=True)
            elif kind == ZERO:
                ext = Extent(pos, n, data=False, zero=True, offset=at)
            elif kind == DATA:
                ext = Extent(pos, n, data=True, zero=False, offset=at)
            else:  # unallocated, past the backing file if any: QEMU tells a host cluster's offset
                ext = Extent(pos, n, data=False, zero=True, present=False, offset=at)
            merge_extent(out, ext)
        if hole_len:
            self._hole_status(out, hole_start, hole_len)
        return out

    def _status_runs(
        self, offset: int, length: int, bsize: int
    ) -> Iterator[tuple[int, int, int, int | None]]:
        """:meth:`_extents` with unallocated runs split where the backing file ends."""
        for pos, n, kind, host, _e in self._extents(offset, length):
            if kind == BACKING and pos < bsize < pos + n:
                yield pos, bsize - pos, kind, host
                yield bsize, pos + n - bsize, kind, None if host is None else host + bsize - pos
            else:
                yield pos, n, kind, host

    def allocated_in_top(self, offset: int, length: int) -> list[tuple[int, int, bool]]:
        out: list[tuple[int, int, bool]] = []
        for pos, n, kind, _host, _e in self._extents(offset, length):
            alloc = kind != BACKING
            if out and out[-1][2] == alloc:
                st, m, a = out[-1]
                out[-1] = (st, m + n, a)
            else:
                out.append((pos, n, alloc))
        return out

    # ------------------------------------------------------------ writing

    def _write_segment(self, table: array[int], toff: int, pos: int, mv: memoryview) -> None:
        assert isinstance(table, ExtTable)
        cs, cb, scb = self.cs, self.cb, self.scb
        end = pos + len(mv)
        writes: list[tuple[int, memoryview]] = []
        allocs: list[tuple[int, int, int, int, memoryview]] = []  # index, old entry, bits, at, data
        for c in range(pos >> cb, ((end - 1) >> cb) + 1):
            cstart = c << cb
            a, b = max(pos, cstart) - cstart, min(end, cstart + cs) - cstart
            piece = mv[a + cstart - pos : b + cstart - pos]
            i = c & self.l2_mask
            e, bits = table[i], table.bits[i]
            first, last = a >> scb, (b - 1) >> scb
            ra, rb = first << scb, min(cs, (last + 1) << scb)
            if e & OFLAG_COMPRESSED:  # the whole cluster, decompressed, into a new one
                full = bytearray(self._decompress(e))
                full[a:b] = piece
                allocs.append((i, e, ALL_ALLOC, 0, memoryview(full)))
                continue
            alloc = bool(e & self.alloc_mask)
            if (ra, rb) != (a, b):  # copy on write: the touched subclusters' other bytes
                region = bytearray(rb - ra)
                self._read_in_cluster(cstart + ra, memoryview(region)[: a - ra])
                self._read_in_cluster(cstart + b, memoryview(region)[b - ra :])
                region[a - ra : b - ra] = piece
                piece = memoryview(region)
            touched = sc_range(first, last)
            new_bits = (bits | touched) & ~(touched << 32)
            if alloc and e & OFLAG_COPIED:
                host = self._host(e)
                if not self.external:
                    self._check_not_metadata(host)
                writes.append((host + ra, piece))
                if new_bits != bits:
                    table.bits[i] = new_bits
                    self.cache.mark_dirty(toff)
            elif alloc:  # shared with a snapshot: the whole cluster, copied
                full = bytearray(cs)
                self._emit(1, memoryview(full), 0, self._host(e), cs)
                full[ra:rb] = piece
                allocs.append((i, e, new_bits, 0, memoryview(full)))
            else:
                allocs.append((i, e, new_bits, ra, piece))
        if allocs:
            if self.external:
                base = -1
            else:
                base = self.refs.alloc(len(allocs))
                self._check_fresh(base, len(allocs))
            first_c = (pos >> cb) & ~self.l2_mask
            for k, (i, e, new_bits, at, data) in enumerate(allocs):
                # with a data file, each cluster lies at its own guest offset there
                host = (first_c + i) << cb if self.external else base + k * cs
                writes.append((host + at, data))
                table[i] = host | OFLAG_COPIED
                table.bits[i] = new_bits
                self._release(e)
            self.cache.mark_dirty(toff)
        run_host, run_len = -1, 0
        run: list[memoryview] = []
        for host, data in writes:
            if run and host == run_host + run_len:
                run.append(data)
                run_len += len(data)
                continue
            if run:
                self._pwrite_data(run, run_host)
            run_host, run, run_len = host, [data], len(data)
        if run:
            self._pwrite_data(run, run_host)

    def _read_in_cluster(self, offset: int, out: memoryview) -> None:
        """The guest's current bytes at ``offset`` (zeros past the end of the image)."""
        n = max(0, min(len(out), self.size - offset))
        if n:
            if self.backing is None and self.backing_file is not None:
                raise ImageError(f"{self.path}: copy-on-write needs the backing file, which is not open")
            self.readinto(offset, out[:n])
        if n < len(out):
            _fill_zero(out[n:])

    def write_zeroes(self, offset: int, length: int, *, discard: bool = False, backed: bool = False) -> None:
        """Zero a range: whole subclusters get their zero bit (or, without a backing file, are
        deallocated); whole clusters lose their host cluster; bytes at the ends are written."""
        self._check_writable()
        self._check_range(offset, length)
        if not length:
            return
        if self.header.data_file_raw:
            self._write_zero_bytes(offset, length)  # the raw data file must read as zeros there
            return
        self._mark_write()
        self._dirty(offset, length)
        scs, scb, cb = self.scs, self.scb, self.cb
        end = offset + length
        first_sc = -(-offset // scs) << scb
        last_sc = end if end == self.size else (end >> scb) << scb
        if first_sc >= last_sc:
            self._write_zero_bytes(offset, length)
            return
        if offset < first_sc:
            self._write_zero_bytes(offset, first_sc - offset)
        if end > last_sc:
            self._write_zero_bytes(last_sc, end - last_sc)
        has_backing = backed or self.backing_file is not None
        pos = first_sc
        while pos < last_sc:
            l1i = pos >> self.l2_shift
            seg_end = min(last_sc, (l1i + 1) << self.l2_shift)
            if self._l2(l1i) is None and not has_backing:
                pos = seg_end
                continue
            table, toff = self._ext_l2_for_write(l1i)
            while pos < seg_end:
                c = pos >> cb
                cstart = c << cb
                cend = min(seg_end, cstart + self.cs)
                i = c & self.l2_mask
                e, bits = table[i], table.bits[i]
                if pos == cstart and (cend - cstart == self.cs or cend == self.size):
                    if has_backing:
                        new_e, new_bits = 0, ALL_ZERO
                    elif not discard and not e & (self.alloc_mask | OFLAG_COMPRESSED) and bits == ALL_ZERO:
                        new_e, new_bits = e, bits
                    else:
                        new_e, new_bits = 0, 0
                elif e & OFLAG_COMPRESSED:  # part of a compressed cluster: written as zeros
                    self._write_zero_bytes(pos, cend - pos)
                    table, toff = self._ext_l2_for_write(l1i)
                    pos = cend
                    continue
                else:
                    touched = sc_range((pos - cstart) >> scb, (cend - cstart - 1) >> scb)
                    new_e, new_bits = e, bits & ~touched
                    new_bits = new_bits | (touched << 32) if has_backing else new_bits & ~(touched << 32)
                if (new_e, new_bits) != (e, bits):
                    table[i], table.bits[i] = new_e, new_bits
                    if new_e != e:
                        self._release(e)
                    self.cache.mark_dirty(toff)
                pos = cend

    def map_for_write(
        self, offset: int, length: int, *, prealloc: bool = False
    ) -> list[tuple[int, int, int]] | None:
        runs = super().map_for_write(offset, length, prealloc=prealloc)
        if runs and not prealloc:
            for guest, _host, n in runs:
                table, toff = self._ext_l2_for_write(guest >> self.l2_shift)
                i0 = (guest >> self.cb) & self.l2_mask
                k = n >> self.cb
                table.bits[i0 : i0 + k] = array("Q", [ALL_ALLOC]) * k
                self.cache.mark_dirty(toff)
        return runs

    def _unallocated(self, c: int, c_end: int) -> bool:
        """Whether clusters ``[c, c_end)`` have empty L2 entries and empty bitmaps."""
        while c < c_end:
            l1i = c >> self.l2_bits
            seg_end = min(c_end, (l1i + 1) << self.l2_bits)
            table = self._ext_l2(l1i)
            if table is not None:
                i0, n = c & self.l2_mask, seg_end - c
                if table[i0 : i0 + n].tobytes().count(0) != 8 * n:
                    return False
                if table.bits[i0 : i0 + n].tobytes().count(0) != 8 * n:
                    return False
            c = seg_end
        return True

    def write_compressed(self, items: Iterable[tuple[int, bytes]]) -> None:
        """As qcow2's; a compressed cluster's bitmap is 0."""
        done: list[int] = []

        def noting() -> Iterator[tuple[int, bytes]]:
            for c, payload in items:
                done.append(c)
                yield c, payload

        super().write_compressed(noting())
        for c in done:
            table, toff = self._ext_l2_for_write(c >> self.l2_bits)
            table.bits[c & self.l2_mask] = 0
            self.cache.mark_dirty(toff)
