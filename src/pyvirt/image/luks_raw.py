"""Raw LUKS containers, as qemu's ``luks`` driver makes and reads them (``qemu-img create -f luks``).

The file is the LUKS1 header area (:mod:`pyvirt.image.luks`) followed by the payload: the guest's
bytes, encrypted sector by sector, each sector's IV counted from the payload's start. A new container
is the header and a hole as long as the guest size (the payload is not written, as qemu-img leaves
it). libvirt makes such a file for a volume whose ``<format type='raw'/>`` has an ``<encryption
format='luks'>``.
"""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.luks import DEFAULT_CIPHER, HEADER_SIZE, MAGIC, CipherSpec, LuksHeader, create_header

__all__ = ["LuksContainer", "create_luks", "read_header"]


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
    ``passphrase``; ``path`` must not exist."""
    size = -(-size // 512) * 512
    area, _master = create_header(passphrase, iter_time_ms=iter_time, hash_name=hash_alg, spec=spec)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        os.pwrite(fd, area, 0)
        os.ftruncate(fd, len(area) + size)
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
