"""``amend``: change a qcow2 image's compat level, lazy refcounts, refcount width and size in place,
as qemu-img amend does (upgrade first, then the refcount width, lazy refcounts and size, downgrade
last), with its checks and words.

A downgrade to compat 0.10 turns zero clusters into what version 2 can say: an allocated zero cluster
gets zeroes written and loses its flag, an unallocated one becomes unallocated (or, over a backing
file, a new zeroed cluster). A new refcount width gets new refcount structures written after the
image's end from a recount of every reference; the header then points at them, and the old ones are
left as free clusters.
"""

from __future__ import annotations

import os
import struct
from array import array

from pyvirt.image.errors import ImageError
from pyvirt.image.fileio import pwrite_full
from pyvirt.image.qcow2 import header as H

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.qcow2.image import Qcow2Image

AMENDABLE = ("compat", "lazy_refcounts", "refcount_bits", "size", "data_file", "data_file_raw")
CREATION_ONLY = (
    "cluster_size", "preallocation", "compression_type", "extended_l2", "encryption", "encrypt.format",
    "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.hash-alg", "encrypt.iter-time",
    "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "encrypt.key-secret",
)  # fmt: skip


def parse(options: dict[str, str]) -> dict[str, object]:
    """Checked amend options (compat, lazy_refcounts, refcount_bits, size), in qemu-img's words."""
    from pyvirt.image.sizes import parse_size

    out: dict[str, object] = {}
    for key, value in options.items():
        if key in ("backing_file", "backing_fmt"):
            raise ImageError("Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.")
        if key == "data_file":
            out["data_file"] = value
            continue
        if key == "data_file_raw":
            if value not in ("on", "off"):
                raise ImageError("Parameter 'data_file_raw' expects 'on' or 'off'")
            out["data_file_raw"] = value == "on"
            continue
        if key in CREATION_ONLY:
            raise ImageError(f"Invalid parameter '{key}'\nThis option is only supported for image creation")
        if key.startswith("encrypt."):
            raise ImageError(f"Invalid parameter '{key}' (pyvirt img does not manage LUKS key slots)")
        if key not in AMENDABLE:
            raise ImageError(f"Invalid parameter '{key}'")
        if key == "compat":
            compat = {"0.10": 2, "v2": 2, "1.1": 3, "v3": 3}.get(value)
            if compat is None:
                raise ImageError(f"Invalid compatibility level: '{value}'")
            out["version"] = compat
        elif key == "lazy_refcounts":
            if value not in ("on", "off"):
                raise ImageError("Parameter 'lazy_refcounts' expects 'on' or 'off'")
            out["lazy"] = value == "on"
        elif key == "refcount_bits":
            bits = int(value) if value.isdigit() else 0
            if not bits or bits & (bits - 1) or bits > 64:
                raise ImageError("Refcount width must be a power of two and may not exceed 64 bits")
            out["refcount_order"] = bits.bit_length() - 1
        else:
            out["size"] = parse_size(value)
    return out


def amend(img: Qcow2Image, changes: dict[str, object]) -> None:
    """Apply parsed ``changes`` to ``img`` (open writable)."""
    h = img.header
    if "data_file" in changes or "data_file_raw" in changes:
        _data_file(img, changes)
    version = int(changes.get("version", h.version))  # type: ignore[call-overload]
    order = int(changes.get("refcount_order", h.refcount_order))  # type: ignore[call-overload]
    if version == 2 and order != 4:
        if "refcount_order" in changes:
            raise ImageError(
                "Refcount widths other than 16 bits require compatibility level 1.1 or above "
                "(use compat=1.1 or greater)"
            )
        raise ImageError("compat=0.10 requires refcount_bits=16")
    if changes.get("lazy") and version == 2:
        raise ImageError(
            "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)"
        )
    if version > h.version:
        _upgrade(img)
    if order != h.refcount_order:
        _change_refcount_order(img, order)
    if "lazy" in changes:
        _set_lazy(img, bool(changes["lazy"]))
    if "size" in changes:
        img.truncate(int(changes["size"]), shrink=True)  # type: ignore[call-overload]
        img.flush()
    if version < h.version:
        _downgrade(img)


def _data_file(img: Qcow2Image, changes: dict[str, object]) -> None:
    """A new name for the external data file (the file itself is not touched, as in QEMU); raw
    mode can be cleared but not set on an existing image."""
    h = img.header
    if not h.data_file:
        raise ImageError("data-file can only be set for images that use an external data file")
    if changes.get("data_file_raw") and not h.data_file_raw:
        raise ImageError("data-file-raw cannot be set on existing images")
    if changes.get("data_file_raw") is False:
        h.autoclear_features &= ~H.AUTOCLEAR_DATA_FILE_RAW
    if "data_file" in changes:
        h.data_file = str(changes["data_file"])
    _write_header(img)


def _write_header(img: Qcow2Image) -> None:
    old_len = len(img.header.pack(img.cs)) if img.header.version == 3 else 0
    os.fdatasync(img.fd)
    header = img.header.pack(img.cs)
    pwrite_full(img.fd, [header + bytes(max(0, old_len - len(header)))], 0)
    os.fdatasync(img.fd)
    img.header_dirty = False


def _upgrade(img: Qcow2Image) -> None:
    h = img.header
    h.version = 3
    h.header_length = H.DEFAULT_V3_HEADER_LEN
    h.incompatible_features = h.compatible_features = h.autoclear_features = 0
    h.refcount_order = 4
    h.compression_type = 0
    img.v3 = True
    _write_header(img)


def _set_lazy(img: Qcow2Image, on: bool) -> None:
    h = img.header
    if not on and h.incompatible_features & H.INCOMPAT_DIRTY:
        from pyvirt.image.checker import rebuild_refcounts

        rebuild_refcounts(img)
        h.incompatible_features &= ~H.INCOMPAT_DIRTY
    if on:
        h.compatible_features |= H.COMPAT_LAZY_REFCOUNTS
    else:
        h.compatible_features &= ~H.COMPAT_LAZY_REFCOUNTS
    img.refs.flush()
    img.lazy = on
    _write_header(img)


def _downgrade(img: Qcow2Image) -> None:
    from pyvirt.image.qcow2.tables import OFLAG_COMPRESSED

    h = img.header
    if h.incompatible_features & H.INCOMPAT_DATA_FILE:
        raise ImageError("Cannot downgrade an image with a data file")
    if h.incompatible_features & ~(H.INCOMPAT_COMPRESSION | H.INCOMPAT_DIRTY):
        bits = h.incompatible_features & ~(H.INCOMPAT_COMPRESSION | H.INCOMPAT_DIRTY)
        raise ImageError(f"Cannot downgrade an image with incompatible features {bits:#x} set")
    if h.compression_type:
        for table in _l2_tables(img):
            if any(e & OFLAG_COMPRESSED for e in table[1]):
                raise ImageError(
                    "Cannot downgrade an image with zstd compression type and existing compressed clusters"
                )
    if h.incompatible_features & H.INCOMPAT_DIRTY:
        from pyvirt.image.checker import rebuild_refcounts

        rebuild_refcounts(img)
    if img.bitmaps is not None:
        img.bitmaps.close()
        img.bitmaps = None
    from pyvirt.image.qcow2.bitmap_edit import BitmapEditor

    editor = BitmapEditor(img)
    for b in list(editor.list):
        editor.remove(b.name)
    _expand_zero_clusters(img)
    img.refs.flush()
    h.version = 2
    h.incompatible_features = h.compatible_features = h.autoclear_features = 0
    h.compression_type = 0
    h.other_extensions = [e for e in h.other_extensions if e.type != H.EXT_BITMAPS]
    img.lazy = False
    img.v3 = False
    _write_header(img)


def _l2_tables(img: Qcow2Image) -> list[tuple[int, array[int]]]:
    """(offset, table) of every L2 table of the active tree and of the snapshots, each once."""
    from pyvirt.image.qcow2.snapshot import _load_l1, read_snapshots
    from pyvirt.image.qcow2.tables import L1_OFFSET_MASK

    l1s = [img.l1, *(_load_l1(img, s) for s in read_snapshots(img))]
    seen: dict[int, array[int]] = {}
    for l1 in l1s:
        for e in l1:
            off = e & L1_OFFSET_MASK
            if off and off not in seen:
                seen[off] = img._load_l2(off)
    return list(seen.items())


def _expand_zero_clusters(img: Qcow2Image) -> None:
    from pyvirt.image.qcow2.tables import L2_OFFSET_MASK, OFLAG_COPIED, OFLAG_ZERO
    from pyvirt.image.raw import punch_hole

    zeros = bytes(img.cs)

    def zero(host: int) -> None:
        if not punch_hole(img.fd, host, img.cs):
            pwrite_full(img.fd, [zeros], host)

    for off, table in _l2_tables(img):
        changed = False
        for i, e in enumerate(table):
            if not e & OFLAG_ZERO:
                continue
            host = e & L2_OFFSET_MASK
            if host:
                zero(host)
                table[i] = e & ~OFLAG_ZERO
            elif img.backing is not None:
                fresh = img.refs.alloc(1)
                pwrite_full(img.fd, [zeros], fresh)
                table[i] = fresh | OFLAG_COPIED
            else:
                table[i] = 0
            changed = True
        if changed:
            img.refs.flush()
            os.fdatasync(img.fd)
            img._write_l2(off, table)
    img.cache.flush()


def _change_refcount_order(img: Qcow2Image, order: int) -> None:
    """New refcount table and blocks of width ``1 << order`` past the end, from a full recount."""
    from pyvirt.image.checker import CheckResult, count_references
    from pyvirt.image.qcow2.refcount import Refcounts

    img.write_metadata()
    os.fdatasync(img.fd)
    res = CheckResult(img.path, "qcow2")
    counts = count_references(img, res)
    if res.corruptions or res.check_errors:
        raise ImageError(f"{img.path}: the image has errors; repair it (check -r all) before amending")
    cs, cb = img.cs, img.cb
    width = 1 << order
    if width < 64:
        over = next((i for i, c in enumerate(counts) if c >> width), None)
        if over is not None:
            raise ImageError(
                f"Cannot decrease refcount entry width to {width} bits: Cluster at offset {over * cs:#x} "
                f"has a refcount of {counts[over]}"
            )
    per_block = cs * 8 // width
    used = len(counts)
    while used and not counts[used - 1]:
        used -= 1
    start = max(used, -(-os.fstat(img.fd).st_size // cs))
    blocks = table_clusters = 0
    while True:  # the new structures count themselves
        total = start + blocks + table_clusters
        need_blocks = -(-total // per_block)
        need_table = -(-need_blocks * 8 // cs)
        if (need_blocks, need_table) == (blocks, table_clusters):
            break
        blocks, table_clusters = need_blocks, need_table
    end = start + blocks + table_clusters
    all_counts = array("Q", counts[:start])
    all_counts.extend(array("Q", bytes(8 * (start - len(all_counts)))))
    all_counts.extend(array("Q", [1] * (blocks + table_clusters)))
    all_counts.extend(array("Q", bytes(8 * (blocks * per_block - len(all_counts)))))

    def refcounts(table_off: int, clusters: int) -> Refcounts:
        return Refcounts(
            img.fd, cluster_bits=cb, refcount_order=order, table_offset=table_off, table_clusters=clusters,
            file_size=end * cs, on_table_moved=img._table_moved, source=img.path,
        )  # fmt: skip

    encoder = refcounts(0, 0)
    table = array("Q", bytes(table_clusters * cs))
    for b in range(blocks):
        at = (start + b) * cs
        pwrite_full(img.fd, [encoder._encode(all_counts[b * per_block : (b + 1) * per_block])], at)
        table[b] = at
    table_off = (start + blocks) * cs
    pwrite_full(img.fd, [b"".join(struct.pack(">Q", e) for e in table)], table_off)
    h = img.header
    h.refcount_order = order
    h.refcount_table_offset = table_off
    h.refcount_table_clusters = table_clusters
    _write_header(img)
    img.refs = refcounts(table_off, table_clusters)
