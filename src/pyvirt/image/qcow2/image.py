"""A qcow2 image open for reading or writing: lookup, copy-on-write, compressed clusters, flush order.

Changes are cached and written back in the order that keeps the file consistent if we stop at any
point: guest data first, then refcount blocks, then L2 tables, then the L1 table and the header.
"""

from __future__ import annotations

import os
from _thread import RLock  # what threading.RLock() returns, without importing threading (ms)
from array import array

from pyvirt.image.base import ZERO_CHUNK, Extent, Image, merge_extent
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pread_full, pwrite_full
from pyvirt.image.locking import lock_image, open_locked
from pyvirt.image.qcow2 import header as H
from pyvirt.image.qcow2.refcount import Refcounts, dump_be64, load_be64
from pyvirt.image.qcow2.tables import (
    L1_OFFSET_MASK,
    L2_OFFSET_MASK,
    OFLAG_COMPRESSED,
    OFLAG_COPIED,
    OFLAG_ZERO,
    L2Cache,
    compressed_entry,
    compressed_range,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from pyvirt.image.luks import CipherSpec
    from pyvirt.image.qcow2.bitmaps import Tracker

    OpenBacking = Callable[[str, str | None], Image]

L2_CACHE_BYTES = 32 << 20


class Qcow2Image(Image):
    """A qcow2 file. Build with :meth:`open`; ``backing`` is opened read-only by the caller's hook."""

    format = "qcow2"

    def __init__(self, path: str, fd: int, header: H.Header, *, readonly: bool, file_size: int) -> None:
        self.path = path
        self.fd = fd
        self.header = header
        self.readonly = readonly
        self.size = header.size
        self.cb = header.cluster_bits
        self.cs = 1 << self.cb
        self.cluster_size = self.cs
        #: an L2 entry is 8 bytes, or 16 with extended L2 entries (:mod:`.subclusters`)
        self.l2_bits = self.cb - (4 if header.incompatible_features & H.INCOMPAT_EXTL2 else 3)
        self.l2_shift = self.cb + self.l2_bits
        self.l2_mask = (1 << self.l2_bits) - 1
        self.v3 = header.version >= 3
        self.backing_file = header.backing_file
        self.backing_format = header.backing_format
        self.backing = None
        #: LUKS: the unlocked master key; data clusters are read through it
        self.master_key: bytes | None = None
        self.luks_spec: CipherSpec | None = None
        self.file_size = file_size
        self.l1 = self._load_l1(header.l1_table_offset, header.l1_size)
        self.l1_dirty = False
        self.header_dirty = False
        self.refs = Refcounts(
            fd,
            cluster_bits=self.cb,
            refcount_order=header.refcount_order,
            table_offset=header.refcount_table_offset,
            table_clusters=header.refcount_table_clusters,
            file_size=file_size,
            on_table_moved=self._table_moved,
            source=path,
        )
        self.cache = L2Cache(max(16, L2_CACHE_BYTES // self.cs), self._write_l2)
        self._zero = bytes(self.cs)
        self._dec_cache: tuple[int, bytes] | None = None
        self._lock = RLock()
        self._cbuf = bytearray()
        self._cbuf_start = 0
        self._cpos = -1
        self._cend = -1
        self._cfresh: set[int] = set()
        self._meta: set[int] | None = None
        self.lazy = bool(header.compatible_features & H.COMPAT_LAZY_REFCOUNTS)
        self._marked_dirty = False
        #: the persistent bitmaps a writable open maintains
        self.bitmaps: Tracker | None = None
        #: an external data file (header.data_file): guest data lies there, each cluster at its own
        #: guest offset and not refcounted; with data_file_raw the file is the guest's raw image
        self.external = header.data_file is not None
        #: the bits of an L2 entry that make it a data cluster: with a data file, offset 0 is a
        #: cluster too, told from a hole by its COPIED flag (always set there, as in QEMU)
        self.alloc_mask = L2_OFFSET_MASK | (OFLAG_COPIED if self.external else 0)
        self._dfd = fd
        self._dpath = path

    @property
    def data_fd(self) -> int:
        return self._dfd

    @property
    def data_path(self) -> str:
        return self._dpath

    # ------------------------------------------------------------ open

    @classmethod
    def open(
        cls,
        path: str,
        *,
        readonly: bool = True,
        open_backing: OpenBacking | None = None,
        repairing: bool = False,
        force_share: bool = False,
        passphrase: bytes | None = None,
    ) -> Qcow2Image:
        fd = open_locked(path, readonly=readonly, force_share=force_share)
        try:
            st = os.fstat(fd)
            first = bytearray(min(max(st.st_size, 0), 1 << H.MAX_CLUSTER_BITS))
            pread_full(fd, memoryview(first), 0)
            header = H.Header.parse(bytes(first), st.st_size, source=path, encrypted=passphrase is not None)
            if not readonly and header.incompatible_features & H.INCOMPAT_CORRUPT:
                raise CorruptImage(
                    f"{path}: the image is marked corrupt; it can be opened read-only only "
                    "(repair it with `pyvirt img check -r all`)"
                )
            klass = cls
            if header.incompatible_features & H.INCOMPAT_EXTL2 and cls is Qcow2Image:
                from pyvirt.image.qcow2.subclusters import Qcow2ExtL2Image

                klass = Qcow2ExtL2Image
            img = klass(path, fd, header, readonly=readonly, file_size=st.st_size)
            if header.data_file is not None:
                img._open_data_file(header.data_file, force_share)
            if header.crypt_method:
                img._unlock(passphrase)
        except BaseException:
            if "img" in locals() and img._dfd != fd:
                os.close(img._dfd)
            os.close(fd)
            raise
        try:
            if not readonly and header.incompatible_features & H.INCOMPAT_DIRTY and not repairing:
                from pyvirt.image.checker import rebuild_refcounts

                rebuild_refcounts(img)
            if not readonly and header.autoclear_features and not repairing:
                img._open_autoclear()
            if header.backing_file and open_backing is not None:
                img.backing = open_backing(header.backing_file, header.backing_format)
        except BaseException:
            img.close()
            raise
        return img

    def _open_data_file(self, name: str, force_share: bool) -> None:
        """Open the external data file by the name in the header, as qemu 7.2 does (from the
        current folder, not the image's); locked as the image is."""
        try:
            dfd = os.open(name, os.O_RDONLY if self.readonly else os.O_RDWR)
        except OSError as err:
            raise ImageError(
                f"Could not open '{self.path}': Could not open '{name}': {err.strerror}"
            ) from err
        try:
            lock_image(dfd, name, readonly=self.readonly, force_share=force_share)
        except BaseException:
            os.close(dfd)
            raise
        self._dfd, self._dpath = dfd, name

    def _unlock(self, passphrase: bytes | None) -> None:
        """Open the LUKS header with the passphrase (read-only: writing is not supported)."""
        from pyvirt.image.luks import LuksHeader

        h = self.header
        if h.crypt_method != 2 or h.luks_header is None or passphrase is None:
            raise UnsupportedImage(f"{self.path}: encrypted qcow2 images other than LUKS are not supported")
        off, length = h.luks_header
        if off % self.cs or off + length > self.file_size:
            raise CorruptImage(f"{self.path}: the LUKS header lies outside the file")
        luks = LuksHeader(os.pread(self.fd, 592, off), off, length, self.path)
        self.master_key = luks.unlock(passphrase, lambda at, n: os.pread(self.fd, n, at))
        self.luks_spec = luks.spec()
        self.encrypted = True

    def _open_autoclear(self) -> None:
        """Clear the autoclear features this library does not maintain; persistent bitmaps are
        kept and maintained (:class:`bitmaps.Tracker`)."""
        from pyvirt.image.qcow2 import bitmaps as B

        h = self.header
        bm = B.read_bitmaps(self.fd, h, self.file_size, source=self.path)
        keep = H.AUTOCLEAR_BITMAPS if bm is not None else 0
        if self.external:
            keep |= H.AUTOCLEAR_DATA_FILE_RAW  # maintained: zeroes are written into a raw data file
        if h.autoclear_features & ~keep:
            if not keep:
                h.other_extensions = [e for e in h.other_extensions if e.type != H.EXT_BITMAPS]
            h.autoclear_features &= keep
            self._write_header()
            os.fdatasync(self.fd)
        if bm is not None:
            self.bitmaps = B.Tracker(self, bm)

    def _dirty(self, offset: int, length: int) -> None:
        if self.bitmaps is not None:
            self.bitmaps.mark(offset, length)

    def _load_l1(self, offset: int, entries: int) -> array[int]:
        raw = bytearray(entries * 8)
        if entries:
            got = pread_full(self.fd, memoryview(raw), offset)
            if got < len(raw):
                raise CorruptImage(f"{self.path}: L1 table at {offset:#x} is truncated")
        l1 = load_be64(raw)
        limit = self.file_size + self.cs
        for i, e in enumerate(l1):
            off = e & L1_OFFSET_MASK
            if off and (off % self.cs or off + self.cs > limit):
                if self.readonly:
                    continue
                raise CorruptImage(
                    f"{self.path}: L1 entry {i} points to {off:#x}, misaligned or past the end"
                )
        return l1

    # ------------------------------------------------------------ lookup

    def _limit(self) -> int:
        return max(self.file_size, self.refs.end << self.cb) + self.cs

    def _l2(self, l1i: int) -> array[int] | None:
        if l1i >= len(self.l1):
            return None
        off = self.l1[l1i] & L1_OFFSET_MASK
        if not off:
            return None
        return self._load_l2(off)

    def _load_l2(self, off: int) -> array[int]:
        # The lock lets several threads read at once (convert's readers); writing stays single-threaded.
        with self._lock:
            t = self.cache.get(off)
            if t is not None:
                return t
            if off % self.cs or off + self.cs > self._limit():
                raise CorruptImage(
                    f"{self.path}: L2 table at {off:#x} is misaligned or past the end of the file"
                )
            raw = bytearray(self.cs)
            pread_full(self.fd, memoryview(raw), off)
            t = self._decode_l2(raw)
            self.cache.put(off, t)
            return t

    def _write_l2(self, off: int, table: array[int]) -> None:
        if not self.lazy:
            self.refs.write_blocks()
        pwrite_full(self.fd, [self._encode_l2(table)], off)

    def _decode_l2(self, raw: bytearray) -> array[int]:
        return load_be64(raw)

    def _encode_l2(self, table: array[int]) -> bytes:
        return dump_be64(table)

    def _copy_l2(self, table: array[int] | None) -> array[int]:
        """A new L2 table: a copy of ``table``, or empty."""
        return array("Q", bytes(self.cs)) if table is None else array("Q", table)

    def l2_entry(self, cluster: int) -> int:
        t = self._l2(cluster >> self.l2_bits)
        return 0 if t is None else int(t[cluster & self.l2_mask])

    def _host(self, entry: int) -> int:
        host = entry & L2_OFFSET_MASK
        if self.external:
            if host % self.cs:
                raise CorruptImage(f"{self.path}: data cluster at {host:#x} is misaligned")
            return host
        if host % self.cs or host + self.cs > self._limit():
            raise CorruptImage(
                f"{self.path}: data cluster at {host:#x} is misaligned or past the end of the file"
            )
        return host

    # ------------------------------------------------------------ reading

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        if self._cbuf:
            self._cstream_flush()
        cs, cb = self.cs, self.cb
        cmask = cs - 1
        pos, end = offset, offset + len(buf)
        kind, rstart, rhost, rlen = -1, 0, 0, 0
        while pos < end:
            l1i = pos >> self.l2_shift
            seg_end = min(end, (l1i + 1) << self.l2_shift)
            table = self._l2(l1i)
            while pos < seg_end:
                inoff = pos & cmask
                n = min(cs - inoff, seg_end - pos)
                e = 0 if table is None else table[(pos >> cb) & self.l2_mask]
                if e & OFLAG_COMPRESSED:
                    if rlen:
                        self._emit(kind, buf, rstart - offset, rhost, rlen)
                        rlen = 0
                    data = self._decompress(e)
                    buf[pos - offset : pos - offset + n] = data[inoff : inoff + n]
                    pos += n
                    continue
                if e & OFLAG_ZERO and self.v3:
                    k, host = 0, 0
                elif e & self.alloc_mask:
                    k, host = 1, self._host(e) + inoff
                else:
                    k, host = 2, pos
                if rlen and k == kind and (k == 0 or host == rhost + rlen):
                    rlen += n
                else:
                    if rlen:
                        self._emit(kind, buf, rstart - offset, rhost, rlen)
                    kind, rstart, rhost, rlen = k, pos, host, n
                pos += n
        if rlen:
            self._emit(kind, buf, rstart - offset, rhost, rlen)

    def _emit(self, kind: int, buf: memoryview, bpos: int, where: int, n: int) -> None:
        if kind == 1 and self.master_key is not None:
            self._read_decrypted(buf[bpos : bpos + n], where)
        elif kind == 1:
            pread_full(self._dfd, buf[bpos : bpos + n], where)
        elif kind == 2 and self.backing is not None and where < self.backing.size:
            m = min(n, self.backing.size - where)
            self.backing.readinto(where, buf[bpos : bpos + m])
            if m < n:
                _fill_zero(buf[bpos + m : bpos + n])
        else:
            _fill_zero(buf[bpos : bpos + n])

    def _read_decrypted(self, out: memoryview, host: int) -> None:
        """LUKS: the whole sectors around ``host``, decrypted (their IV is their file offset)."""
        from pyvirt.image.luks import decrypt_sectors

        assert self.master_key is not None
        a, b = host - host % 512, -(-(host + len(out)) // 512) * 512
        raw = bytearray(b - a)
        pread_full(self._dfd, memoryview(raw), a)
        out[:] = decrypt_sectors(self.master_key, bytes(raw), a // 512, self.luks_spec)[
            host - a : host - a + len(out)
        ]

    def _decompress(self, entry: int) -> bytes:
        cached = self._dec_cache
        if cached is not None and cached[0] == entry:
            return cached[1]
        off, nbytes = compressed_range(entry, self.cb)
        if off + nbytes > self._limit() + self.cs:
            raise CorruptImage(f"{self.path}: compressed cluster at {off:#x} lies past the end of the file")
        raw = bytearray(nbytes)
        pread_full(self.fd, memoryview(raw), off)
        try:
            out = decompress_cluster(raw, self.cs, self.header.compression_type)
        except ValueError as err:
            raise CorruptImage(
                f"{self.path}: compressed cluster at {off:#x} does not decompress: {err}"
            ) from err
        if len(out) != self.cs:
            raise CorruptImage(
                f"{self.path}: compressed cluster at {off:#x} decompresses to {len(out)} bytes"
            )
        self._dec_cache = (entry, out)
        return out

    def _read_cluster(self, cluster: int, entry: int, buf: memoryview) -> None:
        """The current content of a whole guest cluster, given its L2 entry (for copy-on-write)."""
        if entry & OFLAG_COMPRESSED:
            buf[:] = self._decompress(entry)
        elif entry & OFLAG_ZERO and self.v3:
            _fill_zero(buf)
        elif entry & self.alloc_mask:
            self._emit(1, buf, 0, self._host(entry), len(buf))
        else:
            if self.backing is None and self.backing_file is not None:
                raise ImageError(f"{self.path}: copy-on-write needs the backing file, which is not open")
            start = cluster << self.cb
            n = max(0, min(self.cs, self.size - start))
            self._emit(2, buf, 0, start, n)
            if n < self.cs:
                _fill_zero(buf[n:])

    def _entries(self, offset: int, length: int) -> Iterator[tuple[int, int, int, int]]:
        """``(start, length, first L2 entry, last L2 entry)`` runs of like clusters.

        A run's entries are all equal (holes, zero flags) or step by one cluster (data stored back
        to back), so its flags are the same throughout; a missing L2 table is one run of entry 0.
        Runs are found by comparing whole slices of the table (C speed), not entry by entry.
        """
        cs, cb, mask = self.cs, self.cb, self.l2_mask
        pos, end = offset, offset + length
        while pos < end:
            l1i = pos >> self.l2_shift
            seg_end = min(end, (l1i + 1) << self.l2_shift)
            table = self._l2(l1i)
            if table is None:
                yield pos, seg_end - pos, 0, 0
                pos = seg_end
                continue
            if pos & (cs - 1):
                n = min(cs - (pos & (cs - 1)), seg_end - pos)
                e = table[(pos >> cb) & mask]
                yield pos, n, e, e
                pos += n
                continue
            i = (pos >> cb) & mask
            i_end = i + ((seg_end - pos + cs - 1) >> cb)
            while i < i_end:
                e = table[i]
                if e & OFLAG_COMPRESSED:
                    k, step = 1, 0
                else:
                    step = cs if e & self.alloc_mask else 0
                    k = _run_length(table, i, i_end, e, step)
                n = min(k << cb, seg_end - pos)
                yield pos, n, e, e + (k - 1) * step
                pos += n
                i += k

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        cs = self.cs
        hole_start, hole_len = -1, 0
        for pos, n, e, last in self._entries(offset, length):
            if not e & (self.alloc_mask | OFLAG_COMPRESSED) and not (e & OFLAG_ZERO and self.v3):
                if hole_len and hole_start + hole_len == pos:
                    hole_len += n
                else:
                    hole_start, hole_len = pos, n
                continue
            if hole_len:
                self._hole_status(out, hole_start, hole_len)
                hole_len = 0
            if e & OFLAG_COMPRESSED:
                ext = Extent(pos, n, data=True, zero=False, compressed=True)
            elif e & OFLAG_ZERO and self.v3:
                ext = Extent(pos, n, data=False, zero=True)
            else:
                self._host(last)
                # An encrypted cluster holds ciphertext: no offset a reader could copy from, as in QEMU.
                host = None if self.encrypted else self._host(e) + (pos & (cs - 1))
                ext = Extent(pos, n, data=True, zero=False, offset=host)
            merge_extent(out, ext)
        if hole_len:
            self._hole_status(out, hole_start, hole_len)
        return out

    def _hole_status(self, out: list[Extent], pos: int, n: int) -> None:
        if self.backing is not None:
            for x in self.backing_status(pos, n):
                merge_extent(out, x)
        else:
            merge_extent(out, Extent(pos, n, data=False, zero=True, present=False))

    def allocated_in_top(self, offset: int, length: int) -> list[tuple[int, int, bool]]:
        """``(start, length, allocated)`` runs of this file alone (not the backing chain)."""
        out: list[tuple[int, int, bool]] = []
        for pos, n, e, _ in self._entries(offset, length):
            alloc = bool(e & (self.alloc_mask | OFLAG_COMPRESSED) or (e & OFLAG_ZERO and self.v3))
            if out and out[-1][2] == alloc:
                st, m, a = out[-1]
                out[-1] = (st, m + n, a)
            else:
                out.append((pos, n, alloc))
        return out

    # ------------------------------------------------------------ writing

    def _mark_write(self) -> None:
        if self.lazy and not self._marked_dirty and self.v3:
            self.header.incompatible_features |= H.INCOMPAT_DIRTY
            self._write_header()
            os.fdatasync(self.fd)
        self._marked_dirty = True

    def _l2_for_write(self, l1i: int) -> tuple[array[int], int]:
        if l1i >= len(self.l1):
            raise ImageError(f"{self.path}: write beyond the L1 table")
        e = self.l1[l1i]
        off = e & L1_OFFSET_MASK
        if off and e & OFLAG_COPIED:
            return self._load_l2(off), off
        new_off = self.refs.alloc(1)
        self._check_fresh(new_off, 1)
        if off:
            table = self._copy_l2(self._load_l2(off))
            if self.refs.add(off >> self.cb, -1) == 0:
                self.cache.drop(off)
        else:
            table = self._copy_l2(None)
        self.cache.put(new_off, table, dirty=True)
        self.l1[l1i] = new_off | OFLAG_COPIED
        self.l1_dirty = True
        if self._meta is not None:
            self._meta.add(new_off >> self.cb)
        return table, new_off

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        mv = memoryview(data).cast("B")
        self._check_range(offset, len(mv))
        if not len(mv):
            return
        self._mark_write()
        self._dirty(offset, len(mv))
        pos, end = offset, offset + len(mv)
        while pos < end:
            l1i = pos >> self.l2_shift
            seg_end = min(end, (l1i + 1) << self.l2_shift)
            table, toff = self._l2_for_write(l1i)
            self._write_segment(table, toff, pos, mv[pos - offset : seg_end - offset])
            pos = seg_end

    def _write_segment(self, table: array[int], toff: int, pos: int, mv: memoryview) -> None:
        cs, cb = self.cs, self.cb
        end = pos + len(mv)
        inplace: list[tuple[int, memoryview]] = []
        allocs: list[tuple[int, int, memoryview]] = []
        for c in range((pos >> cb), ((end - 1) >> cb) + 1):
            cstart = c << cb
            a, b = max(pos, cstart), min(end, cstart + cs)
            piece = mv[a - pos : b - pos]
            i = c & self.l2_mask
            e = table[i]
            if e & self.alloc_mask and not e & OFLAG_COMPRESSED and e & OFLAG_COPIED:
                host = self._host(e)
                if not self.external:
                    self._check_not_metadata(host)
                if e & OFLAG_ZERO and self.v3:
                    if b - a < cs:
                        full = bytearray(cs)
                        full[a - cstart : b - cstart] = piece
                        piece, a = memoryview(full), cstart
                    table[i] = host | OFLAG_COPIED
                    self.cache.mark_dirty(toff)
                inplace.append((host + (a - cstart), piece))
            else:
                if b - a < cs:
                    full = bytearray(cs)
                    self._read_cluster(c, e, memoryview(full))
                    full[a - cstart : b - cstart] = piece
                    piece = memoryview(full)
                allocs.append((i, e, piece))
        if allocs and self.external:
            # Each new cluster lies at its own guest offset in the data file, unrefcounted.
            for i, e, piece in allocs:
                host = (((pos >> cb) & ~self.l2_mask) + i) << cb
                self._pwrite_data([piece], host)
                table[i] = host | OFLAG_COPIED
                self._release(e)
            self.cache.mark_dirty(toff)
        elif allocs:
            base = self.refs.alloc(len(allocs))
            self._check_fresh(base, len(allocs))
            self._pwrite_data([p for _, _, p in allocs], base)
            for k, (i, e, _) in enumerate(allocs):
                table[i] = (base + k * cs) | OFLAG_COPIED
                self._release(e)
            self.cache.mark_dirty(toff)
        if inplace:
            run_host, run = inplace[0][0], [inplace[0][1]]
            run_len = len(inplace[0][1])
            for host, piece in inplace[1:]:
                if host == run_host + run_len:
                    run.append(piece)
                    run_len += len(piece)
                else:
                    self._pwrite_data(run, run_host)
                    run_host, run, run_len = host, [piece], len(piece)
            self._pwrite_data(run, run_host)

    def _pwrite_data(self, bufs: list[memoryview], host: int) -> None:
        """Write guest data at ``host``; LUKS: encrypted, whole sectors (the edges read back)."""
        if self.master_key is None:
            pwrite_full(self._dfd, bufs, host)
            return
        from pyvirt.image.luks import encrypt_sectors

        data = b"".join(bytes(b) for b in bufs)
        a, b = host - host % 512, -(-(host + len(data)) // 512) * 512
        if (a, b) != (host, host + len(data)):
            whole = bytearray(b - a)
            self._read_decrypted(memoryview(whole), a)
            whole[host - a : host - a + len(data)] = data
            data = bytes(whole)
        pwrite_full(self._dfd, [encrypt_sectors(self.master_key, data, a // 512, self.luks_spec)], a)

    def map_for_write(
        self, offset: int, length: int, *, prealloc: bool = False
    ) -> list[tuple[int, int, int]] | None:
        """Allocate fresh clusters for a cluster-aligned range that is wholly unallocated.

        ``prealloc``: the clusters are reserved, not written (extended L2: they stay unallocated
        subclusters, as QEMU preallocates them)."""
        self._check_writable()
        self._check_range(offset, length)
        if self.master_key is not None or self.external:
            return None  # encrypted on its way, or into the data file: write() does it
        cs, cb = self.cs, self.cb
        if offset % cs or length % cs or not length:
            return None
        if not self._unallocated(offset >> cb, (offset + length) >> cb):
            return None
        self._mark_write()
        self._dirty(offset, length)
        runs: list[tuple[int, int, int]] = []
        pos, end = offset, offset + length
        while pos < end:
            l1i = pos >> self.l2_shift
            seg_end = min(end, (l1i + 1) << self.l2_shift)
            table, toff = self._l2_for_write(l1i)
            n = (seg_end - pos) >> cb
            base = self.refs.alloc(n)
            self._check_fresh(base, n)
            i0 = (pos >> cb) & self.l2_mask
            first = base | OFLAG_COPIED
            table[i0 : i0 + n] = array("Q", range(first, first + n * cs, cs))
            self.cache.mark_dirty(toff)
            runs.append((pos, base, seg_end - pos))
            pos = seg_end
        return runs

    def _unallocated(self, c: int, c_end: int) -> bool:
        """Whether clusters ``[c, c_end)`` all have empty L2 entries (one comparison per table)."""
        while c < c_end:
            l1i = c >> self.l2_bits
            seg_end = min(c_end, (l1i + 1) << self.l2_bits)
            table = self._l2(l1i)
            if table is not None:
                i0 = c & self.l2_mask
                if table[i0 : i0 + seg_end - c].tobytes().count(0) != 8 * (seg_end - c):
                    return False
            c = seg_end
        return True

    def _release(self, entry: int) -> None:
        """Drop the reference an L2 entry being replaced held."""
        if entry & OFLAG_COMPRESSED:
            off, nbytes = compressed_range(entry, self.cb)
            self.refs.free(off, nbytes)
            self._dec_cache = None
        elif entry & L2_OFFSET_MASK and not self.external:
            self.refs.add((entry & L2_OFFSET_MASK) >> self.cb, -1)

    def _check_not_metadata(self, host: int) -> None:
        if self._meta is None:
            self._meta = self.metadata_clusters()
        if host >> self.cb in self._meta:
            raise CorruptImage(f"{self.path}: data cluster at {host:#x} overlaps metadata; refusing to write")

    def _check_fresh(self, base: int, n: int) -> None:
        """New clusters must not be metadata: only broken refcounts would hand those out."""
        if self._meta is None:
            self._meta = self.metadata_clusters()
        first = base >> self.cb
        if any(c in self._meta for c in range(first, first + n)):
            self.mark_corrupt()
            raise CorruptImage(
                f"{self.path}: refcounts mark metadata at {base:#x} as free; image marked corrupt "
                "(repair it with `pyvirt img check -r all`)"
            )

    def metadata_clusters(self) -> set[int]:
        """Cluster indexes holding header, tables and snapshot metadata."""
        cb, h = self.cb, self.header
        meta = {0}
        meta.update(
            range(h.l1_table_offset >> cb, (h.l1_table_offset + len(self.l1) * 8 + self.cs - 1) >> cb)
        )
        rt = self.refs.table_offset >> cb
        meta.update(range(rt, rt + self.refs.table_clusters))
        meta.update((e & 0xFFFFFFFFFFFFFE00) >> cb for e in self.refs.table if e)
        meta.update((e & L1_OFFSET_MASK) >> cb for e in self.l1 if e & L1_OFFSET_MASK)
        if h.nb_snapshots:
            from pyvirt.image.qcow2.snapshot import read_snapshots

            for s in read_snapshots(self):
                meta.update(
                    range(s.l1_table_offset >> cb, (s.l1_table_offset + s.l1_size * 8 + self.cs - 1) >> cb)
                )
            meta.add(h.snapshots_offset >> cb)
        return meta

    def write_zeroes(self, offset: int, length: int, *, discard: bool = False, backed: bool = False) -> None:
        """Zero a range: whole clusters become zero clusters (v3) or unallocated; ends are written.

        ``backed``: zero as if a backing file showed through unallocated clusters (zero clusters,
        or zeros written in v2), for an image about to get one (``rebase``).
        """
        self._check_writable()
        self._check_range(offset, length)
        if not length:
            return
        if self.header.data_file_raw:
            self._write_zero_bytes(offset, length)  # the raw data file must read as zeros there
            return
        self._mark_write()
        self._dirty(offset, length)
        cs, cb = self.cs, self.cb
        end = offset + length
        first_full = -(-offset // cs)
        last_full = end // cs if end < self.size else -(-end // cs)
        if first_full >= last_full:
            self._write_zero_bytes(offset, length)
            return
        if offset < first_full << cb:
            self._write_zero_bytes(offset, (first_full << cb) - offset)
        if end > last_full << cb:
            self._write_zero_bytes(last_full << cb, end - (last_full << cb))
        has_backing = backed or self.backing_file is not None
        c = first_full
        while c < last_full:
            l1i = c >> self.l2_bits
            stop = min(last_full, (l1i + 1) << self.l2_bits)
            table_now = self._l2(l1i)
            if table_now is None and not has_backing:
                c = stop
                continue
            table, toff = self._l2_for_write(l1i)
            for cc in range(c, stop):
                i = cc & self.l2_mask
                e = table[i]
                if self.v3 and has_backing:
                    new = OFLAG_ZERO
                elif self.v3 and not discard and e & OFLAG_ZERO:
                    new = e
                else:
                    new = -1 if has_backing else 0
                if new == -1:
                    self._write_zero_bytes(cc << cb, cs)
                    table, toff = self._l2_for_write(l1i)
                    continue
                if new != e:
                    table[i] = new
                    self._release(e)
                    self.cache.mark_dirty(toff)
            c = stop

    def discard(self, offset: int, length: int) -> None:
        self.write_zeroes(offset, length, discard=True)

    def _write_zero_bytes(self, offset: int, length: int) -> None:
        pos, end = offset, min(offset + length, self.size)
        while pos < end:
            n = min(end - pos, len(ZERO_CHUNK))
            self.write(pos, memoryview(ZERO_CHUNK)[:n])
            pos += n

    # ------------------------------------------------------------ compressed

    def write_compressed(self, items: Iterable[tuple[int, bytes]]) -> None:
        """Store deflated clusters: ``(guest cluster index, raw-deflate payload shorter than a cluster)``."""
        self._check_writable()
        if self.master_key is not None:
            raise ImageError("Compression and encryption not supported at the same time")
        if self.external:
            raise ImageError(
                f"{self.path}: compressed clusters cannot be written with an external data file: "
                "Operation not supported"
            )
        self._mark_write()
        for c, payload in items:
            if (c << self.cb) >= self.size:
                raise ImageError(f"{self.path}: compressed write beyond the end of the image")
            if not 0 < len(payload) < self.cs:
                raise ImageError(f"{self.path}: a compressed cluster must be shorter than a cluster")
            self._dirty(c << self.cb, self.cs)
            table, toff = self._l2_for_write(c >> self.l2_bits)
            i = c & self.l2_mask
            old = table[i]
            host = self._cstream_alloc(payload)
            table[i] = compressed_entry(host, len(payload), self.cb)
            self.cache.mark_dirty(toff)
            self._release(old)
        self._cstream_flush()

    def _cstream_alloc(self, payload: bytes) -> int:
        n, cs, cb = len(payload), self.cs, self.cb
        if self._cpos < 0 or self._cpos + n > self._cend:
            if self._cpos >= 0 and self._cend == self.refs.end << cb:
                k = -(-(self._cpos + n - self._cend) // cs)
                start = self.refs.alloc_at_end(k)
                self._cfresh.update(range(start >> cb, (start >> cb) + k))
                self._cend = start + k * cs
            else:
                self._cstream_flush()
                k = -(-n // cs)
                start = self.refs.alloc_at_end(k)
                self._cfresh.update(range(start >> cb, (start >> cb) + k))
                self._cpos, self._cend, self._cbuf_start = start, start + k * cs, start
        host = self._cpos
        for h in range(host >> cb, ((host + n - 1) >> cb) + 1):
            if h in self._cfresh:
                self._cfresh.discard(h)
            else:
                self.refs.add(h, 1)
        self._cbuf += payload
        self._cpos += n
        return host

    def _cstream_flush(self) -> None:
        if self._cbuf:
            # Pad to the next sector boundary of the file (never past the stream's cluster).
            data = bytes(self._cbuf) + bytes(-(self._cbuf_start + len(self._cbuf)) % 512)
            pwrite_full(self.fd, [data], self._cbuf_start)
            self._cbuf_start += len(self._cbuf)
            self._cbuf = bytearray()

    # ------------------------------------------------------------ resize

    def truncate(self, size: int, *, shrink: bool = False) -> None:
        """Resize; as QEMU, a new area a longer backing file would show through is zeroed.
        Its own zeroing dirties no bitmap (QEMU's neither)."""
        tracker, self.bitmaps = self.bitmaps, None
        try:
            self._truncate(size, shrink)
        finally:
            self.bitmaps = tracker

    def _truncate(self, size: int, shrink: bool) -> None:
        self._check_writable()
        if size % 512:
            raise ImageError(f"{self.path}: qcow2 image size must be a multiple of 512 bytes")
        old = self.size
        zero_new = self.growth_needs_zeroes(size)
        if zero_new and not self.v3:
            raise ImageError("Failed to zero out new clusters: Operation not supported")
        if size < self.size:
            if not shrink:
                raise ImageError(
                    "Use the --shrink option to perform a shrink operation.\n"
                    "warning: Shrinking an image will delete all data beyond the shrunken image's end. "
                    "Before performing such an operation, make sure there is no important data there."
                )
            # As QEMU 7.2: only the clusters wholly past the new end go; the one it cuts stays as it
            # is (compressed or not, its tail unzeroed: a later grow shows that tail again).
            cut = -(-size // self.cs) * self.cs
            if cut < self.size:
                self.discard(cut, self.size - cut)
        need = -(-size // (self.cs << self.l2_bits))
        if need > len(self.l1):
            self._grow_l1(need)
        self.size = self.header.size = size
        self.header_dirty = True
        if self.external:
            os.ftruncate(self._dfd, size)  # as QEMU resizes the data file with the image
        if zero_new:
            self.write_zeroes(old, size - old)

    def growth_needs_zeroes(self, size: int) -> bool:
        """Whether growing to ``size`` must zero the new area: the (open) backing file is longer
        than the image, so its data would otherwise show through. Zero clusters need v3."""
        return size > self.size and self.backing is not None and self.backing.size > self.size

    def _grow_l1(self, need: int) -> None:
        if need * 8 > H.MAX_L1_BYTES:
            raise ImageError(f"{self.path}: the L1 table would exceed {H.MAX_L1_BYTES} bytes")
        new_size = need
        clusters = -(-new_size * 8 // self.cs)
        new_off = self.refs.alloc(clusters)
        old_off, old_n = self.header.l1_table_offset, len(self.l1)
        self.l1.extend(array("Q", bytes(8 * (new_size - old_n))))
        self.refs.flush()
        self.cache.flush()
        pwrite_full(self.fd, [dump_be64(self.l1) + bytes(clusters * self.cs - new_size * 8)], new_off)
        os.fdatasync(self.fd)
        self.header.l1_table_offset, self.header.l1_size = new_off, new_size
        self._write_header()
        os.fdatasync(self.fd)
        if old_n:
            self.refs.free(old_off, old_n * 8)
        self._meta = None

    # ------------------------------------------------------------ flush

    def _table_moved(self, offset: int, clusters: int) -> None:
        self.header.refcount_table_offset, self.header.refcount_table_clusters = offset, clusters
        self._write_header()
        self._meta = None

    def _write_header(self) -> None:
        pwrite_full(self.fd, [self.header.pack(self.cs)], 0)
        self.header_dirty = False

    def write_metadata(self) -> None:
        """Write cached metadata in safe order, without syncing."""
        if self.readonly:
            return
        self._cstream_flush()
        if not self.lazy:
            self.refs.flush()
        self.cache.flush()
        if self.l1_dirty:
            pwrite_full(self.fd, [dump_be64(self.l1)], self.header.l1_table_offset)
            self.l1_dirty = False
        if self.header_dirty:
            self._write_header()

    def flush(self) -> None:
        if self.readonly or self.fd < 0:
            return
        if self.durable and self._dfd != self.fd:
            os.fdatasync(self._dfd)  # the data before the tables that point to it
        self.write_metadata()
        if self.durable:
            os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            if not self.readonly:
                self._cstream_flush()
                if self.bitmaps is not None:
                    self.bitmaps.close()
                    self.bitmaps = None
                self.write_metadata()
                self.refs.flush()
                end = self._cpos if self._cpos >= 0 else 0
                if end and os.fstat(self.fd).st_size < end:
                    os.ftruncate(self.fd, -(-end // 512) * 512)
                if self.header.incompatible_features & H.INCOMPAT_DIRTY:
                    os.fdatasync(self.fd)
                    self.header.incompatible_features &= ~H.INCOMPAT_DIRTY
                    self._write_header()
                if self.durable:
                    os.fdatasync(self.fd)
        finally:
            if self._dfd != self.fd:
                if not self.readonly and self.durable:
                    os.fdatasync(self._dfd)
                os.close(self._dfd)
            self._dfd = -1
            os.close(self.fd)
            self.fd = -1
            if self.backing is not None:
                self.backing.close()

    def set_backing(self, name: str | None, fmt: str | None) -> None:
        """Rewrite the header's backing file name and format (``rebase -u``)."""
        self._check_writable()
        if name and not fmt:
            raise ImageError("a backing file needs its format (-F)")
        old_len = len(self.header.pack(self.cs))
        self.header.backing_file, self.header.backing_format = name or None, fmt if name else None
        self.backing_file, self.backing_format = self.header.backing_file, self.header.backing_format
        header = self.header.pack(self.cs)
        pwrite_full(self.fd, [header + bytes(max(0, old_len - len(header)))], 0)  # no stale name left
        self.header_dirty = False

    def make_empty(self) -> None:
        """Drop every cluster of the active tree: the image then reads entirely from its backing file."""
        from pyvirt.image.qcow2.snapshot import update_tree

        self._check_writable()
        self._cstream_flush()
        update_tree(self, self.l1, -1, active=False)
        for i in range(len(self.l1)):
            self.l1[i] = 0
        self.l1_dirty = True
        self._meta = None
        self.flush()

    def mark_corrupt(self) -> None:
        if self.v3 and not self.readonly:
            self.header.incompatible_features |= H.INCOMPAT_CORRUPT
            self._write_header()


def decompress_cluster(raw: bytes | bytearray, cs: int, compression_type: int) -> bytes:
    """A compressed cluster's content: raw deflate (type 0) or the first zstd frame (type 1),
    stopping at ``cs`` bytes as QEMU does (what follows in the last sector is ignored)."""
    if compression_type == 0:
        from pyvirt.image import inflate

        return inflate.decompress_raw(raw, cs)  # InflateError is a ValueError
    import zstandard

    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(bytes(raw))[:cs]
    except zstandard.ZstdError as err:
        raise ValueError(str(err)) from err


def _fill_zero(buf: memoryview) -> None:
    n = len(buf)
    pos = 0
    while pos < n:
        m = min(n - pos, len(ZERO_CHUNK))
        buf[pos : pos + m] = ZERO_CHUNK[:m]
        pos += m


def _run_length(table: array[int], i: int, i_end: int, e: int, step: int) -> int:
    """How many entries from ``table[i]`` (at most to ``i_end``) go ``e, e + step, e + 2*step ...``.

    Galloping: a run of k entries costs about log2(k) slice comparisons of up to k entries.
    """

    def matches(k: int) -> bool:
        if e + (k - 1) * step >= 1 << 64:
            return False
        want = array("Q", [e]) * k if step == 0 else array("Q", range(e, e + k * step, step))
        return table[i : i + k] == want

    most = i_end - i
    good, k = 1, 2
    while k <= most and matches(k):
        good, k = k, k * 2
    bad = min(k, most + 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        if matches(mid):
            good = mid
        else:
            bad = mid
    return good


def unsupported(path: str, what: str) -> UnsupportedImage:
    return UnsupportedImage(f"{path}: {what} is not supported")
