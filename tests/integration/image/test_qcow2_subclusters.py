"""qcow2 with extended L2 entries (``-o extended_l2=on``, 32 subclusters a cluster): qemu-img checks,
maps and compares what pyvirt writes; pyvirt reads, maps and checks what qemu-io writes, each as
qemu-img says it; refusals (create, amend) and measure in qemu-img's words."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from pyvirt.image import create_image, open_image
from pyvirt.image.qcow2.snapshot import create_snapshot
from tests.integration.image.conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io

MiB = 1 << 20


def _same(verbs: list[list[str]], name: str, cwd: Path, ref_cwd: Path | None = None) -> None:
    for verb in verbs:
        theirs = qemu_img(*verb, name, cwd=ref_cwd or cwd, check=False)
        ours = pyvirt_img(*verb, name, cwd=cwd)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (verb, ours.stderr)


VERBS = [["info"], ["info", "--output=json"], ["map", "--output=json"], ["map"], ["check"],
         ["check", "--output=json"]]  # fmt: skip


@pytest.mark.parametrize(
    "opts",
    [
        "extended_l2=on",
        "extended_l2=on,cluster_size=16k",
        "extended_l2=on,cluster_size=2M,lazy_refcounts=on",
        "extended_l2=on,preallocation=metadata",
        "extended_l2=on,compression_type=zstd,refcount_bits=8",
    ],
)
def test_create_as_qemu_img(tmp_path: Path, opts: str) -> None:
    (tmp_path / "ref").mkdir()
    mine = pyvirt_img("create", "-f", "qcow2", "-o", opts, "e.qcow2", "5000K", cwd=tmp_path)
    ref = qemu_img("create", "-f", "qcow2", "-o", opts, "e.qcow2", "5000K", cwd=tmp_path / "ref")
    assert mine.stdout == ref.stdout, mine.stderr
    _same(VERBS, "e.qcow2", tmp_path, tmp_path / "ref")


@pytest.mark.parametrize("prealloc", ["metadata", "falloc", "full"])
def test_backing_file_with_preallocation(tmp_path: Path, prealloc: str) -> None:
    """Allowed with extended L2 only: the clusters are there, their subclusters unallocated."""
    (tmp_path / "b.raw").write_bytes(b"\x05" * 3 * MiB)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "b.raw").write_bytes(b"\x05" * 3 * MiB)
    args = ["create", "-f", "qcow2", "-b", "b.raw", "-F", "raw", "-o"]
    plain = pyvirt_img(*args, f"preallocation={prealloc}", "p.qcow2", cwd=tmp_path)
    theirs = qemu_img(*args, f"preallocation={prealloc}", "p.qcow2", cwd=tmp_path, check=False)
    assert (plain.returncode, plain.stderr.split("error: ")[1]) == (1, theirs.stderr.split("qemu-img: ")[1])
    opts = f"extended_l2=on,preallocation={prealloc}"
    mine = pyvirt_img(*args, opts, "e.qcow2", cwd=tmp_path)
    ref = qemu_img(*args, opts, "e.qcow2", cwd=tmp_path / "ref")
    assert mine.stdout == ref.stdout, mine.stderr
    _same([["map", "--output=json"], ["check"]], "e.qcow2", tmp_path, tmp_path / "ref")
    assert_same(tmp_path / "e.qcow2", tmp_path / "b.raw", fmt_b="raw")


@pytest.mark.parametrize(
    ("args", "opts"),
    [
        (["create", "-f", "qcow2", "-o"], "extended_l2=on,cluster_size=8k"),
        (["create", "-f", "qcow2", "-o"], "extended_l2=on,compat=0.10"),
        (["amend", "-o"], "extended_l2=off"),
        (["amend", "-o"], "extended_l2=on"),
        (["amend", "-o"], "compat=0.10"),
    ],
)
def test_refusals_as_qemu_img(tmp_path: Path, args: list[str], opts: str) -> None:
    for where in (tmp_path / "a", tmp_path / "b"):
        where.mkdir()
        qemu_img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "x.qcow2", "1M", cwd=where)
    tail = ["1M"] if args[0] == "create" else []
    ours = pyvirt_img(*args, opts, "x.qcow2", *tail, cwd=tmp_path / "a")
    theirs = qemu_img(*args, opts, "x.qcow2", *tail, cwd=tmp_path / "b", check=False)
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.split("error: ", 1)[1] == theirs.stderr.split("qemu-img: ", 1)[1]


def test_measure_as_qemu_img() -> None:
    """With and without extended L2 entries; sizes not a multiple of a cluster count whole ones."""
    for opts in (
        "extended_l2=on",
        "extended_l2=on,cluster_size=16k",
        "extended_l2=on,preallocation=full",
        "cluster_size=64k",
        "preallocation=falloc",
        "extended_l2=off,preallocation=metadata",
    ):
        for size in ("10G", "1M", "3000M", "123456789", "1000000"):
            ours = pyvirt_img("measure", "-O", "qcow2", "-o", opts, "--size", size)
            theirs = qemu_img("measure", "-O", "qcow2", "-o", opts, "--size", size)
            assert ours.stdout == theirs.stdout, (opts, size, ours.stderr)


def _random_ops(rnd: random.Random, size: int, cs: int) -> list[tuple[str, int, int]]:
    ops = []
    for _ in range(rnd.randrange(10, 30)):
        at = rnd.randrange(0, size)
        n = min(size - at, rnd.choice([1, 511, 1000, cs // 32, cs // 16, cs, 3 * cs + 7, 200000]))
        if rnd.random() < 0.4:  # sector-aligned, as guests mostly write
            at = at // 512 * 512
            n = min(size - at, max(512, n // 512 * 512))
        ops.append((rnd.choice("wwwzzd"), at, n))
    return ops


@pytest.mark.parametrize("seed", range(6))
def test_qemu_judges_what_we_write(tmp_path: Path, seed: int) -> None:
    """Random writes, zero writes and discards (over a backing file or not, across an internal
    snapshot): qemu-img compare identical to the expected bytes, check clean, map as pyvirt's."""
    rnd = random.Random(seed)
    cs = [16384, 65536, 131072][seed % 3]
    size = rnd.choice([MiB, 3 * MiB, 5000 * 1024])
    expect = bytearray(size)
    img_path = tmp_path / "t.qcow2"
    if seed % 2:
        expect[: size - 8192] = rnd.randbytes(size - 8192)
        (tmp_path / "b.raw").write_bytes(bytes(expect[: size - 8192]))
        qemu_img("convert", "-O", "qcow2", str(tmp_path / "b.raw"), str(tmp_path / "b.qcow2"))
        create_image(str(img_path), "qcow2", size, backing="b.qcow2", backing_fmt="qcow2", cluster_size=cs,
                     extended_l2=True)  # fmt: skip
    else:
        create_image(str(img_path), "qcow2", size, cluster_size=cs, extended_l2=True)
    with open_image(str(img_path), readonly=False) as img:
        for k, (op, at, n) in enumerate(_random_ops(rnd, size, cs)):
            if op == "w":
                data = rnd.randbytes(n)
                img.write(at, data)
                expect[at : at + n] = data
            else:
                (img.write_zeroes if op == "z" else img.discard)(at, n)
                expect[at : at + n] = bytes(n)
            if k == 5 and seed % 3 == 1:
                create_snapshot(img, "s")  # later writes copy the clusters it shares
    (tmp_path / "expect.raw").write_bytes(bytes(expect))
    assert_same(img_path, tmp_path / "expect.raw", fmt_b="raw")
    assert_clean(img_path)
    _same([["map", "--output=json"], ["check"], ["info"]], "t.qcow2", tmp_path)


@pytest.mark.parametrize("seed", range(6))
def test_we_read_what_qemu_writes(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(100 + seed)
    cs = [16384, 65536, 131072][seed % 3]
    size = rnd.choice([MiB, 5000 * 1024])
    opts = f"extended_l2=on,cluster_size={cs}"
    args = ["create", "-q", "-f", "qcow2", "-o", opts]
    if seed % 2:
        qemu_img("create", "-q", "-f", "qcow2", str(tmp_path / "b.qcow2"), str(size))
        qemu_io(tmp_path / "b.qcow2", f"write -P 0x11 0 {size}")
        args += ["-b", "b.qcow2", "-F", "qcow2"]
    qemu_img(*args, str(tmp_path / "t.qcow2"), str(size))
    cmds = []
    for op, at, n in _random_ops(rnd, size, cs):
        at, n = at // 512 * 512, max(512, n // 512 * 512)  # qemu-io wants sectors
        n = min(n, size - at)
        cmds.append({"w": f"write -P {rnd.randrange(256)} {at} {n}", "z": f"write -z {at} {n}",
                     "d": f"discard {at} {n}"}[op])  # fmt: skip
    qemu_io(tmp_path / "t.qcow2", *cmds)
    if seed % 3 == 2:
        qemu_img("snapshot", "-c", "s", str(tmp_path / "t.qcow2"))
        qemu_io(tmp_path / "t.qcow2", "write -P 3 1000 70000", "write -z -u 0 64k")
    _same(VERBS, "t.qcow2", tmp_path)
    qemu_img("convert", "-O", "raw", "t.qcow2", "q.raw", cwd=tmp_path)
    ours = pyvirt_img("convert", "-O", "raw", "t.qcow2", "p.raw", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert (tmp_path / "p.raw").read_bytes() == (tmp_path / "q.raw").read_bytes()


@pytest.mark.parametrize("extra", [[], ["-c"], ["-c", "-o", "compression_type=zstd"]])
def test_convert_to_extended_l2(tmp_path: Path, extra: list[str]) -> None:
    rnd = random.Random(7)
    data = bytearray()
    while len(data) < 5 * MiB:
        data += (bytes([rnd.randrange(4)]) * 100 + rnd.randbytes(20)) * rnd.randrange(1, 600)
        data += bytes(rnd.choice([0, 4096, 70000]))
    (tmp_path / "s.raw").write_bytes(bytes(data[: 5 * MiB - 512]))
    r = pyvirt_img("convert", "-O", "qcow2", "-o", "extended_l2=on", *extra, "s.raw", "d.qcow2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same(tmp_path / "d.qcow2", tmp_path / "s.raw", fmt_b="raw")
    assert_clean(tmp_path / "d.qcow2")
    assert qemu_img("info", "--output=json", str(tmp_path / "d.qcow2")).stdout.count('"extended-l2": true')
    _same([["map", "--output=json"], ["check"]], "d.qcow2", tmp_path)
    # and resizes, grown, shrunk (cutting a cluster, compressed with -c), grown, as qemu-img's on a copy
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "d.qcow2").write_bytes((tmp_path / "d.qcow2").read_bytes())
    grow, shrink = ["resize", "d.qcow2", "7M"], ["resize", "--shrink", "d.qcow2", "3000K"]
    for args in (grow, shrink, grow):  # grown again: the cut cluster's tail shows as in qemu-img's
        assert pyvirt_img(*args, cwd=tmp_path).returncode == 0
        qemu_img(*args, cwd=tmp_path / "ref")
    assert_same(tmp_path / "d.qcow2", tmp_path / "ref" / "d.qcow2")
    _same([["map", "--output=json"], ["check"]], "d.qcow2", tmp_path, tmp_path / "ref")


def _poke_bitmap(path: Path, index: int, bits: int, entry: int | None = None) -> None:
    raw = path.read_bytes()
    l1 = struct.unpack_from(">Q", raw, 40)[0]
    l2 = struct.unpack_from(">Q", raw, l1)[0] & 0x00FFFFFFFFFFFE00
    with path.open("r+b") as f:
        if entry is not None:
            f.seek(l2 + 16 * index)
            f.write(struct.pack(">Q", entry))
        f.seek(l2 + 16 * index + 8)
        f.write(struct.pack(">Q", bits))


@pytest.mark.parametrize(
    ("index", "bits", "entry"),
    [(0, (1 << 32) | 1, None), (5, 1 << 3, 0), (3, 1, None)],
    ids=["alloc-and-zero", "alloc-bit-without-cluster", "compressed-with-bits"],
)
def test_hostile_bitmaps_checked_as_qemu_img(
    tmp_path: Path, index: int, bits: int, entry: int | None
) -> None:
    p = tmp_path / "x.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", str(p), "1M")
    qemu_io(p, "write -P 1 0 128k", "write -c -P 2 192k 64k")
    _poke_bitmap(p, index, bits, entry)
    theirs = qemu_img("check", str(p), check=False)
    ours = pyvirt_img("check", str(p))
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert ours.returncode == 2
    q = qemu_img("convert", "-O", "raw", str(p), str(tmp_path / "q.raw"), check=False)
    r = pyvirt_img("convert", "-O", "raw", str(p), str(tmp_path / "p.raw"))
    assert r.returncode == q.returncode  # an invalid bitmap is an error; a compressed one's is ignored
    if q.returncode:
        assert "invalid subcluster bitmap" in r.stderr
    else:
        assert (tmp_path / "p.raw").read_bytes() == (tmp_path / "q.raw").read_bytes()
