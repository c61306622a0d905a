"""qcow2 with zstd compression (compression_type=zstd), judged by qemu-img both ways."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.image import open_image

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io, read_all


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = random.Random(17)
    text = b"".join(b"zstd line %d\n" % i for i in range(200000))[: 3 << 20]
    data = r.randbytes(1 << 20) + bytes(1 << 20) + text + r.randbytes(70000) + bytes(3000)
    data += bytes(-len(data) % 512)
    p = tmp_path_factory.mktemp("zsrc") / "src.raw"
    p.write_bytes(data)
    return p


def test_create_is_byte_identical(tmp_path: Path) -> None:
    r = pyvirt_img("create", "-f", "qcow2", "-o", "compression_type=zstd", "ours.qcow2", "1G", cwd=tmp_path)
    q = qemu_img("create", "-f", "qcow2", "-o", "compression_type=zstd", "theirs.qcow2", "1G", cwd=tmp_path)
    assert r.stdout == q.stdout.replace("theirs", "ours")
    assert (tmp_path / "ours.qcow2").read_bytes() == (tmp_path / "theirs.qcow2").read_bytes()
    info = pyvirt_img("info", "ours.qcow2", cwd=tmp_path).stdout
    assert info == qemu_img("info", "ours.qcow2", cwd=tmp_path).stdout
    assert "compression type: zstd" in info


@pytest.mark.parametrize("opts", ["compression_type=zstd", "compression_type=zstd,cluster_size=4k"])
def test_convert_c_to_zstd_is_clean_and_identical(tmp_path: Path, source: Path, opts: str) -> None:
    ours = tmp_path / "ours.qcow2"
    r = pyvirt_img("convert", "-c", "-O", "qcow2", "-o", opts, str(source), str(ours))
    assert r.returncode == 0, r.stderr
    assert_clean(ours)
    assert_same(source, ours)
    check = qemu_img("check", str(ours)).stdout
    assert "compressed clusters" in check and " 0.00% compressed" not in check
    assert read_all(ours) == source.read_bytes()


def test_qemus_zstd_images_read_and_written(tmp_path: Path, source: Path) -> None:
    theirs = tmp_path / "theirs.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", str(source), str(theirs))
    assert read_all(theirs) == source.read_bytes()
    r = pyvirt_img("convert", "-O", "raw", str(theirs), str(tmp_path / "back.raw"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.raw").read_bytes() == source.read_bytes()
    # A write inside a compressed cluster: copy-on-write decompresses it first.
    with open_image(str(theirs), readonly=False) as img:
        img.write((2 << 20) + 1000, b"\xee" * 3000)
    mirror = bytearray(source.read_bytes())
    mirror[(2 << 20) + 1000 : (2 << 20) + 4000] = b"\xee" * 3000
    (tmp_path / "mirror.raw").write_bytes(bytes(mirror))
    assert_clean(theirs)
    assert_same(tmp_path / "mirror.raw", theirs)
    # And qemu-io reads what we wrote into a zstd image of ours.
    ours = tmp_path / "ours.qcow2"
    pyvirt_img("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", str(source), str(ours))
    qemu_io(ours, "write -P 0x11 4096 512")
    assert read_all(ours)[4096:4608] == b"\x11" * 512


@pytest.mark.parametrize("opts", ["compression_type=zstd,compat=0.10", "compression_type=lz4"])
def test_zstd_option_errors_as_qemu_img(tmp_path: Path, opts: str) -> None:
    r = pyvirt_img("create", "-f", "qcow2", "-o", opts, "x.qcow2", "1G", cwd=tmp_path)
    q = qemu_img("create", "-f", "qcow2", "-o", opts, "x.qcow2", "1G", check=False, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout)
    assert r.stderr.split("error: ", 1)[1] == q.stderr.split("qemu-img: ", 1)[1]
