"""``check``: recount every qcow2 reference, compare with the stored refcounts, optionally repair.

The rules and messages follow qemu-img 7.2: leaks (stored refcount above the references found),
corruptions (below it, or COPIED flags that disagree), exit codes 0 clean, 1 check failed,
2 corruptions, 3 leaks only, 63 the format cannot be checked.
"""

from __future__ import annotations

import os
from array import array

from pyvirt.image.errors import CorruptImage, ImageError
from pyvirt.image.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.image.qcow2.image import Qcow2Image


class CheckResult(Record):
    """What ``check`` found (qemu-img's ImageCheck fields)."""

    def __init__(
        self,
        filename: str,
        format: str,
        checkable: bool = True,
        check_errors: int = 0,
        corruptions: int = 0,
        leaks: int = 0,
        corruptions_fixed: int = 0,
        leaks_fixed: int = 0,
        image_end_offset: int = 0,
        total_clusters: int = 0,
        allocated_clusters: int = 0,
        fragmented_clusters: int = 0,
        compressed_clusters: int = 0,
        messages: list[str] | None = None,
        repaired: tuple[int, int] | None = None,
    ) -> None:
        self.filename = filename
        self.format = format
        self.checkable = checkable
        self.check_errors = check_errors
        self.corruptions = corruptions
        self.leaks = leaks
        self.corruptions_fixed = corruptions_fixed
        self.leaks_fixed = leaks_fixed
        self.image_end_offset = image_end_offset
        self.total_clusters = total_clusters
        self.allocated_clusters = allocated_clusters
        self.fragmented_clusters = fragmented_clusters
        self.compressed_clusters = compressed_clusters
        self.messages: list[str] = [] if messages is None else messages
        self.repaired = repaired

    @property
    def exit_code(self) -> int:
        if not self.checkable:
            return 63
        if self.check_errors:
            return 1
        if self.corruptions:
            return 2
        if self.leaks:
            return 3
        return 0

    def to_json(self) -> dict[str, Any]:
        """qemu-img's JSON fields, zero counters left out, in the order qemu-img 7.2 prints them."""
        values: dict[str, Any] = {
            "image-end-offset": self.image_end_offset,
            "compressed-clusters": self.compressed_clusters,
            "total-clusters": self.total_clusters,
            "corruptions": self.corruptions,
            "corruptions-fixed": self.corruptions_fixed,
            "check-errors": self.check_errors,
            "leaks": self.leaks,
            "leaks-fixed": self.leaks_fixed,
            "allocated-clusters": self.allocated_clusters,
            "filename": self.filename,
            "format": self.format,
            "fragmented-clusters": self.fragmented_clusters,
        }
        always = ("check-errors", "filename", "format")
        return {k: v for k, v in values.items() if v or k in always}


def render_json(res: CheckResult) -> str:
    import json

    return json.dumps(res.to_json(), indent=4)


def render_human(res: CheckResult) -> str:
    if not res.checkable:
        return ""
    out = []
    if res.repaired is not None:
        leaks, corr = res.repaired
        out.append(
            "The following inconsistencies were found and repaired:\n\n"
            f"    {leaks} leaked clusters\n    {corr} corruptions\n\nDouble checking the fixed image now...\n"
        )
    if not (res.corruptions or res.leaks or res.check_errors):
        out.append("No errors were found on the image.\n")
    else:
        if res.corruptions:
            out.append(
                f"\n{res.corruptions} errors were found on the image.\n"
                "Data may be corrupted, or further writes to the image may corrupt it.\n"
            )
        if res.leaks:
            out.append(
                f"\n{res.leaks} leaked clusters were found on the image.\n"
                "This means waste of disk space, but no harm to data.\n"
            )
        if res.check_errors:
            out.append(f"\n{res.check_errors} internal errors have occurred during the check.\n")
    if res.total_clusters and res.allocated_clusters:
        a, t = res.allocated_clusters, res.total_clusters
        out.append(
            f"{a}/{t} = {a * 100.0 / t:0.2f}% allocated, "
            f"{res.fragmented_clusters * 100.0 / a:0.2f}% fragmented, "
            f"{res.compressed_clusters * 100.0 / a:0.2f}% compressed clusters\n"
        )
    if res.image_end_offset:
        out.append(f"Image end offset: {res.image_end_offset}\n")
    return "".join(out)


def check_image(
    path: str,
    *,
    fmt: str | None = None,
    repair: str | None = None,
    force_share: bool = False,
    passphrase: bytes | None = None,
    bypass_cache: bool = False,
) -> CheckResult:
    """Check ``path``; ``repair`` is None, ``"leaks"`` or ``"all"``; ``passphrase`` opens a LUKS qcow2;
    ``bypass_cache`` drops the file's pages from the page cache afterwards (-T none, directsync)."""
    try:
        return _check_image(path, fmt, repair, force_share, passphrase)
    finally:
        if bypass_cache:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _check_image(
    path: str, fmt: str | None, repair: str | None, force_share: bool, passphrase: bytes | None
) -> CheckResult:
    from pyvirt.image.probe import probe_file
    from pyvirt.image.qcow2.image import Qcow2Image

    if repair not in (None, "leaks", "all"):
        raise ImageError(f"Unknown repair mode '{repair}' (expecting 'leaks' or 'all')")
    fmt = fmt or probe_file(path)
    if fmt in ("vmdk", "vdi") and repair is None:
        return _check_other(path, fmt, force_share)
    if fmt == "vhdx":
        return _check_vhdx(path, repair, force_share)
    if fmt == "luks" and passphrase is None:  # qemu-img opens the container before it answers
        raise ImageError(f"Could not open '{path}': Parameter 'key-secret' is required for cipher")
    if fmt != "qcow2":
        res = CheckResult(path, fmt, checkable=False)
        raise NotCheckable(res)
    if repair is None:
        img = Qcow2Image.open(path, readonly=True, force_share=force_share, passphrase=passphrase)
        try:
            return _check(img, path)
        finally:
            img.close()
    img = Qcow2Image.open(path, readonly=False, repairing=True, passphrase=passphrase)
    try:
        first = _check(img, path, fix=repair)
        fixed = (first.leaks_fixed, first.corruptions_fixed)
        img.flush()
    finally:
        img.close()
    img = Qcow2Image.open(path, readonly=True, passphrase=passphrase)
    try:
        res = _check(img, path)
    finally:
        img.close()
    res.messages = first.messages + res.messages
    if fixed != (0, 0) or first.leaks or first.corruptions:
        res.repaired = fixed
        res.leaks_fixed, res.corruptions_fixed = fixed
    return res


def _check_other(path: str, fmt: str, force_share: bool) -> CheckResult:
    """qemu-img's checks of VDI (the block map) and VMDK (grains inside their files)."""
    from pyvirt.image.opener import open_image

    with open_image(path, fmt=fmt, backing=False, force_share=force_share) as img:
        if fmt == "vdi":
            from pyvirt.image.vdi import VdiImage

            assert isinstance(img, VdiImage)
            corruptions, msgs = img.check()
            return CheckResult(path, fmt, corruptions=corruptions, messages=msgs)
        from pyvirt.image.vmdk import VmdkImage

        assert isinstance(img, VmdkImage)
        bad = img.grains_past_eof()
        if bad is not None:
            raise CheckFailed([f"ERROR: cluster offset for sector {bad} points after EOF"])
        return CheckResult(path, fmt)


def _check_vhdx(path: str, repair: str | None, force_share: bool) -> CheckResult:
    """As qemu-img: a repairing check opens the image writable, which replays its log (a fixed
    corruption); a plain check opens it read-only, which an image with a log refuses."""
    from pyvirt.image.vhdx import VhdxImage

    img = VhdxImage.open(path, readonly=repair is None, force_share=force_share and repair is None)
    try:
        replayed = img.replayed
        for block in range(img.blocks):
            img.check_block(block)
    finally:
        img.close()
    res = CheckResult(path, "vhdx")
    if replayed:
        res.corruptions_fixed = 1
        res.repaired = (0, 1)
    return res


class CheckFailed(ImageError):
    """The check itself failed (qemu-img: "Check failed: ...", exit status 1, no report)."""

    def __init__(self, messages: list[str], reason: str = "Invalid argument") -> None:
        super().__init__(f"Check failed: {reason}")
        self.messages = messages


class NotCheckable(ImageError):
    """The format has no metadata to check (exit status 63)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__("This image format does not support checks")
        self.result = result


def rebuild_refcounts(img: Qcow2Image) -> None:
    """Make stored refcounts match the references (used when opening a dirty lazy-refcount image)."""
    res = _check(img, img.path, fix="all")
    if res.check_errors:
        raise CorruptImage(f"{img.path}: could not repair refcounts after an unclean shutdown")
    img.flush()


def _inc(counts: array[int], res: CheckResult, cb: int, offset: int, nbytes: int) -> None:
    """Count one more reference to every cluster of ``[offset, offset + nbytes)``."""
    if nbytes <= 0:
        return
    first, last = offset >> cb, (offset + nbytes - 1) >> cb
    if last >= len(counts):
        res.messages.append(f"ERROR: reference to cluster {last} beyond the end of the image")
        res.corruptions += 1
        return
    for c in range(first, last + 1):
        counts[c] += 1


def count_references(img: Qcow2Image, res: CheckResult) -> array[int]:
    """Cluster → references from everything but the refcount structures themselves: header, LUKS
    area, L1/L2 tables and data of the active tree and of every snapshot, snapshot table, bitmaps."""
    from pyvirt.image.qcow2 import header as H
    from pyvirt.image.qcow2.subclusters import bitmap_error
    from pyvirt.image.qcow2.tables import (
        L1_OFFSET_MASK,
        L2_OFFSET_MASK,
        OFLAG_COMPRESSED,
        OFLAG_ZERO,
        compressed_range,
    )

    path = img.path
    cb, cs = img.cb, img.cs
    file_size = os.fstat(img.fd).st_size
    nb = max(-(-file_size // cs), img.refs.end)
    counts = array("Q", bytes(8 * nb))
    msgs = res.messages

    def inc(offset: int, nbytes: int) -> None:
        _inc(counts, res, cb, offset, nbytes)

    def walk_l1(l1: array[int], l1_off: int, active: bool) -> None:
        inc(l1_off, len(l1) * 8)
        for e in l1:
            l2off = e & L1_OFFSET_MASK
            if not l2off:
                continue
            if l2off % cs:
                msgs.append(f"ERROR l2_offset={l2off:x}: Table is not cluster aligned; L1 entry corrupted")
                res.corruptions += 1
                continue
            if l2off >= file_size:
                msgs.append(f"ERROR l2_offset={l2off:x}: L2 table is outside the image file")
                res.corruptions += 1
                continue
            inc(l2off, cs)
            next_contig = 0  # qemu-img counts fragmentation within each L2 table
            try:
                table = img._load_l2(l2off)
            except CorruptImage as err:
                msgs.append(f"ERROR {err}")
                res.check_errors += 1
                continue
            bits = getattr(table, "bits", None)  # extended L2 entries: the subcluster bitmaps
            for j, ent in enumerate(table):
                if bits is not None and (bad := bitmap_error(ent, bits[j], j, img.alloc_mask)):
                    msgs.append(bad)
                    res.corruptions += 1
                    if ent & OFLAG_COMPRESSED:
                        continue  # as QEMU: not counted
                if ent & OFLAG_COMPRESSED:
                    off, n = compressed_range(ent, cb)
                    if active:
                        res.allocated_clusters += 1
                        res.compressed_clusters += 1
                        res.fragmented_clusters += 1
                    inc(off & ~511, n + (off & 511))
                    continue
                host = ent & L2_OFFSET_MASK
                if not ent & img.alloc_mask:
                    continue
                if host % cs:
                    kind = "zero " if ent & OFLAG_ZERO else ""
                    msgs.append(
                        f"ERROR offset={host:x}: Cluster is not properly aligned; L2 entry corrupted ({kind})"
                    )
                    res.corruptions += 1
                    continue
                if active:
                    res.allocated_clusters += 1
                    if next_contig and host != next_contig:
                        res.fragmented_clusters += 1
                    next_contig = host + cs
                if not img.external:  # an external data file's clusters have no refcounts
                    inc(host, cs)

    h = img.header
    res.total_clusters = -(-img.size // cs)
    inc(0, cs)
    if h.luks_header is not None:  # the LUKS header and its key slots
        inc(h.luks_header[0], h.luks_header[1])
    walk_l1(img.l1, h.l1_table_offset, True)
    snaps = []
    if h.nb_snapshots:
        from pyvirt.image.qcow2.snapshot import _load_l1, read_snapshots

        try:
            snaps = read_snapshots(img)
        except CorruptImage as err:
            msgs.append(f"ERROR {err}")
            res.corruptions += 1

        for s in snaps:
            walk_l1(_load_l1(img, s), s.l1_table_offset, False)
        table_len = sum(s.raw_len for s in snaps)
        inc(h.snapshots_offset, table_len)
    if h.autoclear_features & H.AUTOCLEAR_BITMAPS:  # else read_bitmaps finds none
        from pyvirt.image.qcow2 import bitmaps as B

        try:
            bm = B.read_bitmaps(img.fd, h, file_size, source=path)
            if bm is not None:
                for off, n in B.bitmap_ranges(img.fd, bm, cs, file_size):
                    inc(off, n)
        except CorruptImage as err:
            msgs.append(f"ERROR {err}")
            res.corruptions += 1
    return counts


def _check(img: Qcow2Image, path: str, fix: str | None = None) -> CheckResult:
    from pyvirt.image.qcow2.tables import L1_OFFSET_MASK, L2_OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED

    res = CheckResult(path, "qcow2")
    cb, cs = img.cb, img.cs
    file_size = os.fstat(img.fd).st_size
    msgs = res.messages
    counts = count_references(img, res)

    def inc(offset: int, nbytes: int) -> None:
        _inc(counts, res, cb, offset, nbytes)

    refs = img.refs
    inc(refs.table_offset, refs.table_clusters * cs)
    for bidx, e in enumerate(refs.table):
        off = e & 0xFFFFFFFFFFFFFE00
        if not off:
            continue
        if off % cs:
            msgs.append(f"ERROR refcount block {bidx} is not cluster aligned; refcount table entry corrupted")
            res.corruptions += 1
            continue
        if off >= file_size:
            msgs.append(f"ERROR refcount block {bidx} is outside image")
            res.corruptions += 1
            continue
        inc(off, cs)

    highest = -1
    limit = max(len(counts), refs.end)
    per = refs.per_block
    for first in range(0, limit, per):
        last = min(limit, first + per)
        computed_blk = counts[first:last]
        if len(computed_blk) < last - first:
            computed_blk.extend(array("Q", bytes(8 * (last - first - len(computed_blk)))))
        try:
            stored_blk = refs._block(first // per, create=False)
        except CorruptImage:
            stored_blk = None
        stored_vals = array("Q", bytes(8 * (last - first))) if stored_blk is None else array("Q", stored_blk)
        stored_vals = stored_vals[: last - first]
        if stored_vals == computed_blk:
            if any(computed_blk):
                last_used = next(k for k in range(len(computed_blk) - 1, -1, -1) if computed_blk[k])
                highest = max(highest, first + last_used)
            continue
        for k in range(last - first):
            c = first + k
            computed, stored = computed_blk[k], stored_vals[k]
            if computed or stored:
                highest = c
            if stored == computed:
                continue
            fixing = (stored > computed and fix in ("leaks", "all")) or (stored < computed and fix == "all")
            label = "Repairing" if fixing else ("ERROR" if stored < computed else "Leaked")
            msgs.append(f"{label} cluster {c} refcount={stored} reference={computed}")
            if fixing:
                refs.set(c, int(computed))
                if stored > computed:
                    res.leaks_fixed += 1
                else:
                    res.corruptions_fixed += 1
            if stored < computed:
                res.corruptions += 1
            else:
                res.leaks += 1

    # COPIED flags of the active tree must say "refcount is exactly one".
    for i, e in enumerate(img.l1):
        l2off = e & L1_OFFSET_MASK
        if not l2off or l2off % cs or l2off >= file_size:
            continue
        rc = refs.get(l2off >> cb)
        if (rc == 1) != bool(e & OFLAG_COPIED):
            msgs.append(f"ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={e:x} refcount={rc}")
            if fix == "all":
                img.l1[i] = (e | OFLAG_COPIED) if rc == 1 else (e & ~OFLAG_COPIED)
                img.l1_dirty = True
                res.corruptions_fixed += 1
            res.corruptions += 1
        table = img._load_l2(l2off)
        dirty = False
        for j, ent in enumerate(table):
            host = ent & L2_OFFSET_MASK
            if ent & OFLAG_COMPRESSED or not host or host % cs:
                continue
            rc = 1 if img.external else refs.get(host >> cb)  # data file clusters: as QEMU counts them
            if (rc == 1) != bool(ent & OFLAG_COPIED):
                msgs.append(f"ERROR OFLAG_COPIED data cluster: l2_entry={ent:x} refcount={rc}")
                if fix == "all":
                    table[j] = (ent | OFLAG_COPIED) if rc == 1 else (ent & ~OFLAG_COPIED)
                    dirty = True
                    res.corruptions_fixed += 1
                res.corruptions += 1
        if dirty:
            img.cache.mark_dirty(l2off)
    res.image_end_offset = (highest + 1) * cs
    return res
