"""``measure``: how big a qcow2 or raw image holding some data (or of some size) would be, per qemu-img."""

from __future__ import annotations

from pyvirt.image.errors import ImageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


def refcount_metadata_size(clusters: int, cs: int, refcount_order: int) -> int:
    per_table_cluster = cs // 8
    per_block = cs * 8 // (1 << refcount_order)
    table = blocks = 0
    n, last = 0, -1
    while n != last:
        last = n
        blocks = -(-(clusters + table + blocks) // per_block)
        table = -(-blocks // per_table_cluster)
        n = clusters + blocks + table
    return (blocks + table) * cs


def prealloc_size(total: int, cs: int, refcount_order: int, *, extended_l2: bool = False) -> int:
    aligned = -(-total // cs) * cs
    meta = cs
    l2e = 16 if extended_l2 else 8
    per_table = cs // 8
    nl2e = -(-(aligned // cs) // (cs // l2e)) * (cs // l2e)
    meta += nl2e * l2e
    nl1e = -(-(nl2e * l2e // cs) // per_table) * per_table
    meta += nl1e * 8
    meta += refcount_metadata_size((meta + aligned) // cs, cs, refcount_order)
    return meta + aligned


def measure(
    path: str | None,
    *,
    out_fmt: str,
    fmt: str | None = None,
    size: int | None = None,
    options: dict[str, str] | None = None,
    force_share: bool = False,
    passphrase: bytes | None = None,
) -> dict[str, Any]:
    from pyvirt.image.create import CREATABLE
    from pyvirt.image.options import parse_options

    if out_fmt not in CREATABLE:
        raise ImageError(f"Unknown file format '{out_fmt}'")
    if out_fmt not in ("raw", "qcow2", "luks"):
        raise ImageError(f"Block driver '{out_fmt}' does not support size measurement")
    kw = parse_options(options or {}, "luks" if out_fmt == "luks" else "qcow2")
    cs = int(kw.get("cluster_size", 65536))  # type: ignore[call-overload]
    rbits = int(kw.get("refcount_bits", 16))  # type: ignore[call-overload]
    prealloc = str(kw.get("preallocation", "off"))
    compat = str(kw.get("compat", "1.1"))
    src_is_qcow2 = False
    bitmaps: list[tuple[str, int]] = []  # the source's persistent bitmaps: (name, granularity)
    extents: list[tuple[int, int, bool]] = []
    if path is not None:
        from pyvirt.image.opener import open_image

        with open_image(
            path, fmt=fmt, allow_backing_outside=True, force_share=force_share, passphrase=passphrase
        ) as img:
            size = img.size
            src_is_qcow2 = img.format == "qcow2"
            from pyvirt.image.qcow2.image import Qcow2Image

            if isinstance(img, Qcow2Image):
                from pyvirt.image.qcow2.bitmap_edit import BitmapEditor

                bitmaps = [(b.name, b.granularity) for b in BitmapEditor(img, edit=False).list]
            pos = 0
            while pos < size:
                n = min(1 << 30, size - pos)
                extents += [(x.start, x.length, x.data or not x.zero) for x in img.block_status(pos, n)]
                pos += n
    assert size is not None
    if out_fmt == "raw":
        return {"required": size, "fully-allocated": size}
    if out_fmt == "luks":  # the header area (its key slots sized by the cipher), then the payload
        from pyvirt.image.luks import header_area_size
        from pyvirt.image.options import luks_create_kwargs

        kw.pop("key-secret", None)
        spec = luks_create_kwargs(kw, b"")["encrypt_cipher"]
        need = header_area_size(spec.key_bytes) + size  # type: ignore[attr-defined]
        return {"required": need, "fully-allocated": need}
    rounded = -(-size // cs) * cs  # as qemu-img: the virtual size in whole clusters
    required = rounded
    if prealloc not in ("falloc", "full"):
        required = 0
        offset = 0
        k = 0
        while offset < size:
            while k < len(extents) and extents[k][0] + extents[k][1] <= offset:
                k += 1
            if k >= len(extents):
                break
            start, n, data = extents[k]
            pnum = start + n - offset
            if data:
                pnum = -(-(offset + pnum) // cs) * cs - offset
                required += offset % cs + pnum
            offset += pnum
    full = prealloc_size(size, cs, rbits.bit_length() - 1, extended_l2=bool(kw.get("extended_l2")))
    if kw.get("encrypt_format") == "luks":
        from pyvirt.image.luks import DEFAULT_CIPHER, header_area_size

        key_bytes = getattr(kw.get("encrypt_cipher"), "key_bytes", DEFAULT_CIPHER.key_bytes)
        full += -(-header_area_size(key_bytes) // cs) * cs
    out: dict[str, Any] = {"required": full - rounded + required, "fully-allocated": full}
    if src_is_qcow2 and compat not in ("0.10", "v2"):
        out["bitmaps"] = bitmaps_size(bitmaps, size, cs)
    return out


def bitmaps_size(bitmaps: list[tuple[str, int]], size: int, cs: int) -> int:
    """Room for ``bitmaps`` (name, granularity) in a qcow2 of ``size`` and cluster size ``cs``, as
    QEMU reserves it: every bitmap fully allocated, its table, and the directory."""

    def ceil(a: int, b: int) -> int:
        return -(-a // b)

    total = directory = 0
    for name, granularity in bitmaps:
        clusters = ceil(ceil(ceil(size, granularity), 8), cs)
        total += clusters * cs + ceil(clusters * 8, cs) * cs
        directory += (24 + len(name.encode()) + 7) & ~7
    return total + ceil(directory, cs) * cs


def render(res: dict[str, Any], output: str) -> str:
    if output == "json":
        order = ["bitmaps", "required", "fully-allocated"]
        import json

        return json.dumps({k: res[k] for k in order if k in res}, indent=4) + "\n"
    lines = [f"required size: {res['required']}", f"fully allocated size: {res['fully-allocated']}"]
    if "bitmaps" in res:
        lines.append(f"bitmaps size: {res['bitmaps']}")
    return "\n".join(lines) + "\n"
