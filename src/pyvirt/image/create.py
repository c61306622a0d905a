"""``create_image``: a new, empty raw or qcow2 image, as ``qemu-img create`` makes it.

Kept apart from :mod:`pyvirt.image.api` (which re-exports it) so that ``pyvirt img create``
loads neither the probing, info nor opening code unless a backing file is to be read.
"""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.sizes import parse_size

__all__ = ["create_image"]


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
        from pyvirt.image.opener import open_image, resolve_backing

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
