"""The functions :mod:`pyvirt.image` exports, each delegating to the module that does the work."""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.info import image_info
from pyvirt.image.opener import open_image
from pyvirt.image.sizes import parse_relative_size, parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyvirt.image.checker import CheckResult

__all__ = ["check", "convert", "create_image", "image_info", "open_image", "resize"]


def create_image(
    path: str,
    fmt: str,
    size: int | str | None,
    *,
    backing: str | None = None,
    backing_fmt: str | None = None,
    cluster_size: int = 65536,
    compat: str = "1.1",
    preallocation: str = "off",
    lazy_refcounts: bool = False,
    refcount_bits: int = 16,
    check_backing: bool = True,
) -> None:
    """Create an empty image; with ``backing`` and no size, the size is the backing file's."""
    if isinstance(size, str):
        size = parse_size(size)
    if backing is not None and not backing_fmt:
        raise ImageError("Backing file specified without backing format (use -F FMT)")
    if backing is not None and (size is None or check_backing):
        from pyvirt.image.opener import resolve_backing

        target = resolve_backing(path, backing, allow_outside=True)
        if not os.path.exists(target):
            if size is None or check_backing:
                raise ImageError(f"Could not open backing file '{target}': No such file or directory")
        else:
            with open_image(target, fmt=backing_fmt, allow_backing_outside=True) as b:
                if size is None:
                    size = b.size
    if size is None:
        raise ImageError("Image creation needs a size parameter")
    if size < 0:
        raise ImageError("Image size must be positive")
    if fmt == "qcow2":
        from pyvirt.image.qcow2.create import create_qcow2

        create_qcow2(
            path,
            size,
            cluster_size=cluster_size,
            compat=compat,
            backing=backing,
            backing_fmt=backing_fmt,
            lazy_refcounts=lazy_refcounts,
            refcount_bits=refcount_bits,
            preallocation=preallocation,
        )
    elif fmt == "raw":
        if backing:
            raise ImageError("raw images do not support backing files")
        _create_raw(path, size, preallocation)
    else:
        raise ImageError(f"Formatting images as '{fmt}' is not supported (use raw or qcow2)")


def _create_raw(path: str, size: int, preallocation: str) -> None:
    if preallocation not in ("off", "falloc", "full", "metadata"):
        raise ImageError(f"Invalid parameter '{preallocation}' for preallocation")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        os.ftruncate(fd, size)
        if preallocation == "falloc" and size:
            os.posix_fallocate(fd, 0, size)
        elif preallocation == "full":
            chunk = bytes(1 << 20)
            pos = 0
            while pos < size:
                pos += os.pwrite(fd, chunk[: min(len(chunk), size - pos)], pos)
    finally:
        os.close(fd)


def convert(
    src: str,
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
) -> None:
    """Copy ``src`` into a new ``dst`` of ``out_fmt`` (see :mod:`pyvirt.image.converter`)."""
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
    )


def check(
    path: str, repair: str | None = None, *, fmt: str | None = None, force_share: bool = False
) -> CheckResult:
    """Check (and with ``repair`` of ``"leaks"``/``"all"``, repair) an image's metadata.

    Raises :class:`pyvirt.image.checker.NotCheckable` for formats without metadata (raw).
    """
    from pyvirt.image.checker import check_image

    return check_image(path, fmt=fmt, repair=repair, force_share=force_share)


def resize(path: str, size: int | str, *, fmt: str | None = None, shrink: bool = False) -> None:
    """Grow (or with ``shrink``, shrink) the virtual size; ``size`` may be relative (``+1G``)."""
    with open_image(path, fmt=fmt, readonly=False, allow_backing_outside=True) as img:
        new = parse_relative_size(size, img.size) if isinstance(size, str) else size
        img.truncate(new, shrink=shrink)


def info(path: str, **kw: Any) -> dict[str, Any]:
    return image_info(path, **kw)
