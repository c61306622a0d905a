"""Images pyvirt writes, judged by qemu-img (check: clean; compare: identical; info: same fields)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from pyvirt.image import check, convert, create_image, open_image

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io, qinfo


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"cluster_size": 512},
        {"cluster_size": 4096},
        {"cluster_size": 2 << 20},
        {"compat": "0.10"},
        {"lazy_refcounts": True},
        {"preallocation": "metadata"},
        {"preallocation": "falloc"},
        {"preallocation": "full"},
    ],
)
def test_create_matches_qemu(tmp_path: Path, opts: dict[str, object]) -> None:
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    create_image(str(ours), "qcow2", 3 << 20, **opts)  # type: ignore[arg-type]
    o = ",".join(f"{k}={'on' if v is True else v}" for k, v in opts.items())
    qemu_img("create", "-f", "qcow2", *(["-o", o] if o else []), str(theirs), "3M")
    assert_clean(ours)
    a, b = qinfo(ours), qinfo(theirs)
    for d in (a, b):
        d.pop("filename")
        d.pop("actual-size")
    assert a == b
    assert ours.stat().st_size == theirs.stat().st_size


def test_cli_info_and_create_text_match_qemu(tmp_path: Path) -> None:
    r = pyvirt_img("create", "-f", "qcow2", "base.qcow2", "1G", cwd=tmp_path)
    q = qemu_img("create", "-f", "qcow2", "qbase.qcow2", "1G", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.replace("base.qcow2", "X") == q.stdout.replace("qbase.qcow2", "X")
    r = pyvirt_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for args in (["--output", "json"], [], ["--backing-chain"], ["--backing-chain", "--output=json"]):
        ours = pyvirt_img("info", *args, "top.qcow2", cwd=tmp_path)
        theirs = qemu_img("info", *args, "top.qcow2", cwd=tmp_path)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout
    r = pyvirt_img("create", "-f", "qcow2", "-b", "base.qcow2", "x.qcow2", cwd=tmp_path)
    assert r.returncode == 1 and "backing format" in r.stderr
    r = pyvirt_img("create", "-f", "raw", "r.raw", "10M", cwd=tmp_path)
    assert r.stdout == "Formatting 'r.raw', fmt=raw size=10485760\n"
    assert pyvirt_img("info", "r.raw", cwd=tmp_path).stdout == qemu_img("info", "r.raw", cwd=tmp_path).stdout


@pytest.mark.parametrize("cluster_size", [512, 4096, 65536, 2 << 20])
def test_written_images_are_clean_and_identical(tmp_path: Path, cluster_size: int) -> None:
    size = 6 << 20
    rnd = random.Random(cluster_size)
    model = bytearray(size)
    p = tmp_path / "w.qcow2"
    create_image(str(p), "qcow2", size, cluster_size=cluster_size)
    with open_image(str(p), readonly=False) as img:
        for _ in range(40):
            off = rnd.randrange(size)
            n = min(size - off, rnd.choice([1, 700, cluster_size, 100000]))
            if rnd.random() < 0.8:
                data = rnd.randbytes(n)
                img.write(off, data)
                model[off : off + n] = data
            else:
                img.write_zeroes(off, n)
                model[off : off + n] = bytes(n)
    raw = tmp_path / "model.raw"
    raw.write_bytes(model)
    assert_clean(p)
    assert_same(p, raw)


def test_backing_chain_written_by_us(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    create_image(str(base), "qcow2", 4 << 20)
    with open_image(str(base), readonly=False) as img:
        img.write(0, b"\x11" * (2 << 20))
    top = tmp_path / "top.qcow2"
    create_image(str(top), "qcow2", None, backing="base.qcow2", backing_fmt="qcow2")
    with open_image(str(top), readonly=False) as img:
        img.write(1000, b"\x22" * 5000)
        img.write_zeroes(1 << 20, 1 << 20)
    assert_clean(top)
    qemu_io(top, "read -P 0x11 0 1000", "read -P 0x22 1000 5000", "read -P 0 1M 1M", "read -P 0x11 65536 64k")
    model = bytearray(b"\x11" * (2 << 20) + bytes(2 << 20))
    model[1000:6000] = b"\x22" * 5000
    model[1 << 20 : 2 << 20] = bytes(1 << 20)
    (tmp_path / "m.raw").write_bytes(model)
    assert_same(top, tmp_path / "m.raw")


def test_snapshots_made_by_us(tmp_path: Path) -> None:
    from pyvirt.image.qcow2 import snapshot as S
    from pyvirt.image.qcow2.image import Qcow2Image

    p = tmp_path / "s.qcow2"
    create_image(str(p), "qcow2", 2 << 20)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.write(0, b"\x01" * 131072)
        S.create_snapshot(img, "one")
        img.write(0, b"\x02" * 65536)
        S.create_snapshot(img, "two")
        img.write(65536, b"\x03" * 65536)
    assert_clean(p)
    listing = qemu_img("snapshot", "-l", str(p)).stdout
    assert "one" in listing and "two" in listing
    ours = pyvirt_img("snapshot", "-l", str(p))
    assert ours.stdout.splitlines()[:2] == listing.splitlines()[:2]
    assert ours.stdout.split()[9:12] == listing.split()[9:12]
    ours_info = pyvirt_img("info", "--output=json", str(p)).stdout
    assert ours_info == qemu_img("info", "--output=json", str(p)).stdout
    assert pyvirt_img("info", str(p)).stdout == qemu_img("info", str(p)).stdout
    qemu_io(p, "read -P 2 0 64k", "read -P 3 64k 64k")
    assert pyvirt_img("snapshot", "-a", "one", str(p)).returncode == 0
    assert_clean(p)
    qemu_io(p, "read -P 1 0 128k")
    assert pyvirt_img("snapshot", "-d", "two", str(p)).returncode == 0
    assert_clean(p)
    assert pyvirt_img("snapshot", "-d", "one", str(p)).returncode == 0
    assert_clean(p)
    r = pyvirt_img("snapshot", "-d", "nope", str(p))
    assert r.returncode == 1 and "snapshot not found" in r.stderr
    qemu_img("snapshot", "-c", "q", str(p))
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"\x09" * 4096)
    assert_clean(p)
    qemu_img("snapshot", "-a", "q", str(p))
    qemu_io(p, "read -P 1 0 128k")
    assert check(str(p)).exit_code == 0


def test_convert_variants(tmp_path: Path) -> None:
    src = tmp_path / "src.raw"
    rnd = random.Random(7)
    text = b"".join(b"line %d of some compressible text\n" % i for i in range(40000))
    data = rnd.randbytes(1 << 20) + bytes(1 << 20) + text[: 1 << 20] + bytes(512) + rnd.randbytes(3000)
    src.write_bytes(data + bytes(-len(data) % 512))
    for args in (
        [],
        ["-c"],
        ["-o", "cluster_size=4096"],
        ["-o", "compat=0.10"],
        ["-c", "-o", "cluster_size=512"],
    ):
        out = tmp_path / "out.qcow2"
        r = pyvirt_img("convert", *args, "-O", "qcow2", str(src), str(out))
        assert r.returncode == 0, r.stderr
        assert_clean(out)
        assert_same(src, out)
        back = tmp_path / "back.raw"
        assert pyvirt_img("convert", "-O", "raw", str(out), str(back)).returncode == 0
        assert back.read_bytes() == src.read_bytes()
        if "-c" in args:
            r = qemu_img("check", "--output=json", str(out))
            assert json.loads(r.stdout).get("compressed-clusters", 0) > 0
    r = pyvirt_img("convert", "-p", "-O", "qcow2", str(src), str(tmp_path / "p.qcow2"))
    # (text mode turns the \r qemu-img also uses into newlines)
    assert r.stdout.startswith("    (0.00/100%)") and r.stdout.endswith("    (100.00/100%)\n")


def test_convert_with_backing(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(b"\xaa" * (2 << 20))
    full = tmp_path / "full.raw"
    model = bytearray(base.read_bytes())
    model[0:4096] = b"\xbb" * 4096
    model[1 << 20 : (1 << 20) + 65536] = bytes(65536)
    full.write_bytes(model)
    out = tmp_path / "ov.qcow2"
    convert(str(full), str(out), "qcow2", backing="base.raw", backing_fmt="raw")
    assert_clean(out)
    assert_same(full, out)
    assert qinfo(out)["backing-filename"] == "base.raw"


def test_check_leaks_and_repair_agree_with_qemu(tmp_path: Path) -> None:
    from pyvirt.image.qcow2.image import Qcow2Image

    p = tmp_path / "leak.qcow2"
    create_image(str(p), "qcow2", 4 << 20)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.write(0, b"x" * 100000)
        off = img.refs.alloc(3)
        os.pwrite(img.fd, bytes(3 * img.cs), off)
    theirs = qemu_img("check", str(p), check=False)
    ours = pyvirt_img("check", str(p))
    assert theirs.returncode == ours.returncode == 3
    assert ours.stdout == theirs.stdout
    assert ours.stderr == theirs.stderr
    for fmt in ("json",):
        assert json.loads(pyvirt_img("check", "--output", fmt, str(p)).stdout) == json.loads(
            qemu_img("check", "--output", fmt, str(p), check=False).stdout
        )
    rep = pyvirt_img("check", "-r", "leaks", str(p))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "3 leaked clusters" in rep.stdout
    assert_clean(p)
    raw = tmp_path / "r.raw"
    raw.write_bytes(bytes(4096))
    r = pyvirt_img("check", str(raw))
    assert r.returncode == qemu_img("check", str(raw), check=False).returncode == 63


def test_check_finds_corruption(tmp_path: Path) -> None:
    from pyvirt.image.qcow2.image import Qcow2Image

    p = tmp_path / "bad.qcow2"
    create_image(str(p), "qcow2", 4 << 20)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.write(0, b"x" * 100000)
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        host = img.l2_entry(0) & 0x00FFFFFFFFFFFE00
        img.refs.add(host >> img.cb, -1)
    theirs = qemu_img("check", str(p), check=False)
    ours = pyvirt_img("check", str(p))
    assert theirs.returncode == ours.returncode == 2
    assert ours.stdout == theirs.stdout
    fixed = pyvirt_img("check", "-r", "all", str(p))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert_clean(p)


def test_resize_commit_rebase(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "4M")
    qemu_io(base, "write -P 0x41 0 2M")
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(top))
    qemu_io(top, "write -P 0x42 1M 64k")
    r = pyvirt_img("commit", str(top))
    assert r.returncode == 0 and r.stdout == "Image committed.\n", r.stderr
    assert_clean(base)
    assert_clean(top)
    qemu_io(base, "read -P 0x42 1M 64k", "read -P 0x41 0 1M")
    assert json.loads(qemu_img("map", "--output=json", str(top)).stdout)[0]["depth"] == 1
    other = tmp_path / "other.qcow2"
    qemu_img("create", "-f", "qcow2", str(other), "4M")
    snap = tmp_path / "snap.raw"
    qemu_img("convert", "-O", "raw", str(top), str(snap))
    r = pyvirt_img("rebase", "-b", "other.qcow2", "-F", "qcow2", str(top))
    assert r.returncode == 0, r.stderr
    assert_clean(top)
    assert_same(top, snap)
    r = pyvirt_img("rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", str(top))
    assert r.returncode == 0 and qinfo(top)["backing-filename"] == "base.qcow2"
    r = pyvirt_img("resize", str(top), "+2M")
    assert r.returncode == 0 and r.stdout == "Image resized.\n"
    assert qinfo(top)["virtual-size"] == 6 << 20
    assert pyvirt_img("resize", str(top), "1M").returncode == 1
    assert pyvirt_img("resize", "--shrink", str(top), "3M").returncode == 0
    assert_clean(top)


def test_map_compare_measure_match_qemu(tmp_path: Path) -> None:
    p = tmp_path / "m.qcow2"
    qemu_img("create", "-f", "qcow2", str(p), "8M")
    qemu_io(p, "write -P 1 0 128k", "write -z 1M 128k", "write -P 2 3M 64k")
    raw = tmp_path / "m.raw"
    qemu_img("convert", "-O", "raw", str(p), str(raw))
    for path in (p, raw):
        for args in (["--output=json"], []):
            assert pyvirt_img("map", *args, str(path)).stdout == qemu_img("map", *args, str(path)).stdout
        for args in (
            ["-O", "qcow2"],
            ["-O", "raw"],
            ["-O", "qcow2", "-o", "cluster_size=4k"],
            ["--output=json", "-O", "qcow2"],
        ):
            assert (
                pyvirt_img("measure", *args, str(path)).stdout == qemu_img("measure", *args, str(path)).stdout
            )
    assert (
        pyvirt_img("measure", "--size", "10G", "-O", "qcow2").stdout
        == qemu_img("measure", "--size", "10G", "-O", "qcow2").stdout
    )
    same = pyvirt_img("compare", str(p), str(raw))
    assert same.returncode == 0 and same.stdout == "Images are identical.\n"
    qemu_io(p, "write -P 9 3000000 1")
    diff = pyvirt_img("compare", str(p), str(raw))
    theirs = qemu_img("compare", str(p), str(raw), check=False)
    assert diff.returncode == theirs.returncode == 1
    assert diff.stdout == theirs.stdout


def test_compressed_convert_over_backing_keeps_zeros(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(b"\xaa" * (1 << 20))
    full = tmp_path / "full.raw"
    text = b"".join(b"%05d zzz\n" % i for i in range(100000))
    full.write_bytes(text[: 1 << 19] + bytes(1 << 19))
    out = tmp_path / "c.qcow2"
    convert(str(full), str(out), "qcow2", compress=True, backing="base.raw", backing_fmt="raw")
    assert_clean(out)
    assert_same(full, out)


def test_check_output_matches_qemu(tmp_path: Path) -> None:
    from pyvirt.image.qcow2 import snapshot as S
    from pyvirt.image.qcow2.image import Qcow2Image

    text = tmp_path / "t.raw"
    text.write_bytes(b"".join(b"%07d\n" % i for i in range(300000))[: 2 << 20])
    comp = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", str(text), str(comp))
    small = tmp_path / "s.qcow2"
    create_image(str(small), "qcow2", 1 << 20, cluster_size=512)
    with open_image(str(small), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        img.write(0, random.Random(1).randbytes(100000))
        S.create_snapshot(img, "x")
        img.write(5000, b"y" * 20000)
        img.write(900000, b"z" * 3000)
    for p in (comp, small):
        for args in (["--output=json"], []):
            assert pyvirt_img("check", *args, str(p)).stdout == qemu_img("check", *args, str(p)).stdout


def test_map_of_a_chain_names_files_as_qemu(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    base, top = tmp_path / "d" / "b.qcow2", tmp_path / "d" / "t.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "4M")
    qemu_io(base, "write -P 1 0 1M")
    qemu_img("create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", str(top))
    qemu_io(top, "write -P 2 512k 64k", "write -z 2M 64k")
    for args in (["--output=json"], []):
        ours = pyvirt_img("map", *args, "d/t.qcow2", cwd=tmp_path)
        assert ours.stdout == qemu_img("map", *args, "d/t.qcow2", cwd=tmp_path).stdout


def test_convert_chain_top_only_and_rebase_to_nothing(tmp_path: Path) -> None:
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "4M")
    qemu_io(base, "write -P 1 0 4M")
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(top))
    qemu_io(top, "write -P 2 1M 128k", "write -z 2M 64k")
    out = tmp_path / "out.qcow2"
    r = pyvirt_img("convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", str(top), str(out))
    assert r.returncode == 0, r.stderr
    assert_clean(out)
    assert_same(top, out)
    alloc = json.loads(qemu_img("map", "--output=json", str(out)).stdout)
    assert sum(e["length"] for e in alloc if e["depth"] == 0) == (128 << 10) + (64 << 10)
    flat = tmp_path / "flat.raw"
    qemu_img("convert", "-O", "raw", str(top), str(flat))
    r = pyvirt_img("rebase", "-b", "", str(top))
    assert r.returncode == 0, r.stderr
    assert "backing-filename" not in qinfo(top)
    assert_clean(top)
    assert_same(top, flat)
    r = pyvirt_img("commit", "-d", str(out))
    assert r.returncode == 0
    assert_clean(base)
    qemu_io(base, "read -P 2 1M 128k", "read -P 0 2M 64k", "read -P 1 0 1M")


def test_convert_into_existing_target(tmp_path: Path) -> None:
    src = tmp_path / "s.raw"
    src.write_bytes(b"\x01" * 65536 + bytes(65536) + b"\x02" * 65536)
    dst = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", str(dst), "256K")
    qemu_io(dst, "write -P 0x77 0 256k")
    r = pyvirt_img("convert", "-n", "-O", "qcow2", str(src), str(dst))
    assert r.returncode == 0, r.stderr
    assert_clean(dst)
    qemu_io(dst, "read -P 1 0 64k", "read -P 0 64k 64k", "read -P 2 128k 64k", "read -P 0x77 192k 64k")
    small = tmp_path / "small.qcow2"
    qemu_img("create", "-f", "qcow2", str(small), "64K")
    r = pyvirt_img("convert", "-n", "-O", "qcow2", str(src), str(small))
    assert r.returncode == 1 and "smaller" in r.stderr
    assert small.exists()


def test_compressed_convert_interleaved_clusters(tmp_path: Path) -> None:
    rnd = random.Random(11)
    parts = []
    for i in range(300):
        parts.append(rnd.randbytes(4096) if i % 3 == 0 else bytes([i % 250 + 1]) * 4096)
    src = tmp_path / "mix.raw"
    src.write_bytes(b"".join(parts))
    for cs in ("4096", "512", "65536"):
        out = tmp_path / f"mix-{cs}.qcow2"
        r = pyvirt_img("convert", "-c", "-O", "qcow2", "-o", f"cluster_size={cs}", str(src), str(out))
        assert r.returncode == 0, r.stderr
        assert_clean(out)
        assert_same(src, out)
