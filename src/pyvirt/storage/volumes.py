"""Volume files of a directory pool: described, created, cloned, resized (by :mod:`pyvirt.image`), wiped.

A volume is made under a hidden temporary name in the pool's folder and linked to its real name only
when complete (``link`` fails if the name was taken meanwhile), so a failed or interrupted create never
leaves a half-written volume behind and never replaces an existing file.

Wiping is libvirt's for a directory pool: ``zero`` overwrites the file with zeros (a sparse file is
truncated to nothing and back), whatever its format, so a wiped qcow2 volume reads as a raw volume of
zeros afterwards; the other algorithms run ``scrub -f -p ALGORITHM`` on the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pyvirt.conf.disk_encryption import Cipher, DiskEncryption
from pyvirt.conf.names import validate_name
from pyvirt.conf.storage import (
    BackingStore,
    Permissions,
    PoolSizes,
    Timestamps,
    VolumeDef,
    VolumeInfo,
)
from pyvirt.errors import (
    AlreadyExists,
    ImageError,
    InvalidArgument,
    NotFound,
    OperationFailed,
    UnsupportedConfig,
)

if TYPE_CHECKING:
    from pyvirt.image.luks import CipherSpec

LUKS_COPY_CHUNK = 1 << 20

log = logging.getLogger(__name__)

DEFAULT_VOLUME_MODE = 0o600
MAX_CHAIN = 64
WIPE_CHUNK = 1 << 20
# virsh's names, in the order of libvirt's virStorageVolWipeAlgorithm.
WIPE_ALGORITHMS = (
    "zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33", "random", "trim",
)  # fmt: skip


def pool_sizes(path: str) -> PoolSizes:
    """libvirt's numbers for a directory pool: those of the file system holding it."""
    st = os.statvfs(path)
    capacity = st.f_blocks * st.f_frsize
    return PoolSizes(
        capacity=capacity,
        allocation=(st.f_blocks - st.f_bfree) * st.f_frsize,
        available=st.f_bavail * st.f_frsize,
    )


def target_permissions(path: str) -> Permissions:
    st = os.stat(path)
    return Permissions(mode=stat.S_IMODE(st.st_mode), owner=st.st_uid, group=st.st_gid)


def volume_names(folder: str) -> Iterator[str]:
    """Names of the regular files in ``folder`` (hidden files are the driver's temporaries)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_file(follow_symlinks=False):
                yield entry.name


def volume_path(folder: str, name: str) -> str:
    validate_name(name, "volume")
    return os.path.join(folder, name)


def _image_info(path: str) -> dict[str, Any]:
    from pyvirt.image.api import image_info

    return image_info(path)


def describe(folder: str, name: str) -> VolumeInfo:
    """What ``vol-info``/``vol-dumpxml`` show; NotFound when there is no such regular file."""
    path = volume_path(folder, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise NotFound(f"Storage volume not found: no storage vol with matching name '{name}'")
    info = VolumeInfo(
        name=name,
        path=path,
        format="raw",
        capacity=st.st_size,
        allocation=st.st_blocks * 512,
        physical=st.st_size,
        permissions=Permissions(mode=stat.S_IMODE(st.st_mode), owner=st.st_uid, group=st.st_gid),
        timestamps=Timestamps(st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns),
    )
    try:
        data = _image_info(path)
    except ImageError as err:
        log.warning("volume %s: cannot read its image header (%s); shown as raw", path, err)
        return info
    info.format = str(data.get("format", "raw"))
    if info.format == "luks":  # a raw LUKS container, as libvirt shows one: its payload's capacity
        info.format, info.encryption = "raw", "luks"
        info.capacity = int(data.get("virtual-size", st.st_size))
    elif info.format != "raw":
        info.capacity = int(data.get("virtual-size", st.st_size))
    if info.format == "qcow2":
        specific = data.get("format-specific", {}).get("data", {})
        info.compat = specific.get("compat")
        info.cluster_size = data.get("cluster-size")
        if info.compat != "0.10":
            info.features = ["lazy_refcounts"] if specific.get("lazy-refcounts") else []
        crypt = specific.get("encrypt", {}).get("format")
        info.encryption = {"luks": "luks", "aes": "qcow"}.get(str(crypt)) if crypt else None
    backing = data.get("backing-filename")
    if backing:
        info.backing = BackingStore(
            path=os.path.normpath(os.path.join(folder, backing)),
            format=data.get("backing-filename-format"),
        )
    return info


def backing_chain(path: str) -> list[str]:
    """The real paths of ``path`` and every file under it in its backing chain (best effort)."""
    chain = [os.path.realpath(path)]
    current = path
    for _ in range(MAX_CHAIN):
        try:
            data = _image_info(current)
        except (ImageError, OSError):
            break
        name = data.get("backing-filename")
        if not name:
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), str(name)))
        real = os.path.realpath(current)
        if real in chain:
            break
        chain.append(real)
    return chain


def _temp_path(folder: str, name: str) -> str:
    return os.path.join(folder, f".{name}.{uuidlib.uuid4().hex[:8]}.tmp")


def _publish(tmp: str, final: str, name: str) -> None:
    """Give the finished temporary file its real name, refusing to replace anything."""
    try:
        os.link(tmp, final)
    except FileExistsError as err:
        raise AlreadyExists(f"storage volume '{name}' exists already") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _apply_permissions(path: str, perms: Permissions) -> None:
    os.chmod(path, perms.mode if perms.mode is not None else DEFAULT_VOLUME_MODE)
    if perms.owner is not None or perms.group is not None:
        os.chown(path, -1 if perms.owner is None else perms.owner, -1 if perms.group is None else perms.group)


def _building(folder: str, name: str, build: Callable[[str], None], perms: Permissions) -> str:
    final = volume_path(folder, name)
    if os.path.lexists(final):
        raise AlreadyExists(f"storage volume '{name}' exists already")
    tmp = _temp_path(folder, name)
    try:
        build(tmp)
        _apply_permissions(tmp, perms)
        _publish(tmp, final, name)
    except ImageError as err:
        raise OperationFailed(f"cannot create volume '{name}': {err}") from err
    except OSError as err:
        raise OperationFailed(f"cannot create volume '{name}': {err.strerror or err}") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return final


def create(
    folder: str, vol: VolumeDef, *, prealloc_metadata: bool = False, passphrase: bytes | None = None
) -> str:
    """Create ``vol`` in ``folder``; its backing path (if any) must already be resolved and checked.
    An encrypted volume (``<encryption>``) is made with ``passphrase``, its secret's value: a qcow2 with
    LUKS inside, or for format raw a LUKS container (as libvirt makes them), with the cipher its
    ``<cipher>``/``<ivgen>`` name."""
    if (vol.encryption is None) != (passphrase is None):
        raise OperationFailed(f"volume '{vol.name}': an encrypted volume is made with its secret's value")
    from pyvirt.image.api import create_image

    spec, hash_alg = _cipher_spec(vol)

    def build(tmp: str) -> None:
        if vol.format == "raw" and passphrase is not None:
            from pyvirt.image.luks_raw import create_luks

            create_luks(tmp, vol.capacity or 0, passphrase, spec=spec, hash_alg=hash_alg)
            return  # as libvirt's: the payload left a hole, whatever <allocation> says
        if vol.format == "raw":
            capacity = vol.capacity or 0
            # libvirt allocates a raw volume up to <allocation>, which defaults to the capacity.
            allocation = capacity if vol.allocation is None else min(vol.allocation, capacity)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, DEFAULT_VOLUME_MODE)
            try:
                os.ftruncate(fd, capacity)
                if allocation:
                    try:
                        os.posix_fallocate(fd, 0, allocation)
                    except OSError as err:
                        raise OperationFailed(
                            f"cannot allocate {allocation} bytes for volume '{vol.name}': {err.strerror}"
                        ) from err
            finally:
                os.close(fd)
            return
        backing = vol.backing
        create_image(
            tmp,
            "qcow2",
            vol.capacity,
            backing=backing.path if backing else None,
            backing_fmt=(backing.format or "raw") if backing else None,
            cluster_size=vol.cluster_size or 65536,
            compat=vol.compat or "1.1",
            preallocation="metadata" if prealloc_metadata else "off",
            lazy_refcounts=bool(vol.features and "lazy_refcounts" in vol.features),
            encrypt_passphrase=passphrase,
            encrypt_hash_alg=hash_alg if passphrase is not None else None,
            encrypt_cipher=spec if passphrase is not None else None,
        )

    return _building(folder, vol.name, build, vol.permissions)


def _cipher_spec(vol: VolumeDef) -> tuple[CipherSpec, str]:
    """The LUKS cipher and hash of a new encrypted volume: its ``<cipher>``/``<ivgen>``, else
    qemu-img's defaults (aes-256 xts plain64, sha256); what cannot be made refused by name."""
    from pyvirt.image.luks import DEFAULT_CIPHER, HASHES, CipherSpec

    c = vol.encryption.cipher if vol.encryption is not None else None
    if c is None:
        return DEFAULT_CIPHER, "sha256"
    what = f"the <cipher> of volume '{vol.name}'"
    try:
        spec = CipherSpec(
            f"{c.name}-{c.size}",
            c.mode or "xts",
            c.ivgen or "plain64",
            c.ivgen_hash,
            source=what,
        )
    except ImageError as err:
        raise UnsupportedConfig(f"unsupported configuration: {err}") from err
    if c.hash is not None and c.hash not in HASHES:
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: hash '{c.hash}' is not supported ({', '.join(HASHES)} are)"
        )
    return spec, c.hash or "sha256"


def _allocate(path: str, length: int, name: str) -> None:
    if not length:
        return
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as err:
        raise OperationFailed(f"cannot allocate {length} bytes for volume '{name}': {err.strerror}") from err
    finally:
        os.close(fd)


def _qcow2_options(vol: VolumeDef, prealloc_metadata: bool) -> dict[str, str]:
    options = {"cluster_size": str(vol.cluster_size or 65536), "compat": vol.compat or "1.1"}
    if prealloc_metadata:
        options["preallocation"] = "metadata"
    if vol.features and "lazy_refcounts" in vol.features:
        options["lazy_refcounts"] = "on"
    return options


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def reflink_copy(source: str, target: str) -> None:
    """Make ``target`` share ``source``'s blocks (the FICLONE ioctl): an instant copy-on-write copy on
    btrfs or XFS; an error naming the file system's refusal elsewhere (never a plain copy)."""
    import fcntl

    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, DEFAULT_VOLUME_MODE)
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as err:
            raise OperationFailed(
                f"failed to clone files from '{source}': {err.strerror} (--reflink needs a file system "
                "with copy-on-write clones, such as btrfs or XFS, holding both volumes)"
            ) from err
        finally:
            os.close(dst)
    finally:
        os.close(src)


def create_from(
    folder: str,
    vol: VolumeDef,
    source: VolumeInfo,
    *,
    prealloc_metadata: bool = False,
    reflink: bool = False,
    passphrase: bytes | None = None,
    source_passphrase: bytes | None = None,
) -> str:
    """``vol`` with ``source``'s content, as libvirt's ``vol-create-from`` makes it.

    The content is copied as the guest sees it (a backing chain is flattened into the new volume, and
    a backing store named in ``vol`` is not used); the capacity is ``vol``'s or, when larger, the
    input's; a raw volume is allocated up to ``<allocation>`` (by default, all of it). With
    ``<encryption>``, the copy is encrypted with ``passphrase`` (its secret's value) as :func:`create`
    makes it: a LUKS container for raw, LUKS inside a qcow2; an encrypted input is read with
    ``source_passphrase``.
    """
    from pyvirt.image.api import convert

    capacity = max(vol.capacity or 0, source.capacity)
    if reflink and (vol.format != "raw" or source.format != "raw"):
        raise InvalidArgument("--reflink needs a raw input volume and a raw new volume")
    if (vol.encryption is None) != (passphrase is None):
        raise OperationFailed(f"volume '{vol.name}': an encrypted volume is made with its secret's value")
    if vol.encryption is not None:
        if reflink:
            raise InvalidArgument(
                f"--reflink cannot make the encrypted volume '{vol.name}': it has its own key"
            )
        assert passphrase is not None
        spec, hash_alg = _cipher_spec(vol)
        src_fmt = "luks" if source.format == "raw" and source.encryption else source.format

        def build_encrypted(tmp: str) -> None:
            from pyvirt.image.converter import convert as convert_images

            options = {"size": str(capacity)}
            if vol.format == "raw":
                options.update(_luks_options(spec, hash_alg))
            else:
                options.update(_qcow2_options(vol, prealloc_metadata))
                options["encrypt.hash-alg"] = hash_alg
            convert_images(
                source.path,
                tmp,
                "luks" if vol.format == "raw" else "qcow2",
                src_fmt=src_fmt,
                options=options,
                allow_backing_outside=True,
                src_passphrase=source_passphrase,
                dst_passphrase=passphrase,
                dst_cipher=spec if vol.format != "raw" else None,
            )

        return _building(folder, vol.name, build_encrypted, vol.permissions)

    def build(tmp: str) -> None:
        if reflink:
            reflink_copy(source.path, tmp)
            if capacity > os.path.getsize(tmp):
                os.truncate(tmp, capacity)
            return
        options = {"size": str(capacity)}
        if vol.format == "qcow2":
            options.update(_qcow2_options(vol, prealloc_metadata))
        convert(
            source.path,
            tmp,
            vol.format,
            src_fmt=source.format,
            options=options,
            allow_backing_outside=True,
            share_extents=False,  # a copy of its own, as libvirt makes it without --reflink
        )
        if vol.format == "raw":
            _allocate(tmp, capacity if vol.allocation is None else min(vol.allocation, capacity), vol.name)

    return _building(folder, vol.name, build, vol.permissions)


def _luks_options(spec: CipherSpec, hash_alg: str) -> dict[str, str]:
    """qemu-img's ``-O luks`` options for ``spec`` and ``hash_alg``."""
    out = {"cipher-alg": spec.alg, "cipher-mode": spec.mode, "ivgen-alg": spec.ivgen, "hash-alg": hash_alg}
    if spec.ivgen_hash:
        out["ivgen-hash-alg"] = spec.ivgen_hash
    return out


def clone(
    folder: str,
    source: VolumeInfo,
    new_name: str,
    *,
    prealloc_metadata: bool = False,
    reflink: bool = False,
    passphrase: bytes | None = None,
    cipher: Cipher | None = None,
) -> str:
    """Copy ``source`` to a new volume of the same format (a qcow2 keeps its backing file); with
    ``reflink``, the file's blocks are shared (copy-on-write) instead of copied. An encrypted volume is
    read with ``passphrase`` and the copy made with it, a new LUKS image (its own master key; ``cipher``
    as the source was made with, else qemu-img's default), as libvirt clones one."""
    from pyvirt.image.api import convert

    if reflink and prealloc_metadata:
        raise InvalidArgument(
            "--reflink and --prealloc-metadata cannot go together: a clone shares the blocks"
        )
    if source.encryption is not None:
        if reflink:
            raise InvalidArgument(
                f"--reflink cannot clone the encrypted volume '{source.name}': the clone gets its own key"
            )
        assert passphrase is not None
        vol = VolumeDef(name=new_name, capacity=source.capacity, format=source.format)
        vol.encryption = DiskEncryption(cipher=cipher)
        spec, hash_alg = _cipher_spec(vol)

        def build_encrypted(tmp: str) -> None:
            if source.format == "raw":
                _copy_luks(source.path, tmp, source.capacity, passphrase, spec, hash_alg)
                return
            from pyvirt.image.converter import convert as convert_images

            backing = source.backing
            convert_images(
                source.path,
                tmp,
                "qcow2",
                src_fmt="qcow2",
                backing=backing.path if backing else None,
                backing_fmt=(backing.format or "raw") if backing else None,
                options={"preallocation": "metadata"} if prealloc_metadata else {},
                src_passphrase=passphrase,
                dst_passphrase=passphrase,
                dst_cipher=spec,
            )

        return _building(folder, new_name, build_encrypted, Permissions(mode=source.permissions.mode))

    def build(tmp: str) -> None:
        if reflink:
            reflink_copy(source.path, tmp)
            return
        options = {"preallocation": "metadata"} if prealloc_metadata and source.format == "qcow2" else None
        backing = source.backing if source.format == "qcow2" else None
        out_fmt = source.format if source.format in ("raw", "qcow2") else "raw"
        convert(
            source.path,
            tmp,
            out_fmt,
            src_fmt=source.format,
            backing=backing.path if backing else None,
            backing_fmt=(backing.format or "raw") if backing else None,
            options=options,
            share_extents=False,  # a copy of its own, as libvirt makes it without --reflink
        )

    perms = Permissions(mode=source.permissions.mode)
    return _building(folder, new_name, build, perms)


def _copy_luks(src: str, dst: str, size: int, passphrase: bytes, spec: CipherSpec, hash_alg: str) -> None:
    """A new raw LUKS container holding what ``src``'s holds: every sector written (a hole in a
    container does not read as zeros)."""
    from pyvirt.image.luks_raw import LuksContainer, create_luks

    create_luks(dst, size, passphrase, spec=spec, hash_alg=hash_alg)
    with LuksContainer(src, passphrase) as inp, LuksContainer(dst, passphrase, readonly=False) as out:
        for offset in range(0, size, LUKS_COPY_CHUNK):
            out.write(offset, inp.read(offset, min(LUKS_COPY_CHUNK, size - offset)))


def resize(
    info: VolumeInfo, capacity: int, *, shrink: bool, allocate: bool, passphrase: bytes | None = None
) -> None:
    """Set the volume's capacity (bytes); the caller has checked direction and free space. A raw LUKS
    container's file grows or shrinks with its payload (the header stays) once ``passphrase`` opens
    it; an encrypted qcow2 is opened with ``passphrase``."""
    from pyvirt.image.api import resize as image_resize

    if info.format == "raw" and info.encryption is not None:
        _unlock_container(info, passphrase)  # as libvirt, which resizes it through qemu's luks driver
        header = info.physical - info.capacity
        _resize_file(info, header + capacity, allocate)
        return

    if info.format not in ("raw", "qcow2"):
        raise InvalidArgument(f"cannot resize volume '{info.name}' of format '{info.format}'")
    if info.format == "qcow2" and capacity < info.capacity:
        raise InvalidArgument(f"cannot shrink qcow2 volume '{info.name}': only raw volumes can shrink")
    if allocate and info.format != "raw":
        raise InvalidArgument("preallocating the new capacity (--allocate) needs a raw volume")
    try:
        image_resize(info.path, capacity, fmt=info.format, shrink=shrink, passphrase=passphrase)
        if allocate and capacity > info.capacity:
            fd = os.open(info.path, os.O_RDWR | os.O_CLOEXEC)
            try:
                os.posix_fallocate(fd, info.capacity, capacity - info.capacity)
            finally:
                os.close(fd)
    except ImageError as err:
        raise OperationFailed(f"cannot resize volume '{info.name}': {err}") from err
    except OSError as err:
        raise OperationFailed(f"cannot resize volume '{info.name}': {err.strerror}") from err


def _unlock_container(info: VolumeInfo, passphrase: bytes | None) -> None:
    """A raw LUKS container opened with ``passphrase`` (the secret checked), or the refusal."""
    from pyvirt.image.luks_raw import LuksContainer

    if passphrase is None:
        raise InvalidArgument(f"cannot resize the encrypted volume '{info.name}' without its secret")
    try:
        LuksContainer(info.path, passphrase).close()
    except ImageError as err:
        raise OperationFailed(f"cannot resize volume '{info.name}': {err}") from err


def _resize_file(info: VolumeInfo, size: int, allocate: bool) -> None:
    try:
        old = os.path.getsize(info.path)
        os.truncate(info.path, size)
        if allocate and size > old:
            fd = os.open(info.path, os.O_RDWR | os.O_CLOEXEC)
            try:
                os.posix_fallocate(fd, old, size - old)
            finally:
                os.close(fd)
    except OSError as err:
        raise OperationFailed(f"cannot resize volume '{info.name}': {err.strerror}") from err


def wipe(info: VolumeInfo, algorithm: str = "zero") -> None:
    """Overwrite the volume's file so that nothing it held can be read back (see the module's text)."""
    if algorithm == "trim":
        raise UnsupportedConfig("argument unsupported: 'trim' algorithm not supported")
    if algorithm not in WIPE_ALGORITHMS:
        raise InvalidArgument(f"invalid argument: unsupported algorithm '{algorithm}'")
    if algorithm != "zero":
        _scrub(info.path, algorithm)
        return
    try:
        _zero_file(info.path)
    except OSError as err:
        raise OperationFailed(f"cannot wipe volume '{info.name}': {err.strerror}") from err


def _zero_file(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if st.st_blocks < st.st_size // 512:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, st.st_size)
        else:
            zeros = bytes(min(WIPE_CHUNK, st.st_size))
            pos = 0
            while pos < st.st_size:
                pos += os.pwrite(fd, zeros[: st.st_size - pos], pos)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _scrub(path: str, algorithm: str) -> None:
    argv = ["scrub", "-f", "-p", algorithm, path]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise OperationFailed("Cannot find 'scrub' in path: No such file or directory") from err
    if result.returncode != 0:
        raise OperationFailed(
            f"internal error: Child process ({' '.join(argv)}) unexpected exit status "
            f"{result.returncode}: {result.stderr.strip()}"
        )
