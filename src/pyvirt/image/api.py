"""The functions :mod:`pyvirt.image` exports, each delegating to the module that does the work."""

from __future__ import annotations

from pyvirt.image.create import create_image
from pyvirt.image.errors import ImageError
from pyvirt.image.info import image_info
from pyvirt.image.opener import open_image
from pyvirt.image.sizes import parse_relative_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from pyvirt.image.checker import CheckResult

__all__ = ["check", "convert", "create_image", "image_info", "open_image", "resize"]


def convert(
    src: str | Sequence[str],
    dst: str,
    out_fmt: str,
    *,
    src_fmt: str | None = None,
    compress: bool = False,
    progress: Callable[[float], None] | None = None,
    backing: str | None = None,
    backing_fmt: str | None = None,
    options: dict[str, str] | None = None,
    sparse_size: int = 4096,
    threads: int | None = None,
    allow_backing_outside: bool = False,
    force_share: bool = False,
    src_passphrase: bytes | None = None,
    share_extents: bool = True,
) -> None:
    """Copy ``src`` (or several sources, concatenated) into a new ``dst`` of ``out_fmt``.

    ``src_passphrase`` unlocks LUKS-encrypted qcow2 sources. ``share_extents=False``: the copy owns
    its blocks (no copy_file_range, which reflinks where the file system shares extents).

    See :mod:`pyvirt.image.converter`.
    """
    from pyvirt.image.converter import convert as _convert

    _convert(
        src,
        dst,
        out_fmt,
        src_fmt=src_fmt,
        compress=compress,
        progress=progress,
        backing=backing,
        backing_fmt=backing_fmt,
        options=options or {},
        sparse_size=sparse_size,
        threads=threads,
        allow_backing_outside=allow_backing_outside,
        force_share=force_share,
        src_passphrase=src_passphrase,
        share_extents=share_extents,
    )


def check(
    path: str, repair: str | None = None, *, fmt: str | None = None, force_share: bool = False
) -> CheckResult:
    """Check (and with ``repair`` of ``"leaks"``/``"all"``, repair) an image's metadata.

    Raises :class:`pyvirt.image.checker.NotCheckable` for formats without metadata (raw).
    """
    from pyvirt.image.checker import check_image

    return check_image(path, fmt=fmt, repair=repair, force_share=force_share)


PREALLOCATION = ("off", "metadata", "falloc", "full")


def resize(
    path: str,
    size: int | str,
    *,
    fmt: str | None = None,
    shrink: bool = False,
    preallocation: str = "off",
    passphrase: bytes | None = None,
) -> None:
    """Grow (or with ``shrink``, shrink) the virtual size; ``size`` may be relative (``+1G``).
    ``preallocation`` (qemu-img's modes) applies to the new area of a grown raw or qcow2 image."""
    if preallocation not in PREALLOCATION:
        raise ImageError(f"Invalid preallocation mode '{preallocation}'")
    with open_image(path, fmt=fmt, readonly=False, allow_backing_outside=True, passphrase=passphrase) as img:
        new = parse_relative_size(size, img.size) if isinstance(size, str) else size
        old = img.size
        if preallocation != "off":
            if new < old:
                raise ImageError("Preallocation can only be used for growing images")
            if img.format not in ("raw", "qcow2") or (img.format == "raw" and preallocation == "metadata"):
                raise ImageError(f"Unsupported preallocation mode: {preallocation}")
        img.truncate(new, shrink=shrink)
        if preallocation != "off" and new > old:
            from pyvirt.image.preallocate import preallocate

            preallocate(img, old, new, preallocation)


def info(path: str, **kw: Any) -> dict[str, Any]:
    return image_info(path, **kw)
