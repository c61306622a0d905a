"""Keeping image files out of the host page cache: qemu-img's ``none`` and ``directsync`` cache modes.

QEMU opens such files with O_DIRECT. The image library reads and writes at any offset and length, so
it gets the same effect another way: as the work goes, the files written are synced and every file's
pages are dropped (``POSIX_FADV_DONTNEED``), so that neither the output nor the source stays cached
and later readers go to the disk.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.base import Image

UNCACHED = ("none", "directsync")


def bypasses(mode: str | None) -> bool:
    """Whether a qemu-img cache mode keeps the page cache out (O_DIRECT in QEMU)."""
    return mode in UNCACHED


def image_fds(img: Image) -> list[int]:
    """The open files of one image (a VMDK has one per extent)."""
    fds = getattr(img, "fds", None)
    out = [f for f in fds if isinstance(f, int) and f >= 0] if isinstance(fds, list) else []
    fd = getattr(img, "fd", -1)
    return out if out else ([fd] if isinstance(fd, int) and fd >= 0 else [])


def chain_fds(img: Image) -> list[int]:
    """The open files of an image and of its backing chain."""
    return [fd for layer in img.chain() for fd in image_fds(layer)]


class DropBehind:
    """Drops the pages of ``source_fds`` and (synced first) ``output_fds`` every ``STEP`` bytes of
    progress, or every ``PERIOD`` seconds of :meth:`tick`, and once more at :meth:`drop`."""

    STEP = 64 << 20
    PERIOD = 0.5

    def __init__(self, source_fds: list[int], output_fds: list[int]) -> None:
        self.source_fds, self.output_fds = source_fds, output_fds
        self.pending = 0
        self.last = time.monotonic()

    @property
    def active(self) -> bool:
        return bool(self.source_fds or self.output_fds)

    def advance(self, n: int) -> None:
        if not self.active:
            return
        self.pending += n
        if self.pending >= self.STEP:
            self.drop()

    def tick(self) -> None:
        if self.active and time.monotonic() - self.last >= self.PERIOD:
            self.drop()

    def drop(self) -> None:
        self.pending, self.last = 0, time.monotonic()
        for fd in self.output_fds:
            os.fdatasync(fd)  # dirty pages cannot be dropped
        for fd in (*self.output_fds, *self.source_fds):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
