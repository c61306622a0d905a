"""Recognise an image's format from its first bytes (never used to pick raw for writing)."""

from __future__ import annotations

import os
import struct

from pyvirt.image.errors import ImageError

FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "luks")


def probe_bytes(head: bytes) -> str:
    """Name the format whose signature ``head`` (the first 512+ bytes) carries; ``raw`` otherwise."""
    if head[:4] == b"QFI\xfb":
        return "qcow2"
    if head[:4] == b"KDMV" or head[:4] == b"COWD":
        return "vmdk"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"  # a raw LUKS container (qemu's luks driver)
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix":
        return "vpc"  # a dynamic VHD; a fixed one has only a footer, at the end, and probes as raw
    if len(head) >= 0x44 and struct.unpack_from("<I", head, 0x40)[0] == 0xBEDA107F:
        return "vdi"
    if head[:21] == b"# Disk DescriptorFile" or (b"createType=" in head[:1024] and head.lstrip()[:1] == b"#"):
        return "vmdk"
    return "raw"


def probe_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as err:
        raise ImageError(f"Could not open '{path}': {err.strerror}") from err
    return probe_bytes(head)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ImageError(f"Unknown file format '{fmt}' (known: {', '.join(FORMATS)})")
    return fmt


def file_exists(path: str) -> bool:
    return os.path.exists(path)
