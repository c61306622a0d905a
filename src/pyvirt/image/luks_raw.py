"""Raw LUKS containers, as qemu's ``luks`` driver makes and reads them (``qemu-img create -f luks``).

The file is the LUKS1 header area (:mod:`pyvirt.image.luks`) followed by the payload: the guest's
bytes, encrypted sector by sector, each sector's IV counted from the payload's start. A new container
is the header and a hole as long as the guest size (the payload is not written, as qemu-img leaves
it). libvirt makes such a file for a volume whose ``<format type='raw'/>`` has an ``<encryption
format='luks'>``.
"""

from __future__ import annotations

import os
from typing import Any

from pyvirt.image.base import Extent, FileImage
from pyvirt.image.errors import ImageError
from pyvirt.image.luks import DEFAULT_CIPHER, HEADER_SIZE, MAGIC, CipherSpec, LuksHeader, create_header

__all__ = ["LuksContainer", "LuksImage", "create_luks", "luks_info", "read_header"]


def create_luks(
    path: str,
    size: int,
    passphrase: bytes,
    *,
    spec: CipherSpec = DEFAULT_CIPHER,
    hash_alg: str = "sha256",
    iter_time: int = 2000,
) -> None:
    """A new container of ``size`` guest bytes (rounded up to whole sectors), key slot 0 opened by
    ``passphrase`` (a file at ``path`` is replaced, as qemu-img create replaces it)."""
    size = -(-size // 512) * 512
    area, _master = create_header(passphrase, iter_time_ms=iter_time, hash_name=hash_alg, spec=spec)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        os.ftruncate(fd, len(area) + size)
        for at in range(0, len(area), 4096):  # the unused key slots stay holes, as qemu-img leaves them
            chunk = area[at : at + 4096]
            if chunk.count(0) != len(chunk):
                os.pwrite(fd, chunk, at)
    finally:
        os.close(fd)


def read_header(path: str) -> LuksHeader | None:
    """The LUKS header a raw container starts with, None if the file does not start with one."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
        length = os.fstat(f.fileno()).st_size
    if len(raw) < HEADER_SIZE or raw[:6] != MAGIC:
        return None
    header = LuksHeader(raw, 0, length, path)
    if header.payload_offset > length:
        raise ImageError(f"{path}: the LUKS payload offset lies beyond the end of the file")
    return header


class LuksContainer:
    """A raw LUKS container opened with its passphrase: guest bytes read and written in place."""

    def __init__(self, path: str, passphrase: bytes, *, readonly: bool = True) -> None:
        header = read_header(path)
        if header is None:
            raise ImageError(f"Could not open '{path}': not a LUKS container")
        self.path, self.header, self.spec = path, header, header.spec()
        self.fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
        try:
            self.key = header.unlock(passphrase, lambda at, n: os.pread(self.fd, n, at))
        except BaseException:
            os.close(self.fd)
            raise
        self.offset = header.payload_offset
        self.size = os.fstat(self.fd).st_size - self.offset

    def read(self, offset: int, length: int) -> bytes:
        """Guest bytes (whole sectors around them decrypted)."""
        a, b = offset - offset % 512, -(-(offset + length) // 512) * 512
        raw = os.pread(self.fd, b - a, self.offset + a)
        raw += bytes(b - a - len(raw))
        plain = self.spec.crypt(self.key, raw, a // 512, encrypt=False)
        return plain[offset - a : offset - a + length]

    def write(self, offset: int, data: bytes) -> None:
        """Guest bytes, encrypted (the edges of partly written sectors read back first)."""
        a, b = offset - offset % 512, -(-(offset + len(data)) // 512) * 512
        whole = bytearray(self.read(a, b - a)) if (a, b) != (offset, offset + len(data)) else bytearray(b - a)
        whole[offset - a : offset - a + len(data)] = data
        out = self.spec.crypt(self.key, bytes(whole), a // 512, encrypt=True)
        pos = 0
        while pos < len(out):
            pos += os.pwrite(self.fd, out[pos:], self.offset + a + pos)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> LuksContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def luks_info(path: str, file_size: int) -> dict[str, Any]:
    """qemu-img info's fields of a container (no key needed): the payload's size, the header's fields
    in qemu-img's order."""
    header = read_header(path)
    if header is None:
        raise ImageError(f"{path}: not a LUKS container")
    data = {k: v for k, v in header.info().items() if k != "format"}  # qcow2's fields, in its order
    return {
        "virtual-size": max(0, file_size - header.payload_offset),
        "filename": path,
        "format": "luks",
        "format-specific": {"type": "luks", "data": data},
        "encrypted": True,
    }


class LuksImage(FileImage):
    """A container as an :class:`Image` (``pyvirt img`` with ``driver=luks,key-secret=``): every sector
    of the payload is data (a hole in it does not read as zeros)."""

    format = "luks"

    def __init__(self, path: str, fd: int, *, readonly: bool, passphrase: bytes | None = None) -> None:
        if passphrase is None:
            raise ImageError(f"Could not open '{path}': Parameter 'key-secret' is required for cipher")
        self.path, self.fd, self.readonly = path, fd, readonly
        header = read_header(path)
        if header is None:
            raise ImageError(f"Could not open '{path}': not a LUKS container")
        self.spec = header.spec()
        self.key = header.unlock(passphrase, lambda at, n: os.pread(fd, n, at))
        self.offset = header.payload_offset
        self.size = os.fstat(fd).st_size - self.offset

    @classmethod
    def open_luks(
        cls, path: str, passphrase: bytes | None, *, readonly: bool = True, force_share: bool = False
    ) -> LuksImage:
        """Open and lock ``path`` as :meth:`FileImage.open` does, unlocked with ``passphrase``."""
        from pyvirt.image.locking import open_locked

        fd = open_locked(path, readonly=readonly, force_share=force_share)
        try:
            return cls(path, fd, readonly=readonly, passphrase=passphrase)
        except BaseException:
            os.close(fd)
            raise

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        a, b = offset - offset % 512, -(-(offset + len(buf)) // 512) * 512
        raw = os.pread(self.fd, b - a, self.offset + a)
        raw += bytes(b - a - len(raw))
        plain = self.spec.crypt(self.key, raw, a // 512, encrypt=False)
        buf[:] = plain[offset - a : offset - a + len(buf)]

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        self._check_range(offset, len(data))
        a, b = offset - offset % 512, -(-(offset + len(data)) // 512) * 512
        whole = bytearray(b - a)
        if (a, b) != (offset, offset + len(data)):
            self.readinto(a, memoryview(whole))
        whole[offset - a : offset - a + len(data)] = data
        out = self.spec.crypt(self.key, bytes(whole), a // 512, encrypt=True)
        pos = 0
        while pos < len(out):
            pos += os.pwrite(self.fd, out[pos:], self.offset + a + pos)

    def block_status(self, offset: int, length: int) -> list[Extent]:
        return [Extent(offset, length, data=True, zero=False, offset=None)] if length else []

    def truncate(self, size: int, *, shrink: bool = False) -> None:
        self._check_writable()
        if size < self.size and not shrink:
            raise ImageError(
                "Use the --shrink option to perform a shrink operation.\n"
                "warning: Shrinking an image will delete all data beyond the shrunken image's end. "
                "Before performing such an operation, make sure there is no important data there."
            )
        os.ftruncate(self.fd, self.offset + size)
        self.size = size

    def flush(self) -> None:
        if not self.readonly and self.durable:
            os.fdatasync(self.fd)
