"""``create_image``: a new, empty image of any writable format, as ``qemu-img create`` makes it.

Kept apart from :mod:`pyvirt.image.api` (which re-exports it) so that ``pyvirt img create``
loads neither the probing, info nor opening code unless a backing file is to be read.
"""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.sizes import parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.image.luks import CipherSpec

__all__ = ["CREATABLE", "create_image"]

CREATABLE = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "luks")
_LUKS_OPTS = {"encrypt_passphrase", "encrypt_iter_time", "encrypt_hash_alg", "encrypt_cipher"}


def create_image(
    path: str,
    fmt: str,
    size: int | str | None,
    *,
    backing: str | None = None,
    backing_fmt: str | None = None,
    cluster_size: int | None = None,
    compat: str | None = None,
    preallocation: str | None = None,
    lazy_refcounts: bool | None = None,
    refcount_bits: int | None = None,
    compression_type: str | None = None,
    encrypt_passphrase: bytes | None = None,
    encrypt_iter_time: int | None = None,
    encrypt_hash_alg: str | None = None,
    encrypt_cipher: CipherSpec | None = None,
    data_file: str | None = None,
    data_file_raw: bool | None = None,
    extended_l2: bool | None = None,
    check_backing: bool = True,
    **fmt_opts: Any,
) -> None:
    """Create an empty image; with ``backing`` and no size, the size is the backing file's.

    The keyword arguments named are qcow2's (``preallocation`` also raw's); other formats take
    their qemu-img ``-o`` names in ``fmt_opts`` (vmdk: subformat, adapter_type, hwversion,
    toolsversion, compat6, zeroed_grain; vdi: static; vhdx: subformat, block_size, log_size,
    block_state_zero; vpc: subformat, force_size). A ``luks`` container takes the ``encrypt_*`` ones.
    """
    if fmt not in CREATABLE:
        raise ImageError(f"Unknown file format '{fmt}'")
    qcow2_opts = {
        "cluster_size": cluster_size,
        "compat": compat,
        "preallocation": preallocation,
        "lazy_refcounts": lazy_refcounts,
        "refcount_bits": refcount_bits,
        "compression_type": compression_type,
        "encrypt_passphrase": encrypt_passphrase,
        "encrypt_iter_time": encrypt_iter_time,
        "encrypt_hash_alg": encrypt_hash_alg,
        "encrypt_cipher": encrypt_cipher,
        "data_file": data_file,
        "data_file_raw": data_file_raw,
        "extended_l2": extended_l2,
    }
    allowed = {"qcow2": set(qcow2_opts), "raw": {"preallocation"}, "luks": _LUKS_OPTS}.get(fmt, set())
    for k, v in [*qcow2_opts.items(), *fmt_opts.items()]:
        if v is not None and k not in allowed and (fmt in ("qcow2", "raw") or k in qcow2_opts):
            raise ImageError(f"Invalid parameter '{k}'")
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
    size = -(-size // 512) * 512  # every qemu block driver rounds the size up to whole sectors
    if fmt == "qcow2":
        from pyvirt.image.qcow2.create import create_qcow2

        create_qcow2(
            path,
            size,
            cluster_size=65536 if cluster_size is None else cluster_size,
            compat=compat or "1.1",
            backing=backing,
            backing_fmt=backing_fmt,
            lazy_refcounts=bool(lazy_refcounts),
            refcount_bits=16 if refcount_bits is None else refcount_bits,
            preallocation=preallocation or "off",
            compression_type=compression_type or "zlib",
            encrypt_passphrase=encrypt_passphrase,
            encrypt_iter_time=2000 if encrypt_iter_time is None else encrypt_iter_time,
            encrypt_hash_alg=encrypt_hash_alg or "sha256",
            encrypt_cipher=encrypt_cipher,
            data_file=data_file,
            data_file_raw=bool(data_file_raw),
            extended_l2=bool(extended_l2),
        )
    elif fmt == "luks":
        if backing:
            raise ImageError("luks images do not support backing files")
        if encrypt_passphrase is None:
            raise ImageError("Parameter 'key-secret' is required for cipher")
        from pyvirt.image.luks import DEFAULT_CIPHER
        from pyvirt.image.luks_raw import create_luks

        create_luks(
            path,
            size,
            encrypt_passphrase,
            spec=encrypt_cipher or DEFAULT_CIPHER,
            hash_alg=encrypt_hash_alg or "sha256",
            iter_time=2000 if encrypt_iter_time is None else encrypt_iter_time,
        )
    elif fmt == "raw":
        if backing:
            raise ImageError("raw images do not support backing files")
        _create_raw(path, size, preallocation or "off")
    elif fmt == "vmdk":
        from pyvirt.image.vmdk_create import create_vmdk

        create_vmdk(path, size, backing=backing, backing_fmt=backing_fmt, **fmt_opts)
    else:
        if backing:
            raise ImageError(f"Backing file not supported for file format '{fmt}'")
        if fmt == "vdi":
            from pyvirt.image.vdi import create_vdi

            create_vdi(path, size, **fmt_opts)
        elif fmt == "vpc":
            from pyvirt.image.vpc import create_vpc

            create_vpc(path, size, **fmt_opts)
        else:
            from pyvirt.image.vhdx import create_vhdx

            create_vhdx(path, size, **fmt_opts)


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
