"""qcow2 L1/L2 entry bits and a small write-back LRU cache of L2 tables."""

from __future__ import annotations

from array import array
from collections import OrderedDict  # loaded anyway: importing array imports collections.abc

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

L1_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2_OFFSET_MASK = 0x00FFFFFFFFFFFE00
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1
L1_RESERVED = 0x7F000000000001FF
L2_RESERVED = 0x3F000000000001FE


def compressed_fields(cluster_bits: int) -> tuple[int, int]:
    """``(offset_bits, sector_count_mask)`` of a compressed L2 entry for this cluster size."""
    x = 62 - (cluster_bits - 8)
    return x, (1 << (cluster_bits - 8)) - 1


def compressed_range(entry: int, cluster_bits: int) -> tuple[int, int]:
    """Host byte offset and byte count a compressed L2 entry refers to (count as the spec defines)."""
    x, mask = compressed_fields(cluster_bits)
    off = entry & ((1 << x) - 1)
    nsec = ((entry >> x) & mask) + 1
    return off, nsec * 512 - (off & 511)


def compressed_entry(host: int, nbytes: int, cluster_bits: int) -> int:
    x, _ = compressed_fields(cluster_bits)
    extra = ((host + nbytes - 1) >> 9) - (host >> 9)
    return OFLAG_COMPRESSED | (extra << x) | host


class L2Cache:
    """LRU of decoded L2 tables keyed by host offset; dirty ones are written back on eviction/flush."""

    def __init__(self, capacity: int, writer: Callable[[int, array[int]], None]) -> None:
        self.capacity = max(4, capacity)
        self.tables: OrderedDict[int, array[int]] = OrderedDict()
        self.dirty: set[int] = set()
        self.writer = writer

    def get(self, offset: int) -> array[int] | None:
        t = self.tables.get(offset)
        if t is not None:
            self.tables.move_to_end(offset)
        return t

    def put(self, offset: int, table: array[int], *, dirty: bool = False) -> None:
        self.tables[offset] = table
        self.tables.move_to_end(offset)
        if dirty:
            self.dirty.add(offset)
        while len(self.tables) > self.capacity:
            old, t = next(iter(self.tables.items()))
            if old in self.dirty:
                self.writer(old, t)
                self.dirty.discard(old)
            del self.tables[old]

    def mark_dirty(self, offset: int) -> None:
        self.dirty.add(offset)

    def drop(self, offset: int) -> None:
        self.tables.pop(offset, None)
        self.dirty.discard(offset)

    def flush(self) -> None:
        for off in sorted(self.dirty):
            self.writer(off, self.tables[off])
        self.dirty.clear()

    def clear(self) -> None:
        self.flush()
        self.tables.clear()
