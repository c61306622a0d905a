"""VMDK and VDI images made by qemu-img read back byte-identical, convert to clean qcow2 and take writes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import convert, image_info, open_image

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, read_all


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("src")
    p = d / "v.raw"
    text = b"".join(b"%06d text\n" % i for i in range(100000))[: 1 << 20]
    p.write_bytes(
        random.Random(9).randbytes(1 << 20)
        + bytes(1 << 20)
        + text
        + b"\x01" * 4096
        + bytes(1 << 20)
        + bytes(-4096 % (1 << 20))
    )
    return p


@pytest.mark.parametrize(
    ("fmt", "opts"),
    [
        ("vmdk", "subformat=monolithicSparse"),
        ("vmdk", "subformat=streamOptimized"),
        ("vmdk", "subformat=monolithicFlat"),
        ("vmdk", "subformat=twoGbMaxExtentSparse"),
        ("vmdk", "subformat=twoGbMaxExtentFlat"),
        ("vdi", "static=off"),
        ("vdi", "static=on"),
    ],
)
def test_read_and_convert(tmp_path: Path, source: Path, fmt: str, opts: str) -> None:
    img = tmp_path / f"img.{fmt}"
    qemu_img("convert", "-O", fmt, "-o", opts, str(source), str(img))
    with open_image(str(img)) as i:
        assert i.format == fmt
        assert i.size == source.stat().st_size
    assert read_all(img) == source.read_bytes()
    out = tmp_path / "out.qcow2"
    convert(str(img), str(out), "qcow2")
    assert_clean(out)
    assert_same(source, out)
    assert image_info(str(img))["format"] == fmt
    for args in (["--output=json"], []):
        ours = pyvirt_img("info", *args, img.name, cwd=tmp_path)
        assert ours.stdout == qemu_img("info", *args, img.name, cwd=tmp_path).stdout, ours.stderr
    # Writable as well: an overwrite in place keeps the image clean for qemu-img (streamOptimized
    # grains are written once, as QEMU has it).
    if "streamOptimized" in opts:
        with open_image(str(img), readonly=False) as w, pytest.raises(ImageError, match="allocated cluster"):
            w.write(4096, b"\x5a" * 70000)
        return
    with open_image(str(img), readonly=False) as w:
        w.write(4096, b"\x5a" * 70000)
    mirror = tmp_path / "mirror.raw"
    data = bytearray(source.read_bytes())
    data[4096 : 4096 + 70000] = b"\x5a" * 70000
    mirror.write_bytes(bytes(data))
    assert_clean(img)
    assert_same(mirror, img, fmt_b=fmt)


def test_stream_optimized_with_footer(tmp_path: Path, source: Path) -> None:
    """VMware writes streamOptimized with the grain directory at the end (header says GD_AT_END)."""
    img = tmp_path / "s.vmdk"
    qemu_img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(source), str(img))
    data = bytearray(img.read_bytes())
    header = bytes(data[:512])
    data[56:64] = b"\xff" * 8
    data += bytes(-len(data) % 512) + bytes(512) + header + bytes(512)
    img.write_bytes(bytes(data))
    assert read_all(img) == source.read_bytes()


def test_vmdk_extent_outside_folder_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (tmp_path / "secret").write_bytes(b"s" * 4096)
    (d / "x.vmdk").write_text(
        '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
        'RW 8 FLAT "../secret" 0\n'
    )
    with pytest.raises(Exception, match="outside"):
        open_image(str(d / "x.vmdk"))
