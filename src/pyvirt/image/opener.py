"""Open an image of any supported format, with its backing chain, guarding against hostile names and loops."""

from __future__ import annotations

import os

from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.probe import check_format, probe_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.base import Image

MAX_CHAIN_DEPTH = 200


def resolve_backing(image_path: str, name: str, *, allow_outside: bool) -> str:
    """Where a backing file name points, relative names taken from the image's own folder."""
    folder = os.path.dirname(os.path.abspath(image_path))
    target = os.path.normpath(os.path.join(folder, name))
    if not allow_outside:
        real_folder = os.path.realpath(folder)
        real = os.path.realpath(target)
        if os.path.commonpath([real_folder, real]) != real_folder:
            raise ImageError(
                f"{image_path}: backing file '{name}' lies outside the image's folder; "
                "open with allow_backing_outside=True if that is intended"
            )
    return target


def open_image(
    path: str,
    *,
    fmt: str | None = None,
    readonly: bool = True,
    backing: bool = True,
    allow_backing_outside: bool = False,
    force_share: bool = False,
    passphrase: bytes | None = None,
    _seen: frozenset[tuple[int, int]] = frozenset(),
    _depth: int = 0,
) -> Image:
    """Open ``path`` as ``fmt`` (probed when None); backing files are opened read-only, recursively.

    The file is locked the way QEMU locks images, so a VM using it and this opener exclude each
    other (``force_share`` skips the lock for read-only opens, like qemu-img's ``-U``).
    """
    if _depth > MAX_CHAIN_DEPTH:
        raise CorruptImage(f"{path}: backing chain deeper than {MAX_CHAIN_DEPTH} images")
    try:
        st = os.stat(path)
    except OSError as err:
        raise ImageError(f"Could not open '{path}': {err.strerror}") from err
    key = (st.st_dev, st.st_ino)
    if key in _seen:
        raise CorruptImage(f"{path}: backing chain loops back to this image")
    seen = _seen | {key}
    probed = fmt is None
    if fmt is None:
        fmt = probe_file(path)
    check_format(fmt)

    def open_backing(name: str, bfmt: str | None) -> Image:
        from pyvirt.image.info import path_combine

        resolve_backing(path, name, allow_outside=allow_backing_outside)
        # Opened by the name QEMU would use (image folder as written + backing name): same file.
        target = path_combine(path, name)
        if bfmt is None:
            bfmt = probe_file(target) if os.path.exists(target) else None
            if bfmt in (None, "raw"):
                raise ImageError(
                    f"{path}: backing file '{name}' has no stated format and will not be probed as raw; "
                    "set it with `pyvirt img rebase -u -b NAME -F FMT`"
                )
        return open_image(
            target,
            fmt=bfmt,
            readonly=True,
            allow_backing_outside=allow_backing_outside,
            force_share=force_share,
            _seen=seen,
            _depth=_depth + 1,
        )

    if fmt == "qcow2":
        from pyvirt.image.qcow2.image import Qcow2Image

        return Qcow2Image.open(
            path,
            readonly=readonly,
            open_backing=open_backing if backing else None,
            force_share=force_share,
            passphrase=passphrase,
        )
    if fmt == "luks":
        from pyvirt.image.luks_raw import LuksImage

        return LuksImage.open_luks(path, passphrase, readonly=readonly, force_share=force_share)
    if fmt == "raw":
        from pyvirt.image.raw import RawImage

        img = RawImage.open(path, readonly=readonly, force_share=force_share)
        img.probed = probed
        return img
    if fmt == "vmdk":
        from pyvirt.image.vmdk import VmdkImage

        return VmdkImage.open(
            path, readonly=readonly, open_backing=open_backing if backing else None, force_share=force_share
        )
    if fmt == "vdi":
        from pyvirt.image.vdi import VdiImage

        return VdiImage.open(path, readonly=readonly, force_share=force_share)
    if fmt == "vpc":
        from pyvirt.image.vpc import VpcImage

        return VpcImage.open(path, readonly=readonly, force_share=force_share)
    if fmt == "vhdx":
        from pyvirt.image.vhdx import VhdxImage

        return VhdxImage.open(path, readonly=readonly, force_share=force_share)
    raise UnsupportedImage(f"{path}: opening {fmt} images is not supported")
