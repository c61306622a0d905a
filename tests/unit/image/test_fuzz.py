"""Property-based fuzzing of the parsers: hostile bytes give ImageError, never a crash or a hang."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvirt.errors import ImageError
from pyvirt.image import check, create_image, open_image
from pyvirt.image.qcow2.header import Header

FUZZ = settings(
    max_examples=int(os.environ.get("PYVIRT_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("PYVIRT_FUZZ_RANDOM") is None,
)


@FUZZ
@given(st.binary(min_size=0, max_size=600))
def test_header_parse_random_bytes(data: bytes) -> None:
    for buf in (data, b"QFI\xfb" + data, b"QFI\xfb\x00\x00\x00\x03" + data):
        with contextlib.suppress(ImageError):
            Header.parse(buf, 1 << 20)


def _valid_header() -> bytes:
    h = Header(
        size=1 << 20,
        l1_size=1,
        l1_table_offset=3 << 16,
        refcount_table_offset=1 << 16,
        refcount_table_clusters=1,
        backing_file="b.qcow2",
        backing_format="qcow2",
    )
    return h.pack(65536)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=12))
def test_header_parse_mutations(muts: list[tuple[int, int]]) -> None:
    buf = bytearray(_valid_header())
    for pos, val in muts:
        if pos < len(buf):
            buf[pos] = val
    with contextlib.suppress(ImageError):
        Header.parse(bytes(buf), 1 << 20)


@pytest.fixture(scope="module")
def seed_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small image with every kind of metadata: L2 tables, zero and compressed clusters, a snapshot."""
    from pyvirt.image.converter import compress_cluster
    from pyvirt.image.qcow2 import snapshot as S
    from pyvirt.image.qcow2.image import Qcow2Image

    d = tmp_path_factory.mktemp("seed")
    p = d / "seed.qcow2"
    create_image(str(p), "qcow2", 256 << 10, cluster_size=512)
    rnd = random.Random(1)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.write(0, rnd.randbytes(8192))
        img.write_zeroes(8192, 4096)
        payload = compress_cluster(b"abc" * 170 + b"xy")
        assert payload is not None
        img.write_compressed([(40, payload)])
        S.create_snapshot(img, "s")
        img.write(1024, b"after snapshot")
    assert check(str(p)).exit_code == 0
    return p


def _exercise(path: Path) -> None:
    try:
        with open_image(str(path)) as img:
            n = min(img.size, 64 << 10)
            img.read(0, n)
            img.block_status(0, n)
    except ImageError:
        pass
    with contextlib.suppress(ImageError):
        check(str(path))
    try:
        with open_image(str(path), readonly=False) as img:
            if img.size >= 4096:
                img.write(512, b"w" * 3000)
                img.write_zeroes(0, 512)
    except ImageError:
        pass


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=16))
def test_open_read_check_write_mutated_image(
    seed_image: Path, tmp_path: Path, muts: list[tuple[int, int]]
) -> None:
    p = tmp_path / "m.qcow2"
    shutil.copyfile(seed_image, p)
    data = bytearray(p.read_bytes())
    for pos, val in muts:
        data[pos % len(data)] = val
    p.write_bytes(bytes(data))
    _exercise(p)


@FUZZ
@given(
    st.sampled_from([4, 8, 12, 20, 24, 36, 40, 48, 56, 60, 64, 72, 76, 80, 96, 100]),
    st.sampled_from(
        [0, 1, 7, 0x200, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 40, (1 << 63) + 512, (1 << 64) - 1]
    ),
)
def test_header_fields_out_of_range(seed_image: Path, tmp_path: Path, field: int, value: int) -> None:
    p = tmp_path / "f.qcow2"
    shutil.copyfile(seed_image, p)
    with open(p, "r+b") as f:
        f.seek(field)
        width = 4 if field in (4, 16, 20, 32, 36, 56, 60, 96, 100) else 8
        f.write(struct.pack(">Q" if width == 8 else ">I", value & ((1 << (8 * width)) - 1)))
    _exercise(p)


@FUZZ
@given(st.binary(min_size=0, max_size=2048), st.sampled_from([b"KDMV", b"# Disk DescriptorFile\n", b"vdi"]))
def test_vmdk_vdi_headers(tmp_path: Path, data: bytes, kind: bytes) -> None:
    p = tmp_path / "x.img"
    if kind == b"vdi":
        blob = bytearray(512) + bytearray(data)
        blob[0x40:0x44] = struct.pack("<I", 0xBEDA107F)
        blob[0x44:0x48] = struct.pack("<I", 0x00010001)
        p.write_bytes(bytes(blob[:0x44]) + data)
        fmt = "vdi"
    else:
        p.write_bytes(kind + data)
        fmt = "vmdk"
    try:
        with open_image(str(p), fmt=fmt) as img:
            img.read(0, min(img.size, 1 << 16))
    except ImageError:
        pass
