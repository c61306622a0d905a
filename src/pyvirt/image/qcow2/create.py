"""Create a qcow2 file laid out as qemu-img does: header, refcount table, refcount block, L1 table."""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.fileio import pwrite_full
from pyvirt.image.qcow2 import header as H

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyvirt.image.luks import CipherSpec

PREALLOC_MODES = ("off", "metadata", "falloc", "full")


def create_qcow2(
    path: str,
    size: int,
    *,
    cluster_size: int = 65536,
    compat: str = "1.1",
    backing: str | None = None,
    backing_fmt: str | None = None,
    lazy_refcounts: bool = False,
    refcount_bits: int = 16,
    preallocation: str = "off",
    compression_type: str = "zlib",
    encrypt_passphrase: bytes | None = None,
    encrypt_iter_time: int = 2000,
    encrypt_hash_alg: str = "sha256",
    encrypt_cipher: CipherSpec | None = None,
    data_file: str | None = None,
    data_file_raw: bool = False,
    extended_l2: bool = False,
) -> None:
    """Write a new, empty qcow2 image (replacing ``path``); preallocate as asked.

    With ``data_file`` the guest data goes to that file (created empty, of the virtual size, by the
    name given as qemu-img creates it); with ``data_file_raw`` (or any preallocation) every cluster
    is mapped at once to its own offset there, so the data file is the guest's raw image.

    With ``encrypt_passphrase`` the image is LUKS-encrypted (aes-xts-plain64), its LUKS header in
    clusters after the L1 table, as qemu-img puts it.

    With ``extended_l2`` each L2 entry has a subcluster bitmap (:mod:`.subclusters`).
    """
    if cluster_size & (cluster_size - 1) or not 512 <= cluster_size <= 2 << 20:
        raise ImageError("Cluster size must be a power of two between 512 and 2048k")
    if compat not in ("0.10", "1.1", "v2", "v3"):
        raise ImageError(f"Invalid parameter '{compat}' for compat (use 0.10 or 1.1)")
    version = 2 if compat in ("0.10", "v2") else 3
    if extended_l2 and version == 2:
        raise ImageError(
            "Extended L2 entries are only supported with compatibility level 1.1 and above "
            "(use version=v3 or greater)"
        )
    if extended_l2 and cluster_size < 16384:
        raise ImageError("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes")
    if refcount_bits not in (1, 2, 4, 8, 16, 32, 64) or (version == 2 and refcount_bits != 16):
        raise ImageError(
            "Refcount width must be a power of two and may not exceed 64 bits (16 for compat=0.10)"
        )
    if lazy_refcounts and version == 2:
        raise ImageError(
            "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)"
        )
    if compression_type not in H.COMPRESSION_TYPES:
        raise ImageError(f"Parameter 'compression-type' does not accept value '{compression_type}'")
    if compression_type != "zlib" and version == 2:
        raise ImageError(
            "Non-zlib compression type is only supported with compatibility level 1.1 and above "
            "(use version=v3 or greater)"
        )
    if preallocation not in PREALLOC_MODES:
        raise ImageError(f"Invalid parameter '{preallocation}' for preallocation")
    if encrypt_passphrase is not None and preallocation != "off":
        raise ImageError("Preallocation of encrypted qcow2 images is not supported by pyvirt img")
    if data_file_raw and not data_file:
        raise ImageError("data-file-raw requires data-file")
    if data_file and version == 2:
        raise ImageError(
            "External data files are only supported with compatibility level 1.1 and above "
            "(use version=v3 or greater)"
        )
    if size % 512:
        raise ImageError("Image size must be a multiple of 512 bytes")
    if backing and not backing_fmt:
        raise ImageError("Backing file specified without backing format (use -F FMT)")
    if backing and preallocation != "off" and not extended_l2:
        raise ImageError(
            "Backing file and preallocation can only be used at the same time if extended_l2 is on"
        )
    cb = cluster_size.bit_length() - 1
    cs = cluster_size
    l1_size = -(-size // (cs * (cs // (16 if extended_l2 else 8))))
    if l1_size * 8 > H.MAX_L1_BYTES:
        raise ImageError(f"Image size {size} is too large for cluster size {cs} (L1 table too big)")
    h = H.Header(
        version=version,
        cluster_bits=cb,
        size=size,
        l1_size=l1_size,
        refcount_order=refcount_bits.bit_length() - 1,
        refcount_table_offset=cs,
        refcount_table_clusters=1,
        compatible_features=H.COMPAT_LAZY_REFCOUNTS if lazy_refcounts else 0,
        backing_file=backing,
        backing_format=backing_fmt if backing else None,
        compression_type=H.COMPRESSION_TYPES.index(compression_type),
        incompatible_features=(H.INCOMPAT_COMPRESSION if compression_type != "zlib" else 0)
        | (H.INCOMPAT_EXTL2 if extended_l2 else 0),
    )
    if data_file:
        h.data_file = data_file
        h.incompatible_features |= H.INCOMPAT_DATA_FILE
        if data_file_raw:
            h.autoclear_features |= H.AUTOCLEAR_DATA_FILE_RAW
    h.pack(cs)  # refuses a backing name that does not fit, before anything is created
    if data_file:
        try:
            dfd = os.open(data_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as err:
            raise ImageError(f"Could not create '{data_file}': {err.strerror}") from err
        try:
            os.ftruncate(dfd, size)
        finally:
            os.close(dfd)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        if _fits_one_refcount_block(h):
            _write_metadata_one_block(fd, h)
        else:
            _write_metadata(fd, h, path)
    except BaseException:
        os.close(fd)
        _unlink(path)
        raise
    os.close(fd)
    if encrypt_passphrase is not None:
        try:
            _add_luks(path, encrypt_passphrase, encrypt_iter_time, encrypt_hash_alg, encrypt_cipher)
        except BaseException:
            _unlink(path)
            raise
    if data_file and (data_file_raw or preallocation != "off"):
        try:
            _map_data_file(path, preallocation)
        except BaseException:
            _unlink(path)
            _unlink(data_file)
            raise
    elif preallocation != "off":
        try:
            _preallocate(path, preallocation)
        except BaseException:
            _unlink(path)
            raise


def _map_data_file(path: str, mode: str) -> None:
    """Map every cluster to its own offset in the external data file; falloc/full reserve or
    write that file's blocks."""
    from pyvirt.image.qcow2.image import Qcow2Image
    from pyvirt.image.qcow2.tables import OFLAG_COPIED

    img = Qcow2Image.open(path, readonly=False)
    try:
        cs, cb = img.cs, img.cb
        nclusters = -(-img.size // cs)
        c = 0
        while c < nclusters:
            l1i = c >> img.l2_bits
            stop = min(nclusters, (l1i + 1) << img.l2_bits)
            table, toff = img._l2_for_write(l1i)
            for k in range(c, stop):
                table[k & img.l2_mask] = (k << cb) | OFLAG_COPIED
            img.cache.mark_dirty(toff)
            c = stop
        img.write_metadata()
        if os.fstat(img.data_fd).st_size < nclusters * cs:  # whole clusters, as QEMU maps them
            os.ftruncate(img.data_fd, nclusters * cs)
        if mode == "falloc" and img.size:
            os.posix_fallocate(img.data_fd, 0, img.size)
        elif mode == "full":
            _fill_zeroes(img.data_fd, 0, img.size)
    finally:
        img.close()


def _add_luks(
    path: str, passphrase: bytes, iter_time: int, hash_alg: str, cipher: CipherSpec | None = None
) -> None:
    """Give a new image its LUKS header: clusters allocated for it, crypt method 2, the extension."""
    from pyvirt.image.luks import DEFAULT_CIPHER, create_header
    from pyvirt.image.qcow2.image import Qcow2Image

    area, _master = create_header(
        passphrase, iter_time_ms=iter_time, hash_name=hash_alg, spec=cipher or DEFAULT_CIPHER
    )
    img = Qcow2Image.open(path, readonly=False)
    try:
        clusters = -(-len(area) // img.cs)
        off = img.refs.alloc(clusters)
        pwrite_full(img.fd, [area, bytes(clusters * img.cs - len(area))], off)
        img.header.crypt_method = 2
        img.header.luks_header = (off, len(area))
        img.header_dirty = True
        img.write_metadata()
    finally:
        img.close()


def _metadata_clusters(h: H.Header) -> int:
    """Clusters of a new image's metadata: header, refcount table, refcount block, L1 table."""
    return 3 + -(-h.l1_size * 8 // h.cluster_size)


def _fits_one_refcount_block(h: H.Header) -> bool:
    """Whether the first refcount block covers all the metadata (always, with default options)."""
    return _metadata_clusters(h) <= h.cluster_size * 8 // h.refcount_bits


def _write_metadata_one_block(fd: int, h: H.Header) -> None:
    """Write what :func:`_write_metadata` writes when one refcount block suffices, byte for byte.

    Clusters 0, 1, 2 hold the header, the refcount table and its one block, the L1 table follows.
    Written here without :class:`Refcounts`, whose tables are arrays: importing ``array`` imports
    ``collections``, a tenth of what ``pyvirt img create`` costs.
    """
    cs = h.cluster_size
    h.refcount_table_offset, h.refcount_table_clusters = cs, 1
    h.l1_table_offset = 3 * cs if h.l1_size else 0
    header = h.pack(cs)
    pwrite_full(fd, [header + bytes(cs - len(header))], 0)
    pwrite_full(fd, [_refcounts_of_one(_metadata_clusters(h), h.refcount_bits, cs)], 2 * cs)
    pwrite_full(fd, [(2 * cs).to_bytes(8, "big") + bytes(cs - 8)], cs)
    if h.l1_size:
        pwrite_full(fd, [bytes(h.l1_size * 8)], h.l1_table_offset)


def _refcounts_of_one(n: int, bits: int, cs: int) -> bytes:
    """A refcount block (``cs`` bytes of ``bits``-wide entries) whose first ``n`` entries are 1."""
    if bits >= 8:
        data = (1).to_bytes(bits // 8, "big") * n
    else:  # several entries a byte, the first in the lowest bits (as Refcounts encodes them)
        per_byte = 8 // bits
        full, rest = divmod(n, per_byte)
        data = bytes([sum(1 << (i * bits) for i in range(per_byte))]) * full
        if rest:
            data += bytes([sum(1 << (i * bits) for i in range(rest))])
    return data + bytes(cs - len(data))


def _write_metadata(fd: int, h: H.Header, path: str) -> None:
    """Lay out the metadata with :class:`Refcounts`, which adds blocks and moves the table as needed."""
    from pyvirt.image.qcow2.refcount import Refcounts

    cs = h.cluster_size
    moved: list[tuple[int, int]] = []
    refs = Refcounts(
        fd,
        cluster_bits=h.cluster_bits,
        refcount_order=h.refcount_order,
        table_offset=cs,
        table_clusters=1,
        file_size=2 * cs,
        on_table_moved=lambda o, n: moved.append((o, n)),
        source=path,
    )
    refs.table = refs.table[:0]
    refs.table.extend([0] * (cs // 8))
    refs.add(0, 1)
    refs.add(1, 1)
    l1_clusters = -(-h.l1_size * 8 // cs)
    l1_off = refs.alloc(l1_clusters) if h.l1_size else 0
    h.l1_table_offset = l1_off
    if moved:
        h.refcount_table_offset, h.refcount_table_clusters = moved[-1]
    header = h.pack(cs)
    pwrite_full(fd, [header + bytes(cs - len(header))], 0)
    refs.flush()
    if h.l1_size:
        pwrite_full(fd, [bytes(h.l1_size * 8)], l1_off)


def _preallocate(path: str, mode: str) -> None:
    from pyvirt.image.qcow2.image import Qcow2Image
    from pyvirt.image.qcow2.tables import OFLAG_COPIED

    img = Qcow2Image.open(path, readonly=False)
    try:
        cs, cb = img.cs, img.cb
        nclusters = -(-img.size // cs)
        runs: list[tuple[int, int]] = []
        c = 0
        while c < nclusters:
            l1i = c >> img.l2_bits
            stop = min(nclusters, (l1i + 1) << img.l2_bits)
            table, toff = img._l2_for_write(l1i)
            base = img.refs.alloc(stop - c)
            runs.append((base, (stop - c) * cs))
            for k in range(stop - c):
                table[(c + k) & img.l2_mask] = (base + k * cs) | OFLAG_COPIED
            img.cache.mark_dirty(toff)
            c = stop
        img.write_metadata()
        end = img.refs.end << cb
        if mode == "metadata":
            if os.fstat(img.fd).st_size < end:
                os.ftruncate(img.fd, end)
        elif mode == "falloc":
            os.posix_fallocate(img.fd, 0, end)
        else:
            for base, n in runs:
                _fill_zeroes(img.fd, base, base + n)
            if os.fstat(img.fd).st_size < end:
                os.ftruncate(img.fd, end)
    finally:
        img.close()


def _fill_zeroes(fd: int, start: int, end: int) -> None:
    chunk = bytes(1 << 20)
    pos = start
    while pos < end:
        n = min(len(chunk), end - pos)
        pwrite_full(fd, [memoryview(chunk)[:n]], pos)
        pos += n


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 (contextlib.suppress: contextlib is slow to import)
        os.unlink(path)
    except OSError:
        pass
