"""Preallocation of the area a resize added (qemu-img resize --preallocation).

raw: ``falloc`` reserves the blocks, ``full`` writes zeros. qcow2: every new cluster gets a host
cluster past the end of the file; ``metadata`` only maps it (the file's hole reads as zeros, as
QEMU's), ``falloc`` also reserves its blocks, ``full`` writes its zeros. ``falloc`` and ``full`` lay
the file out as QEMU 7.2's ``qcow2_co_truncate`` does: a new refcount table (and the refcount blocks
it lacks) right after the last used cluster, sized for the new data and its L2 tables, the old
table freed, then the new data clusters in one run after it, and the L2 tables allocated as
usual (first free cluster: often the old table's). A cluster the old end cut in two moves into the
run too, its head copied (QEMU's copy-on-write of the head), its old cluster freed. Images with
extended L2 entries, an external data file or encryption take the ``metadata`` path plus reservation.
"""

from __future__ import annotations

import os
from array import array

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
        if mode != "metadata" and _as_qemu(img, old, new, mode):
            return
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


def _as_qemu(img: Qcow2Image, old: int, new: int, mode: str) -> bool:
    """QEMU's layout for ``falloc``/``full`` (see the module's text); False where it does not apply."""
    from pyvirt.image.qcow2 import header as H
    from pyvirt.image.qcow2.tables import OFLAG_COPIED

    cs, cb = img.cs, img.cb
    if img.external or img.master_key is not None or img.header.incompatible_features & H.INCOMPAT_EXTL2:
        return False
    first, last = old >> cb, -(-new // cs)
    count = last - first
    if count <= 0 or not img._unallocated(-(-old // cs), last):
        return False
    head = img.read(first << cb, old - (first << cb)) if old % cs else b""
    img._mark_write()
    refs = img.refs
    per_l2 = 1 << img.l2_bits
    data = refs.refcount_area(refs.highest_used() + 1, count + -(-count // per_l2) + 1)
    refs.alloc_at(data, count)
    end = (data + count) << cb
    if end > os.fstat(img.fd).st_size:
        os.ftruncate(img.fd, end)
    _reserve(img.fd, data << cb, count << cb, mode)
    c = first
    while c < last:
        l1i = c >> img.l2_bits
        stop = min(last, (l1i + 1) << img.l2_bits)
        table, toff = img._l2_for_write(l1i)
        i0 = c & img.l2_mask
        replaced = table[i0] if c == first and head else 0
        host = (data + c - first) << cb | OFLAG_COPIED
        table[i0 : i0 + stop - c] = array("Q", range(host, host + ((stop - c) << cb), cs))
        img.cache.mark_dirty(toff)
        if replaced:
            img._release(replaced)
        c = stop
    if head:
        pwrite_full(img.fd, [head], data << cb)
    return True
