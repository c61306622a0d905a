"""VMDK, read and write: monolithicSparse, streamOptimized, monolithicFlat, twoGbMaxExtentSparse,
twoGbMaxExtentFlat and other descriptor-listed FLAT/SPARSE/ZERO extents; delta disks (a parent
named by ``parentFileNameHint``) read through their parent and written as QEMU does.

Writes follow QEMU's vmdk driver: a new grain goes at the end of its extent file (whole, the
rest of it copied from the parent or zeroed), its grain table entry is mirrored into the
redundant table, and the first write after opening gives the disk a new CID. streamOptimized
extents take each grain once, deflated behind a grain marker (what ``convert`` writes).
Creation lives in :mod:`pyvirt.image.vmdk_create`.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable

from pyvirt.image import inflate
from pyvirt.image.base import Extent, Image, merge_extent
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pread_full, pwrite_full

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from mmap import mmap

SPARSE_MAGIC = b"KDMV"
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_RGD = 1 << 1
FLAG_ZEROED_GTE = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
GTE_ZEROED = 1
MAX_DESCRIPTOR = 1 << 20
MAX_GRAIN_SECTORS = 1 << 17
MAX_CAPACITY_SECTORS = 1 << 40
MAX_FILE_SECTORS = 1 << 32  # grain table entries are 32-bit sector numbers
FAST_INFLATE_MAX = 256 << 10  # compressed grains up to this size are inflated in one call
WINDOW = 8 << 20  # bytes of the file a many-grain read fetches at most at once (see _Window)
CLEAN_GT_CACHE = 4096  # clean grain tables kept (2 KiB each for QEMU's 512 entries)
_HDR = struct.Struct("<4sIIQQQQIQQQB4sH")
_MARKER = struct.Struct("<QI")

OpenBacking = Callable[[str, str | None], Image]


class _Window:
    """Part of an extent file read once for many grains: a caller reading many compressed grains
    (``convert``'s chunks) reads the file in pieces of about the guest bytes still wanted (plus an
    eighth for markers and padding), since stream-written grains lie one after another in it.
    Grains found behind the piece read twice are not in that order: the rest goes grain by grain."""

    __slots__ = ("ahead", "backwards", "fd", "held", "start")

    def __init__(self) -> None:
        self.fd = -1
        self.backwards = 0
        self.start = 0
        self.held = b""
        self.ahead = 0  # guest bytes the caller still wants, this grain's included


class _Sparse:
    """One hosted sparse extent file: its grain directory, cached grain tables, allocation point."""

    def __init__(self, fd: int, path: str, header: tuple[object, ...], size: int, *, writable: bool) -> None:
        _m, version, flags, capacity, grain, desc_off, desc_size, gtes, rgd_off, gd_off = header[:10]
        assert isinstance(flags, int) and isinstance(capacity, int) and isinstance(grain, int)
        assert isinstance(gtes, int) and isinstance(gd_off, int) and isinstance(version, int)
        assert isinstance(desc_off, int) and isinstance(desc_size, int) and isinstance(rgd_off, int)
        if version not in (1, 2, 3):
            raise UnsupportedImage(f"{path}: unsupported VMDK version {version}")
        if not 1 <= grain <= MAX_GRAIN_SECTORS or grain & (grain - 1):
            raise CorruptImage(f"{path}: invalid grain size {grain} sectors")
        if capacity > MAX_CAPACITY_SECTORS or gtes == 0 or gtes > 1 << 16:
            raise CorruptImage(f"{path}: capacity or grain table size out of range")
        self.fd, self.path, self.file_size = fd, path, size
        self.capacity, self.grain, self.gtes = capacity, grain, gtes
        self.compressed = bool(flags & FLAG_COMPRESSED)
        self.zeroed_gte = bool(flags & FLAG_ZEROED_GTE)
        self.writable = writable
        n_gd = -(-capacity // (grain * gtes))
        self.gd = self._directory(gd_off, n_gd, "grain directory")
        self.rgd = (
            self._directory(rgd_off, n_gd, "redundant grain directory")
            if flags & FLAG_RGD and rgd_off
            else None
        )
        gt_sectors = -(-gtes * 4 // 512)
        meta_end = max(1, desc_off + desc_size, gd_off + -(-n_gd * 4 // 512))
        if self.rgd is not None:
            meta_end = max(meta_end, rgd_off + -(-n_gd * 4 // 512))
        for table in (self.gd, self.rgd):
            for e in table or ():
                if e and e * 512 + gtes * 4 > size:
                    raise CorruptImage(f"{path}: a grain table lies past the end of the file")
                meta_end = max(meta_end, e + gt_sectors)
        #: grains must lie at or after this sector: before it are the header and tables
        self.meta_end = meta_end
        self.next_sector = max(-(-size // 512), meta_end)
        self.next_sector = -(-self.next_sector // grain) * grain
        self.gts: dict[int, array[int]] = {}
        self.dirty: set[int] = set()
        if writable and not self.compressed:
            self._refuse_shared_space()

    def _refuse_shared_space(self) -> None:
        """No two grains, grain tables or a grain and a table may share file space (a write to one
        would land in the other): such an extent can be read, not written, as vdi, vpc, vhdx."""
        from pyvirt.image.blocktable import refuse_overlaps

        gt_bytes, grain_bytes = self.gtes * 4, self.grain * 512
        ranges = [(e * 512, gt_bytes) for table in (self.gd, self.rgd or ()) for e in table if e]
        for e in self.gd:
            if not e:
                continue
            gt = _le32(os.pread(self.fd, gt_bytes, e * 512))
            if gt.count(0) + gt.count(GTE_ZEROED) < len(gt):
                ranges += [(g * 512, grain_bytes) for g in gt if g > GTE_ZEROED]
        refuse_overlaps(self.path, ranges, "VMDK grain table")

    def _directory(self, sector: int, n: int, what: str) -> array[int]:
        if n * 4 > 64 << 20 or sector * 512 + n * 4 > self.file_size:
            raise CorruptImage(f"{self.path}: {what} out of range")
        return _le32(os.pread(self.fd, n * 4, sector * 512)) if n else array("I")

    def table(self, gdi: int) -> array[int] | None:
        """Grain table ``gdi`` (None when the directory has none there)."""
        gt = self.gts.get(gdi)
        if gt is not None:
            return gt
        if gdi >= len(self.gd) or self.gd[gdi] == 0:
            return None
        gt = _le32(os.pread(self.fd, self.gtes * 4, self.gd[gdi] * 512))
        if len(self.gts) >= CLEAN_GT_CACHE:
            # Rebound, not mutated while iterated: convert's reader threads share this cache.
            self.gts = {k: v for k, v in list(self.gts.items()) if k in self.dirty}
        self.gts[gdi] = gt
        return gt

    def entry(self, g: int) -> int:
        gt = self.table(g // self.gtes)
        return 0 if gt is None else gt[g % self.gtes]

    def require_table(self, g: int) -> array[int]:
        """The grain table holding grain ``g``, which a write needs (QEMU preallocates them all)."""
        gdi = g // self.gtes
        gt = self.table(gdi)
        if gt is None:
            raise UnsupportedImage(
                f"{self.path}: grain table {gdi} is not allocated; writing there is not supported"
            )
        return gt

    def set_entry(self, g: int, value: int) -> None:
        self.require_table(g)[g % self.gtes] = value
        self.dirty.add(g // self.gtes)

    def allocated(self, e: int) -> bool:
        return e > 1 or (e == GTE_ZEROED and not self.zeroed_gte)

    def data_at(self, g: int, e: int) -> int:
        """The file offset of allocated grain ``g`` (entry ``e``), checked against the file."""
        off = e * 512
        if off >= self.file_size:
            raise CorruptImage(f"{self.path}: grain {g} lies past the end of the file")
        return off

    def writable_at(self, g: int, e: int) -> int:
        if e < self.meta_end:
            raise CorruptImage(f"{self.path}: grain {g} points into the image's metadata")
        return self.data_at(g, e)

    def read_compressed(self, g: int, e: int, window: _Window | None = None) -> bytes:
        """Grain ``g`` (entry ``e``) inflated; with ``window``, read through it (see :class:`_Window`)."""
        gbytes = self.grain * 512
        off = self.data_at(g, e)
        # One read holds the marker and, nearly always, the whole deflated grain.
        need = min(_MARKER.size + gbytes + 1024, self.file_size - off)
        raw: bytes
        at = 0
        if window is None:
            raw = os.pread(self.fd, need, off)
        elif window.fd == self.fd and window.start <= off and off + need <= window.start + len(window.held):
            raw, at = window.held, off - window.start
        elif window.backwards >= 2:  # grains not stored in guest order: one read a grain
            raw = os.pread(self.fd, need, off)
        else:
            if window.fd == self.fd and off < window.start:
                window.backwards += 1
            want = max(need, min(window.ahead + window.ahead // 8 + 1024, WINDOW))
            raw = window.held = os.pread(self.fd, min(want, self.file_size - off), off)
            window.fd, window.start = self.fd, off
        if len(raw) - at < _MARKER.size:
            raise CorruptImage(f"{self.path}: truncated compressed grain {g}")
        _lba, size = _MARKER.unpack_from(raw, at)
        if not size or size > 2 * gbytes + 1024 or off + _MARKER.size + size > self.file_size:
            raise CorruptImage(f"{self.path}: compressed grain {g} has an invalid size {size}")
        if at + _MARKER.size + size > len(raw):
            raw = raw[at:] + os.pread(self.fd, _MARKER.size + size - (len(raw) - at), off + len(raw) - at)
            at = 0
        payload = memoryview(raw)[at + _MARKER.size : at + _MARKER.size + size]
        try:
            if size <= FAST_INFLATE_MAX:
                # Inflating into a buffer sized up front is 3x faster than a capped stream; deflate
                # expands at most ~1032x, so a hostile grain costs a bounded, brief allocation.
                out = inflate.decompress(payload, gbytes)
            else:
                out = zlib.decompressobj().decompress(payload, gbytes)
        except (zlib.error, inflate.InflateError) as err:
            raise CorruptImage(f"{self.path}: grain {g} does not decompress: {err}") from err
        finally:
            payload.release()
        if len(out) > gbytes:
            raise CorruptImage(f"{self.path}: grain {g} decompresses to more than a grain")
        if len(out) < gbytes:
            out += bytes(gbytes - len(out))
        return out

    def allocate(self, sectors: int) -> int:
        """Reserve ``sectors`` at the end of the file; returns the first one."""
        at = self.next_sector
        if at + sectors > MAX_FILE_SECTORS:
            raise ImageError(f"{self.path}: the extent file cannot grow past 2 TiB")
        self.next_sector = at + sectors
        self.file_size = max(self.file_size, self.next_sector * 512)
        return at

    def flush(self) -> None:
        for gdi in sorted(self.dirty):
            raw = _dump_le32(self.gts[gdi])
            pwrite_full(self.fd, [raw], self.gd[gdi] * 512)
            if self.rgd is not None and self.rgd[gdi]:
                pwrite_full(self.fd, [raw], self.rgd[gdi] * 512)
        self.dirty.clear()


def _le32(raw: bytes) -> array[int]:
    a = array("I", raw[: len(raw) - len(raw) % 4])
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _dump_le32(a: array[int]) -> bytes:
    if sys.byteorder == "big":
        b = array("I", a)
        b.byteswap()
        return b.tobytes()
    return a.tobytes()


class _Part:
    """A descriptor extent: ``kind`` FLAT, SPARSE or ZERO, covering ``sectors`` from ``start``."""

    def __init__(
        self,
        kind: str,
        start: int,
        sectors: int,
        *,
        fd: int = -1,
        offset: int = 0,
        sparse: _Sparse | None = None,
        name: str = "",
        listed: bool = True,
    ) -> None:
        self.kind, self.start, self.sectors = kind, start, sectors
        self.fd, self.offset, self.sparse, self.name, self.listed = fd, offset, sparse, name, listed


def _read_sparse_header(fd: int, path: str) -> tuple[tuple[object, ...], int]:
    size = os.fstat(fd).st_size
    raw = os.pread(fd, 512, 0)
    if len(raw) < _HDR.size or raw[:4] != SPARSE_MAGIC:
        raise CorruptImage(f"{path}: not a VMDK sparse extent")
    h = _HDR.unpack_from(raw, 0)
    if h[9] == GD_AT_END:
        if size < 1536:
            raise CorruptImage(f"{path}: streamOptimized footer missing")
        foot = os.pread(fd, 512, size - 1024)
        if foot[:4] != SPARSE_MAGIC:
            raise CorruptImage(f"{path}: streamOptimized footer missing")
        h = _HDR.unpack_from(foot, 0)
        if h[9] == GD_AT_END:
            raise CorruptImage(f"{path}: streamOptimized footer has no grain directory")
    return h, size


def _open_fd(path: str, writable: bool, force_share: bool) -> int:
    from pyvirt.image.locking import open_locked

    return open_locked(path, readonly=not writable, force_share=force_share)


def _open_sparse(path: str, writable: bool, force_share: bool) -> tuple[_Sparse, bytes, int, int]:
    """The extent, its embedded descriptor, and where that descriptor lies (offset, room)."""
    fd = _open_fd(path, writable, force_share)
    try:
        h, size = _read_sparse_header(fd, path)
        raw0 = os.pread(fd, _HDR.size, 0)
        if writable and _HDR.unpack_from(raw0, 0)[9] == GD_AT_END:
            raise UnsupportedImage(
                f"{path}: streamOptimized images with a footer can be opened read-only only"
            )
        sp = _Sparse(fd, path, h, size, writable=writable)
        desc_off, desc_size = h[5], h[6]
        assert isinstance(desc_off, int) and isinstance(desc_size, int)
        desc = b""
        if desc_off and desc_size:
            if desc_size * 512 > MAX_DESCRIPTOR or (desc_off + desc_size) * 512 > max(size, 512 * 21):
                raise CorruptImage(f"{path}: descriptor out of range")
            desc = os.pread(fd, desc_size * 512, desc_off * 512).split(b"\0", 1)[0]
        return sp, desc, desc_off * 512, desc_size * 512
    except BaseException:
        os.close(fd)
        raise


_EXTENT_RE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?')


class VmdkImage(Image):
    """A VMDK disk (all its extents)."""

    format = "vmdk"

    def __init__(
        self,
        path: str,
        parts: list[_Part],
        fds: list[int],
        create_type: str,
        descriptor: str = "",
        *,
        readonly: bool = True,
        desc_fd: int = -1,
        desc_at: int = 0,
        desc_room: int = 0,
    ) -> None:
        self.descriptor = descriptor
        self.path = path
        self.parts = parts
        self.fds = fds
        self.create_type = create_type
        self.readonly = readonly
        self.size = sum(p.sectors for p in parts) * 512
        first = next((p.sparse for p in parts if p.sparse is not None), None)
        self.cluster_size = first.grain * 512 if first is not None else None
        #: every grain goes in deflated (streamOptimized): convert compresses whatever -c says
        self.compressed = first is not None and first.compressed
        data_fds = {p.sparse.fd if p.sparse is not None else p.fd for p in parts if p.kind != "ZERO"}
        self.fd = data_fds.pop() if len(data_fds) == 1 else -1
        self.desc_fd, self.desc_at, self.desc_room = desc_fd, desc_at, desc_room
        self.cid = _hex_field(descriptor, "CID")
        self.parent_cid = _hex_field(descriptor, "parentCID")
        self.backing_file = _parent_hint(descriptor)
        self.backing_format = "vmdk" if self.backing_file else None
        self._cid_written = False
        self._parent_checked = False

    @classmethod
    def open(
        cls,
        path: str,
        *,
        readonly: bool = True,
        open_backing: OpenBacking | None = None,
        force_share: bool = False,
    ) -> VmdkImage:
        with open(path, "rb") as f:
            head = f.read(4)
        fds: list[int] = []
        writable = not readonly
        try:
            if head == SPARSE_MAGIC:
                sp, desc, at, room = _open_sparse(path, writable, force_share)
                fds.append(sp.fd)
                text = desc.decode("utf-8", "replace")
                ctype = _create_type(text) or "monolithicSparse"
                part = _Part("SPARSE", 0, sp.capacity, sparse=sp, name=path, listed=False)
                img = cls(
                    path,
                    [part],
                    fds,
                    ctype,
                    text,
                    readonly=readonly,
                    desc_fd=sp.fd,
                    desc_at=at,
                    desc_room=room,
                )
            else:
                if os.path.getsize(path) > MAX_DESCRIPTOR:
                    raise CorruptImage(f"{path}: VMDK descriptor too large")
                dfd = _open_fd(path, writable, force_share)
                fds.append(dfd)
                raw = os.pread(dfd, MAX_DESCRIPTOR, 0)
                text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                parts = cls._parse_extents(path, text, fds, writable, force_share)
                img = cls(
                    path,
                    parts,
                    fds,
                    _create_type(text) or "unknown",
                    text,
                    readonly=readonly,
                    desc_fd=dfd,
                    desc_room=MAX_DESCRIPTOR,
                )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if img.backing_file and open_backing is not None:
            try:
                img.backing = open_backing(img.backing_file, "vmdk")
            except BaseException:
                img.close()
                raise
        return img

    @staticmethod
    def _parse_extents(
        path: str, text: str, fds: list[int], writable: bool, force_share: bool
    ) -> list[_Part]:
        folder = os.path.dirname(os.path.abspath(path))
        parts: list[_Part] = []
        start = 0
        for line in text.splitlines():
            m = _EXTENT_RE.match(line.strip())
            if not m:
                continue
            _access, sectors_s, kind, name, offset = m.groups()
            sectors = int(sectors_s)
            if sectors > MAX_CAPACITY_SECTORS or start + sectors > MAX_CAPACITY_SECTORS:
                raise CorruptImage(f"{path}: extent size out of range")
            if kind == "ZERO":
                parts.append(_Part("ZERO", start, sectors))
            elif kind in ("FLAT", "VMFS") and name:
                fd = _open_fd(_extent_path(folder, name, path), writable, force_share)
                fds.append(fd)
                parts.append(
                    _Part(
                        "FLAT", start, sectors, fd=fd, offset=int(offset or 0) * 512, name=_shown(path, name)
                    )
                )
            elif kind in ("SPARSE", "VMFSSPARSE") and name:
                sp, _desc, _at, _room = _open_sparse(_extent_path(folder, name, path), writable, force_share)
                fds.append(sp.fd)
                if sp.capacity < sectors:
                    raise CorruptImage(f"{path}: extent '{name}' is smaller than the descriptor says")
                parts.append(_Part("SPARSE", start, sectors, sparse=sp, name=_shown(path, name)))
            else:
                raise UnsupportedImage(f"{path}: unsupported VMDK extent type {kind}")
            start += sectors
        if not parts:
            raise CorruptImage(f"{path}: VMDK descriptor lists no extents")
        return parts

    def member_files(self) -> list[str]:
        folder = os.path.dirname(os.path.abspath(self.path))
        files = [os.path.join(folder, p.name) for p in self.parts if p.listed and p.name]
        return [f for f in dict.fromkeys(files) if f != os.path.abspath(self.path)]

    def extent_bytes(self) -> int:
        """Disk space of extent files other than the descriptor (qemu-img adds it to actual-size)."""
        total = 0
        for p in self.parts:
            fd = p.sparse.fd if p.sparse is not None else p.fd
            if p.listed and fd >= 0:
                total += os.fstat(fd).st_blocks * 512
        return total

    def format_specific(self) -> dict[str, object]:
        """qemu-img info's ``format-specific`` data for VMDK."""
        extents: list[dict[str, object]] = []
        for p in self.parts:
            e: dict[str, object] = {}
            if p.sparse is not None and p.sparse.compressed:
                e["compressed"] = True
            e["virtual-size"] = p.sectors * 512
            e["filename"] = p.name
            if p.sparse is not None:
                e["cluster-size"] = p.sparse.grain * 512
            e["format"] = p.kind if p.listed else ""
            extents.append(e)
        return {
            "cid": self.cid,
            "parent-cid": self.parent_cid,
            "create-type": self.create_type,
            "extents": extents,
        }

    def grains_past_eof(self) -> int | None:
        """The first sector whose grain lies at or past the end of its file (qemu-img check's test)."""
        for p in self.parts:
            sp = p.sparse
            if sp is None:
                continue
            limit = -(-sp.file_size // 512)
            n_grains = -(-p.sectors // sp.grain)
            for gdi in range(-(-n_grains // sp.gtes)):
                gt = sp.table(gdi)
                if gt is None or max(gt) < limit:
                    continue
                for i, e in enumerate(gt):
                    g = gdi * sp.gtes + i
                    if g < n_grains and e >= limit and sp.allocated(e):
                        return p.start + g * sp.grain
        return None

    def _part_at(self, sector: int) -> _Part:
        for p in self.parts:
            if p.start <= sector < p.start + p.sectors:
                return p
        raise CorruptImage(f"{self.path}: no extent covers sector {sector}")

    # ------------------------------------------------------------ reading

    def _pieces(self, offset: int, length: int) -> Iterable[tuple[_Part, int, int, int]]:
        """``(part, guest position, bytes, position in the part)`` runs, one grain at most each."""
        pos, end = offset, offset + length
        while pos < end:
            p = self._part_at(pos // 512)
            pend = min(end, (p.start + p.sectors) * 512)
            base = p.start * 512
            if p.sparse is None:
                yield p, pos, pend - pos, pos - base
                pos = pend
                continue
            gbytes = p.sparse.grain * 512
            while pos < pend:
                rel = pos - base
                n = min(gbytes - rel % gbytes, pend - pos)
                yield p, pos, n, rel
                pos += n

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        window = _Window() if len(buf) > 64 << 10 else None
        end = offset + len(buf)
        for p, pos, n, rel in self._pieces(offset, len(buf)):
            out = buf[pos - offset : pos - offset + n]
            if p.kind == "ZERO":
                out[:] = bytes(n)
            elif p.sparse is None:
                pread_full(p.fd, out, p.offset + rel)
            else:
                sp = p.sparse
                g = rel // (sp.grain * 512)
                inoff = rel % (sp.grain * 512)
                e = sp.entry(g)
                if not sp.allocated(e):
                    if e == GTE_ZEROED or self.backing is None:
                        out[:] = bytes(n)
                    else:
                        self._check_parent()
                        self.read_backing(pos, out)
                elif sp.compressed:
                    if window is not None:
                        window.ahead = end - pos
                    out[:] = sp.read_compressed(g, e, window)[inoff : inoff + n]
                else:
                    pread_full(sp.fd, out, sp.data_at(g, e) + inoff)

    def _check_parent(self) -> None:
        """As QEMU: a delta disk's parent must still carry the CID the delta was made against."""
        if self._parent_checked or self.backing is None:
            return
        parent = self.backing
        cid = parent.cid if isinstance(parent, VmdkImage) else None
        if cid != self.parent_cid:
            raise CorruptImage(
                f"{self.path}: the parent '{self.backing_file}' has changed since this delta disk was made "
                f"(its CID is {cid if cid is None else f'{cid:x}'}, parentCID says {self.parent_cid:x})"
            )
        self._parent_checked = True

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        for p, pos, n, rel in self._pieces(offset, length):
            if p.kind == "ZERO":
                x = [Extent(pos, n, data=False, zero=True)]
            elif p.sparse is None:
                x = [Extent(pos, n, data=True, zero=False, offset=p.offset + rel)]
            else:
                sp = p.sparse
                g, inoff = divmod(rel, sp.grain * 512)
                e = sp.entry(g)
                if sp.allocated(e):
                    if sp.compressed:
                        x = [Extent(pos, n, data=True, zero=False, compressed=True)]
                    else:
                        x = [Extent(pos, n, data=True, zero=False, offset=sp.data_at(g, e) + inoff)]
                elif e == GTE_ZEROED:
                    x = [Extent(pos, n, data=False, zero=True)]
                elif self.backing is not None:
                    x = self.backing_status(pos, n)
                else:
                    x = [Extent(pos, n, data=False, zero=True, present=False)]
            for ext in x:
                merge_extent(out, ext)
        return out

    # ------------------------------------------------------------ writing

    def _new_cid(self) -> None:
        """QEMU gives the disk a new CID on the first write after each open."""
        if self._cid_written:
            return
        self._cid_written = True
        cid = int.from_bytes(os.urandom(4), "little")
        text, n = re.subn(r"(?m)^CID=[0-9a-fA-F]+", f"CID={cid:x}", self.descriptor, count=1)
        if not n or self.desc_fd < 0:
            return
        raw = text.encode()
        if len(raw) > self.desc_room:
            raise ImageError(f"{self.path}: the descriptor does not fit its space")
        if self.desc_room == MAX_DESCRIPTOR:
            pwrite_full(self.desc_fd, [raw], 0)
            os.ftruncate(self.desc_fd, len(raw))
        else:
            pwrite_full(self.desc_fd, [raw + bytes(self.desc_room - len(raw))], self.desc_at)
        self.descriptor, self.cid = text, cid

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        self._check_range(offset, len(data))
        mv = memoryview(data).cast("B")
        self._new_cid()
        for p, pos, n, rel in self._pieces(offset, len(mv)):
            piece = mv[pos - offset : pos - offset + n]
            if p.kind == "ZERO":
                if any(piece):
                    raise ImageError(
                        f"{self.path}: sector {pos // 512} lies in a ZERO extent, which cannot be written"
                    )
            elif p.sparse is None:
                pwrite_full(p.fd, [piece], p.offset + rel)
            elif p.sparse.compressed:
                self._write_stream(p, pos, piece, rel)
            else:
                self._write_grain(p.sparse, pos, piece, rel)

    def _write_grain(self, sp: _Sparse, pos: int, piece: memoryview, rel: int) -> None:
        gbytes = sp.grain * 512
        g, inoff = divmod(rel, gbytes)
        e = sp.entry(g)
        if sp.allocated(e):
            pwrite_full(sp.fd, [piece], sp.writable_at(g, e) + inoff)
            return
        sp.require_table(g)
        whole = bytearray(gbytes)
        if len(piece) < gbytes and e != GTE_ZEROED and self.backing is not None:
            self._check_parent()
            self.read_backing(pos - inoff, memoryview(whole))
        whole[inoff : inoff + len(piece)] = piece
        at = sp.allocate(sp.grain)
        pwrite_full(sp.fd, [memoryview(whole)], at * 512)
        sp.set_entry(g, at)

    def _write_stream(self, p: _Part, pos: int, piece: memoryview, rel: int) -> None:
        sp = p.sparse
        assert sp is not None
        gbytes = sp.grain * 512
        if sp.allocated(sp.entry(rel // gbytes)):
            raise ImageError(f"{self.path}: Could not write to allocated cluster for streamOptimized")
        if rel % gbytes or (len(piece) < gbytes and pos + len(piece) != (p.start + p.sectors) * 512):
            raise ImageError(
                f"{self.path}: a streamOptimized image takes whole grains only (write it with convert)"
            )
        self.write_compressed([(pos // gbytes, zlib.compress(piece))])

    def write_compressed(self, items: Iterable[tuple[int, bytes]]) -> None:
        """Append deflated grains: ``(guest grain index, zlib stream)``, each grain written once."""
        self._check_writable()
        self._new_cid()
        batch: list[bytes] = []
        batch_at, batch_fd = -1, -1
        for c, payload in items:
            assert self.cluster_size is not None
            pos = c * self.cluster_size
            p = self._part_at(pos // 512)
            sp = p.sparse
            if sp is None or not sp.compressed:
                raise ImageError(f"{self.path}: compressed grains need a streamOptimized extent")
            g = (pos - p.start * 512) // (sp.grain * 512)
            if sp.allocated(sp.entry(g)):
                raise ImageError(f"{self.path}: Could not write to allocated cluster for streamOptimized")
            sp.require_table(g)
            rec = _MARKER.pack(pos // 512, len(payload)) + payload
            rec += bytes(-len(rec) % 512)
            at = sp.allocate(len(rec) // 512)
            if batch and (batch_fd != sp.fd or batch_at + sum(len(b) for b in batch) // 512 != at):
                pwrite_full(batch_fd, batch, batch_at * 512)
                batch = []
            if not batch:
                batch_at, batch_fd = at, sp.fd
            batch.append(rec)
            sp.set_entry(g, at)
        if batch:
            pwrite_full(batch_fd, batch, batch_at * 512)

    def write_granule(self) -> int | None:
        return None if all(p.sparse is None for p in self.parts) else self.cluster_size

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        """Direct runs in the one data file: flat extents, allocated grains, whole new grains.

        None (use :meth:`write`) when a piece needs a partly written new grain, another file, or
        compression.
        """
        self._check_writable()
        self._check_range(offset, length)
        pieces = list(self._pieces(offset, length))
        for p, _pos, n, rel in pieces:
            if p.kind == "ZERO" or (p.sparse.fd if p.sparse is not None else p.fd) != self.fd:
                return None
            sp = p.sparse
            if sp is not None:
                gbytes = sp.grain * 512
                g = rel // gbytes
                if (
                    sp.compressed
                    or sp.table(g // sp.gtes) is None
                    or (n != gbytes and not sp.allocated(sp.entry(g)))
                ):
                    return None
        self._new_cid()
        runs: list[tuple[int, int, int]] = []
        for p, pos, n, rel in pieces:
            sp = p.sparse
            if sp is None:
                host = p.offset + rel
            else:
                g, inoff = divmod(rel, sp.grain * 512)
                e = sp.entry(g)
                if sp.allocated(e):
                    host = sp.writable_at(g, e) + inoff
                else:
                    at = sp.allocate(sp.grain)
                    sp.set_entry(g, at)
                    host = at * 512
            if runs and runs[-1][0] + runs[-1][2] == pos and runs[-1][1] + runs[-1][2] == host:
                runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + n)
            else:
                runs.append((pos, host, n))
        return runs

    def write_zeroes(self, offset: int, length: int) -> None:
        self._check_writable()
        self._check_range(offset, length)
        for p, pos, n, rel in self._pieces(offset, length):
            if p.kind == "ZERO":
                continue
            if p.sparse is None:
                from pyvirt.image.raw import punch_hole

                if not punch_hole(p.fd, p.offset + rel, n):
                    self.write(pos, bytes(n))
                continue
            sp = p.sparse
            g = rel // (sp.grain * 512)
            e = sp.entry(g)
            if sp.zeroed_gte and n == sp.grain * 512:
                if e != GTE_ZEROED:
                    self._new_cid()
                    sp.set_entry(g, GTE_ZEROED)
            elif sp.allocated(e) or (self.backing is not None and e != GTE_ZEROED):
                self.write(pos, bytes(n))

    def flush(self) -> None:
        if self.readonly:
            return
        for p in self.parts:
            if p.sparse is not None:
                p.sparse.flush()
        if self.durable:
            for fd in self.fds:
                os.fdatasync(fd)

    def close(self) -> None:
        try:
            if self.fds:
                self.flush()
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds = []
            if self.backing is not None:
                self.backing.close()
                self.backing = None


def compress_grains(data: bytes | bytearray | mmap, cs: int) -> list[bytes | None]:
    """One zlib stream per grain of ``data`` (as QEMU's ``compress()``), b"" for an all-zero grain.

    A grain that fast deflate cannot shrink at all (random-like data) is stored in the stream
    as it is (level 0) rather than tried at level 6 for nothing: the same bytes come back out.
    """
    from pyvirt.image.converter import looks_incompressible

    out: list[bytes | None] = []
    zero = bytes(cs)
    for i in range(0, len(data), cs):
        piece = data[i : i + cs]
        if piece == zero[: len(piece)]:
            out.append(b"")
        else:
            out.append(zlib.compress(piece, 0 if looks_incompressible(piece) else -1))
    return out


def _hex_field(text: str, key: str) -> int:
    m = re.search(rf"^{key}\s*=\s*([0-9a-fA-F]+)", text, re.M)
    return int(m.group(1), 16) & 0xFFFFFFFF if m else 0


def _parent_hint(text: str) -> str | None:
    if _hex_field(text, "parentCID") == 0xFFFFFFFF:
        return None
    m = re.search(r'parentFileNameHint\s*=\s*"([^"]*)"', text)
    return m.group(1) if m and m.group(1) else None


def _shown(path: str, name: str) -> str:
    """The extent's name as qemu-img shows it: joined to the descriptor's folder as written."""
    if os.path.isabs(name) or "/" not in path:
        return name
    return path[: path.rindex("/") + 1] + name


def _create_type(text: str) -> str | None:
    m = re.search(r'createType\s*=\s*"([^"]*)"', text)
    return m.group(1) if m else None


def _extent_path(folder: str, name: str, path: str) -> str:
    target = os.path.normpath(os.path.join(folder, name))
    if os.path.commonpath([os.path.realpath(folder), os.path.realpath(target)]) != os.path.realpath(folder):
        raise ImageError(f"{path}: VMDK extent '{name}' lies outside the descriptor's folder")
    return target
