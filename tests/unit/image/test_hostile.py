"""Hand-made hostile qcow2 images: each one gets a clear ImageError, nothing is misread or clobbered."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import create_image, open_image
from pyvirt.image.qcow2.image import Qcow2Image


def _img(tmp_path: Path) -> Path:
    p = tmp_path / "h.qcow2"
    create_image(str(p), "qcow2", 1 << 20)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"data" * 4096)
    return p


def _poke(p: Path, offset: int, fmt: str, value: int) -> None:
    with open(p, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (20, ">I", 30, "cluster size"),
        (20, ">I", 8, "cluster size"),
        (36, ">I", 0x1000000, "L1 table too large"),
        (36, ">I", 0, "L1 table too small"),
        (40, ">Q", 1 << 40, "past the end"),
        (40, ">Q", 12345, "not aligned"),
        (56, ">I", 1 << 20, "refcount table too large"),
        (48, ">Q", 3 << 16, "overlap"),
        (4, ">I", 4, "version"),
        (32, ">I", 1, "encrypted"),
        (96, ">I", 9, "refcount order"),
        (100, ">I", 7, "header length"),
        (24, ">Q", 1 << 62, "virtual size"),
        (72, ">Q", 1 << 9, "unknown feature bit 9"),
        (72, ">Q", 1 << 5, "unknown feature bit 5"),
        (16, ">I", 5000, "backing file name"),
    ],
)
def test_bad_header_fields(tmp_path: Path, offset: int, fmt: str, value: int, message: str) -> None:
    p = _img(tmp_path)
    _poke(p, offset, fmt, value)
    if offset == 16:
        _poke(p, 8, ">Q", 0x200)
    with pytest.raises(ImageError, match=message):
        open_image(str(p))


def test_unknown_feature_named_from_table(tmp_path: Path) -> None:
    p = _img(tmp_path)
    data = bytearray(p.read_bytes())
    i = data.index(b"extended L2 entries")
    data[i - 1] = 7  # the table's entry for bit 4 now names bit 7
    data[i : i + 19] = b"shiny new thing\0\0\0\0"
    p.write_bytes(bytes(data))
    _poke(p, 72, ">Q", 1 << 7)
    with pytest.raises(ImageError, match="shiny new thing"):
        open_image(str(p))


def test_l2_pointing_at_header_is_not_written(tmp_path: Path) -> None:
    p = _img(tmp_path)
    with open_image(str(p)) as img:
        assert isinstance(img, Qcow2Image)
        l2 = img.l1[0] & 0x00FFFFFFFFFFFE00
    _poke(p, l2, ">Q", (1 << 63) | 0)  # data cluster 0 "is" the header, refcount 1
    _poke(p, l2 + 8, ">Q", (1 << 63) | (l2))  # data cluster 1 "is" the L2 table itself
    with open_image(str(p), readonly=False) as img, pytest.raises(ImageError):
        img.write(65536, b"x" * 100)
    with open(p, "rb") as f:
        assert f.read(4) == b"QFI\xfb"


def test_data_past_eof_and_bad_compressed(tmp_path: Path) -> None:
    p = _img(tmp_path)
    with open_image(str(p)) as img:
        assert isinstance(img, Qcow2Image)
        l2 = img.l1[0] & 0x00FFFFFFFFFFFE00
    _poke(p, l2, ">Q", (1 << 63) | (1 << 40))
    with open_image(str(p)) as img, pytest.raises(ImageError, match="past the end"):
        img.read(0, 512)
    _poke(p, l2, ">Q", (1 << 62) | 0x30000)  # "compressed" garbage (the L1 table)
    with open_image(str(p)) as img, pytest.raises(ImageError, match="compressed"):
        img.read(0, 512)


def test_truncated_files(tmp_path: Path) -> None:
    p = _img(tmp_path)
    data = p.read_bytes()
    for n in (0, 3, 50, 100, 4096, 65536 + 100, 3 * 65536 + 4):
        p.write_bytes(data[:n])
        try:
            with open_image(str(p)) as img:
                img.read(0, img.size)
        except ImageError:
            pass


def test_probed_raw_cannot_become_qcow2(tmp_path: Path) -> None:
    p = tmp_path / "disk.raw"
    p.write_bytes(bytes(1 << 20))
    with open_image(str(p), readonly=False) as img:
        with pytest.raises(ImageError, match="signature"):
            img.write(0, b"QFI\xfb\x00\x00\x00\x03")
        img.write(4096, b"QFI\xfb")
    with open_image(str(p), fmt="raw", readonly=False) as img:
        img.write(0, b"QFI\xfb")


def test_refcounts_claiming_metadata_free_mark_corrupt(tmp_path: Path) -> None:
    p = tmp_path / "r.qcow2"
    create_image(str(p), "qcow2", 4 << 20)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.refs.set(3, 0)  # the L1 table looks free
        img.refs.hint = 0
        with pytest.raises(ImageError, match="marked corrupt"):
            img.write(0, b"x" * 65536)
    from pyvirt.image import image_info

    assert image_info(str(p))["format-specific"]["data"]["corrupt"] is True
    with pytest.raises(ImageError, match="corrupt"):
        open_image(str(p), readonly=False)
