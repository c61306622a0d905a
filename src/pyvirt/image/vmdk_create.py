"""``create_vmdk``: a new, empty VMDK laid out byte for byte as qemu-img 7.2's vmdk driver makes it.

Sparse extents: header, descriptor room (20 sectors, used by monolithic images), redundant grain
directory and tables, grain directory and tables, then grains from a grain-aligned offset; 64 KiB
grains, 512 entries a table. Flat and split subformats get a descriptor file naming
``NAME-flat.vmdk`` or ``NAME-f001.vmdk``/``NAME-s001.vmdk``... (2 GiB each).
"""

from __future__ import annotations

import os
import struct

from pyvirt.image.errors import ImageError

SUBFORMATS = (
    "monolithicSparse",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "streamOptimized",
)
ADAPTER_TYPES = ("ide", "buslogic", "lsilogic", "legacyESX")
SPLIT_SIZE = 0x80000000
GRAIN_SECTORS = 128
GTES = 512
_HDR = struct.Struct("<4sIIQQQQIQQQB4sH")

_DESCRIPTOR = """# Disk DescriptorFile
version=1
CID={cid:x}
parentCID={parent_cid:x}
createType="{create_type}"
{parent_line}
# Extent description
{extents}
# The Disk Data Base
#DDB

ddb.virtualHWVersion = "{hw}"
ddb.geometry.cylinders = "{cylinders}"
ddb.geometry.heads = "{heads}"
ddb.geometry.sectors = "63"
ddb.adapterType = "{adapter}"
ddb.toolsVersion = "{tools}"
"""


def check_vmdk_options(
    *,
    subformat: str,
    adapter_type: str,
    hwversion: str | None,
    compat6: bool,
    zeroed_grain: bool,
    backing: str | None,
    backing_fmt: str | None,
) -> None:
    """qemu-img's refusals, in its order, before any file is touched."""
    if backing_fmt and backing_fmt != "vmdk":
        raise ImageError("backing_file must be a vmdk image")
    if adapter_type not in ADAPTER_TYPES:
        raise ImageError(f"invalid parameter value: {adapter_type}")
    if subformat not in SUBFORMATS:
        raise ImageError(f"invalid parameter value: {subformat}")
    if compat6 and hwversion:
        raise ImageError("compat6 cannot be enabled with hwversion set")
    flat = subformat in ("monolithicFlat", "twoGbMaxExtentFlat")
    if flat and backing:
        raise ImageError("Flat image can't have backing file")
    if flat and zeroed_grain:
        raise ImageError("Flat image can't enable zeroed grain")


def create_vmdk(
    path: str,
    size: int,
    *,
    subformat: str = "monolithicSparse",
    adapter_type: str = "ide",
    hwversion: str | None = None,
    toolsversion: str | None = None,
    compat6: bool = False,
    zeroed_grain: bool = False,
    backing: str | None = None,
    backing_fmt: str | None = None,
) -> None:
    """Create the descriptor and extent files; on failure, remove every file made."""
    if hwversion == "undefined":
        hwversion = None
    check_vmdk_options(
        subformat=subformat,
        adapter_type=adapter_type,
        hwversion=hwversion,
        compat6=compat6,
        zeroed_grain=zeroed_grain,
        backing=backing,
        backing_fmt=backing_fmt,
    )
    size = -(-size // 512) * 512
    if size // 512 > (1 << 32) * GRAIN_SECTORS and subformat in ("monolithicSparse", "streamOptimized"):
        raise ImageError("Could not create image: the size is too large for a VMDK sparse extent")
    parent_cid = 0xFFFFFFFF
    parent_line = ""
    if backing:
        parent_cid = _parent_cid(path, backing)
        parent_line = f'parentFileNameHint="{backing}"'
    flat = subformat in ("monolithicFlat", "twoGbMaxExtentFlat")
    split = subformat.startswith("twoGb")
    compress = subformat == "streamOptimized"
    folder, base = os.path.split(path)
    stem, dot, ext = base.rpartition(".")
    prefix, postfix = (stem, dot + ext) if dot else (base, "")
    made: list[str] = []
    lines: list[str] = []
    try:
        if not split and not flat:
            _new_file(path, made)
            _init_sparse(path, size, compress=compress, zeroed_grain=zeroed_grain)
            lines.append(f'RW {size // 512} SPARSE "{base}"')
        else:
            _new_file(path, made)
            step = SPLIT_SIZE if split else size
            done, idx = 0, 1
            while done < size:
                n = min(size - done, step)
                if split:
                    name = f"{prefix}-{'f' if flat else 's'}{idx:03d}{postfix}"
                else:
                    name = f"{prefix}-flat{postfix}"
                target = os.path.join(folder, name)
                _new_file(target, made)
                if flat:
                    os.truncate(target, n)
                    lines.append(f'RW {-(-n // 512)} FLAT "{name}" 0')
                else:
                    _init_sparse(target, n, compress=False, zeroed_grain=zeroed_grain)
                    lines.append(f'RW {-(-n // 512)} SPARSE "{name}"')
                done += n
                idx += 1
        heads = 16 if adapter_type == "ide" else 255
        text = _DESCRIPTOR.format(
            cid=int.from_bytes(os.urandom(4), "little"),
            parent_cid=parent_cid,
            create_type=subformat,
            parent_line=parent_line,
            extents="".join(line + "\n" for line in lines),
            hw="6" if compat6 else hwversion or "4",
            cylinders=size // (63 * heads * 512),
            heads=heads,
            adapter=adapter_type,
            tools=toolsversion or "2147483647",
        )
        fd = os.open(path, os.O_RDWR)
        try:
            if not split and not flat:
                os.pwrite(fd, text.encode(), 0x200)
            else:
                os.pwrite(fd, text.encode(), 0)
                os.ftruncate(fd, len(text.encode()))
        finally:
            os.close(fd)
    except BaseException:
        for name in made:
            try:  # noqa: SIM105 (contextlib is slow to import)
                os.unlink(name)
            except OSError:
                pass
        raise


def _new_file(path: str, made: list[str]) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    os.close(fd)
    made.append(path)


def _init_sparse(path: str, size: int, *, compress: bool, zeroed_grain: bool) -> None:
    """QEMU's ``vmdk_init_extent``: header, both grain directories, zeroed grain tables."""
    version = 3 if compress else 2 if zeroed_grain else 1
    flags = 0x3 | (0x30000 if compress else 0) | (0x4 if zeroed_grain else 0)
    capacity = size // 512
    grains = -(-capacity // GRAIN_SECTORS)
    gt_size = -(-GTES * 4 // 512)
    gt_count = -(-grains // GTES)
    gd_sectors = -(-gt_count * 4 // 512)
    desc_offset, desc_size = 1, 20
    rgd_offset = desc_offset + desc_size
    gd_offset = rgd_offset + gd_sectors + gt_size * gt_count
    grain_offset = -(-(gd_offset + gd_sectors + gt_size * gt_count) // GRAIN_SECTORS) * GRAIN_SECTORS
    header = _HDR.pack(
        b"KDMV",
        version,
        flags,
        capacity,
        GRAIN_SECTORS,
        desc_offset,
        desc_size,
        GTES,
        rgd_offset,
        gd_offset,
        grain_offset,
        0,
        b"\n \r\n",
        1 if compress else 0,
    )
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, header, 0)
        os.ftruncate(fd, grain_offset * 512)
        for start in (rgd_offset, gd_offset):
            first = start + gd_sectors
            gd = struct.pack(f"<{gt_count}I", *range(first, first + gt_count * gt_size, gt_size))
            os.pwrite(fd, gd + bytes(gd_sectors * 512 - len(gd)), start * 512)
    finally:
        os.close(fd)


def _parent_cid(path: str, backing: str) -> int:
    """The CID of the parent a delta disk is made over (it must be a VMDK)."""
    from pyvirt.image.info import path_combine
    from pyvirt.image.probe import probe_file

    target = path_combine(path, backing)
    fmt = probe_file(target)
    if fmt != "vmdk":
        raise ImageError(f"Invalid backing file format: {fmt}. Must be vmdk")
    from pyvirt.image.vmdk import VmdkImage

    parent = VmdkImage.open(target)
    try:
        return parent.cid
    finally:
        parent.close()
