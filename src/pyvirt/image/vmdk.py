"""Read-only VMDK: monolithicSparse, streamOptimized, monolithicFlat and other descriptor-listed
FLAT/SPARSE/ZERO extents (e.g. twoGbMaxExtentSparse). Delta disks (with a parent) are refused.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass

from pyvirt.image.base import Extent, Image
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pread_full

SPARSE_MAGIC = b"KDMV"
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_ZEROED_GTE = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
MAX_DESCRIPTOR = 1 << 20
MAX_GRAIN_SECTORS = 1 << 17
MAX_CAPACITY_SECTORS = 1 << 40
_HDR = struct.Struct("<4sIIQQQQIQQQB4sH")


@dataclass
class _Sparse:
    """One hosted sparse extent file."""

    fd: int
    path: str
    capacity: int
    grain: int
    gtes: int
    gd: list[int]
    compressed: bool
    zeroed_gte: bool
    file_size: int
    gt_cache: dict[int, array[int]]

    def grain_entry(self, g: int) -> int:
        gdi = g // self.gtes
        if gdi >= len(self.gd) or self.gd[gdi] == 0:
            return 0
        gt = self.gt_cache.get(gdi)
        if gt is None:
            off = self.gd[gdi] * 512
            if off + self.gtes * 4 > self.file_size:
                raise CorruptImage(f"{self.path}: grain table {gdi} lies past the end of the file")
            gt = array("I", os.pread(self.fd, self.gtes * 4, off))
            if sys.byteorder == "big":
                gt.byteswap()
            if len(self.gt_cache) > 64:
                self.gt_cache.clear()
            self.gt_cache[gdi] = gt
        return gt[g % self.gtes]

    def read_grain(self, g: int, entry: int) -> bytes:
        gbytes = self.grain * 512
        off = entry * 512
        if off >= self.file_size:
            raise CorruptImage(f"{self.path}: grain {g} lies past the end of the file")
        if not self.compressed:
            buf = bytearray(gbytes)
            pread_full(self.fd, memoryview(buf), off)
            return bytes(buf)
        head = os.pread(self.fd, 12, off)
        if len(head) < 12:
            raise CorruptImage(f"{self.path}: truncated compressed grain {g}")
        _lba, size = struct.unpack("<QI", head)
        if size > 2 * gbytes + 1024 or off + 12 + size > self.file_size:
            raise CorruptImage(f"{self.path}: compressed grain {g} has an invalid size {size}")
        d = zlib.decompressobj()
        try:
            out = d.decompress(os.pread(self.fd, size, off + 12), gbytes)
        except zlib.error as err:
            raise CorruptImage(f"{self.path}: grain {g} does not decompress: {err}") from err
        if len(out) < gbytes:
            out += bytes(gbytes - len(out))
        return out


@dataclass
class _Part:
    """A descriptor extent: ``kind`` FLAT, SPARSE or ZERO, covering ``sectors`` from ``start``."""

    kind: str
    start: int
    sectors: int
    fd: int = -1
    offset: int = 0
    sparse: _Sparse | None = None
    name: str = ""
    listed: bool = True


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
    return h, size


def _open_sparse(path: str) -> tuple[_Sparse, bytes]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise ImageError(f"Could not open '{path}': {err.strerror}") from err
    try:
        h, size = _read_sparse_header(fd, path)
        _m, version, flags, capacity, grain, desc_off, desc_size, gtes, _rgd, gd_off = h[:10]
        assert isinstance(flags, int) and isinstance(capacity, int) and isinstance(grain, int)
        assert isinstance(gtes, int) and isinstance(gd_off, int) and isinstance(version, int)
        assert isinstance(desc_off, int) and isinstance(desc_size, int)
        if version not in (1, 2, 3):
            raise UnsupportedImage(f"{path}: unsupported VMDK version {version}")
        if not 1 <= grain <= MAX_GRAIN_SECTORS or grain & (grain - 1):
            raise CorruptImage(f"{path}: invalid grain size {grain} sectors")
        if capacity > MAX_CAPACITY_SECTORS or gtes == 0 or gtes > 1 << 16:
            raise CorruptImage(f"{path}: capacity or grain table size out of range")
        n_gd = -(-capacity // (grain * gtes))
        if n_gd * 4 > 64 << 20 or gd_off * 512 + n_gd * 4 > size:
            raise CorruptImage(f"{path}: grain directory out of range")
        gd = list(struct.unpack(f"<{n_gd}I", os.pread(fd, n_gd * 4, gd_off * 512))) if n_gd else []
        desc = b""
        if desc_off and desc_size:
            if desc_size * 512 > MAX_DESCRIPTOR:
                raise CorruptImage(f"{path}: descriptor too large")
            desc = os.pread(fd, desc_size * 512, desc_off * 512).split(b"\0", 1)[0]
        sp = _Sparse(
            fd,
            path,
            capacity,
            grain,
            gtes,
            gd,
            bool(flags & FLAG_COMPRESSED),
            bool(flags & FLAG_ZEROED_GTE),
            size,
            {},
        )
        return sp, desc
    except BaseException:
        os.close(fd)
        raise


_EXTENT_RE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?')


class VmdkImage(Image):
    """A VMDK disk (all extents), read-only."""

    format = "vmdk"

    def __init__(
        self, path: str, parts: list[_Part], fds: list[int], create_type: str, descriptor: str = ""
    ) -> None:
        self.descriptor = descriptor
        self.path = path
        self.parts = parts
        self.fds = fds
        self.create_type = create_type
        self.size = sum(p.sectors for p in parts) * 512
        first = next((p.sparse for p in parts if p.sparse is not None), None)
        self.cluster_size = first.grain * 512 if first is not None else None

    @classmethod
    def open(cls, path: str) -> VmdkImage:
        with open(path, "rb") as f:
            head = f.read(4)
        fds: list[int] = []
        try:
            if head == SPARSE_MAGIC:
                sp, desc = _open_sparse(path)
                fds.append(sp.fd)
                text = desc.decode("utf-8", "replace")
                ctype = _create_type(text) or "monolithicSparse"
                _refuse_parent(path, text)
                part = _Part("SPARSE", 0, sp.capacity, sparse=sp, name=path, listed=False)
                return cls(path, [part], fds, ctype, text)
            if os.path.getsize(path) > MAX_DESCRIPTOR:
                raise CorruptImage(f"{path}: VMDK descriptor too large")
            with open(path, "rb") as f:
                text = f.read().split(b"\0", 1)[0].decode("utf-8", "replace")
            _refuse_parent(path, text)
            parts = cls._parse_extents(path, text, fds)
            return cls(path, parts, fds, _create_type(text) or "unknown", text)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    @staticmethod
    def _parse_extents(path: str, text: str, fds: list[int]) -> list[_Part]:
        folder = os.path.dirname(os.path.abspath(path))
        parts: list[_Part] = []
        start = 0
        for line in text.splitlines():
            m = _EXTENT_RE.match(line.strip())
            if not m:
                continue
            _access, sectors_s, kind, name, offset = m.groups()
            sectors = int(sectors_s)
            if sectors > MAX_CAPACITY_SECTORS:
                raise CorruptImage(f"{path}: extent size out of range")
            if kind == "ZERO":
                parts.append(_Part("ZERO", start, sectors))
            elif kind in ("FLAT", "VMFS") and name:
                target = _extent_path(folder, name, path)
                try:
                    fd = os.open(target, os.O_RDONLY)
                except OSError as err:
                    raise ImageError(f"Could not open VMDK extent '{target}': {err.strerror}") from err
                fds.append(fd)
                parts.append(
                    _Part(
                        "FLAT", start, sectors, fd=fd, offset=int(offset or 0) * 512, name=_shown(path, name)
                    )
                )
            elif kind in ("SPARSE", "VMFSSPARSE") and name:
                sp, _desc = _open_sparse(_extent_path(folder, name, path))
                fds.append(sp.fd)
                parts.append(_Part("SPARSE", start, sectors, sparse=sp, name=_shown(path, name)))
            else:
                raise UnsupportedImage(f"{path}: unsupported VMDK extent type {kind}")
            start += sectors
        if not parts:
            raise CorruptImage(f"{path}: VMDK descriptor lists no extents")
        return parts

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
            "cid": _hex_field(self.descriptor, "CID"),
            "parent-cid": _hex_field(self.descriptor, "parentCID"),
            "create-type": self.create_type,
            "extents": extents,
        }

    def _part_at(self, sector: int) -> _Part:
        for p in self.parts:
            if p.start <= sector < p.start + p.sectors:
                return p
        raise CorruptImage(f"{self.path}: no extent covers sector {sector}")

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        pos, end = offset, offset + len(buf)
        while pos < end:
            p = self._part_at(pos // 512)
            pend = min(end, (p.start + p.sectors) * 512)
            rel = pos - p.start * 512
            out = buf[pos - offset : pend - offset]
            if p.kind == "ZERO":
                out[:] = bytes(len(out))
            elif p.kind == "FLAT":
                pread_full(p.fd, out, p.offset + rel)
            else:
                assert p.sparse is not None
                self._read_sparse(p.sparse, rel, out)
            pos = pend

    def _read_sparse(self, sp: _Sparse, rel: int, out: memoryview) -> None:
        gbytes = sp.grain * 512
        pos, end = rel, rel + len(out)
        while pos < end:
            g = pos // gbytes
            inoff = pos % gbytes
            n = min(gbytes - inoff, end - pos)
            e = sp.grain_entry(g)
            dst = out[pos - rel : pos - rel + n]
            if e == 0 or (e == 1 and sp.zeroed_gte):
                dst[:] = bytes(n)
            elif not sp.compressed:
                pread_full(sp.fd, dst, e * 512 + inoff)
            else:
                dst[:] = sp.read_grain(g, e)[inoff : inoff + n]
            pos += n

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        pos, end = offset, offset + length
        while pos < end:
            p = self._part_at(pos // 512)
            pend = min(end, (p.start + p.sectors) * 512)
            if p.kind == "ZERO":
                out.append(Extent(pos, pend - pos, data=False, zero=True))
            elif p.kind == "FLAT":
                out.append(
                    Extent(pos, pend - pos, data=True, zero=False, offset=p.offset + pos - p.start * 512)
                )
            else:
                assert p.sparse is not None
                gbytes = p.sparse.grain * 512
                q = pos
                while q < pend:
                    n = min(gbytes - (q - p.start * 512) % gbytes, pend - q)
                    e = p.sparse.grain_entry((q - p.start * 512) // gbytes)
                    alloc = e > 1 or (e == 1 and not p.sparse.zeroed_gte)
                    x = Extent(q, n, data=alloc, zero=not alloc)
                    if out and out[-1].data == x.data and out[-1].start + out[-1].length == q:
                        prev = out[-1]
                        out[-1] = Extent(prev.start, prev.length + n, prev.data, prev.zero)
                    else:
                        out.append(x)
                    q += n
            pos = pend
        return out

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _hex_field(text: str, key: str) -> int:
    m = re.search(rf"^{key}\s*=\s*([0-9a-fA-F]+)", text, re.M)
    return int(m.group(1), 16) if m else 0


def _shown(path: str, name: str) -> str:
    """The extent's name as qemu-img shows it: joined to the descriptor's folder as written."""
    if os.path.isabs(name) or "/" not in path:
        return name
    return path[: path.rindex("/") + 1] + name


def _create_type(text: str) -> str | None:
    m = re.search(r'createType\s*=\s*"([^"]*)"', text)
    return m.group(1) if m else None


def _refuse_parent(path: str, text: str) -> None:
    m = re.search(r"parentCID\s*=\s*([0-9a-fA-F]+)", text)
    if m and m.group(1).lower() != "ffffffff":
        raise UnsupportedImage(f"{path}: VMDK delta disks (with a parent) are not supported")


def _extent_path(folder: str, name: str, path: str) -> str:
    target = os.path.normpath(os.path.join(folder, name))
    if os.path.commonpath([os.path.realpath(folder), os.path.realpath(target)]) != os.path.realpath(folder):
        raise ImageError(f"{path}: VMDK extent '{name}' lies outside the descriptor's folder")
    return target
