"""Several open images read as one, end to end: the source of a multi-source ``convert``.

qemu-img convert concatenates its sources in whole 512-byte sectors; every :class:`Image` already
has a size rounded up to a sector (the tail of an odd-sized raw file reads as zeros), so the parts
simply follow each other. Read-only.
"""

from __future__ import annotations

from pyvirt.image.base import Extent, Image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator


class ConcatImage(Image):
    """The parts' guest bytes one after the other; closing it closes the parts."""

    format = "concat"

    def __init__(self, parts: list[Image]) -> None:
        self.parts = parts
        self.starts: list[int] = []
        pos = 0
        for p in parts:
            self.starts.append(pos)
            pos += p.size
        self.size = pos
        self.path = parts[0].path if parts else ""

    def pieces(self, offset: int, length: int) -> Iterator[tuple[Image, int, int, int]]:
        """``(part, offset in the part, length, offset in the whole)`` covering the range."""
        pos, end = offset, offset + length
        for part, start in zip(self.parts, self.starts, strict=True):
            stop = start + part.size
            if stop <= pos or start >= end:
                continue
            n = min(end, stop) - pos
            yield part, pos - start, n, pos
            pos += n
            if pos >= end:
                return

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        for part, at, n, pos in self.pieces(offset, len(buf)):
            part.readinto(at, buf[pos - offset : pos - offset + n])

    def block_status(self, offset: int, length: int) -> list[Extent]:
        """The parts' extents, moved to their place (``offset``/``depth`` stay the part's own)."""
        out: list[Extent] = []
        for part, at, n, pos in self.pieces(offset, length):
            for x in part.block_status(at, n):
                shift = pos - at
                out.append(
                    Extent(
                        x.start + shift, x.length, x.data, x.zero, x.depth, x.offset, x.compressed, x.present
                    )
                )
        return out

    def close(self) -> None:
        parts, self.parts = self.parts, []
        error: BaseException | None = None
        for p in parts:
            try:
                p.close()
            except BaseException as err:  # close them all, then report the first failure
                error = error or err
        if error is not None:
            raise error
