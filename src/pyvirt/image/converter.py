"""``convert``: copy an image into a new one of any writable format, fast.

Big sequential chunks (2 MiB), holes found by block status (SEEK_DATA/SEEK_HOLE on raw files), zero
granules skipped rather than written, data lying in a source file copied file to file by the kernel
(``copy_file_range``, after a look at the mapped chunk for its zero granules), and with ``compress``
clusters deflated on every core by a thread pool (zlib drops the GIL) while the main thread reads and
writes.
"""

from __future__ import annotations

import _thread
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from pyvirt.image.base import ZERO_CHUNK, Image
from pyvirt.image.errors import ImageError
from pyvirt.image.opener import open_image
from pyvirt.image.options import parse_options
from pyvirt.image.pagecache import DropBehind, image_fds
from pyvirt.image.workers import Job, Pool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mmap import mmap

    from pyvirt.image.luks import CipherSpec

CHUNK = 2 << 20
PAGE = 4096
FICLONERANGE = 0x4020940D  # linux/fs.h: _IOW(0x94, 13, struct file_clone_range)
READ_AHEAD = 4
WRITE_BEHIND = 4
READERS = 2
FUSED_AHEAD = 4  # chunks a raw output's workers hold at once (see _copy)
WRITERS = 1  # two writers only spin on the inode lock
Progress = Callable[[float], None]
Extents = Iterator[tuple[int, int, bool, int, int]]  # start, length, maybe data, fd, file offset


def convert(
    src: str | Sequence[str],
    dst: str,
    out_fmt: str,
    *,
    src_fmt: str | None = None,
    compress: bool = False,
    progress: Progress | None = None,
    backing: str | None = None,
    backing_fmt: str | None = None,
    options: dict[str, str] | None = None,
    sparse_size: int = 4096,
    threads: int | None = None,
    allow_backing_outside: bool = False,
    durable: bool = False,
    force_share: bool = False,
    skip_create: bool = False,
    target_is_zero: bool = False,
    src_passphrase: bytes | None = None,
    dst_passphrase: bytes | None = None,
    dst_cipher: CipherSpec | None = None,
    bypass_cache: tuple[bool, bool] = (False, False),
    snapshot: tuple[str | None, str | None] | None = None,
    share_extents: bool = True,
) -> None:
    """Copy ``src`` into a new image ``dst``; with ``backing`` only what differs from it is written.
    ``share_extents=False``: no copy_file_range (which reflinks on a file system that shares extents),
    for copies that must own their blocks (a volume cloned without ``--reflink``, as libvirt copies it).

    ``src`` may be several images (all of format ``src_fmt``, or each probed): they are
    concatenated, as qemu-img does. ``skip_create`` (qemu-img's ``-n``) writes into an existing
    ``dst`` instead, zeroing what reads as zero unless ``target_is_zero``; with ``backing`` it then
    only names the mode (unallocated ranges of the source's top are left alone). Like qemu-img
    convert, the result is not fdatasync'ed unless ``durable``. ``bypass_cache`` (source, output):
    qemu-img's ``-T``/``-t none`` and ``directsync``: those files' pages leave the host page cache as
    the copy goes (the output synced first), so the copy neither fills the cache nor is served by it.
    ``snapshot`` (id, name) copies that internal snapshot of a single qcow2 source (``-l``).
    ``dst_cipher``: the LUKS cipher of a new output encrypted with ``dst_passphrase``.
    """
    from pyvirt.image.api import create_image

    sources = [src] if isinstance(src, str) else list(src)
    _check_flags(options or {}, skip_create=skip_create, target_is_zero=target_is_zero)
    opts = parse_options(options or {}, out_fmt)
    backing = backing or opts.pop("backing", None)  # type: ignore[assignment]
    backing_fmt = backing_fmt or opts.pop("backing_fmt", None)  # type: ignore[assignment]
    opts.pop("backing", None)
    opts.pop("backing_fmt", None)
    for k in ("encrypt_format", "encrypt_key_secret"):  # the caller passes the key itself
        opts.pop(k, None)
    if out_fmt == "luks":  # a container: its key-secret is the caller's dst_passphrase
        from pyvirt.image.options import luks_create_kwargs

        opts.pop("key-secret", None)
        if dst_passphrase is None:
            raise ImageError("Parameter 'key-secret' is required for cipher")
        opts = luks_create_kwargs(opts, dst_passphrase)
    elif dst_passphrase is not None:
        opts["encrypt_passphrase"] = dst_passphrase
        if dst_cipher is not None:
            opts["encrypt_cipher"] = dst_cipher
    _check_target(sources, out_fmt, backing, compress=compress, sparse_size=sparse_size, zero=target_is_zero)
    if snapshot is not None and len(sources) > 1:
        raise ImageError("No support for concatenating multiple snapshot")
    with _open_sources(sources, src_fmt, allow_backing_outside, force_share, src_passphrase) as s:
        if snapshot is not None:
            from pyvirt.image.qcow2.image import Qcow2Image
            from pyvirt.image.qcow2.snapshot import view_snapshot

            if not isinstance(s, Qcow2Image):
                raise ImageError(f"Failed to load snapshot: '{s.format}' images have no internal snapshots")
            view_snapshot(s, ident=snapshot[0], name=snapshot[1])
        if not skip_create:
            size = int(opts.pop("size", s.size))  # type: ignore[call-overload]
            create_image(
                dst,
                out_fmt,
                size,
                backing=backing,
                backing_fmt=backing_fmt,
                check_backing=False,
                **opts,  # type: ignore[arg-type]
            )
        try:
            with open_image(
                dst,
                fmt=out_fmt,
                readonly=False,
                backing=backing is not None or skip_create,
                allow_backing_outside=True,
                passphrase=dst_passphrase,
            ) as d:
                if d.size < s.size:
                    raise ImageError("output file is smaller than input file")
                d.durable = durable
                if d.format == "vmdk":
                    # As qemu-img: streamOptimized takes only compressed grains; other vmdk
                    # subformats store what -c asks to compress as it is.
                    compress = bool(getattr(d, "compressed", False))
                dropper = DropBehind(
                    [f for img in _source_files(s) for f in image_fds(img)] if bypass_cache[0] else [],
                    image_fds(d) if bypass_cache[1] else [],
                )
                _copy(
                    s,
                    d,
                    compress=compress,
                    progress=progress,
                    dropper=dropper,
                    sparse=sparse_size,
                    has_backing=backing is not None,
                    must_zero=backing is not None or (skip_create and not target_is_zero),
                    threads=threads,
                    size=s.size if skip_create else d.size,
                    share_extents=share_extents,
                )
                d.flush()
                dropper.drop()
        except BaseException:
            if not skip_create:
                try:  # noqa: SIM105 (contextlib is slow to import)
                    os.unlink(dst)
                except OSError:
                    pass
            raise


def _check_flags(options: dict[str, str], *, skip_create: bool, target_is_zero: bool) -> None:
    """qemu-img's checks of -n, -o and --target-is-zero, made before any file is opened."""
    if skip_create and options:
        raise ImageError("-o has no effect when skipping image creation")
    if target_is_zero and not skip_create:
        raise ImageError("--target-is-zero requires use of -n flag")


def _check_target(
    sources: list[str], out_fmt: str, backing: str | None, *, compress: bool, sparse_size: int, zero: bool
) -> None:
    if not sources:
        raise ImageError("Must specify image file name")
    if compress and out_fmt not in ("qcow2", "vmdk"):
        raise ImageError("Compression not supported for this file format")
    if sparse_size % 512:
        raise ImageError("Invalid buffer size for sparse output specified (-S must be a multiple of 512)")
    if zero and backing:
        raise ImageError("Cannot use --target-is-zero when the destination image has a backing file")
    if len(sources) > 1 and backing:
        raise ImageError(
            "Having a backing file for the target makes no sense when concatenating multiple input images"
        )


def _open_sources(
    sources: list[str],
    fmt: str | None,
    allow_outside: bool,
    force_share: bool,
    passphrase: bytes | None = None,
) -> Image:
    """One source opened as ever (the fast path), several as one :class:`ConcatImage`.

    ``passphrase`` unlocks LUKS-encrypted qcow2 sources."""
    if len(sources) == 1:
        return open_image(
            sources[0],
            fmt=fmt,
            allow_backing_outside=allow_outside,
            force_share=force_share,
            passphrase=passphrase,
        )
    from pyvirt.image.concat import ConcatImage

    parts: list[Image] = []
    try:
        for name in sources:
            parts.append(
                open_image(
                    name,
                    fmt=fmt,
                    allow_backing_outside=allow_outside,
                    force_share=force_share,
                    passphrase=passphrase,
                )
            )
    except BaseException:
        ConcatImage(parts).close()
        raise
    return ConcatImage(parts)


def _extents(s: Image, size: int, top_only: bool) -> Extents:
    """``(start, length, maybe_data, fd, file_offset)`` over ``[0, size)``.

    ``maybe_data`` False means the range reads as zero (or is left to the target's backing file).
    ``fd``/``file_offset`` say where the bytes lie when they can be read with a plain pread
    (uncompressed data in some file of the chain); ``fd`` is -1 otherwise.
    """
    from pyvirt.image.concat import ConcatImage
    from pyvirt.image.qcow2.image import Qcow2Image

    if isinstance(s, ConcatImage):
        for part, at in zip(s.parts, s.starts, strict=True):
            if at >= size:
                break
            for start, n, maybe_data, fd, host in _extents(part, min(part.size, size - at), False):
                yield start + at, n, maybe_data, fd, host
        if s.size < size:
            yield s.size, size - s.size, False, -1, 0
        return
    if top_only and isinstance(s, Qcow2Image) and s.backing is not None:
        for start, n, alloc in s.allocated_in_top(0, min(size, s.size)):
            yield start, n, alloc, -1, 0
    else:
        chain = s.chain()
        pos = 0
        step = 1 << 30
        limit = min(size, s.size)
        carry = 0  # bytes of this extent the data before it has taken over
        while pos < limit:
            n = min(step, limit - pos)
            for x in s.block_status(pos, n):
                fd = -1
                if x.data and x.offset is not None and not x.compressed and x.depth < len(chain):
                    img = chain[x.depth]
                    if not img.encrypted and (
                        img.format in ("raw", "qcow2", "vdi", "vpc", "vhdx")
                        or (img.format == "vmdk" and img.fd >= 0)
                    ):
                        fd = img.data_fd
                start, length, host, maybe_data = x.start, x.length, x.offset or 0, x.data or not x.zero
                if carry:
                    start, length, host, carry = start + carry, length - carry, host + carry, 0
                    if length <= 0:
                        carry = -length
                        continue
                if maybe_data and (start + length) % 512:
                    # qemu-img converts whole sectors: data ending inside one (a raw file's
                    # odd-sized end) is read and written up to the sector's end.
                    carry = -(start + length) % 512
                    length += carry
                yield start, length, maybe_data, fd, host
            pos += n
    if s.size < size:
        yield s.size, size - s.size, False, -1, 0


def _copy(
    s: Image,
    d: Image,
    *,
    compress: bool,
    progress: Progress | None,
    dropper: DropBehind | None = None,
    sparse: int,
    has_backing: bool,
    must_zero: bool,
    threads: int | None,
    size: int,
    share_extents: bool = True,
) -> None:
    """Stream ``s`` into ``d``; ``must_zero``: ranges reading as zero are zeroed in ``d``, not skipped.

    Reader threads keep chunks ahead (preadv drops the GIL), the calling thread finds zeros and
    allocates, and writer threads fill the reserved file ranges (or a deflate pool compresses).
    A buffer goes back to the readers only once every write from it has finished.
    """
    from mmap import mmap as new_buffer

    from pyvirt.image.fileio import pread_full, pwrite_full

    granule = d.write_granule() or sparse or 512
    if sparse == 0:
        granule = 0
    done = 0
    last_pct = -1.0
    reader = Pool(READERS)
    generic_lock = _thread.allocate_lock()

    # These formats' reads may run on several threads at once (decompression then uses both cores).
    concurrent_reads = all(
        img.format in ("qcow2", "raw", "vmdk", "vdi", "vpc", "vhdx") for img in _source_files(s)
    )

    def generic_read(pos: int, buf: memoryview) -> None:
        if concurrent_reads:
            s.readinto(pos, buf)
            return
        with generic_lock:
            s.readinto(pos, buf)

    def direct_read(fd: int, buf: memoryview, host: int) -> None:
        pread_full(fd, buf, host)  # bytes past the end of the file read as zeros

    def read_chunk(pos: int, buf: memoryview, fd: int, host: int) -> None:
        if fd >= 0:
            pread_full(fd, buf, host)
        else:
            generic_read(pos, buf)

    comp = _Compressor(d, threads, must_zero, read_chunk) if compress else None
    writer = Pool(WRITERS)
    free: list[mmap] = []
    ahead: deque[tuple[int, int, mmap, Job[None]]] = deque()
    inflight: deque[tuple[mmap, list[Job[None]]]] = deque()

    def report(n: int) -> None:
        nonlocal done, last_pct
        done += n
        if dropper is not None:
            dropper.advance(n)
        if progress is not None and size:
            pct = done * 100.0 / size
            if pct - last_pct >= 0.01 or done >= size:
                last_pct = pct
                progress(pct)

    def get_buffer() -> mmap:
        if free:
            return free.pop()
        if len(inflight) >= WRITE_BEHIND:
            buf, futs = inflight.popleft()
            for f in futs:
                f.result()
            return buf
        # Page-aligned: the kernel copies into a bytearray's buffer (16 bytes past a page start)
        # at less than half the speed; that copy was most of a plain convert's CPU time.
        return new_buffer(-1, CHUNK)

    def consume() -> None:
        pos, n, buf, fut = ahead.popleft()
        fut.result()
        futs: list[Job[None]] = []

        def sink(at: int, data: memoryview) -> None:
            runs = d.map_for_write(at, len(data))
            if runs is None:
                d.write(at, data)
                return
            for gpos, host, m in runs:
                futs.append(writer.submit(pwrite_full, d.fd, [data[gpos - at : gpos - at + m]], host))

        _write_nonzero(d, pos, buf, n, granule, must_zero, sink)
        if futs:
            inflight.append((buf, futs))
        else:
            free.append(buf)
        report(n)

    # Into a raw file, a chunk needs no allocation in order: one worker reads it, finds its zero
    # granules and writes it, while the other does the same with the next (one reads while the
    # other waits for the output's inode lock). Handing each chunk from a reader to this thread
    # and on to a writer cost two thread wake-ups a chunk and this thread's share of the GIL:
    # vdi/vpc -> raw ran at 0.7x qemu-img that way.
    fused = comp is None and d.format == "raw" and d.fd >= 0
    fused_jobs: deque[Job[None]] = deque()

    def fused_copy(pos: int, n: int, fd: int, host: int) -> None:
        buf = free.pop() if free else new_buffer(-1, CHUNK)
        try:
            read_chunk(pos, memoryview(buf)[:n], fd, host)

            def sink(at: int, data: memoryview) -> None:
                runs = d.map_for_write(at, len(data))
                if runs is None:
                    d.write(at, data)
                    return
                for gpos, h, m in runs:
                    pwrite_full(d.fd, [data[gpos - at : gpos - at + m]], h)

            _write_nonzero(d, pos, buf, n, granule, must_zero, sink)
        finally:
            free.append(buf)

    offload = _Offload(d, writer, granule, must_zero) if comp is None and share_extents else None
    extents = _extents(s, size, top_only=has_backing)
    if comp is not None:
        extents = _whole_clusters(extents, comp.cs, size)
    try:
        for start, length, maybe_data, fd, host in extents:
            if not maybe_data:
                if must_zero and not _top_unallocated_skip(s, has_backing):
                    d.write_zeroes(start, length)
                report(length)
                continue
            pos, end = start, start + length
            while pos < end:
                n = min(CHUNK - pos % CHUNK, end - pos)
                if comp is not None:
                    # Read and compressed on the compressor's threads: one hand-off a chunk.
                    comp.submit(pos, n, fd, host + pos - start)
                    report(n)
                    pos += n
                    continue
                if fd >= 0 and offload is not None and offload.take(pos, n, fd, host + pos - start):
                    report(n)
                    pos += n
                    continue
                if fused:
                    fused_jobs.append(reader.submit(fused_copy, pos, n, fd, host + pos - start))
                    if len(fused_jobs) >= FUSED_AHEAD:
                        fused_jobs.popleft().result()
                    report(n)
                    pos += n
                    continue
                buf = get_buffer()
                mv = memoryview(buf)[:n]
                if fd >= 0:
                    fut = reader.submit(direct_read, fd, mv, host + pos - start)
                else:
                    fut = reader.submit(generic_read, pos, mv)
                ahead.append((pos, n, buf, fut))
                if len(ahead) >= READ_AHEAD:
                    consume()
                pos += n
        while ahead:
            consume()
        while fused_jobs:
            fused_jobs.popleft().result()
        while inflight:
            for f in inflight.popleft()[1]:
                f.result()
        if offload is not None:
            offload.finish()
        if comp is not None:
            comp.finish()
    finally:
        reader.shutdown()
        writer.shutdown()
        if comp is not None:
            comp.shutdown()
    if progress is not None and done < size:
        progress(100.0)


class _Offload:
    """Shares data lying in a source file with the output where the file system can (a reflink,
    ``FICLONERANGE``): the chunk is mapped (no copy) to find its zero granules, and the rest is
    cloned file to file. Where the file system refuses clones (ext4, tmpfs, another file system),
    runs are copied by ``copy_file_range`` (one copy in the kernel instead of a read and a write),
    except into a raw file: there the rest of the source is read by the two workers, each reading,
    checking and writing its own 2 MiB chunk, which keeps both cores busy (qcow2 -> raw on ext4,
    median of 9: 0.49 s against 0.52 s; into qcow2 the kernel's copy stays faster, 0.61 against
    0.75 s), and where the output's blocks are not page-aligned (vpc: behind a 512-byte bitmap),
    which the kernel copies into partial pages."""

    def __init__(self, d: Image, writer: Pool, granule: int, must_zero: bool) -> None:
        self.d, self.writer, self.granule, self.must_zero = d, writer, granule, must_zero
        self.enabled = hasattr(os, "copy_file_range") and d.fd >= 0 and not d.encrypted
        self.jobs: deque[Job[None]] = deque()
        self.sizes: dict[int, int] = {}
        self.clones = True  # until the file system refuses one
        self.tried = False  # a clone has been tried: until then, each chunk waits for the answer

    def take(self, pos: int, n: int, fd: int, host: int) -> bool:
        """Copy guest ``[pos, pos+n)`` from ``fd`` at ``host``; False if it must be read instead
        (not page-aligned, or running past the end of the file, which a read zero-fills)."""
        from mmap import MAP_SHARED, PROT_READ, mmap

        if not self.enabled or host % PAGE:
            return False
        size = self.sizes.get(fd)
        if size is None:
            size = self.sizes[fd] = os.fstat(fd).st_size
        if host + n > size:
            return False
        view = mmap(fd, n, MAP_SHARED, PROT_READ, offset=host)

        def sink(at: int, data: memoryview) -> None:
            runs = self.d.map_for_write(at, len(data))
            if runs is None:
                self.d.write(at, data)
                return
            for gpos, h, m in runs:
                self.jobs.append(self.writer.submit(self._move, fd, host + gpos - pos, h, m))

        try:
            _write_nonzero(self.d, pos, view, n, self.granule, self.must_zero, sink)
        finally:
            try:  # noqa: SIM105 (contextlib is slow to import)
                view.close()
            except BufferError:  # a view of it is still referenced: the collector unmaps it
                pass
        if not self.tried:
            self.finish()
        while len(self.jobs) > 2 * WRITE_BEHIND:
            self.jobs.popleft().result()
        return True

    def _move(self, src: int, src_off: int, dst_off: int, n: int) -> None:
        """On the writer thread: clone the run, or copy it (then stop offloading, see the class)."""
        self.tried = True
        if self.clones:
            import errno
            from fcntl import ioctl
            from struct import pack

            try:
                ioctl(self.d.fd, FICLONERANGE, pack("=qQQQ", src, src_off, n, dst_off))
                return
            except OSError as err:
                # EINVAL: a range not aligned to the file system's blocks (a clone may still work
                # for the next); anything else (EOPNOTSUPP, EXDEV ...): no clones here.
                if err.errno != errno.EINVAL or not (src_off | dst_off | n) % PAGE:
                    self.clones = False
                    self.enabled = self.d.format != "raw" and not dst_off % PAGE
        _copy_range(src, src_off, self.d.fd, dst_off, n)

    def finish(self) -> None:
        while self.jobs:
            self.jobs.popleft().result()


def _copy_range(src: int, src_off: int, dst: int, dst_off: int, n: int) -> None:
    """``n`` bytes from file to file, by the kernel (a plain read and write where it refuses)."""
    from pyvirt.image.fileio import pread_full, pwrite_full

    while n:
        try:
            done = os.copy_file_range(src, dst, n, src_off, dst_off)
        except OSError:
            done = 0
        if done <= 0:
            buf = bytearray(n)
            pread_full(src, memoryview(buf), src_off)
            pwrite_full(dst, [memoryview(buf)], dst_off)
            return
        src_off, dst_off, n = src_off + done, dst_off + done, n - done


def _source_files(s: Image) -> list[Image]:
    """Every image the source reads from: its chain, or each part's chain."""
    from pyvirt.image.concat import ConcatImage

    if isinstance(s, ConcatImage):
        return [img for part in s.parts for img in part.chain()]
    return s.chain()


def _whole_clusters(extents: Extents, cs: int, size: int) -> Extents:
    """The extents for a compressed target: a cluster holding any data is read whole (as qemu-img
    does), so every data range starts on a cluster boundary; one so widened is read generically."""
    at = 0  # what lies before has been yielded
    pend: list[int] = []  # a widened data range not yet yielded: start, end, fd, host
    for start, length, maybe_data, fd, host in extents:
        if not maybe_data:
            continue
        a, b = start - start % cs, min(size, -(-(start + length) // cs) * cs)
        if (a, b) != (start, start + length):
            fd, host = -1, 0
        if pend and a < pend[1]:
            pend[1], pend[2], pend[3] = max(pend[1], b), -1, 0
            continue
        if pend:
            yield from _data_after_gap(at, pend)
            at = pend[1]
        pend = [a, b, fd, host]
    if pend:
        yield from _data_after_gap(at, pend)
        at = pend[1]
    if at < size:
        yield at, size - at, False, -1, 0


def _data_after_gap(at: int, pend: list[int]) -> Extents:
    start, end, fd, host = pend
    if at < start:
        yield at, start - at, False, -1, 0
    yield start, end - start, True, fd, host


def _top_unallocated_skip(s: Image, has_backing: bool) -> bool:
    """With a target backing file, regions unallocated in the source's top layer are left to it."""
    from pyvirt.image.qcow2.image import Qcow2Image

    return has_backing and isinstance(s, Qcow2Image) and s.backing is not None


def _write_nonzero(
    d: Image,
    pos: int,
    buf: mmap,
    n: int,
    granule: int,
    must_zero: bool,
    sink: Callable[[int, memoryview], None],
) -> None:
    """Write ``buf[:n]`` at ``pos``, skipping all-zero granules (zeroing them instead over a backing file).

    A range is compared with zeros by ``zeros.startswith(view)``: one memcmp on the buffer where it
    lies (comparing memoryviews goes item by item, and slicing the map first copies the range).
    A granule cut by the chunk's start is written as data.
    """
    mv = memoryview(buf)[:n]
    if granule == 0:
        sink(pos, mv)
        return
    # Only granules whose first byte is zero can be zero: gather every granule's first byte with one
    # extended slice (C speed), then compare just those candidates. The main thread must stay light,
    # since the reader and writer threads wait for the GIL whenever it is busy.
    g0 = (-pos) % granule
    firsts = buf[g0:n:granule]
    if firsts.count(0) == len(firsts) and (ZERO_CHUNK if n <= len(ZERO_CHUNK) else bytes(n)).startswith(mv):
        if must_zero:
            d.write_zeroes(pos, n)
        return
    zero_g = _zeros(granule)
    end = pos + n
    zero_runs: list[tuple[int, int]] = []
    k = firsts.find(0)
    while k >= 0:
        a = g0 + k * granule
        if a + granule <= n and zero_g.startswith(mv[a : a + granule]):
            if zero_runs and zero_runs[-1][1] == pos + a:
                zero_runs[-1] = (zero_runs[-1][0], pos + a + granule)
            else:
                zero_runs.append((pos + a, pos + a + granule))
        k = firsts.find(0, k + 1)
    tail = max(pos, end - end % granule)
    if tail < end and (not zero_runs or zero_runs[-1][1] <= tail) and zero_g.startswith(mv[tail - pos :]):
        zero_runs.append((tail, end))  # a zero tail shorter than a granule (end of image or extent)
    at = pos
    for za, zb in zero_runs:
        if za > at:
            sink(at, mv[at - pos : za - pos])
        if must_zero:
            d.write_zeroes(za, zb - za)
        at = max(at, zb)
    if at < end:
        sink(at, mv[at - pos : end - pos])


def compress_cluster(data: bytes | bytearray) -> bytes | None:
    """Raw deflate with a 4 KiB window, as QEMU writes; None if it does not shrink the cluster."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 9)
    out = c.compress(data) + c.flush()
    return out if len(out) < len(data) else None


def looks_incompressible(
    data: bytes | bytearray, probe: Callable[[bytes | bytearray], bytes] | None = None
) -> bool:
    """Early abort: four 1 KiB samples that fast compression cannot shrink at all mean random-like data.

    Deflating incompressible data at the default level is the slowest case and gains nothing; the
    cluster is then stored uncompressed, as it would be after a failed attempt. ``probe`` is the
    fast compressor (zlib level 1 by default; a reused zstd level-1 context costs a tenth of it,
    deflate allocating and clearing its tables at every call).
    """
    n = len(data)
    if n < 16384:
        return False
    q = n // 4
    sample = data[:1024] + data[q : q + 1024] + data[2 * q : 2 * q + 1024] + data[3 * q : 3 * q + 1024]
    return len(probe(sample) if probe is not None else zlib.compress(sample, 1)) >= len(sample)


def _compress_clusters(
    data: bytes | bytearray | mmap,
    cs: int,
    compress: Callable[[bytes | bytearray], bytes | None],
    probe: Callable[[bytes | bytearray], bytes] | None,
) -> list[bytes | None]:
    """One entry per cluster: payload, None (store raw), or b"" (all zeros: skip).

    ``compress`` gives a whole cluster's payload, or None if it does not shrink it; with ``probe``,
    a cluster :func:`looks_incompressible` to it is not tried."""
    out: list[bytes | None] = []
    zero = _zeros(cs)
    for i in range(0, len(data), cs):
        piece = data[i : i + cs]
        if len(piece) < cs:
            out.append(b"" if piece == bytes(len(piece)) else None)
        elif piece == zero:
            out.append(b"")
        elif probe is not None and looks_incompressible(piece, probe):
            out.append(None)
        else:
            out.append(compress(piece))
    return out


def _compress_chunk(data: bytes | bytearray | mmap, cs: int) -> list[bytes | None]:
    """:func:`_compress_clusters` with raw deflate (:func:`compress_cluster`)."""
    import zstandard

    return _compress_clusters(data, cs, compress_cluster, zstandard.ZstdCompressor(level=1).compress)


def _compress_chunk_zstd(data: bytes | bytearray | mmap, cs: int) -> list[bytes | None]:
    """:func:`_compress_clusters` for zstd qcow2: one frame a cluster at zstd's default level, as QEMU
    writes (``ZSTD_compressStream2`` with ``ZSTD_e_end``: the frame states its content size).

    No early abort: zstd gives up on incompressible data by itself, faster than any probe, and one
    context serves the whole chunk (the GIL released while it compresses)."""
    import zstandard

    z = zstandard.ZstdCompressor(level=3)

    def compress(piece: bytes | bytearray) -> bytes | None:
        c = z.compress(piece)
        return c if len(c) < cs else None

    return _compress_clusters(data, cs, compress, None)


def _zeros(n: int) -> bytes:
    """``bytes(n)``, made once per size: a fresh large buffer costs its page faults at every use."""
    z = _ZEROS.get(n)
    if z is None:
        z = _ZEROS[n] = bytes(n)
    return z


_ZEROS: dict[int, bytes] = {len(ZERO_CHUNK): ZERO_CHUNK}


class _Compressor:
    """Reads and compresses chunks on a thread pool; the calling thread writes the results in order.

    A worker reads its chunk itself (into a recycled buffer: fresh 2 MiB allocations fault their
    pages in) and compresses it, so a chunk changes threads once on its way in and once on its
    way out; the calling thread allocates and writes, the uncompressed clusters in place too.
    """

    def __init__(
        self,
        d: Image,
        threads: int | None,
        must_zero: bool,
        read: Callable[[int, memoryview, int, int], None],
    ) -> None:
        from pyvirt.image.qcow2.image import Qcow2Image
        from pyvirt.image.vmdk import VmdkImage, compress_grains

        self.chunk: Callable[[bytes | mmap, int], list[bytes | None]]
        if isinstance(d, Qcow2Image):
            zstd = d.header.compression_type == 1
            self.chunk, self.cs = (_compress_chunk_zstd if zstd else _compress_chunk), d.cs
        elif isinstance(d, VmdkImage) and d.compressed and d.cluster_size:
            self.chunk, self.cs = compress_grains, d.cluster_size
        else:
            raise ImageError(f"Compression not supported for this file format ({d.format})")
        self.d: Qcow2Image | VmdkImage = d
        self.must_zero = must_zero
        self.read = read
        self.n = threads or os.cpu_count() or 1
        self.pool = Pool(self.n)
        self.pending: deque[tuple[int, int, mmap, Job[list[bytes | None]]]] = deque()
        self.free: list[mmap] = []
        from mmap import mmap as new_buffer

        self.new_buffer = new_buffer
        # Clusters stored uncompressed go straight into fresh qcow2 space (one pwrite a run).
        self.direct = isinstance(d, Qcow2Image) and d.master_key is None

    def submit(self, pos: int, n: int, fd: int, host: int) -> None:
        """Read ``n`` guest bytes at ``pos`` (from ``fd`` at ``host`` if ``fd >= 0``) and compress them."""
        if pos % self.cs:
            raise ImageError("internal error: unaligned compressed chunk")
        buf = self.free.pop() if self.free else self.new_buffer(-1, CHUNK)  # page-aligned, as _copy's
        self.pending.append((pos, n, buf, self.pool.submit(self._work, pos, n, buf, fd, host)))
        while len(self.pending) > 2 * self.n + 2:
            self._drain_one()

    def _work(self, pos: int, n: int, buf: mmap, fd: int, host: int) -> list[bytes | None]:
        self.read(pos, memoryview(buf)[:n], fd, host)
        return self.chunk(buf if n == len(buf) else buf[:n], self.cs)

    def _drain_one(self) -> None:
        pos, n, buf, fut = self.pending.popleft()
        results = fut.result()
        d, cs = self.d, self.cs
        data = memoryview(buf)[:n]
        items: list[tuple[int, bytes]] = []
        raw_start = -1
        for k, payload in enumerate([*results, b""]):
            off = pos + k * cs
            if payload is None:
                if raw_start < 0:
                    raw_start = off
                continue
            if raw_start >= 0:
                self._write_raw(raw_start, data[raw_start - pos : off - pos])
                raw_start = -1
            if payload:
                items.append((off // cs, payload))
            elif self.must_zero and k < len(results):
                d.write_zeroes(off, min(cs, pos + n - off))
        if items:
            d.write_compressed(items)
        self.free.append(buf)

    def _write_raw(self, at: int, data: memoryview) -> None:
        from pyvirt.image.fileio import pwrite_full

        runs = self.d.map_for_write(at, len(data)) if self.direct else None
        if runs is None:
            self.d.write(at, data)
            return
        for gpos, host, m in runs:
            pwrite_full(self.d.fd, [data[gpos - at : gpos - at + m]], host)

    def finish(self) -> None:
        while self.pending:
            self._drain_one()

    def shutdown(self) -> None:
        self.pool.shutdown()
