"""qcow2 read/write through the library against an in-memory model, for every cluster size."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import check, create_image, image_info, open_image


def _model_test(path: Path, cluster_size: int, size: int, seed: int, ops: int = 60) -> None:
    rnd = random.Random(seed)
    model = bytearray(size)
    create_image(str(path), "qcow2", size, cluster_size=cluster_size)
    with open_image(str(path), readonly=False) as img:
        for _ in range(ops):
            off = rnd.randrange(0, size)
            n = min(size - off, rnd.choice([1, 511, 512, cluster_size, 3 * cluster_size + 7, 70000]))
            kind = rnd.random()
            if kind < 0.7:
                data = rnd.randbytes(n)
                img.write(off, data)
                model[off : off + n] = data
            elif kind < 0.85:
                img.write_zeroes(off, n)
                model[off : off + n] = bytes(n)
            else:
                img.discard(off, n)
                model[off : off + n] = bytes(n)
            if rnd.random() < 0.2:
                a = rnd.randrange(0, size)
                b = min(size, a + rnd.randrange(1, 100000))
                assert img.read(a, b - a) == bytes(model[a:b])
    with open_image(str(path)) as img:
        assert img.read(0, size) == bytes(model)
    res = check(str(path))
    assert res.exit_code == 0, res.messages


@pytest.mark.parametrize("cluster_size", [512, 1024, 4096, 65536, 2 << 20])
def test_random_writes_match_model(tmp_path: Path, cluster_size: int) -> None:
    _model_test(tmp_path / "t.qcow2", cluster_size, 8 << 20, seed=cluster_size)


def test_refcount_table_growth_small_clusters(tmp_path: Path) -> None:
    p = tmp_path / "g.qcow2"
    create_image(str(p), "qcow2", 64 << 20, cluster_size=512)
    data = random.Random(5).randbytes(24 << 20)
    with open_image(str(p), readonly=False) as img:
        img.write(0, data)
    with open_image(str(p)) as img:
        assert img.read(0, len(data)) == data
    assert check(str(p)).exit_code == 0


def test_backing_chain_reads_and_cow(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    create_image(str(base), "qcow2", 4 << 20)
    with open_image(str(base), readonly=False) as img:
        img.write(0, b"B" * (1 << 20))
    mid = tmp_path / "mid.qcow2"
    create_image(str(mid), "qcow2", None, backing="base.qcow2", backing_fmt="qcow2")
    top = tmp_path / "top.qcow2"
    create_image(str(top), "qcow2", None, backing="mid.qcow2", backing_fmt="qcow2")
    with open_image(str(mid), readonly=False) as img:
        img.write(100, b"M" * 10)
    with open_image(str(top), readonly=False) as img:
        assert img.backing is not None and img.backing.backing is not None
        img.write(200, b"T" * 10)
        img.write_zeroes(65536, 65536)
    with open_image(str(top)) as img:
        head = img.read(0, 300)
        assert head[:100] == b"B" * 100 and head[100:110] == b"M" * 10 and head[200:210] == b"T" * 10
        assert img.read(65536, 65536) == bytes(65536)
        assert img.read(131072, 10) == b"B" * 10
    with open_image(str(base)) as img:
        assert img.read(0, 300) == b"B" * 300
    info = image_info(str(top), backing_chain=True)
    assert info["backing-filename"] == "mid.qcow2"
    assert info["backing-image"]["backing-image"]["filename"].endswith("base.qcow2")
    for p in (base, mid, top):
        assert check(str(p)).exit_code == 0


def test_backing_loop_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    create_image(str(a), "qcow2", 1 << 20)
    create_image(str(b), "qcow2", 1 << 20, backing="a.qcow2", backing_fmt="qcow2")
    with open_image(str(a), readonly=False) as img:
        img.set_backing("b.qcow2", "qcow2")  # type: ignore[attr-defined]
    with pytest.raises(ImageError, match="loops"):
        open_image(str(a))


def test_backing_outside_folder_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    create_image(str(tmp_path / "base.qcow2"), "qcow2", 1 << 20)
    top = tmp_path / "sub" / "top.qcow2"
    create_image(str(top), "qcow2", 1 << 20, backing="../base.qcow2", backing_fmt="qcow2")
    with pytest.raises(ImageError, match="outside"):
        open_image(str(top))
    with open_image(str(top), allow_backing_outside=True) as img:
        assert img.backing is not None


def test_backing_without_format_not_probed_as_raw(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(bytes(1 << 20))
    top = tmp_path / "top.qcow2"
    create_image(str(top), "qcow2", 1 << 20, backing="base.raw", backing_fmt="raw")
    with open_image(str(top), readonly=False) as img:
        img.header.backing_format = None  # type: ignore[attr-defined]
        img._write_header()  # type: ignore[attr-defined]
    with pytest.raises(ImageError, match="no stated format"):
        open_image(str(top))
    with pytest.raises(ImageError, match="backing format"):
        create_image(str(tmp_path / "x.qcow2"), "qcow2", 1 << 20, backing="base.raw")


def test_resize_grow_and_shrink(tmp_path: Path) -> None:
    from pyvirt.image import resize

    p = tmp_path / "r.qcow2"
    create_image(str(p), "qcow2", 1 << 20, cluster_size=4096)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"x" * (1 << 20))
    resize(str(p), "+100M")
    assert image_info(str(p))["virtual-size"] == (1 << 20) + (100 << 20)
    with open_image(str(p), readonly=False) as img:
        img.write(100 << 20, b"end")
    with pytest.raises(ImageError, match="shrink"):
        resize(str(p), "512K")
    resize(str(p), "512K", shrink=True)
    with open_image(str(p)) as img:
        assert img.size == 512 << 10 and img.read(0, 4) == b"xxxx"
    assert check(str(p)).exit_code == 0
    raw = tmp_path / "r.raw"
    create_image(str(raw), "raw", "1M")
    resize(str(raw), "2M")
    assert raw.stat().st_size == 2 << 20


def test_lazy_refcounts_dirty_bit(tmp_path: Path) -> None:
    p = tmp_path / "l.qcow2"
    create_image(str(p), "qcow2", 4 << 20, lazy_refcounts=True)
    img = open_image(str(p), readonly=False)
    img.write(0, b"data" * 1000)
    assert image_info(str(p))["dirty-flag"] is True
    img.close()
    assert image_info(str(p))["dirty-flag"] is False
    assert check(str(p)).exit_code == 0


def test_compat_010(tmp_path: Path) -> None:
    p = tmp_path / "v2.qcow2"
    create_image(str(p), "qcow2", 4 << 20, compat="0.10")
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"z" * 200000)
        img.write_zeroes(65536, 65536)
    with open_image(str(p)) as img:
        assert img.read(65536, 65536) == bytes(65536)
    info = image_info(str(p))
    assert info["format-specific"]["data"] == {
        "compat": "0.10",
        "compression-type": "zlib",
        "refcount-bits": 16,
    }
    assert check(str(p)).exit_code == 0


@pytest.mark.parametrize("mode", ["metadata", "falloc", "full"])
def test_preallocation(tmp_path: Path, mode: str) -> None:
    p = tmp_path / "p.qcow2"
    create_image(str(p), "qcow2", 3 << 20, preallocation=mode, cluster_size=65536)
    assert p.stat().st_size >= 3 << 20
    assert check(str(p)).exit_code == 0
    with open_image(str(p), readonly=False) as img:
        img.write(12345, b"hello")
    with open_image(str(p)) as img:
        assert img.read(12340, 15) == bytes(5) + b"hello" + bytes(5)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 32, 64])
def test_refcount_widths(tmp_path: Path, bits: int) -> None:
    p = tmp_path / "w.qcow2"
    create_image(str(p), "qcow2", 2 << 20, refcount_bits=bits, cluster_size=4096)
    with open_image(str(p), readonly=False) as img:
        img.write(0, random.Random(bits).randbytes(1 << 20))
    assert check(str(p)).exit_code == 0


def test_dirty_image_is_repaired_on_writable_open(tmp_path: Path) -> None:
    import shutil

    p = tmp_path / "d.qcow2"
    create_image(str(p), "qcow2", 8 << 20, lazy_refcounts=True)
    img = open_image(str(p), readonly=False)
    data = random.Random(2).randbytes(3 << 20)
    img.write(0, data)
    img.flush()  # L2/L1 written, refcounts deferred: the state after a crash
    crashed = tmp_path / "crashed.qcow2"
    shutil.copyfile(p, crashed)
    img.close()
    assert image_info(str(crashed))["dirty-flag"] is True
    assert check(str(crashed)).exit_code != 0
    with open_image(str(crashed), readonly=False) as img2:
        assert img2.read(0, len(data)) == data
    assert image_info(str(crashed))["dirty-flag"] is False
    assert check(str(crashed)).exit_code == 0


def test_concurrent_reads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pyvirt.image.converter import compress_cluster
    from pyvirt.image.qcow2.image import Qcow2Image

    p = tmp_path / "c.qcow2"
    create_image(str(p), "qcow2", 16 << 20, cluster_size=4096)
    rnd = random.Random(9)
    model = bytearray(16 << 20)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        for c in range(0, 4096, 3):
            data = bytes([c % 251]) * 4096 if c % 2 else rnd.randbytes(4096)
            payload = compress_cluster(data)
            if payload is not None:
                img.write_compressed([(c, payload)])
            else:
                img.write(c * 4096, data)
            model[c * 4096 : (c + 1) * 4096] = data
    with open_image(str(p)) as img:

        def chunk(i: int) -> bool:
            off = (i * 1234567) % ((16 << 20) - 300000)
            return img.read(off, 300000) == bytes(model[off : off + 300000])

        with ThreadPoolExecutor(4) as ex:
            assert all(ex.map(chunk, range(64)))
