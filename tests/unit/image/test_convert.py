"""Library convert: round trips, progress, -S 0, compression fallbacks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import check, convert, image_info, open_image
from pyvirt.image.converter import compress_cluster, looks_incompressible


def _source(tmp_path: Path) -> Path:
    rnd = random.Random(4)
    text = b"".join(b"row %d\n" % i for i in range(200000))[: 1 << 20]
    data = rnd.randbytes(700000) + bytes(1 << 20) + text + bytes(5000) + rnd.randbytes(1000)
    p = tmp_path / "src.raw"
    p.write_bytes(data + bytes(-len(data) % 512))
    return p


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cluster", ["512", "65536", "2M"])
def test_round_trip(tmp_path: Path, compress: bool, cluster: str) -> None:
    src = _source(tmp_path)
    seen: list[float] = []
    out = tmp_path / "o.qcow2"
    convert(
        str(src),
        str(out),
        "qcow2",
        compress=compress,
        options={"cluster_size": cluster},
        progress=seen.append,
    )
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert check(str(out)).exit_code == 0
    back = tmp_path / "b.raw"
    convert(str(out), str(back), "raw")
    assert back.read_bytes() == src.read_bytes()
    if compress:
        assert check(str(out)).compressed_clusters > 0


def test_sparse_zero_allocates_everything(tmp_path: Path) -> None:
    src = _source(tmp_path)
    out = tmp_path / "full.qcow2"
    convert(str(src), str(out), "qcow2", sparse_size=0)
    res = check(str(out))
    assert res.allocated_clusters == res.total_clusters
    sparse = tmp_path / "sparse.qcow2"
    convert(str(src), str(sparse), "qcow2")
    assert check(str(sparse)).allocated_clusters < res.allocated_clusters


def test_bad_options(tmp_path: Path) -> None:
    src = _source(tmp_path)
    with pytest.raises(ImageError, match="Invalid parameter"):
        convert(str(src), str(tmp_path / "x.qcow2"), "qcow2", options={"nonsense": "1"})
    with pytest.raises(ImageError, match="Compression not supported"):
        convert(str(src), str(tmp_path / "x.raw"), "raw", compress=True)
    assert not (tmp_path / "x.qcow2").exists()


def test_compression_helpers() -> None:
    assert compress_cluster(bytes(65536)) is not None
    assert compress_cluster(random.Random(1).randbytes(65536)) is None
    assert looks_incompressible(random.Random(2).randbytes(65536))
    assert not looks_incompressible(b"abcd" * 16384)


def test_compressed_chunks_with_the_zstd_probe() -> None:
    """The zlib path's early abort probes with zstd: random clusters are stored raw (None), a
    compressible one is deflated (and inflates back), a zero one skipped, as with the deflate probe."""
    import zlib

    import zstandard

    from pyvirt.image.converter import _compress_chunk, _compress_chunk_zstd

    probe = zstandard.ZstdCompressor(level=1).compress
    noise = random.Random(3).randbytes(65536)
    text = b"pyvirt " * (65536 // 7) + b"x" * (65536 % 7)
    assert looks_incompressible(noise, probe) and not looks_incompressible(text, probe)
    data = bytearray(noise + bytes(65536) + text)
    deflated = _compress_chunk(data, 65536)
    assert deflated[0] is None and deflated[1] == b""
    assert deflated[2] is not None and zlib.decompressobj(-12).decompress(deflated[2]) == text
    frames = _compress_chunk_zstd(data, 65536)
    assert frames[0] is None and frames[1] == b""
    assert frames[2] is not None and zstandard.ZstdDecompressor().decompress(frames[2]) == text


def test_convert_keeps_size_and_info(tmp_path: Path) -> None:
    src = _source(tmp_path)
    out = tmp_path / "o.qcow2"
    convert(str(src), str(out), "qcow2", options={"compat": "0.10"})
    info = image_info(str(out))
    assert info["virtual-size"] == src.stat().st_size
    assert info["format-specific"]["data"]["compat"] == "0.10"
    with open_image(str(out)) as img:
        assert img.read(0, 16) == src.read_bytes()[:16]


def test_public_names_are_functions_even_after_submodule_imports() -> None:
    import importlib

    import pyvirt.image as pi

    for mod in (
        "pyvirt.image.converter",
        "pyvirt.image.checker",
        "pyvirt.image.info",
        "pyvirt.image.measure",
    ):
        importlib.import_module(mod)
    for name in ("convert", "check", "create_image", "image_info", "open_image", "resize"):
        assert callable(getattr(pi, name)), name


@pytest.mark.parametrize("cluster", ["4096", "65536"])
def test_compress_a_sparse_raw_file(tmp_path: Path, cluster: str) -> None:
    """Data after a hole that ends inside a cluster: the whole cluster is read and compressed."""
    src = tmp_path / "holes.raw"
    with open(src, "wb") as f:
        f.truncate(1 << 20)
        f.write(b"abc" * 1000)
        f.seek(69632)  # 68 KiB: a file-system block, not a cluster, boundary
        f.write(b"xyz" * 1000)
    out = tmp_path / "c.qcow2"
    convert(str(src), str(out), "qcow2", compress=True, options={"cluster_size": cluster})
    assert check(str(out)).exit_code == 0
    with open_image(str(out)) as img:
        assert img.read(0, img.size) == src.read_bytes()


@pytest.mark.parametrize("refuse", [False, True])
def test_file_data_copied_by_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse: bool
) -> None:
    """Data lying in the source file goes file to file by ``copy_file_range`` (zero granules still
    found and left as holes); a kernel that refuses it (EXDEV) gets the same result by read and write."""
    import errno
    import os

    calls: list[int] = []
    real = os.copy_file_range

    def copy_file_range(src: int, dst: int, n: int, src_off: int, dst_off: int) -> int:
        calls.append(n)
        if refuse:
            raise OSError(errno.EXDEV, "cross-device")
        return real(src, dst, n, src_off, dst_off)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    src = _source(tmp_path)
    for fmt in ("raw", "qcow2"):
        out = tmp_path / f"o.{fmt}"
        convert(str(src), str(out), fmt)
        back = tmp_path / "b.raw"
        convert(str(out), str(back), "raw")
        assert back.read_bytes() == src.read_bytes()
        if fmt == "raw":  # the MiB of zeros in the source is a hole in the copy
            assert os.stat(out).st_blocks * 512 < len(src.read_bytes()) - 900_000
        back.unlink()
    assert calls


@pytest.mark.parametrize("clones", [True, False])
def test_file_data_cloned_where_the_file_system_shares_extents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clones: bool
) -> None:
    """Where the file system clones (``FICLONERANGE``; faked here by a copy), every data run of the
    source is cloned; where it refuses (ext4: EOPNOTSUPP), the runs are copied by the kernel, but
    into a raw file or unaligned blocks (vpc) only the first: the rest is read and written. Same
    bytes, zero granules left as holes, either way."""
    import errno
    import fcntl
    import os
    import struct

    from pyvirt.image import converter

    clone_calls: list[int] = []
    copies: list[int] = []
    real_copy = os.copy_file_range

    def ioctl(fd: int, request: int, arg: bytes) -> int:
        assert request == converter.FICLONERANGE
        src, src_off, n, dst_off = struct.unpack("=qQQQ", arg)
        clone_calls.append(n)
        if not clones:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        assert real_copy(src, fd, n, src_off, dst_off) == n
        return 0

    def copy_file_range(src: int, dst: int, n: int, src_off: int, dst_off: int) -> int:
        copies.append(n)
        return real_copy(src, dst, n, src_off, dst_off)

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    rnd = random.Random(7)
    data = rnd.randbytes(3 << 20) + bytes(2 << 20) + rnd.randbytes(3 << 20)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    for fmt in ("raw", "qcow2", "vpc"):
        clone_calls.clear()
        copies.clear()
        out = tmp_path / f"o.{fmt}"
        convert(str(src), str(out), fmt)
        back = tmp_path / "b.raw"
        convert(str(out), str(back), "raw", share_extents=False)
        assert back.read_bytes()[: len(data)] == data
        if fmt == "raw":
            assert os.stat(out).st_blocks * 512 <= len(data) - (2 << 20)
        if clones:  # (vpc: a 2 MiB block holding any data is written whole, its zeros too)
            assert sum(clone_calls) == (8 if fmt == "vpc" else 6) << 20 and not copies
        elif fmt in ("raw", "vpc"):  # vpc: blocks behind a 512-byte bitmap, not page-aligned
            assert clone_calls == copies == [2 << 20]  # the first chunk
        else:
            assert clone_calls == [2 << 20] and sum(copies) == 6 << 20


@pytest.mark.parametrize("fmt", ["vpc", "vdi", "compressed qcow2"])
def test_chunks_read_by_the_workers_into_raw(tmp_path: Path, fmt: str) -> None:
    """Data that is not copied file to file (vpc and vdi blocks at sector offsets, compressed
    clusters) is read, checked for zeros and written by the workers: same bytes, zeros left as
    holes; with ``skip_create`` over an old file, the zeros written over what it held."""
    import os

    src = _source(tmp_path)
    want = src.read_bytes()
    mid = tmp_path / "m.img"
    if fmt == "compressed qcow2":
        convert(str(src), str(mid), "qcow2", compress=True)
    else:
        convert(str(src), str(mid), fmt)
    back = tmp_path / "b.raw"
    convert(str(mid), str(back), "raw")
    got = back.read_bytes()
    assert got[: len(want)] == want and not any(got[len(want) :])  # vpc rounds the size up to its CHS
    assert os.stat(back).st_blocks * 512 < len(want) - 900_000
    old = tmp_path / "old.raw"
    old.write_bytes(b"\xa5" * len(got))
    from pyvirt.image.converter import convert as convert_into

    convert_into(str(mid), str(old), "raw", skip_create=True)
    assert old.read_bytes() == got
