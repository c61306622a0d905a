"""qcow2 internal snapshots: the snapshot table, and create / list / apply / delete.

A snapshot is a copy of the L1 table; every L2 table and data cluster it reaches gains a reference,
so the active image copies on write. Refcounts count one reference per L1 tree that reaches a
cluster; COPIED flags of the active tree are recomputed after every change.
"""

from __future__ import annotations

import os
import struct
import time

from pyvirt.image.errors import CorruptImage, ImageError
from pyvirt.image.fileio import pread_full, pwrite_full
from pyvirt.image.qcow2 import header as H
from pyvirt.image.record import Record
from pyvirt.image.sizes import size_to_str

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from array import array
    from typing import Any

    from pyvirt.image.qcow2.image import Qcow2Image

_ENTRY = struct.Struct(">QIHHIIQII")
MAX_TABLE_BYTES = 64 << 20
MAX_EXTRA = 1024


class Snapshot(Record):
    """One entry of the snapshot table."""

    def __init__(
        self,
        l1_table_offset: int,
        l1_size: int,
        id: str,
        name: str,
        date_sec: int,
        date_nsec: int,
        vm_clock_nsec: int,
        vm_state_size: int,
        disk_size: int,
        icount: int = -1,
        extra: bytes = b"",
        raw_len: int = 0,
    ) -> None:
        self.l1_table_offset = l1_table_offset
        self.l1_size = l1_size
        self.id = id
        self.name = name
        self.date_sec = date_sec
        self.date_nsec = date_nsec
        self.vm_clock_nsec = vm_clock_nsec
        self.vm_state_size = vm_state_size
        self.disk_size = disk_size
        self.icount = icount
        self.extra = extra
        self.raw_len = raw_len  # bytes this entry occupies in the table as read

    def info(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.icount != -1:
            d["icount"] = self.icount
        d.update(
            {
                "vm-clock-nsec": self.vm_clock_nsec % 1_000_000_000,
                "name": self.name,
                "date-sec": self.date_sec,
                "date-nsec": self.date_nsec,
                "vm-clock-sec": self.vm_clock_nsec // 1_000_000_000,
                "id": self.id,
                "vm-state-size": self.vm_state_size,
            }
        )
        return d

    def pack(self, version: int) -> bytes:
        extra = bytearray(struct.pack(">QQQ", self.vm_state_size, self.disk_size, self.icount & (2**64 - 1)))
        if len(self.extra) > len(extra):
            extra += self.extra[len(extra) :]
        ids, name = self.id.encode(), self.name.encode()
        out = bytearray(
            _ENTRY.pack(
                self.l1_table_offset,
                self.l1_size,
                len(ids),
                len(name),
                self.date_sec,
                self.date_nsec,
                self.vm_clock_nsec,
                min(self.vm_state_size, 0xFFFFFFFF),
                len(extra),
            )
        )
        out += extra + ids + name
        out += bytes(-len(out) % 8)
        return bytes(out)


def read_snapshot_table(fd: int, h: H.Header, file_size: int, *, source: str) -> list[Snapshot]:
    """Decode the snapshot table, refusing sizes and offsets out of range."""
    out: list[Snapshot] = []
    pos = h.snapshots_offset
    buf = b""
    base = pos
    for _ in range(h.nb_snapshots):
        need = pos - base + _ENTRY.size
        if need > MAX_TABLE_BYTES:
            raise CorruptImage(f"{source}: snapshot table too large")
        if len(buf) < need + 4096:
            buf = os.pread(fd, min(MAX_TABLE_BYTES, max(need + 65536, 2 * len(buf))), base)
        if len(buf) < need:
            raise CorruptImage(f"{source}: snapshot table is truncated")
        l1_off, l1_size, id_len, name_len, dsec, dnsec, clock, vmsz, extra_len = _ENTRY.unpack_from(
            buf, pos - base
        )
        if extra_len > MAX_EXTRA:
            raise CorruptImage(f"{source}: snapshot extra data too large ({extra_len})")
        p = pos - base + _ENTRY.size
        end = p + extra_len + id_len + name_len
        if len(buf) < end:
            buf = os.pread(fd, min(MAX_TABLE_BYTES, end + 65536), base)
            if len(buf) < end:
                raise CorruptImage(f"{source}: snapshot table is truncated")
        extra = bytes(buf[p : p + extra_len])
        disk_size, icount, vm_large = h.size, -1, vmsz
        if extra_len >= 8:
            vm_large = struct.unpack_from(">Q", extra, 0)[0]
        if extra_len >= 16:
            disk_size = struct.unpack_from(">Q", extra, 8)[0]
        if extra_len >= 24:
            icount = struct.unpack_from(">q", extra, 16)[0]
        p += extra_len
        ids = bytes(buf[p : p + id_len]).decode("utf-8", "replace")
        name = bytes(buf[p + id_len : p + id_len + name_len]).decode("utf-8", "replace")
        if l1_size * 8 > H.MAX_L1_BYTES or (l1_size and (l1_off % h.cluster_size or l1_off >= file_size)):
            raise CorruptImage(f"{source}: snapshot '{name}' has an invalid L1 table")
        new_pos = base + ((end + 7) & ~7)
        out.append(
            Snapshot(
                l1_off,
                l1_size,
                ids,
                name,
                dsec,
                dnsec,
                clock,
                vm_large,
                disk_size,
                icount,
                extra,
                new_pos - pos,
            )
        )
        pos = new_pos
    return out


def read_snapshots(img: Qcow2Image) -> list[Snapshot]:
    return read_snapshot_table(
        img.fd, img.header, max(img.file_size, img.refs.end << img.cb), source=img.path
    )


def snapshot_table_text(snaps: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'ID':<10}{'TAG':<17}{'VM SIZE':>8}{'DATE':>20}{'VM CLOCK':>13}{'ICOUNT':>11}"]
    for s in snaps:
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["date-sec"]))
        secs = s["vm-clock-sec"]
        clock = (
            f"{secs // 3600:02d}:{(secs // 60) % 60:02d}:{secs % 60:02d}.{s['vm-clock-nsec'] // 1000000:03d}"
        )
        icount = str(s["icount"]) if "icount" in s else ""
        lines.append(
            f"{s['id']:<9} {s['name']:<16} {size_to_str(s['vm-state-size']):>8}"
            f"{date:>20}{clock:>13}{icount:>11}"
        )
    return lines


# ---------------------------------------------------------------- tree walks
# (These import the table modules themselves: they load ``array``, whose import loads ``collections``,
# and ``pyvirt img info`` reads the snapshot table without them.)


def update_tree(img: Qcow2Image, l1: array[int], addend: int, *, active: bool) -> None:
    """Add ``addend`` to every cluster the L1 tree reaches; recompute COPIED flags if ``active``."""
    from pyvirt.image.qcow2.tables import (
        L1_OFFSET_MASK,
        L2_OFFSET_MASK,
        OFLAG_COMPRESSED,
        OFLAG_COPIED,
        compressed_range,
    )

    refs, cb = img.refs, img.cb
    for i, e in enumerate(l1):
        l2off = e & L1_OFFSET_MASK
        if not l2off:
            continue
        table = img._load_l2(l2off)
        changed = False
        for j, ent in enumerate(table):
            if ent & OFLAG_COMPRESSED:
                if addend:
                    off, n = compressed_range(ent, cb)
                    for c in range(off >> cb, ((off + n - 1) >> cb) + 1):
                        refs.add(c, addend)
                continue
            host = ent & L2_OFFSET_MASK
            if not host:
                continue
            rc = refs.add(host >> cb, addend) if addend else refs.get(host >> cb)
            if active:
                new = (ent | OFLAG_COPIED) if rc == 1 else (ent & ~OFLAG_COPIED)
                if new != ent:
                    table[j] = new
                    changed = True
        if changed:
            img.cache.mark_dirty(l2off)
        rc = refs.add(l2off >> cb, addend) if addend else refs.get(l2off >> cb)
        if rc == 0:
            img.cache.drop(l2off)
        if active:
            l1[i] = (e | OFLAG_COPIED) if rc == 1 else (e & ~OFLAG_COPIED)


def _write_table(img: Qcow2Image, snaps: list[Snapshot]) -> None:
    h = img.header
    data = b"".join(s.pack(h.version) for s in snaps)
    old_off, old_n = h.snapshots_offset, h.nb_snapshots
    old_len = sum(s.raw_len for s in read_snapshots(img)) if old_n else 0
    if data:
        off = img.refs.alloc(-(-len(data) // img.cs))
        img.write_metadata()
        pwrite_full(img.fd, [data], off)
    else:
        off = 0
    os.fdatasync(img.fd)
    h.snapshots_offset, h.nb_snapshots = off, len(snaps)
    img._write_header()
    os.fdatasync(img.fd)
    if old_n and old_len:
        img.refs.free(old_off, old_len)
    img._meta = None


def _load_l1(img: Qcow2Image, s: Snapshot) -> array[int]:
    from pyvirt.image.qcow2.refcount import load_be64

    raw = bytearray(s.l1_size * 8)
    pread_full(img.fd, memoryview(raw), s.l1_table_offset)
    return load_be64(raw)


def find(snaps: list[Snapshot], name: str) -> Snapshot:
    for s in snaps:
        if s.id == name or s.name == name:
            return s
    raise ImageError(f"Could not find snapshot '{name}'")


def view_snapshot(img: Qcow2Image, *, ident: str | None = None, name: str | None = None) -> None:
    """Make a read-only open image read as its internal snapshot: the one whose id is ``ident`` and
    whose name is ``name`` (either may be None; a plain ``-l NAME`` passes it as both, matching
    either). Reads past the snapshot's tables read as zeroes, as QEMU's temporary snapshot load."""
    if not img.readonly:
        raise ImageError(f"{img.path}: a snapshot is only read through a read-only open")
    for s in read_snapshots(img):
        if ident is not None and name is not None and ident == name:
            match = s.id == ident or s.name == name
        else:
            match = (ident is None or s.id == ident) and (name is None or s.name == name)
        if match:
            img.l1 = _load_l1(img, s)
            return
    raise ImageError("Failed to load snapshot: Can't find snapshot")


def create_snapshot(img: Qcow2Image, name: str) -> Snapshot:
    from pyvirt.image.qcow2.refcount import dump_be64

    img._check_writable()
    if img.external:
        raise ImageError(f"Could not create snapshot '{name}': -95 (Operation not supported)")
    snaps = read_snapshots(img)
    if any(s.name == name for s in snaps):
        raise ImageError(f"Could not create snapshot '{name}': a snapshot with that name already exists")
    ids = [int(s.id) for s in snaps if s.id.isdigit()]
    new_id = str(max(ids, default=0) + 1)
    update_tree(img, img.l1, 1, active=True)
    img.l1_dirty = True
    n = len(img.l1)
    l1_off = img.refs.alloc(max(1, -(-n * 8 // img.cs)))
    img.write_metadata()
    pwrite_full(img.fd, [dump_be64(img.l1)], l1_off)
    now = time.time_ns()
    snap = Snapshot(
        l1_off, n, new_id, name, now // 1_000_000_000, (now % 1_000_000_000) // 1000 * 1000, 0, 0, img.size, 0
    )
    _write_table(img, [*snaps, snap])
    img.flush()
    return snap


def delete_snapshot(img: Qcow2Image, name: str) -> None:
    img._check_writable()
    snaps = read_snapshots(img)
    snap = find(snaps, name)
    rest = [s for s in snaps if s is not snap]
    _write_table(img, rest)
    l1 = _load_l1(img, snap)
    update_tree(img, l1, -1, active=False)
    if snap.l1_size:
        img.refs.free(snap.l1_table_offset, snap.l1_size * 8)
    update_tree(img, img.l1, 0, active=True)
    img.l1_dirty = True
    img.flush()


def apply_snapshot(img: Qcow2Image, name: str) -> None:
    img._check_writable()
    if img.bitmaps is not None:  # qemu-img refuses while any persistent bitmap is loaded
        raise ImageError("Device has active dirty bitmaps")
    snap = find(read_snapshots(img), name)
    l1 = _load_l1(img, snap)
    update_tree(img, l1, 1, active=False)
    update_tree(img, img.l1, -1, active=False)
    need = max(snap.l1_size, -(-snap.disk_size // (img.cs << img.l2_bits)))
    if need > len(img.l1):
        img._grow_l1(need)
    for i in range(len(img.l1)):
        img.l1[i] = l1[i] if i < len(l1) else 0
    img.size = img.header.size = snap.disk_size
    img.header_dirty = True
    update_tree(img, img.l1, 0, active=True)
    img.l1_dirty = True
    img.flush()
