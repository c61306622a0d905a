"""Preallocation of the area a resize added (qemu-img resize --preallocation).

raw: ``falloc`` reserves the blocks, ``full`` writes zeros. qcow2: every new cluster gets a host
cluster past the end of the file; ``metadata`` only maps it (the file's hole reads as zeros, as
QEMU's), ``falloc`` also reserves its blocks, ``full`` writes its zeros.
"""

from __future__ import annotations

import os

from pyvirt.image.base import ZERO_CHUNK, Image
from pyvirt.image.fileio import pwrite_full

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.qcow2.image import Qcow2Image


def preallocate(img: Image, old: int, new: int, mode: str) -> None:
    from pyvirt.image.qcow2.image import Qcow2Image as Q

    if isinstance(img, Q):
        _qcow2(img, old, new, mode)
    else:
        _reserve(img.fd, old, new - old, mode)


def _reserve(fd: int, at: int, n: int, mode: str) -> None:
    if mode == "falloc":
        os.posix_fallocate(fd, at, n)
    elif mode == "full":
        end = at + n
        while at < end:
            k = min(end - at, len(ZERO_CHUNK))
            pwrite_full(fd, [memoryview(ZERO_CHUNK)[:k]], at)
            at += k


def _qcow2(img: Qcow2Image, old: int, new: int, mode: str) -> None:
    cs, cb = img.cs, img.cb
    tracker, img.bitmaps = img.bitmaps, None  # QEMU's preallocation dirties no bitmap
    try:
        runs: list[tuple[int, int, int]] = []
        c, c_end = old >> cb, -(-new // cs)
        while c < c_end:
            stop = min(c_end, ((c >> img.l2_bits) + 1) << img.l2_bits)
            got = img.map_for_write(c << cb, (stop - c) << cb, prealloc=True)
            if got is None:  # some clusters already mapped: one by one
                for cc in range(c, stop):
                    one = img.map_for_write(cc << cb, cs, prealloc=True)
                    runs.extend(one or [])
            else:
                runs.extend(got)
            c = stop
        end = max((host + n for _g, host, n in runs), default=0)
        if end > os.fstat(img.fd).st_size:
            os.ftruncate(img.fd, end)
        for _guest, host, n in runs:
            _reserve(img.fd, host, n, mode)
    finally:
        img.bitmaps = tracker
