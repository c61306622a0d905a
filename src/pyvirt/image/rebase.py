"""``rebase``: give an image another backing file, as qemu-img 7.2 does.

Safe mode first copies into the image every cluster it leaves unallocated whose content differs
between the old and the new backing file (ranges past the end of the old one were zeros, and are
written as zeros), so that what the image reads stays the same; then the header changes. Unsafe
mode (``-u``) only rewrites the header: the old backing file is not even opened. The new backing
name is resolved from the image's folder, as QEMU does; an empty name removes the backing file.
"""

from __future__ import annotations

from pyvirt.image.errors import ImageError
from pyvirt.image.opener import open_image
from pyvirt.image.probe import FORMATS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvirt.image.base import Image
    from pyvirt.image.pagecache import DropBehind
    from pyvirt.image.qcow2.image import Qcow2Image

    Progress = Callable[[float], None]

CHUNK = 2 << 20


def _ticking(progress: Progress | None, dropper: DropBehind) -> Progress | None:
    if not dropper.active:
        return progress

    def report(pct: float) -> None:
        dropper.tick()
        if progress is not None:
            progress(pct)

    return report


def rebase(
    path: str,
    backing: str | None,
    backing_fmt: str | None,
    *,
    fmt: str | None = None,
    unsafe: bool = False,
    progress: Progress | None = None,
    force_share: bool = False,
    bypass_cache: tuple[bool, bool] = (False, False),
) -> None:
    """Make ``backing`` (None or "": none) the backing file of ``path``; see the module's text.

    Like qemu-img, safe mode without ``backing_fmt`` probes the new backing file, copies what
    differs, and only then fails: the header needs the format. ``progress`` gets percentages;
    ``force_share`` opens the new backing file without a lock. ``bypass_cache`` (the new backing
    chain, the image): keep those files out of the page cache (-T/-t none, directsync).
    """
    with open_image(path, fmt=fmt, readonly=False, backing=not unsafe, allow_backing_outside=True) as img:
        if backing_fmt is not None and backing_fmt not in FORMATS:
            raise ImageError(f"Invalid format name: '{backing_fmt}'")
        if not unsafe:
            new = _open_new_backing(path, backing, backing_fmt, force_share)
            try:
                from pyvirt.image.pagecache import DropBehind, chain_fds, image_fds

                dropper = DropBehind(
                    (chain_fds(new) if new is not None else []) if bypass_cache[0] else [],
                    image_fds(img) if bypass_cache[1] else [],
                )
                qcow2 = _qcow2(img)  # any other format has no backing file: nothing to copy
                if qcow2 is not None:
                    copy_differences(qcow2, new, _ticking(progress, dropper))
                img.flush()
                if dropper.active:
                    dropper.drop()
            finally:
                if new is not None:
                    new.close()
        _change_backing(img, backing, backing_fmt)


def _qcow2(img: Image) -> Qcow2Image | None:
    from pyvirt.image.qcow2.image import Qcow2Image

    return img if isinstance(img, Qcow2Image) else None


def _open_new_backing(path: str, backing: str | None, fmt: str | None, force_share: bool) -> Image | None:
    """The new backing file, named from the image's folder (None when the backing file goes)."""
    from pyvirt.image.info import path_combine

    if not backing:
        return None
    try:
        return open_image(
            path_combine(path, backing), fmt=fmt, allow_backing_outside=True, force_share=force_share
        )
    except ImageError as err:
        raise ImageError(f"Could not open new backing file '{backing}': {err}") from err


def _change_backing(img: Image, backing: str | None, fmt: str | None) -> None:
    qcow2 = _qcow2(img)
    if qcow2 is None:
        raise ImageError(f"Could not change the backing file to '{backing or ''}': Operation not supported")
    if backing and not fmt:
        raise ImageError(
            f"Could not change the backing file to '{backing}': backing format must be specified"
        )
    qcow2.set_backing(backing or None, fmt if backing else None)


def copy_differences(img: Qcow2Image, new: Image | None, progress: Progress | None) -> None:
    """Copy into ``img`` each of its unallocated clusters whose content ``new`` would change."""
    old_size = img.backing.size if img.backing is not None else 0
    runs = [(s, n) for s, n, alloc in img.allocated_in_top(0, img.size) if not alloc]
    total, done = sum(n for _, n in runs), 0
    old_buf, new_buf = bytearray(CHUNK), bytearray(CHUNK)
    for s, n in runs:
        pos, end = s, s + n
        while pos < end:
            m = min(CHUNK - pos % CHUNK, end - pos)
            img.readinto(pos, memoryview(old_buf)[:m])
            _read_or_zeros(new, pos, memoryview(new_buf)[:m])
            if old_buf[:m] != new_buf[:m]:
                _write_changed(img, pos, old_buf, new_buf, m, old_size)
            pos += m
            done += m
            if progress is not None and total:
                progress(done * 100.0 / total)


def _read_or_zeros(img: Image | None, pos: int, buf: memoryview) -> None:
    """What ``img`` reads at ``pos``: zeros where it is absent or shorter."""
    k = 0 if img is None else max(0, min(len(buf), img.size - pos))
    if img is not None and k:
        img.readinto(pos, buf[:k])
    buf[k:] = bytes(len(buf) - k)


def _write_changed(img: Qcow2Image, pos: int, old: bytearray, new: bytearray, m: int, old_size: int) -> None:
    """Write the old content of every cluster of the chunk that differs from the new one."""
    cs = img.cs
    for i in range(0, m, cs):
        j = min(m, i + cs - (pos + i) % cs)
        if old[i:j] == new[i:j]:
            continue
        if pos + i >= old_size:  # past the old backing file's end: zeros, as qemu-img writes them
            img.write_zeroes(pos + i, j - i, backed=True)
        else:
            img.write(pos + i, bytes(old[i:j]))
