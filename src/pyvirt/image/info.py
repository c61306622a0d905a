"""``image_info``: qemu-img info's fields (JSON names of qemu-img 7.2) and its human rendering."""

from __future__ import annotations

import os

from pyvirt.image.errors import ImageError
from pyvirt.image.probe import check_format, probe_bytes
from pyvirt.image.sizes import size_to_str

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


def path_combine(base: str, name: str) -> str:
    """qemu's ``path_combine``: a relative ``name`` taken from ``base``'s folder, kept textual."""
    if os.path.isabs(name) or "/" not in base:
        return name
    return base[: base.rindex("/") + 1] + name


def image_info(
    path: str, *, fmt: str | None = None, backing_chain: bool = False, allow_backing_outside: bool = True
) -> dict[str, Any]:
    """qemu-img info as a dict; ``backing_chain`` nests each backing file's info under ``backing-image``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise ImageError(f"Could not open '{path}': {err.strerror}") from err
    try:
        st = os.fstat(fd)
        head = os.pread(fd, 65536, 0)
        if fmt is None:
            fmt = probe_bytes(head)
        check_format(fmt)
        info: dict[str, Any]
        if fmt == "qcow2":
            info = _qcow2_info(path, fd, head, st.st_size)
        elif fmt == "luks":
            from pyvirt.image.luks_raw import luks_info

            info = luks_info(path, st.st_size)
        elif fmt == "raw":
            size = -(-os.lseek(fd, 0, os.SEEK_END) // 512) * 512
            info = {"virtual-size": size, "filename": path, "format": "raw"}
        else:
            info = _other_info(path, fmt)
    finally:
        os.close(fd)
    info["actual-size"] = st.st_blocks * 512 + info.pop("_extent_bytes", 0)
    order = [
        "backing-filename-format",
        "snapshots",
        "virtual-size",
        "filename",
        "cluster-size",
        "format",
        "actual-size",
    ]
    out = {k: info[k] for k in order if k in info}
    for k, v in info.items():
        if k not in out and k not in ("dirty-flag",):
            out[k] = v
    out["dirty-flag"] = info.get("dirty-flag", False)
    if backing_chain and "full-backing-filename" in out:
        from pyvirt.image.opener import resolve_backing

        resolve_backing(path, out["backing-filename"], allow_outside=allow_backing_outside)
        target = out["full-backing-filename"]
        seen = {(st.st_dev, st.st_ino)}
        out["backing-image"] = _chain_info(
            target, out.get("backing-filename-format"), seen, allow_backing_outside
        )
    return out


def _chain_info(
    path: str, fmt: str | None, seen: set[tuple[int, int]], allow_outside: bool
) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except OSError as err:
        raise ImageError(f"Could not open backing file '{path}': {err.strerror}") from err
    if (st.st_dev, st.st_ino) in seen or len(seen) > 200:
        raise ImageError(f"{path}: backing chain loops or is too deep")
    seen.add((st.st_dev, st.st_ino))
    info = image_info(path, fmt=fmt)
    if "full-backing-filename" in info:
        from pyvirt.image.opener import resolve_backing

        resolve_backing(path, info["backing-filename"], allow_outside=allow_outside)
        target = info["full-backing-filename"]
        info["backing-image"] = _chain_info(target, info.get("backing-filename-format"), seen, allow_outside)
    return info


def _qcow2_info(path: str, fd: int, head: bytes, file_size: int) -> dict[str, Any]:
    from pyvirt.image.qcow2 import header as H

    h = H.Header.parse(head, file_size, source=path, encrypted=True)
    if h.cluster_size > len(head):
        h = H.Header.parse(os.pread(fd, h.cluster_size, 0), file_size, source=path, encrypted=True)
    info: dict[str, Any] = {}
    if h.backing_format and h.backing_file:
        info["backing-filename-format"] = h.backing_format
    info.update({"virtual-size": h.size, "filename": path, "cluster-size": h.cluster_size, "format": "qcow2"})
    if h.nb_snapshots:
        from pyvirt.image.qcow2.snapshot import read_snapshot_table

        snaps = read_snapshot_table(fd, h, file_size, source=path)
        info["snapshots"] = [s.info() for s in snaps]
    data: dict[str, Any] = {
        "compat": h.compat,
        "compression-type": "zlib" if h.compression_type == 0 else "zstd",
    }
    if h.version >= 3:
        data["lazy-refcounts"] = bool(h.compatible_features & H.COMPAT_LAZY_REFCOUNTS)
        if h.autoclear_features & H.AUTOCLEAR_BITMAPS:
            from pyvirt.image.qcow2 import bitmaps as B

            bm = B.read_bitmaps(fd, h, file_size, source=path)
            if bm is not None:
                data["bitmaps"] = B.info(bm)
    data["refcount-bits"] = h.refcount_bits
    if h.data_file:
        data["data-file"] = h.data_file
    if h.crypt_method:
        data["encrypt"] = _encrypt_info(path, fd, h.crypt_method, h.luks_header, file_size)
    if h.data_file:
        data["data-file-raw"] = h.data_file_raw
    if h.version >= 3:
        data["corrupt"] = bool(h.incompatible_features & H.INCOMPAT_CORRUPT)
        data["extended-l2"] = bool(h.incompatible_features & H.INCOMPAT_EXTL2)
    info["format-specific"] = {"type": "qcow2", "data": data}
    if h.backing_file:
        info["full-backing-filename"] = path_combine(path, h.backing_file)
        info["backing-filename"] = h.backing_file
    if h.crypt_method:
        info["encrypted"] = True
    info["dirty-flag"] = bool(h.incompatible_features & H.INCOMPAT_DIRTY)
    return info


def _encrypt_info(
    path: str, fd: int, method: int, where: tuple[int, int] | None, file_size: int
) -> dict[str, Any]:
    """qemu-img info's ``encrypt`` details: the format, and for LUKS its header's fields."""
    if method == 1:
        return {"format": "aes"}
    if method != 2 or where is None:
        raise ImageError(f"{path}: unknown qcow2 encryption method {method}")
    from pyvirt.image.luks import HEADER_SIZE, LuksHeader

    off, length = where
    if length < HEADER_SIZE or off + HEADER_SIZE > file_size:
        raise ImageError(f"{path}: the LUKS header lies outside the file")
    return LuksHeader(os.pread(fd, HEADER_SIZE, off), off, length, path).info()


def _other_info(path: str, fmt: str) -> dict[str, Any]:
    from pyvirt.image.opener import open_image

    with open_image(path, fmt=fmt, backing=False) as img:
        info: dict[str, Any] = {"virtual-size": img.size, "filename": path}
        if img.backing_file and img.backing_format:
            info["backing-filename-format"] = img.backing_format
        if img.cluster_size:
            info["cluster-size"] = img.cluster_size
        info["format"] = fmt
        spec = getattr(img, "format_specific", None)
        if spec is not None:
            info["format-specific"] = {"type": fmt, "data": spec()}
        if img.backing_file:
            info["full-backing-filename"] = path_combine(path, img.backing_file)
            info["backing-filename"] = img.backing_file
        extra = getattr(img, "extent_bytes", None)
        if extra is not None:
            info["_extent_bytes"] = extra()
        return info


def chain_list(info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    cur: dict[str, Any] | None = info
    while cur is not None:
        item = {k: v for k, v in cur.items() if k != "backing-image"}
        out.append(item)
        cur = cur.get("backing-image")
    return out


def info_json(info: dict[str, Any] | list[dict[str, Any]]) -> str:
    """qemu's JSON pretty-printer: four-space indent, ``key: value``."""
    import json

    return json.dumps(info, indent=4)


def info_human(info: dict[str, Any]) -> str:
    lines = [
        f"image: {info['filename']}",
        f"file format: {info['format']}",
        f"virtual size: {size_to_str(info['virtual-size'])} ({info['virtual-size']} bytes)",
        f"disk size: {size_to_str(info['actual-size'])}",
    ]
    if info.get("encrypted"):
        lines.append("encrypted: yes")
    if "cluster-size" in info:
        lines.append(f"cluster_size: {info['cluster-size']}")
    if "backing-filename" in info:
        bline = f"backing file: {info['backing-filename']}"
        if info.get("full-backing-filename") and info["full-backing-filename"] != info["backing-filename"]:
            bline += f" (actual path: {info['full-backing-filename']})"
        lines.append(bline)
    if "backing-filename-format" in info:
        lines.append(f"backing file format: {info['backing-filename-format']}")
    if info.get("snapshots"):
        from pyvirt.image.qcow2.snapshot import snapshot_table_text

        lines.append("Snapshot list:")
        lines.extend(snapshot_table_text(info["snapshots"]))
    if info.get("format-specific"):
        lines.append("Format specific information:")
        _dump(lines, info["format-specific"]["data"], 4)
    return "\n".join(lines) + "\n"


def _dump(lines: list[str], value: object, indent: int) -> None:
    """qemu's nested ``key: value`` listing: dicts and lists open a level four spaces deeper."""
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            label = k.replace("-", " ")
            if isinstance(v, dict | list):
                lines.append(f"{pad}{label}:")
                _dump(lines, v, indent + 4)
            else:
                lines.append(f"{pad}{label}: {_scalar(v)}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict | list):
                lines.append(f"{pad}[{i}]:")
                _dump(lines, v, indent + 4)
            else:
                lines.append(f"{pad}[{i}]: {_scalar(v)}")


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
