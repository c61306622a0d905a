"""Images qemu-img/qemu-io make, read back byte-identical through pyvirt.image; unsupported ones refused."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import check, open_image

from .conftest import assert_clean, pyvirt_img, qemu_img, qemu_io, qemu_raw, qinfo, read_all


def _fill(p: Path, cluster_size: int) -> None:
    qemu_io(
        p,
        "write -P 0x5a 0 100k",
        f"write -P 0x11 {min(3 * cluster_size, 4 << 20)} {min(cluster_size, 1 << 20)}",
        "write -z 1M 256k",
        "write -P 0x22 2M 7k",
        "discard 2M 64k",
        "write -P 0x33 3M 1M",
    )


@pytest.mark.parametrize("cluster_size", [512, 1024, 4096, 16384, 65536, 1 << 20, 2 << 20])
def test_every_cluster_size(tmp_path: Path, cluster_size: int) -> None:
    p = tmp_path / "c.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"cluster_size={cluster_size}", str(p), "5M")
    _fill(p, cluster_size)
    assert read_all(p) == qemu_raw(p, tmp_path)


def test_compat_010_and_lazy(tmp_path: Path) -> None:
    for opts in ("compat=0.10", "lazy_refcounts=on", "refcount_bits=1", "refcount_bits=64"):
        p = tmp_path / "o.qcow2"
        qemu_img("create", "-f", "qcow2", "-o", opts, str(p), "5M")
        _fill(p, 65536)
        assert read_all(p) == qemu_raw(p, tmp_path), opts
        assert check(str(p)).exit_code == 0


def test_compressed_clusters(tmp_path: Path) -> None:
    src = tmp_path / "s.raw"
    text = b"".join(b"%08d compressible\n" % i for i in range(200000))[: 3 << 20]
    src.write_bytes(text + random.Random(3).randbytes(1 << 20) + bytes(1 << 20))
    for cs in ("512", "4096", "65536", "2M"):
        p = tmp_path / "c.qcow2"
        qemu_img("convert", "-c", "-O", "qcow2", "-o", f"cluster_size={cs}", str(src), str(p))
        assert read_all(p) == src.read_bytes(), cs
        res = check(str(p))
        assert res.exit_code == 0 and res.compressed_clusters > 0
        # Overwriting part of a compressed cluster goes through copy-on-write.
        with open_image(str(p), readonly=False) as img:
            img.write(100, b"NEW")
        assert_clean(p)
        assert qemu_raw(p, tmp_path)[:200] == text[:100] + b"NEW" + text[103:200]


def test_snapshots(tmp_path: Path) -> None:
    p = tmp_path / "s.qcow2"
    qemu_img("create", "-f", "qcow2", str(p), "2M")
    qemu_io(p, "write -P 1 0 1M")
    qemu_img("snapshot", "-c", "first", str(p))
    qemu_io(p, "write -P 2 0 64k")
    with open_image(str(p)) as img:
        assert img.read(0, 65536) == b"\x02" * 65536
    with open_image(str(p), readonly=False) as img:
        img.write(65536, b"\x03" * 65536)
    assert_clean(p)
    qemu_img("snapshot", "-a", "first", str(p))
    assert read_all(p) == b"\x01" * (1 << 20) + bytes(1 << 20)


def test_backing_chain_three_deep(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.qcow2", tmp_path / "b.qcow2", tmp_path / "c.qcow2"
    qemu_img("create", "-f", "qcow2", str(a), "3M")
    qemu_io(a, "write -P 1 0 3M")
    qemu_img("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", str(b))
    qemu_io(b, "write -P 2 1M 1M", "write -z 0 64k")
    qemu_img("create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", str(c))
    qemu_io(c, "write -P 3 2M 512")
    assert read_all(c) == qemu_raw(c, tmp_path)
    raw_base = tmp_path / "r.raw"
    raw_base.write_bytes(b"\x07" * (1 << 20))
    d = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "r.raw", "-F", "raw", str(d), "2M")
    assert read_all(d) == b"\x07" * (1 << 20) + bytes(1 << 20)


def test_encrypted_refused_for_io_and_described_by_info(tmp_path: Path) -> None:
    p = tmp_path / "e.qcow2"
    made = qemu_img("create", "--object", "secret,id=s0,data=123456", "-f", "qcow2", "-o",
                    "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", str(p), "1M",
                    check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    with pytest.raises(ImageError, match="encrypt"):
        open_image(str(p))
    # info needs no key: the LUKS header's fields, as qemu-img shows them.
    for args in ([], ["--output=json"]):
        ours = pyvirt_img("info", *args, "e.qcow2", cwd=tmp_path)
        assert ours.stdout == qemu_img("info", *args, "e.qcow2", cwd=tmp_path).stdout, ours.stderr
    assert "encrypted: yes" in ours.stdout or '"encrypted": true' in ours.stdout


def test_corrupt_bit_forbids_writing(tmp_path: Path) -> None:
    p = tmp_path / "c.qcow2"
    qemu_img("create", "-f", "qcow2", str(p), "1M")
    with open(p, "r+b") as f:
        f.seek(79)
        f.write(b"\x02")
    with open_image(str(p)) as img:
        assert img.read(0, 10) == bytes(10)
    with pytest.raises(ImageError, match="corrupt"):
        open_image(str(p), readonly=False)


def test_persistent_bitmaps_counted_then_kept_and_dirtied(tmp_path: Path) -> None:
    from .conftest import pyvirt_img

    p = tmp_path / "b.qcow2"
    qemu_img("create", "-f", "qcow2", str(p), "4M")
    qemu_img("bitmap", "--add", str(p), "b0")
    qemu_img("bitmap", "--add", "-g", "128k", str(p), "b1")
    qemu_io(p, "write -P 3 0 64k")
    for args in (["--output=json"], []):
        for verb in ("info", "check"):
            assert pyvirt_img(verb, *args, str(p)).stdout == qemu_img(verb, *args, str(p)).stdout
    with open_image(str(p), readonly=False) as img:
        img.write(65536, b"x" * 1000)
    assert_clean(p)
    assert [b["name"] for b in qinfo(p)["format-specific"]["data"]["bitmaps"]] == ["b0", "b1"]
