"""VirtualBox VDI (version 1.1), read and write: dynamic and static images, as QEMU's vdi driver.

A dynamic image's blocks (1 MiB) are appended in the order they are first written: the block map
entry of a guest block is the index of its data block, ``blocks_allocated`` in the header counts
them. Unallocated (0xffffffff) and discarded (0xfffffffe) blocks read as zeros.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array

from pyvirt.image.blocktable import BlockTableImage
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pwrite_full

SIGNATURE = 0xBEDA107F
VERSION_1_1 = 0x00010001
UNALLOCATED = 0xFFFFFFFF
ZERO_BLOCK = 0xFFFFFFFE
TYPE_DYNAMIC, TYPE_STATIC = 1, 2
BLOCK_SIZE = 1 << 20
MAX_BLOCKS = (0x80000000 - 512) // 4  # QEMU's VDI_BLOCKS_IN_IMAGE_MAX
TEXT = b"<<< QEMU VM Virtual Disk Image >>>\n"
# signature .. blocks_allocated, after the 0x40-byte text
_HDR = struct.Struct("<IIIII256sIIIIIIIQIIII")
_ALLOCATED_AT = 0x40 + _HDR.size - 4
_UUIDS_AT = 0x40 + _HDR.size


def _le32(raw: bytes) -> array[int]:
    a = array("I", raw)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _dump(a: array[int]) -> bytes:
    if sys.byteorder == "big":
        b = array("I", a)
        b.byteswap()
        return b.tobytes()
    return a.tobytes()


class VdiImage(BlockTableImage):
    """A VDI file; unallocated and zero blocks read as zeros."""

    format = "vdi"

    def __init__(self, path: str, fd: int, *, readonly: bool = True) -> None:
        self.path, self.fd, self.readonly = path, fd, readonly
        st_size = os.fstat(fd).st_size
        raw = os.pread(fd, 512, 0)
        if len(raw) < 512:
            raise CorruptImage(f"{path}: truncated VDI header")
        (
            sig,
            version,
            _hsize,
            itype,
            _flags,
            _desc,
            bmap_off,
            data_off,
            _c,
            _h,
            _s,
            sector_size,
            _u,
            disk_size,
            block_size,
            block_extra,
            blocks,
            allocated,
        ) = _HDR.unpack_from(raw, 0x40)
        if sig != SIGNATURE:
            raise CorruptImage(f"{path}: not a VDI image")
        if version != VERSION_1_1:
            raise UnsupportedImage(f"{path}: unsupported VDI version {version >> 16}.{version & 0xFFFF}")
        if itype not in (TYPE_DYNAMIC, TYPE_STATIC):
            raise UnsupportedImage(f"{path}: unsupported VDI image type {itype} (only dynamic and static)")
        if raw[_UUIDS_AT + 32 : _UUIDS_AT + 64] != bytes(32):
            raise UnsupportedImage(
                f"{path}: VDI differencing images (a link or parent UUID) are not supported"
            )
        if (
            sector_size != 512
            or block_extra != 0
            or not block_size
            or block_size % 512
            or block_size > 1 << 30
            or bmap_off % 512
            or data_off % 512
        ):
            raise CorruptImage(f"{path}: VDI geometry out of range")
        if blocks > MAX_BLOCKS or blocks * block_size < disk_size:
            raise CorruptImage(f"{path}: VDI block count out of range")
        if bmap_off < 512 or bmap_off + blocks * 4 > st_size or data_off < bmap_off + blocks * 4:
            raise CorruptImage(f"{path}: VDI block map out of range")
        if data_off > st_size:
            raise CorruptImage(f"{path}: VDI data offset lies past the end of the file")
        self.bmap = _le32(os.pread(fd, blocks * 4, bmap_off))
        self.header = bytearray(raw)
        self.block_size = block_size
        self.bmap_off = bmap_off
        self.data_off = data_off
        # As QEMU: an odd size (VBoxManage convertfromraw makes them) is rounded up to a sector.
        self.size = -(-disk_size // 512) * 512
        self.cluster_size = block_size
        self.static = itype == TYPE_STATIC
        self.file_size = st_size
        self.allocated = allocated
        self.dirty_lo, self.dirty_hi = blocks, -1
        if not readonly:
            self._check_map_for_writing()

    def _check_map_for_writing(self) -> None:
        """A block map with repeats or wrong counts would make writes land on other blocks' data."""
        seen: set[int] = set()
        for e in self.bmap:
            if e < ZERO_BLOCK:
                if e >= len(self.bmap) or e in seen:
                    raise CorruptImage(
                        f"{self.path}: the VDI block map is inconsistent (a block used twice or out of "
                        "range); it can be read but not written"
                    )
                seen.add(e)
        if len(seen) != self.allocated:
            raise CorruptImage(
                f"{self.path}: the VDI header counts {self.allocated} allocated blocks, the map {len(seen)}; "
                "it can be read but not written"
            )

    def _host(self, block: int) -> int | None:
        e = self.bmap[block]
        if e >= ZERO_BLOCK:
            return None
        if e >= len(self.bmap):
            raise CorruptImage(f"{self.path}: block {block} maps to {e}, beyond the image")
        return int(self.data_off + e * self.block_size)

    # ------------------------------------------------------------ writing

    def _allocate(self, block: int) -> int:
        """Give guest block ``block`` the next data block; returns its file offset."""
        idx = self.allocated
        if idx >= len(self.bmap):
            raise CorruptImage(f"{self.path}: no data block left to allocate")
        self.allocated += 1
        self.bmap[block] = idx
        self.dirty_lo, self.dirty_hi = min(self.dirty_lo, block), max(self.dirty_hi, block)
        return int(self.data_off + idx * self.block_size)

    def write_granule(self) -> int | None:
        return None if self.static else self.block_size

    def flush(self) -> None:
        if self.readonly:
            return
        if self.dirty_hi >= 0:
            struct.pack_into("<I", self.header, _ALLOCATED_AT, self.allocated)
            pwrite_full(self.fd, [bytes(self.header)], 0)
            lo, hi = self.dirty_lo // 128 * 128, min(len(self.bmap), (self.dirty_hi // 128 + 1) * 128)
            pwrite_full(self.fd, [_dump(self.bmap[lo:hi])], self.bmap_off + lo * 4)
            self.dirty_lo, self.dirty_hi = len(self.bmap), -1
        if self.durable:
            os.fdatasync(self.fd)

    def check(self) -> tuple[int, list[str]]:
        """QEMU's VDI check: (corruptions, messages), each block map entry against the others."""
        msgs: list[str] = []
        corruptions = 0
        owner = [UNALLOCATED] * len(self.bmap)
        allocated = 0
        for block, e in enumerate(self.bmap):
            if e >= ZERO_BLOCK:
                continue
            if e < len(self.bmap):
                allocated += 1
                if owner[e] >= ZERO_BLOCK:
                    owner[e] = e
                else:
                    msgs.append(f"ERROR: block index {owner[e]} also used by {e}")
                    corruptions += 1
            else:
                msgs.append(f"ERROR: block index {block} too large, is {e}")
                corruptions += 1
        if allocated != self.allocated:
            msgs.append(f"ERROR: allocated blocks mismatch, is {allocated}, should be {self.allocated}")
            corruptions += 1
        return corruptions, msgs


def create_vdi(path: str, size: int, *, static: bool = False) -> None:
    """An empty VDI laid out as qemu-img makes it (static: every block allocated, in order)."""
    import uuid

    size = -(-size // 512) * 512
    if size > MAX_BLOCKS * BLOCK_SIZE:
        raise ImageError(
            f"Unsupported VDI image size (size is 0x{size:x}, max supported is 0x{MAX_BLOCKS * BLOCK_SIZE:x})"
        )
    blocks = -(-size // BLOCK_SIZE)
    bmap_size = -(-blocks * 4 // 512) * 512
    header = bytearray(512)
    header[: len(TEXT)] = TEXT
    _HDR.pack_into(
        header,
        0x40,
        SIGNATURE,
        VERSION_1_1,
        0x180,
        TYPE_STATIC if static else TYPE_DYNAMIC,
        0,
        b"",
        0x200,
        0x200 + bmap_size,
        0,
        0,
        0,
        512,
        0,
        size,
        BLOCK_SIZE,
        0,
        blocks,
        blocks if static else 0,
    )
    header[_UUIDS_AT : _UUIDS_AT + 16] = uuid.uuid4().bytes_le
    header[_UUIDS_AT + 16 : _UUIDS_AT + 32] = uuid.uuid4().bytes_le
    bmap = array("I", range(blocks)) if static else array("I", [UNALLOCATED]) * blocks
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        pwrite_full(fd, [bytes(header), _dump(bmap), bytes(bmap_size - blocks * 4)], 0)
        if static:
            os.ftruncate(fd, 512 + bmap_size + blocks * BLOCK_SIZE)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
