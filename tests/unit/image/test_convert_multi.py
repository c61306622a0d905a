"""Multi-source convert without QEMU: the concatenated reader, whole sectors and whole clusters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.image.api import create_image, open_image
from pyvirt.image.concat import ConcatImage
from pyvirt.image.converter import _extents, _whole_clusters, convert
from pyvirt.image.errors import ImageError


def parts(tmp_path: Path) -> tuple[list[str], bytes]:
    """A 1000-byte raw file, a qcow2 image with a zero cluster, a sparse raw file; and their sum."""
    rnd = random.Random(3)
    a = rnd.randbytes(1000)
    (tmp_path / "a.raw").write_bytes(a)
    q = tmp_path / "b.qcow2"
    create_image(str(q), "qcow2", 3 * 4096, cluster_size=4096)
    b = bytearray(rnd.randbytes(3 * 4096))
    b[4096:8192] = bytes(4096)
    with open_image(str(q), readonly=False) as img:
        img.write(0, b)
        img.write_zeroes(4096, 4096)
    with open(tmp_path / "c.raw", "wb") as f:
        f.seek(9000)
        f.write(b"c" * 10)
    c = bytes(9000) + b"c" * 10 + bytes(-9010 % 512)
    names = [str(tmp_path / n) for n in ("a.raw", "b.qcow2", "c.raw")]
    return names, a + bytes(24) + bytes(b) + c


def test_concat_reads_parts_end_to_end(tmp_path: Path) -> None:
    names, whole = parts(tmp_path)
    img = ConcatImage([open_image(n) for n in names])
    with img:
        assert img.size == len(whole) == 1024 + 3 * 4096 + 9216
        assert img.read(0, img.size) == whole
        assert img.read(1000, 100) == whole[1000:1100]  # across the first boundary
        extents = img.block_status(0, img.size)
        assert [x.start for x in extents] == sorted(x.start for x in extents)
        assert sum(x.length for x in extents) == img.size
        zero = [(x.start, x.length) for x in extents if x.zero and not x.data]
        assert (1024 + 4096, 4096) in zero  # b's zero cluster, moved to its place
    assert img.parts == []


def test_sources_are_concatenated(tmp_path: Path) -> None:
    names, whole = parts(tmp_path)
    for fmt in ("raw", "qcow2"):
        out = tmp_path / f"out.{fmt}"
        convert(names, str(out), fmt)
        with open_image(str(out), fmt=fmt) as img:
            assert img.read(0, img.size) == whole
    out = tmp_path / "c.qcow2"
    convert(names, str(out), "qcow2", compress=True, options={"cluster_size": "512"})
    with open_image(str(out)) as img:
        assert img.read(0, img.size) == whole


def test_odd_sized_raw_data_takes_its_whole_last_sector(tmp_path: Path) -> None:
    names, _ = parts(tmp_path)
    with open_image(names[0]) as img:
        assert [(s, n, d) for s, n, d, _, _ in _extents(img, img.size, False)] == [(0, 1024, True)]


def test_whole_clusters_widen_data_and_keep_zero_runs() -> None:
    def ext(*runs: tuple[int, int, bool]) -> list[tuple[int, int, bool, int, int]]:
        return [(s, n, d, 7, s) for s, n, d in runs]

    got = list(
        _whole_clusters(iter(ext((0, 1024, True), (1024, 9000, False), (10024, 100, True))), 4096, 16384)
    )
    assert got == [
        (0, 4096, True, -1, 0),
        (4096, 4096, False, -1, 0),
        (8192, 4096, True, -1, 0),
        (12288, 4096, False, -1, 0),
    ]
    aligned = list(_whole_clusters(iter(ext((0, 8192, True), (8192, 8192, False))), 4096, 16384))
    assert aligned == [(0, 8192, True, 7, 0), (8192, 8192, False, -1, 0)]  # the direct read is kept


def test_refusals(tmp_path: Path) -> None:
    names, _ = parts(tmp_path)
    with pytest.raises(ImageError, match="makes no sense when concatenating"):
        convert(names, str(tmp_path / "x.qcow2"), "qcow2", backing=names[1], backing_fmt="qcow2")
    with pytest.raises(ImageError, match=r"^-o has no effect when skipping image creation$"):
        convert(names, str(tmp_path / "x.qcow2"), "qcow2", skip_create=True, options={"cluster_size": "4k"})
    create_image(str(tmp_path / "small.qcow2"), "qcow2", 4096)
    with pytest.raises(ImageError, match=r"^output file is smaller than input file$"):
        convert(names, str(tmp_path / "small.qcow2"), "qcow2", skip_create=True)
    with pytest.raises(ImageError):
        convert([*names, str(tmp_path / "missing.raw")], str(tmp_path / "y.qcow2"), "qcow2")
    assert not (tmp_path / "x.qcow2").exists() and not (tmp_path / "y.qcow2").exists()
