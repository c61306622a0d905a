"""qcow2 refcounts: the refcount table, refcount blocks (cached, written back) and cluster allocation.

New clusters are taken from the first free run at or after a hint, else appended at the end of the
file. A refcount block created for new clusters is itself appended and, where it can, describes
itself; the table grows by moving it to the end of the file (written at once, then the old copy
freed). Refcount widths 1 to 64 bits are supported.
"""

from __future__ import annotations

import os
import sys
from array import array

from pyvirt.image.errors import CorruptImage, ImageError
from pyvirt.image.fileio import pread_full, pwrite_full
from pyvirt.image.qcow2.header import MAX_REFTABLE_BYTES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

REFT_OFFSET_MASK = 0xFFFFFFFFFFFFFE00
_TYPECODE = {8: "B", 16: "H", 32: "I", 64: "Q"}
_BIG = sys.byteorder == "little"


def load_be64(data: bytes | bytearray) -> array[int]:
    """Decode big-endian u64 entries into a host-order array."""
    a = array("Q")
    a.frombytes(data[: len(data) // 8 * 8])
    if _BIG:
        a.byteswap()
    return a


def dump_be64(a: array[int]) -> bytes:
    b = array("Q", a)
    if _BIG:
        b.byteswap()
    return b.tobytes()


class Refcounts:
    """Refcounts of one qcow2 file. ``end`` is the first cluster index past everything allocated."""

    def __init__(
        self,
        fd: int,
        *,
        cluster_bits: int,
        refcount_order: int,
        table_offset: int,
        table_clusters: int,
        file_size: int,
        on_table_moved: Callable[[int, int], None],
        source: str = "image",
    ) -> None:
        self.fd = fd
        self.cb = cluster_bits
        self.cs = 1 << cluster_bits
        self.bits = 1 << refcount_order
        self.max_refcount = (1 << self.bits) - 1
        self.per_block = self.cs * 8 // self.bits
        self.table_offset = table_offset
        self.table_clusters = table_clusters
        self.file_size = file_size
        self.source = source
        self.on_table_moved = on_table_moved
        raw = bytearray(table_clusters * self.cs)
        if table_clusters:
            pread_full(fd, memoryview(raw), table_offset)
        self.table = load_be64(raw)
        self.blocks: dict[int, array[int]] = {}
        self.dirty_blocks: set[int] = set()
        self.table_dirty = False
        self.end = -(-file_size // self.cs)
        self.hint = 0
        self.writes_deferred = False

    # ------------------------------------------------------------ blocks

    def _decode(self, data: bytes | bytearray) -> array[int]:
        code = _TYPECODE.get(self.bits)
        if code is not None:
            a = array(code)
            a.frombytes(data)
            if _BIG and self.bits > 8:
                a.byteswap()
            return a
        per_byte = 8 // self.bits
        mask = (1 << self.bits) - 1
        return array("Q", ((byte >> (i * self.bits)) & mask for byte in data for i in range(per_byte)))

    def _encode(self, a: array[int]) -> bytes:
        code = _TYPECODE.get(self.bits)
        if code is not None:
            b = array(code, a)
            if _BIG and self.bits > 8:
                b.byteswap()
            return b.tobytes()
        per_byte = 8 // self.bits
        out = bytearray(self.cs)
        for j in range(self.cs):
            v = 0
            for i in range(per_byte):
                v |= a[j * per_byte + i] << (i * self.bits)
            out[j] = v
        return bytes(out)

    def block_offset(self, bidx: int) -> int:
        if bidx >= len(self.table):
            return 0
        off = self.table[bidx] & REFT_OFFSET_MASK
        if off and (off % self.cs or off + self.cs > max(self.file_size, self.end * self.cs) + self.cs):
            raise CorruptImage(
                f"{self.source}: refcount block {bidx} at {off:#x} is misaligned or past the end"
            )
        return off

    def _block(self, bidx: int, create: bool) -> array[int] | None:
        blk = self.blocks.get(bidx)
        if blk is not None:
            return blk
        off = self.block_offset(bidx)
        if off:
            raw = bytearray(self.cs)
            pread_full(self.fd, memoryview(raw), off)
            blk = self._decode(raw)
            self.blocks[bidx] = blk
            return blk
        if not create:
            return None
        return self._new_block(bidx)

    def _new_block(self, bidx: int) -> array[int]:
        if bidx >= self.table_capacity():
            self._grow_table(bidx + 1)
            if bidx in self.blocks:
                return self.blocks[bidx]
        where = self.end
        self.end += 1
        code = _TYPECODE.get(self.bits, "Q")
        blk = array(code, bytes(self.per_block * array(code).itemsize))
        self.blocks[bidx] = blk
        self.dirty_blocks.add(bidx)
        self.table[bidx] = where << self.cb
        self.table_dirty = True
        self.add(where, 1)
        return blk

    def table_capacity(self) -> int:
        return self.table_clusters * self.cs // 8

    def _grow_table(self, min_entries: int) -> None:
        entries = max(min_entries, self.table_capacity() * 3 // 2, 1)
        while True:
            clusters = -(-entries * 8 // self.cs)
            covered = (self.end + clusters + 4) // self.per_block + 2
            if covered <= clusters * self.cs // 8:
                break
            entries = max(entries, covered)
        if clusters * self.cs > MAX_REFTABLE_BYTES:
            raise ImageError(f"{self.source}: refcount table would exceed {MAX_REFTABLE_BYTES} bytes")
        old_off, old_clusters = self.table_offset, self.table_clusters
        start = self.end
        self.end += clusters
        self.table.extend(array("Q", bytes(8 * (clusters * self.cs // 8 - len(self.table)))))
        self.table_offset, self.table_clusters = start << self.cb, clusters
        for c in range(start, start + clusters):
            self.add(c, 1)
        self._table_moved(old_off, old_clusters)

    # ------------------------------------------------------------ counts

    def get(self, cluster: int) -> int:
        blk = self._block(cluster // self.per_block, create=False)
        return 0 if blk is None else int(blk[cluster % self.per_block])

    def add(self, cluster: int, delta: int) -> int:
        bidx = cluster // self.per_block
        blk = self._block(bidx, create=delta > 0)
        if blk is None:
            raise CorruptImage(f"{self.source}: freeing cluster {cluster} that has no refcount")
        i = cluster % self.per_block
        new = blk[i] + delta
        if new < 0 or new > self.max_refcount:
            raise CorruptImage(
                f"{self.source}: refcount of cluster {cluster} would become {new} "
                f"(range 0..{self.max_refcount})"
            )
        blk[i] = new
        self.dirty_blocks.add(bidx)
        if new == 0 and cluster < self.hint:
            self.hint = cluster
        if delta > 0 and cluster >= self.end:
            self.end = cluster + 1
        return int(new)

    def set(self, cluster: int, value: int) -> None:
        self.add(cluster, value - self.get(cluster))

    def alloc(self, n: int) -> int:
        """Allocate ``n`` contiguous clusters (refcount 1 each); returns the byte offset of the first."""
        start = self._find_free(n)
        if start + n > self.end:
            self.end = start + n
        self._add_ones(start, n)
        self.hint = start + n
        return start << self.cb

    def alloc_at_end(self, n: int) -> int:
        start = self.end
        self.end += n
        self._add_ones(start, n)
        return start << self.cb

    def alloc_at(self, start: int, n: int) -> None:
        """Take ``n`` clusters from ``start`` (free ones: QEMU's ``qcow2_alloc_clusters_at``)."""
        self._add_ones(start, n)

    def refcount_area(self, start: int, additional: int) -> int:
        """QEMU's ``qcow2_refcount_area`` (exact size): a new refcount table at cluster ``start``
        (after the refcount blocks it needs there) sized for the file's clusters up to ``start`` plus
        ``additional``; the old table is freed. Returns the first cluster after the new structures."""
        per_table_cluster = self.cs // 8
        blocks = table = n = 0
        while True:  # the fixed point: blocks enough to count everything, themselves included
            last = n
            blocks = -(-(start + additional + table + blocks) // self.per_block)
            table = -(-blocks // per_table_cluster)
            n = start + additional + blocks + table
            if n == last:
                break
        entries = table * per_table_cluster
        if entries * 8 > MAX_REFTABLE_BYTES:
            raise ImageError(f"{self.source}: refcount table would exceed {MAX_REFTABLE_BYTES} bytes")
        new_table = array("Q", bytes(8 * entries))
        kept = min(len(self.table), entries)
        new_table[:kept] = self.table[:kept]
        missing = [i for i in range(start // self.per_block, blocks) if not new_table[i] & REFT_OFFSET_MASK]
        code = _TYPECODE.get(self.bits, "Q")
        for k, bidx in enumerate(missing):
            new_table[bidx] = (start + k) << self.cb
            self.blocks[bidx] = array(code, bytes(self.per_block * array(code).itemsize))
            self.dirty_blocks.add(bidx)
        table_start = start + len(missing)
        end = table_start + table
        old_off, old_clusters = self.table_offset, self.table_clusters
        self.table, self.table_offset, self.table_clusters = new_table, table_start << self.cb, table
        self.end = max(self.end, end)
        self._add_ones(start, end - start)
        self._table_moved(old_off, old_clusters)
        return end

    def _table_moved(self, old_off: int, old_clusters: int) -> None:
        """Write the blocks and the table at its new place, tell the header, free the old table."""
        self.write_blocks()
        pwrite_full(self.fd, [dump_be64(self.table)], self.table_offset)
        self.table_dirty = False
        self.on_table_moved(self.table_offset, self.table_clusters)
        for c in range(old_off >> self.cb, (old_off >> self.cb) + old_clusters):
            self.add(c, -1)

    def _add_ones(self, start: int, n: int) -> None:
        """Take one reference on each of ``n`` clusters from ``start``: a slice per refcount block
        where they are all free (the usual case), one by one otherwise."""
        c, end, per = start, start + n, self.per_block
        if end > self.end:
            self.end = end  # a refcount block created on the way goes after the run, not into it
        while c < end:
            bidx, i = divmod(c, per)
            k = min(end - c, per - i)
            blk = self._block(bidx, create=True)
            assert blk is not None
            if blk[i : i + k].count(0) == k:
                blk[i : i + k] = array(blk.typecode, [1]) * k
                self.dirty_blocks.add(bidx)
            else:
                for x in range(c, c + k):
                    self.add(x, 1)
            c += k

    def _find_free(self, n: int) -> int:
        """First cluster of a run of ``n`` free ones at or after the hint (or reaching the end)."""
        c, end, per = self.hint, self.end, self.per_block
        while c < end:
            bidx, i = divmod(c, per)
            blk = self._block(bidx, create=False)
            if blk is not None:
                try:
                    start = bidx * per + blk.index(0, i)
                except ValueError:
                    c = (bidx + 1) * per
                    continue
            else:
                start = c
            if start >= end:
                break
            run = start
            while run < end and run - start < n and self.get(run) == 0:
                run += 1
            if run - start >= n or run >= end:
                return start
            c = run + 1
        return max(c, end)

    def free(self, offset: int, nbytes: int) -> None:
        """Drop one reference to every cluster overlapping ``[offset, offset+nbytes)``."""
        first = offset >> self.cb
        last = (offset + nbytes - 1) >> self.cb
        for c in range(first, last + 1):
            self.add(c, -1)

    # ------------------------------------------------------------ writeback

    def write_blocks(self) -> None:
        for bidx in sorted(self.dirty_blocks):
            off = self.table[bidx] & REFT_OFFSET_MASK
            pwrite_full(self.fd, [self._encode(self.blocks[bidx])], off)
        self.dirty_blocks.clear()

    def flush(self) -> None:
        self.write_blocks()
        if self.table_dirty:
            pwrite_full(self.fd, [dump_be64(self.table)], self.table_offset)
            self.table_dirty = False

    def highest_used(self) -> int:
        """Index of the last cluster with a nonzero refcount, or -1."""
        for bidx in range(len(self.table) - 1, -1, -1):
            blk = self._block(bidx, create=False)
            if blk is None:
                continue
            for i in range(len(blk) - 1, -1, -1):
                if blk[i]:
                    return bidx * self.per_block + i
        return -1


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size
