"""The :class:`Image` interface every format implements, and the extents it reports."""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

ZERO_CHUNK = bytes(2 << 20)


class Extent:
    """A run of guest bytes with the same allocation state (qemu-img map's fields).

    ``data``: stored in this image or one below it; ``zero``: reads as zeros; ``depth``: 0 for this
    image, 1 for its backing file, ...; ``offset``: where the bytes lie in the file at that depth
    (None if compressed, unallocated or zero); ``present``: something in the chain defines it.

    Immutable, compared and hashed by value, like the ``@dataclass(frozen=True, slots=True)`` it
    was: written out by hand because importing ``dataclasses`` costs milliseconds of the start-up
    of ``pyvirt img`` (it loads ``inspect``, ``ast``, ``re`` ...).
    """

    __slots__ = ("compressed", "data", "depth", "length", "offset", "present", "start", "zero")
    __match_args__ = ("start", "length", "data", "zero", "depth", "offset", "compressed", "present")

    start: int
    length: int
    data: bool
    zero: bool
    depth: int
    offset: int | None
    compressed: bool
    present: bool

    def __init__(
        self,
        start: int,
        length: int,
        data: bool,
        zero: bool,
        depth: int = 0,
        offset: int | None = None,
        compressed: bool = False,
        present: bool = True,
    ) -> None:
        init = object.__setattr__
        init(self, "start", start)
        init(self, "length", length)
        init(self, "data", data)
        init(self, "zero", zero)
        init(self, "depth", depth)
        init(self, "offset", offset)
        init(self, "compressed", compressed)
        init(self, "present", present)

    def _fields(self) -> tuple[int, int, bool, bool, int, int | None, bool, bool]:
        return (
            self.start,
            self.length,
            self.data,
            self.zero,
            self.depth,
            self.offset,
            self.compressed,
            self.present,
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Extent is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Extent is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Extent) and other.__class__ is self.__class__:
            return self._fields() == other._fields()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Extent(start={self.start!r}, length={self.length!r}, data={self.data!r}, "
            f"zero={self.zero!r}, depth={self.depth!r}, offset={self.offset!r}, "
            f"compressed={self.compressed!r}, present={self.present!r})"
        )

    def __reduce__(self) -> tuple[type[Extent], tuple[int, int, bool, bool, int, int | None, bool, bool]]:
        return (Extent, self._fields())


class Image:
    """An open disk image. Use as a context manager; ``close()`` flushes. Not thread-safe for writing."""

    format: str = ""
    path: str = ""
    size: int = 0
    readonly: bool = True
    backing_file: str | None = None
    backing_format: str | None = None
    backing: Image | None = None
    cluster_size: int | None = None
    fd: int = -1
    #: The data in the file is encrypted (LUKS qcow2): never read it around :meth:`readinto`.
    encrypted: bool = False
    #: False where QEMU's driver reports no block status (vhdx): qemu-img map then says "all data".
    reports_block_status: bool = True
    #: ``flush()``/``close()`` end with fdatasync. ``convert`` clears it, as qemu-img convert does not sync.
    durable: bool = True

    @property
    def data_fd(self) -> int:
        """The file holding the guest data that :meth:`block_status` offsets point into."""
        return self.fd

    @property
    def data_path(self) -> str:
        """The name of :attr:`data_fd` (qemu-img map's File column)."""
        return self.path

    # ------------------------------------------------------------ reading

    def readinto(self, offset: int, buf: memoryview) -> None:
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` guest bytes at ``offset`` (bytes beyond the virtual size are an error)."""
        self._check_range(offset, length)
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf))
        return bytes(buf)

    def block_status(self, offset: int, length: int) -> list[Extent]:
        """Describe ``[offset, offset+length)`` as extents, merging neighbours with equal state."""
        return [Extent(offset, length, data=True, zero=False, offset=offset)]

    def backing_status(self, pos: int, n: int) -> list[Extent]:
        """The backing chain's extents for a range this image leaves unallocated (depth one deeper);
        past the end of the backing file, zeros of this image (depth 0), as qemu-img map says."""
        assert self.backing is not None
        bsize = self.backing.size
        out: list[Extent] = []
        if pos < bsize:
            m = min(n, bsize - pos)
            for x in self.backing.block_status(pos, m):
                out.append(
                    Extent(x.start, x.length, x.data, x.zero, x.depth + 1, x.offset, x.compressed, x.present)
                )
            if m < n:
                out.append(Extent(pos + m, n - m, data=False, zero=True, present=False))
        else:
            out.append(Extent(pos, n, data=False, zero=True, present=False))
        return out

    def read_backing(self, where: int, buf: memoryview) -> None:
        """Fill ``buf`` from the backing file at ``where`` (zeros past its end, or without one)."""
        n = len(buf)
        m = 0
        if self.backing is not None and where < self.backing.size:
            m = min(n, self.backing.size - where)
            self.backing.readinto(where, buf[:m])
        if m < n:
            buf[m:] = bytes(n - m)

    # ------------------------------------------------------------ writing

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise ImageError(f"{self.path}: writing {self.format} images is not supported")

    def write_granule(self) -> int | None:
        """The unit a write allocates (zero runs shorter than it are written); None: any 512 bytes."""
        return self.cluster_size

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        """Reserve file space for a later write of ``[offset, offset+length)``.

        Returns ``(guest offset, file offset, length)`` runs the caller must fill with ``pwrite`` on
        ``self.fd`` before the next ``flush()``; None when the range needs the ordinary ``write``.
        Lets ``convert`` write from several threads while metadata stays single-threaded.
        """
        return None

    def write_zeroes(self, offset: int, length: int) -> None:
        """Make ``[offset, offset+length)`` read as zeros (deallocating where the format can)."""
        pos, end = offset, offset + length
        while pos < end:
            n = min(end - pos, len(ZERO_CHUNK))
            self.write(pos, memoryview(ZERO_CHUNK)[:n])
            pos += n

    def discard(self, offset: int, length: int) -> None:
        """Drop the data in the range if the format can; it then reads as zeros."""
        self.write_zeroes(offset, length)

    def truncate(self, size: int, *, shrink: bool = False) -> None:
        raise ImageError("Image format driver does not support resize")

    def flush(self) -> None:
        """Write every cached change to the file and sync it."""

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ helpers

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ImageError(
                f"{self.path}: request {offset}+{length} lies outside the image (virtual size {self.size})"
            )

    def _check_writable(self) -> None:
        if self.readonly:
            raise ImageError(f"{self.path}: image is open read-only")

    def chain(self) -> list[Image]:
        """This image followed by its backing files, top first."""
        out: list[Image] = []
        img: Image | None = self
        while img is not None:
            out.append(img)
            img = img.backing
        return out

    def member_files(self) -> list[str]:
        """Files other than :attr:`path` that hold this image's data (a VMDK's extent files)."""
        return []

    def actual_size(self) -> int:
        """Bytes the file occupies on disk (``st_blocks * 512``)."""
        return os.stat(self.path).st_blocks * 512

    def __enter__(self) -> Image:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FileImage(Image):
    """An image held in one file it opens by path, with QEMU's image lock, and closes itself."""

    def __init__(self, path: str, fd: int, *, readonly: bool) -> None:
        raise NotImplementedError

    @classmethod
    def open(cls, path: str, *, readonly: bool = True, force_share: bool = False) -> Self:
        """Open and lock ``path``; the descriptor is closed again if the image cannot be read."""
        from pyvirt.image.locking import open_locked

        fd = open_locked(path, readonly=readonly, force_share=force_share)
        try:
            return cls(path, fd, readonly=readonly)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self.fd)
                self.fd = -1


def merge_extent(out: list[Extent], x: Extent) -> None:
    """Append ``x`` to ``out``, merging it into the last extent when they continue each other."""
    if out:
        p = out[-1]
        if (
            p.data == x.data
            and p.zero == x.zero
            and p.depth == x.depth
            and p.present == x.present
            and p.compressed == x.compressed
            and p.start + p.length == x.start
            and (
                (p.offset is None and x.offset is None)
                or (p.offset is not None and x.offset is not None and p.offset + p.length == x.offset)
            )
        ):
            out[-1] = Extent(
                p.start, p.length + x.length, p.data, p.zero, p.depth, p.offset, p.compressed, p.present
            )
            return
    out.append(x)
