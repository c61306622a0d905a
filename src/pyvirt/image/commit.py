"""``commit``: write an overlay's data, and that of the images down to a chosen base, into the base.

qemu-img 7.2 runs an active block-commit job: it copies every range that some image from the top
down to the image just above the base allocates (a data or a zero cluster), or that lies past the
end of one of the images below the top (those ranges read as zeros), reading it through the whole
chain, and writes it into the base, zeros as zeros. Without ``-b`` the base is the immediate backing
file and the top is emptied afterwards unless ``-d``; ``-b`` implies ``-d``. The images between the
top and the base are left as they were (and, as qemu-img warns, no longer valid on their own).
"""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.info import path_combine
from pyvirt.image.opener import open_image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvirt.image.base import Image
    from pyvirt.image.pagecache import DropBehind
    from pyvirt.image.qcow2.image import Qcow2Image

    Progress = Callable[[float], None]

CHUNK = 2 << 20
STATUS_STEP = 1 << 30


def commit(
    path: str,
    *,
    fmt: str | None = None,
    base: str | None = None,
    drop: bool = False,
    progress: Progress | None = None,
    rate_limit: int | None = None,
    bypass_cache: bool = False,
) -> None:
    """Commit ``path`` into ``base`` (a name from its backing chain; None: the backing file).

    ``progress`` is called with 0.0 once the image is open (where qemu-img starts its progress
    line), then with percentages. Unless ``drop`` or ``base``, the top is emptied afterwards.
    ``rate_limit`` (bytes per second) paces the copy; ``bypass_cache`` keeps every file of the chain
    out of the page cache (:mod:`pyvirt.image.pagecache`).
    """
    with open_image(path, fmt=fmt, readonly=False, backing=True, allow_backing_outside=True) as top:
        if progress is not None:
            progress(0.0)
        chain = top.chain()
        depth = _base_depth(chain, path, base)
        target = _reopen_writable(chain[depth - 1])
        from pyvirt.image.pagecache import DropBehind, chain_fds, image_fds

        dropper = DropBehind(chain_fds(top), image_fds(target)) if bypass_cache else None
        _copy_into(_layers(chain[:depth]), top, target, _Meter(progress, rate_limit, dropper))
        if base is None and not drop:
            _make_empty(chain[0])
        if dropper is not None:
            target.flush()
            top.flush()
            dropper.output_fds += image_fds(top)
            dropper.drop()


def _base_depth(chain: list[Image], path: str, base: str | None) -> int:
    """How far down ``chain`` the base lies (1: the backing file); ImageError as qemu-img words it."""
    if base is None:
        if len(chain) < 2:
            raise ImageError("Image does not have a backing file")
        return 1
    depth = find_backing_image(chain, base)
    if depth is None:
        raise ImageError(f"Did not find '{base}' in the backing chain of '{path}'")
    return depth


def find_backing_image(chain: list[Image], name: str) -> int | None:
    """The depth in ``chain`` of the image ``name`` denotes, as QEMU's bdrv_find_backing_image.

    Each image's backing file name is compared with ``name``: both made absolute from that image's
    folder and resolved with realpath (so a relative ``name`` is tried from every image's folder
    in turn); names with a protocol prefix (``nbd:...``) are compared as text.
    """
    for depth, cur in enumerate(chain[:-1], start=1):
        backing = cur.backing_file
        if backing is None:
            return None
        if _has_protocol(name) or _has_protocol(backing):
            if name in (backing, path_combine(cur.path, backing)):
                return depth
            continue
        want = _realpath(path_combine(cur.path, name)) if name else None
        have = _realpath(path_combine(cur.path, backing))
        if want is not None and want == have:
            return depth
    return None


def _has_protocol(name: str) -> bool:
    """QEMU's path_has_protocol: a ``:`` before any ``/``."""
    for ch in name:
        if ch in ":/":
            return ch == ":"
    return False


def _realpath(path: str) -> str | None:
    """realpath(3): None when some component is missing (or a file is used as a folder)."""
    try:
        os.stat(path)
        return os.path.realpath(path, strict=True)
    except OSError:
        return None


def _reopen_writable(parent: Image) -> Image:
    """Replace ``parent``'s read-only backing image by the same file opened for writing.

    The read-only copy is closed first: its shared lock forbids writers, even in this process.
    """
    old = parent.backing
    assert old is not None
    name, fmt = old.path, old.format
    old.close()
    parent.backing = None
    parent.backing = open_image(name, fmt=fmt, readonly=False, backing=True, allow_backing_outside=True)
    return parent.backing


def _layers(images: list[Image]) -> list[Qcow2Image]:
    """The images above the base; each has a backing file, so each is a qcow2 image."""
    from pyvirt.image.qcow2.image import Qcow2Image

    out: list[Qcow2Image] = []
    for img in images:
        if not isinstance(img, Qcow2Image):
            raise ImageError(f"{img.path}: committing from a {img.format} image is not supported")
        out.append(img)
    return out


def dirty_runs(layers: list[Qcow2Image], size: int) -> list[tuple[int, int]]:
    """``(start, end)`` ranges of ``[0, size)`` the commit job copies, sorted and merged.

    A range is copied when one of ``layers`` (top first) allocates it, or when it lies past the end
    of a layer below the top (QEMU reads it as zeros allocated there).
    """
    spans: list[tuple[int, int]] = []
    for i, img in enumerate(layers):
        n = min(img.size, size)
        spans += [(s, s + m) for s, m, alloc in img.allocated_in_top(0, n) if alloc]
        if i and img.size < size:
            spans.append((img.size, size))
    return _union(spans)


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _copy_into(layers: list[Qcow2Image], top: Image, target: Image, meter: _Meter) -> None:
    """Write the top's view of every dirty range into ``target``, grown first to the top's size."""
    _grow(target, top.size)
    runs = dirty_runs(layers, top.size)
    meter.total = sum(e - s for s, e in runs)
    for s, e in runs:
        for pos in range(s, e, STATUS_STEP):
            for x in top.block_status(pos, min(STATUS_STEP, e - pos)):
                if x.zero and not x.data:
                    target.write_zeroes(x.start, x.length)
                    meter.add(x.length)
                else:
                    _copy_data(top, target, x.start, x.length, meter)


def _grow(target: Image, size: int) -> None:
    """Grow the base to the top's size (QEMU zeroes the new area if a backing file would show)."""
    from pyvirt.image.qcow2.image import Qcow2Image

    if target.size >= size:
        return
    if isinstance(target, Qcow2Image) and target.growth_needs_zeroes(size) and not target.v3:
        raise ImageError("Block job failed: Operation not supported")
    target.truncate(size)


class _Meter:
    """Counts the bytes committed, reports the percentage done, paces the copy to ``rate`` bytes per
    second and keeps the page cache out (``dropper``)."""

    def __init__(self, progress: Progress | None, rate: int | None, dropper: DropBehind | None) -> None:
        import time

        self.total, self.done, self.progress = 0, 0, progress
        self.rate, self.dropper = rate, dropper
        self.started = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None and self.total:
            self.progress(self.done * 100.0 / self.total)
        if self.dropper is not None:
            self.dropper.advance(n)
        if self.rate:
            import time

            ahead = self.done / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _copy_data(top: Image, target: Image, start: int, length: int, meter: _Meter) -> None:
    """Copy bytes read through the top's chain; an all-zero chunk is written as zeros."""
    buf = bytearray(CHUNK)
    pos, end = start, start + length
    while pos < end:
        n = min(CHUNK, end - pos)
        mv = memoryview(buf)[:n]
        top.readinto(pos, mv)
        if buf[:n] == bytes(n):
            target.write_zeroes(pos, n)
        else:
            target.write(pos, mv)
        pos += n
        meter.add(n)


def _make_empty(top: Image) -> None:
    from pyvirt.image.qcow2.image import Qcow2Image

    assert isinstance(top, Qcow2Image)
    top.make_empty()
