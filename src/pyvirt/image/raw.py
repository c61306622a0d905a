"""Raw images: the file is the disk. Holes are found with ``SEEK_DATA``/``SEEK_HOLE``."""

from __future__ import annotations

import errno
import os

from pyvirt.image.base import Extent, FileImage
from pyvirt.image.errors import ImageError
from pyvirt.image.fileio import pread_full, pwrite_full


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate a range, keeping the file size. False if the file system cannot."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    falloc_punch_hole_keep_size = 0x02 | 0x01
    rc = libc.fallocate(fd, falloc_punch_hole_keep_size, ctypes.c_int64(offset), ctypes.c_int64(length))
    return bool(rc == 0)


def data_extents(fd: int, offset: int, end: int) -> list[tuple[int, int, bool]]:
    """``(start, length, is_data)`` runs of a file between ``offset`` and ``end`` via SEEK_DATA/HOLE."""
    out: list[tuple[int, int, bool]] = []
    pos = offset
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:
                data = end
            elif err.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                out.append((pos, end - pos, True))
                return out
            else:
                raise
        data = min(data, end)
        if data > pos:
            out.append((pos, data - pos, False))
            pos = data
            if pos >= end:
                break
        try:
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
        except OSError:
            hole = end
        hole = min(max(hole, pos + 1), end)
        out.append((pos, hole - pos, True))
        pos = hole
    return out


class RawImage(FileImage):
    """A raw file (or block device) as a disk image."""

    format = "raw"

    def __init__(self, path: str, fd: int, *, readonly: bool) -> None:
        self.path = path
        self.fd = fd
        self.readonly = readonly
        # As QEMU: the virtual size is the file size rounded up to a 512-byte sector.
        self.file_size = os.lseek(fd, 0, os.SEEK_END)
        self.size = -(-self.file_size // 512) * 512
        self.probed = False

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        pread_full(self.fd, buf, offset)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        self._check_range(offset, len(data))
        if self.probed and offset < 1024:
            self._guard_probe(offset, memoryview(data))
        pwrite_full(self.fd, [memoryview(data)], offset)

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        self._check_writable()
        self._check_range(offset, length)
        if self.probed and offset < 1024:
            return None
        return [(offset, offset, length)]

    def _guard_probe(self, offset: int, data: memoryview) -> None:
        from pyvirt.image.probe import probe_bytes

        head = bytearray(1024)
        pread_full(self.fd, memoryview(head), 0)
        n = min(len(data), 1024 - offset)
        head[offset : offset + n] = data[:n]
        looks_like = probe_bytes(bytes(head))
        if looks_like != "raw":
            raise ImageError(
                f"{self.path}: refusing to write a {looks_like} signature into block 0 of a raw "
                "image whose format was probed; open it with fmt='raw'"
            )

    def write_zeroes(self, offset: int, length: int) -> None:
        self._check_writable()
        self._check_range(offset, length)
        if length and not punch_hole(self.fd, offset, length):
            super().write_zeroes(offset, length)

    def block_status(self, offset: int, length: int) -> list[Extent]:
        return [
            Extent(s, n, data=d, zero=not d, offset=s)
            for s, n, d in data_extents(self.fd, offset, offset + length)
        ]

    def truncate(self, size: int, *, shrink: bool = False) -> None:
        self._check_writable()
        if size < self.size and not shrink:
            raise ImageError(
                "Use the --shrink option to perform a shrink operation.\n"
                "warning: Shrinking an image will delete all data beyond the shrunken image's end. "
                "Before performing such an operation, make sure there is no important data there."
            )
        os.ftruncate(self.fd, size)
        self.size = self.file_size = size

    def flush(self) -> None:
        if not self.readonly and self.durable:
            os.fdatasync(self.fd)
