"""Inflating vmdk grains and qcow2 clusters: ISA-L (or zlib where it is missing) gives zlib's bytes,
and a streamOptimized extent read in big pieces gives what one grain at a time gives."""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import create_image, inflate, open_image
from pyvirt.image.qcow2.image import decompress_cluster

SAMPLES = [b"", os.urandom(65536), b"pyvirt " * 9000, os.urandom(3000) + bytes(60000) + os.urandom(2536)]


@pytest.fixture(params=["isal", "zlib"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs with ISA-L (the installed dependency) and with zlib (the fallback)."""
    if request.param == "zlib":
        monkeypatch.setattr(inflate, "_lib", [zlib])
    else:
        pytest.importorskip("isal")
        monkeypatch.setattr(inflate, "_lib", [])
    yield request.param


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "random", "text", "mixed"])
def test_zlib_streams_inflate_to_their_bytes(engine: str, data: bytes) -> None:
    for level in (0, 1, 6, 9):
        assert inflate.decompress(zlib.compress(data, level), 65536) == data


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "random", "text", "mixed"])
def test_raw_deflate_stops_at_the_cluster(engine: str, data: bytes) -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -12, 9)
    stream = c.compress(data) + c.flush()
    assert inflate.decompress_raw(stream + os.urandom(100), 65536) == data[:65536]
    assert inflate.decompress_raw(stream, 4096) == data[:4096]


def test_a_reference_past_four_kib_inflates_as_zlib_does_for_qemu(engine: str) -> None:
    """A cluster deflated with a 32 KiB window: QEMU's zlib, told of 4 KiB but inflating the cluster
    in one call, follows its longer references; so do we, with either library."""
    block = os.urandom(8000)
    data = block + os.urandom(100) + block
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    stream = c.compress(data) + c.flush()
    assert len(stream) < len(data) - 4000  # the second block is a back-reference, 8100 bytes back
    assert zlib.decompressobj(-12).decompress(stream, 65536) == data
    assert decompress_cluster(stream, 65536, 0) == data


def test_damaged_streams_are_refused(engine: str) -> None:
    good = zlib.compress(b"pyvirt " * 1000)
    bad_sum = good[:-1] + bytes([good[-1] ^ 1])
    for stream in (good[:-3], bad_sum, b"\x78\x9c" + b"\xff" * 40):
        with pytest.raises(inflate.InflateError):
            inflate.decompress(stream, 65536)
    with pytest.raises(ValueError):
        decompress_cluster(b"\xff" * 64, 65536, 0)


def _stream_vmdk(path: Path, grains: list[bytes], order: list[int]) -> None:
    """A streamOptimized image whose grains (64 KiB) are stored in ``order``."""
    gbytes = 64 << 10
    create_image(str(path), "vmdk", len(grains) * gbytes, subformat="streamOptimized")
    with open_image(str(path), fmt="vmdk", readonly=False) as img:
        for g in order:
            img.write(g * gbytes, grains[g])


@pytest.mark.parametrize("layout", ["in order", "reversed", "shuffled"])
def test_stream_grains_read_in_big_pieces_as_one_by_one(engine: str, tmp_path: Path, layout: str) -> None:
    rng = random.Random(16)
    gbytes = 64 << 10
    grains = [rng.randbytes(gbytes) if g % 3 else (bytes([g]) * 100 + bytes(gbytes - 100)) for g in range(70)]
    order = list(range(len(grains)))
    if layout == "reversed":
        order.reverse()
    elif layout == "shuffled":
        rng.shuffle(order)
    p = tmp_path / "s.vmdk"
    _stream_vmdk(p, grains, order)
    whole = b"".join(grains)
    with open_image(str(p)) as img:
        assert img.read(0, len(whole)) == whole
        end = len(whole)
        pieces = ((0, 2 << 20), (gbytes // 2, 3 * gbytes), (5 * gbytes + 7, 1 << 20), (end - 4096, 4096))
        for at, n in pieces:
            assert img.read(at, n) == whole[at : at + n]
        assert [img.read(g * gbytes, gbytes) for g in range(len(grains))] == grains


def test_a_damaged_grain_read_in_a_big_piece_names_the_grain(engine: str, tmp_path: Path) -> None:
    gbytes = 64 << 10
    grains = [bytes([g + 1]) * gbytes for g in range(8)]
    p = tmp_path / "s.vmdk"
    _stream_vmdk(p, grains, list(range(8)))
    with open_image(str(p)) as img:
        sp = img.parts[0].sparse  # type: ignore[attr-defined]
        at = sp.data_at(5, sp.entry(5))
    with open(p, "r+b") as f:
        f.seek(at + 12 + 4)
        f.write(b"\xff" * 8)
    with open_image(str(p)) as img, pytest.raises(ImageError, match="grain 5 does not decompress"):
        img.read(0, 8 * gbytes)
