"""VHD ("vpc"), read and write: dynamic and fixed disks, as QEMU's vpc driver.

A fixed VHD is the disk followed by a 512-byte footer; it has no signature at its start, so it
probes as raw (as qemu-img's probing has it) and opens as vpc when named. A dynamic VHD starts
with a copy of the footer, then the dynamic header, the block allocation table (BAT), and 2 MiB
blocks each behind a sector bitmap; a new block goes where the footer was, the footer after it.
The virtual size follows the footer's CHS geometry unless the creator is one that uses the
footer's size (``qem2``, Hyper-V's ``win ``...), or the geometry is the largest there is.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from array import array

from pyvirt.image.base import Extent, Image
from pyvirt.image.blocktable import BlockTableImage
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pread_full, pwrite_full

FOOTER = struct.Struct(">8sIIQI4sHH4sQQHBBII16sB")
DYN = struct.Struct(">8sQQIII")
COOKIE = b"conectix"
DYN_COOKIE = b"cxsparse"
TYPE_FIXED, TYPE_DYNAMIC, TYPE_DIFF = 2, 3, 4
UNALLOCATED = 0xFFFFFFFF
BLOCK_SIZE = 0x200000
CHS_MAX = (65535, 16, 255)
MAX_GEOMETRY = 65535 * 16 * 255
MAX_SECTORS = 0xFF000000  # 2040 GiB
TIMESTAMP_BASE = 946684800
SIZE_CREATORS = (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0")
SUBFORMATS = ("dynamic", "fixed")


def checksum(buf: bytes | bytearray) -> int:
    """The VHD checksum: the one's complement of the byte sum (the checksum field taken as zero)."""
    return ~sum(buf) & 0xFFFFFFFF


def _footer_size(footer: bytes) -> int:
    f = FOOTER.unpack_from(footer, 0)
    creator_app, current_size, cyls, heads, secs = f[5], f[10], f[11], f[12], f[13]
    chs = cyls * heads * secs
    if creator_app in SIZE_CREATORS or chs == MAX_GEOMETRY:
        return int(current_size) // 512 * 512
    return int(chs) * 512


class VpcImage(BlockTableImage):
    """A VHD file (fixed or dynamic)."""

    format = "vpc"

    def __init__(self, path: str, fd: int, *, readonly: bool) -> None:
        self.path, self.fd, self.readonly = path, fd, readonly
        self.file_size = os.fstat(fd).st_size
        head = os.pread(fd, 512, 0)
        if head[:8] == COOKIE:
            footer = head
        else:
            if self.file_size < 512:
                raise CorruptImage(f"{path}: File too small for a VHD header")
            footer = os.pread(fd, 512, self.file_size - 512)
            if footer[:8] != COOKIE:
                raise CorruptImage(f"{path}: invalid VPC image")
        self.footer = bytearray(footer)
        f = FOOTER.unpack_from(footer, 0)
        self.disk_type = int(f[14])
        if self.disk_type == TYPE_DIFF:
            raise UnsupportedImage(f"{path}: differencing VHD images are not supported")
        if self.disk_type not in (TYPE_FIXED, TYPE_DYNAMIC):
            raise UnsupportedImage(f"{path}: unknown VHD disk type {self.disk_type}")
        if head[:8] != COOKIE and self.disk_type != TYPE_FIXED:
            raise CorruptImage(f"{path}: a dynamic VHD must start with its footer")
        self.size = _footer_size(footer)
        if self.size // 512 > MAX_SECTORS:
            raise CorruptImage(f"{path}: VHD size out of range")
        self.fixed = self.disk_type == TYPE_FIXED
        self.bat = array("I")
        self.block_size = 0
        self.cluster_size = None
        self.dirty = False
        self.new_bitmaps: list[int] = []
        if self.fixed:
            if self.size + 512 > self.file_size:
                raise CorruptImage(f"{path}: the fixed VHD is shorter than its size")
            return
        data_offset = int(f[3])
        if data_offset % 512 or data_offset + 1024 > self.file_size:
            raise CorruptImage(f"{path}: dynamic VHD header out of range")
        dyn = os.pread(fd, 1024, data_offset)
        magic, _d, table_offset, _v, entries, block_size = DYN.unpack_from(dyn, 0)
        if magic != DYN_COOKIE:
            raise CorruptImage(f"{path}: Invalid header magic")
        if block_size < 512 or block_size & (block_size - 1) or block_size > 1 << 30:
            raise CorruptImage(f"{path}: Invalid block size {block_size}")
        if entries * block_size < self.size or entries > MAX_SECTORS * 512 // block_size:
            raise CorruptImage(f"{path}: Page table too small or too large")
        if table_offset + entries * 4 > self.file_size:
            raise CorruptImage(f"{path}: the block allocation table lies past the end of the file")
        self.block_size = block_size
        self.cluster_size = block_size
        self.bitmap_size = ((block_size // (8 * 512)) + 511) & ~511
        self.bat_offset = table_offset
        raw = os.pread(fd, entries * 4, table_offset)
        self.bat = array("I", raw)
        if struct.pack("=I", 1) != struct.pack(">I", 1):
            self.bat.byteswap()
        meta_end = -(-(table_offset + entries * 4) // 512) * 512
        self.meta_end = max(meta_end, data_offset + 1024)
        free = meta_end
        for e in self.bat:
            if e != UNALLOCATED:
                free = max(free, 512 * e + self.bitmap_size + block_size)
        if free > self.file_size:
            raise CorruptImage(
                f"{path}: block-vpc: free_data_block_offset points after the end of file. "
                "The image has been truncated."
            )
        self.free = free
        if not self.readonly:
            self._check_bat_for_writing()

    def _check_bat_for_writing(self) -> None:
        starts = [512 * e for e in self.bat if e != UNALLOCATED]
        self._refuse_overlaps(starts, self.bitmap_size + self.block_size, "VHD block allocation table")

    def _host(self, block: int) -> int | None:
        """The file offset of a block's data (past its bitmap), or None if unallocated."""
        e = self.bat[block]
        if e == UNALLOCATED:
            return None
        off = 512 * e
        if off < self.meta_end:
            raise CorruptImage(f"{self.path}: block {block} points into the image's metadata")
        return int(off + self.bitmap_size)

    def readinto(self, offset: int, buf: memoryview) -> None:
        if not self.fixed:
            super().readinto(offset, buf)
            return
        self._check_range(offset, len(buf))
        pread_full(self.fd, buf, offset)

    def block_status(self, offset: int, length: int) -> list[Extent]:
        if self.fixed:
            from pyvirt.image.raw import data_extents

            return [
                Extent(s, n, data=True, zero=not d, offset=s)
                for s, n, d in data_extents(self.fd, offset, offset + length)
            ]
        return super().block_status(offset, length)

    # ------------------------------------------------------------ writing

    def _allocate(self, block: int) -> int:
        """A new block where the footer is (bitmap all ones, as QEMU); returns its data offset.

        The bitmap is written at :meth:`flush`, before the BAT that points to it: written here, at
        the end of the file, it waited for the inode lock that ``convert``'s writer thread holds."""
        at = self.free
        if at // 512 >= UNALLOCATED:
            raise ImageError(f"{self.path}: the VHD file cannot grow further")
        self.new_bitmaps.append(at)
        self.free = at + self.bitmap_size + self.block_size
        self.bat[block] = at // 512
        self.dirty = True
        return int(at + self.bitmap_size)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not self.fixed:
            super().write(offset, data)
            return
        self._check_writable()
        self._check_range(offset, len(data))
        pwrite_full(self.fd, [memoryview(data).cast("B")], offset)

    def write_granule(self) -> int | None:
        return None if self.fixed else self.block_size

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        """Direct runs: the fixed disk, allocated blocks, whole new blocks (their bitmaps written)."""
        self._check_writable()
        self._check_range(offset, length)
        if self.fixed:
            return [(offset, offset, length)]
        return self._runs(offset, length, whole_new=True)

    def write_zeroes(self, offset: int, length: int) -> None:
        if not self.fixed:
            super().write_zeroes(offset, length)
            return
        self._check_writable()
        self._check_range(offset, length)
        from pyvirt.image.raw import punch_hole

        if not punch_hole(self.fd, offset, length):
            Image.write_zeroes(self, offset, length)

    def flush(self) -> None:
        if self.readonly:
            return
        if self.new_bitmaps:
            ones = b"\xff" * self.bitmap_size
            for at in self.new_bitmaps:
                pwrite_full(self.fd, [ones], at)
            self.new_bitmaps.clear()
        if self.dirty:
            bat = array("I", self.bat)
            if struct.pack("=I", 1) != struct.pack(">I", 1):
                bat.byteswap()
            pwrite_full(self.fd, [bat.tobytes()], self.bat_offset)
            pwrite_full(self.fd, [bytes(self.footer)], self.free)
            self.dirty = False
        if self.durable:
            os.fdatasync(self.fd)


def geometry(total_sectors: int) -> tuple[int, int, int]:
    """The VHD specification's CHS geometry for a sector count (QEMU's ``calculate_geometry``)."""
    total_sectors = min(total_sectors, MAX_GEOMETRY)
    if total_sectors >= 65535 * 16 * 63:
        secs, heads = 255, 16
        cth = total_sectors // secs
    else:
        secs = 17
        cth = total_sectors // secs
        heads = max(4, -(-cth // 1024))
        if cth >= heads * 1024 or heads > 16:
            secs, heads = 31, 16
            cth = total_sectors // secs
        if cth >= heads * 1024:
            secs, heads = 63, 16
            cth = total_sectors // secs
    return cth // heads, heads, secs


def vpc_size(size: int, *, force_size: bool = False) -> tuple[int, tuple[int, int, int]]:
    """The size a new VHD gets (the CHS geometry rounds it up) and that geometry, as QEMU."""
    size = -(-size // 512) * 512
    if force_size:
        chs = CHS_MAX
    else:
        total = min(MAX_GEOMETRY, size // 512)
        chs, i = (0, 0, 0), 0
        while total > chs[0] * chs[1] * chs[2]:
            chs = geometry(total + i)
            i += 1
    if chs[0] * chs[1] * chs[2] == MAX_GEOMETRY:
        if size // 512 > MAX_SECTORS:
            raise ImageError("Disk size is too large, max size is 2040 GiB")
        return size, chs
    return chs[0] * chs[1] * chs[2] * 512, chs


def create_vpc(path: str, size: int, *, subformat: str = "dynamic", force_size: bool = False) -> None:
    """A new VHD laid out as qemu-img makes it."""
    if subformat not in SUBFORMATS:
        raise ImageError(f"Parameter 'subformat' does not accept value '{subformat}'")
    total_size, (cyls, heads, secs) = vpc_size(size, force_size=force_size)
    fixed = subformat == "fixed"
    footer = bytearray(512)
    FOOTER.pack_into(
        footer,
        0,
        COOKIE,
        2,
        0x00010000,
        0xFFFFFFFFFFFFFFFF if fixed else 512,
        (int(time.time()) - TIMESTAMP_BASE) & 0xFFFFFFFF,
        b"qem2" if force_size else b"qemu",
        5,
        3,
        b"Wi2k",
        total_size,
        total_size,
        cyls,
        heads,
        secs,
        TYPE_FIXED if fixed else TYPE_DYNAMIC,
        0,
        uuid.uuid4().bytes,
        0,
    )
    struct.pack_into(">I", footer, 64, checksum(footer))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        if fixed:
            os.ftruncate(fd, total_size + 512)
            pwrite_full(fd, [bytes(footer)], total_size)
        else:
            entries = -(-total_size // BLOCK_SIZE)
            bat_bytes = (entries * 4 + 511) & ~511
            dyn = bytearray(1024)
            DYN.pack_into(dyn, 0, DYN_COOKIE, 0xFFFFFFFFFFFFFFFF, 1536, 0x00010000, entries, BLOCK_SIZE)
            struct.pack_into(">I", dyn, 36, checksum(dyn))
            pwrite_full(fd, [bytes(footer), bytes(dyn), b"\xff" * bat_bytes, bytes(footer)], 0)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
