"""Read-only VirtualBox VDI (dynamic and static images, version 1.1)."""

from __future__ import annotations

import os
import struct
from array import array

from pyvirt.image.base import Extent, Image
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pread_full

SIGNATURE = 0xBEDA107F
UNALLOCATED = 0xFFFFFFFF
ZERO_BLOCK = 0xFFFFFFFE
MAX_BLOCKS = 1 << 26
_HDR = struct.Struct("<IIIII256sIIIIIIIQIIII")


class VdiImage(Image):
    """A VDI file; unallocated and zero blocks read as zeros."""

    format = "vdi"

    def __init__(self, path: str, fd: int) -> None:
        self.path, self.fd = path, fd
        st_size = os.fstat(fd).st_size
        raw = os.pread(fd, 512, 0)
        if len(raw) < 0x40 + _HDR.size:
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
            _alloc,
        ) = _HDR.unpack_from(raw, 0x40)
        if sig != SIGNATURE:
            raise CorruptImage(f"{path}: not a VDI image")
        if version >> 16 != 1:
            raise UnsupportedImage(f"{path}: unsupported VDI version {version >> 16}.{version & 0xFFFF}")
        if itype not in (1, 2):
            raise UnsupportedImage(f"{path}: unsupported VDI image type {itype} (only dynamic and static)")
        if (
            sector_size != 512
            or block_extra != 0
            or not block_size
            or block_size % 512
            or block_size > 1 << 30
        ):
            raise CorruptImage(f"{path}: VDI geometry out of range")
        if blocks > MAX_BLOCKS or blocks * block_size < disk_size:
            raise CorruptImage(f"{path}: VDI block count out of range")
        if bmap_off + blocks * 4 > st_size:
            raise CorruptImage(f"{path}: VDI block map lies past the end of the file")
        bmap = array("I")
        bmap.frombytes(os.pread(fd, blocks * 4, bmap_off))
        if bmap.itemsize != 4:
            raise ImageError("platform without 32-bit unsigned array items")
        if struct.pack("=I", 1) != struct.pack("<I", 1):
            bmap.byteswap()
        self.bmap = bmap
        self.block_size = block_size
        self.data_off = data_off
        self.size = disk_size
        self.cluster_size = block_size
        self.static = itype == 2
        self.file_size = st_size

    @classmethod
    def open(cls, path: str) -> VdiImage:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise ImageError(f"Could not open '{path}': {err.strerror}") from err
        try:
            return cls(path, fd)
        except BaseException:
            os.close(fd)
            raise

    def _host(self, block: int) -> int | None:
        e = self.bmap[block]
        if e in (UNALLOCATED, ZERO_BLOCK):
            return None
        if e >= len(self.bmap):
            raise CorruptImage(f"{self.path}: block {block} maps to {e}, beyond the image")
        return int(self.data_off + e * self.block_size)

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        bs = self.block_size
        pos, end = offset, offset + len(buf)
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            dst = buf[pos - offset : pos - offset + n]
            if host is None:
                dst[:] = bytes(n)
            else:
                pread_full(self.fd, dst, host + inoff)
            pos += n

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        bs = self.block_size
        pos, end = offset, offset + length
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            x = Extent(
                pos,
                n,
                data=host is not None,
                zero=host is None,
                offset=None if host is None else host + inoff,
            )
            p = out[-1] if out else None
            if (
                p is not None
                and p.data == x.data
                and p.start + p.length == pos
                and (p.offset is None) == (x.offset is None)
                and (p.offset is None or x.offset == p.offset + p.length)
            ):
                out[-1] = Extent(p.start, p.length + n, p.data, p.zero, offset=p.offset)
            else:
                out.append(x)
            pos += n
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
