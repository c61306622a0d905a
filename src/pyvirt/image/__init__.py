"""pyvirt.image: disk images in pure Python — qcow2, raw, vmdk, vdi, vpc (VHD), vhdx read and written.

Stable API (everything is imported lazily so ``import pyvirt.image`` costs almost nothing)::

    open_image(path, *, fmt=None, readonly=True, backing=True, allow_backing_outside=False,
               force_share=False, passphrase=None) -> Image
        A context manager. ``Image`` has ``read(offset, length) -> bytes``, ``readinto(offset, buf)``,
        ``write(offset, data)``, ``write_zeroes(offset, length)``, ``discard(offset, length)``,
        ``block_status(offset, length) -> list[Extent]``, ``flush()``, ``close()``, and attributes
        ``size``, ``format``, ``path``, ``backing_file``, ``backing_format``, ``backing``, ``cluster_size``.
        A format of None is probed; a probed raw image refuses writes that would make it look like
        another format. Backing files open read-only; relative names resolve against the image's own
        folder; names leaving that folder are refused unless ``allow_backing_outside``; a backing file
        without a stated format is refused if it would be probed as raw. Files are locked as QEMU
        locks them: a running VM and a writer exclude each other; readers share (``force_share``
        skips the lock on read-only opens, like ``qemu-img -U``). An Image is not thread-safe.
    create_image(path, fmt, size, *, backing=None, backing_fmt=None, cluster_size=65536, compat="1.1",
                 preallocation="off", lazy_refcounts=False, refcount_bits=16, compression_type="zlib",
                 **fmt_opts) -> None
        ``size`` in bytes or a string like ``"10G"``; None with a backing file takes the backing size.
        The named options are qcow2's (``compression_type``: zlib or zstd); vmdk takes ``subformat``
        (monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat,
        streamOptimized), ``adapter_type``, ``hwversion``,
        ``toolsversion``, ``compat6``, ``zeroed_grain`` and a vmdk ``backing``; vdi ``static``; vpc
        ``subformat`` (dynamic, fixed) and ``force_size``; vhdx ``subformat`` (dynamic, fixed),
        ``block_size``, ``log_size``, ``block_state_zero``. A fixed VHD probes as raw: open it
        with ``fmt="vpc"``. A VHDX whose log holds writes is replayed by a writable open and
        refused by a read-only one.
    image_info(path, *, fmt=None, backing_chain=False) -> dict
        qemu-img 7.2's ``info --output json`` fields; with ``backing_chain`` the backing file's info is
        nested under ``"backing-image"``.
    convert(src, dst, out_fmt, *, src_fmt=None, compress=False, progress=None, backing=None,
            backing_fmt=None, options=None, sparse_size=4096, threads=None) -> None
        ``options`` are qemu-img ``-o`` pairs (cluster_size, compat, preallocation, lazy_refcounts,
        refcount_bits); ``progress`` is called with a percentage. Like qemu-img, no final fsync.
        ``src`` may be a list of images: they are concatenated (whole 512-byte sectors each).
        (``pyvirt.image.converter.convert`` also takes ``skip_create``/``target_is_zero``, i.e. -n.)
    check(path, repair=None, *, fmt=None, force_share=False) -> CheckResult
        repair: None, "leaks" or "all"; ``CheckResult.exit_code`` is qemu-img's (0, 2, 3; 63 raw).
    resize(path, size, *, fmt=None, shrink=False) -> None     (size: bytes or "+1G", "-512M", "10G")
    parse_size(text) -> int;  size_to_str(n) -> str

LUKS-encrypted qcow2 (aes-xts-plain64) opens with its ``passphrase`` and is read and written
through it; ``create_image(..., encrypt_passphrase=, encrypt_iter_time=2000, encrypt_hash_alg=)``
makes one; ``convert(..., src_passphrase=, dst_passphrase=)``; ``image_info`` needs no key.

An external data file (``create_image(..., data_file=NAME, data_file_raw=)``) holds the guest data
of a qcow2 image, each cluster at its guest offset; it is opened by the name in the header, as
qemu 7.2 opens it (from the current folder).

Extended L2 entries (``create_image(..., extended_l2=True)``, clusters of 16 KiB or more): 32
subclusters a cluster, each allocated, zeroed and copied from the backing file on its own.

Not supported (refused by name, never misread): compressed or preallocated
encrypted images, legacy AES encryption, VDI, VHD and VHDX differencing images, writes into VMDK
grain tables that are not allocated or into streamOptimized grains already written (as QEMU).
Persistent dirty bitmaps are kept and maintained as qemu-img does (enabled ones marked in use
while open, dirtied by writes, resized with the image).

Errors are :class:`pyvirt.errors.ImageError` (subclasses ``CorruptImage`` and ``UnsupportedImage``
live in :mod:`pyvirt.image.errors`).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.image.api import check, convert, create_image, image_info, open_image, resize
    from pyvirt.image.base import Extent, Image
    from pyvirt.image.checker import CheckResult
    from pyvirt.image.sizes import parse_size, size_to_str

__all__ = [
    "CheckResult",
    "Extent",
    "Image",
    "check",
    "convert",
    "create_image",
    "image_info",
    "open_image",
    "parse_size",
    "resize",
    "size_to_str",
]

_WHERE = {
    "open_image": "pyvirt.image.api",
    "create_image": "pyvirt.image.api",
    "image_info": "pyvirt.image.api",
    "convert": "pyvirt.image.api",
    "check": "pyvirt.image.api",
    "resize": "pyvirt.image.api",
    "Extent": "pyvirt.image.base",
    "Image": "pyvirt.image.base",
    "CheckResult": "pyvirt.image.checker",
    "parse_size": "pyvirt.image.sizes",
    "size_to_str": "pyvirt.image.sizes",
}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'pyvirt.image' has no attribute {name!r}")
    __import__(mod)  # importlib.import_module without importing importlib
    return getattr(sys.modules[mod], name)
