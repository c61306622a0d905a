"""``pyvirt img bench`` against ``qemu-img bench``: the same lines (but the time), the same refusals and
exit codes, and writes that leave the same image behind (checked and compared by qemu-img)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.image.conftest import (
    LUKS_SECRET,
    assert_clean,
    assert_same,
    luks_qcow2,
    pyvirt_img,
    qemu_img,
)

TIME = re.compile(r"Run completed in \d+\.\d{3} seconds\.\n$")


def _lines(out: str) -> str:
    assert TIME.search(out), out
    return TIME.sub("Run completed in X seconds.\n", out)


def _pair(tmp_path: Path, fmt: str, size: str, *opts: str) -> tuple[Path, Path]:
    ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
    for p in (ours, theirs):
        qemu_img("create", "-q", "-f", fmt, *opts, str(p), size)
    return ours, theirs


READS = [
    ["-c", "300"],
    ["-c", "0x40", "-d", "3", "-s", "512", "-S", "1536", "-o", "1.5k"],
    ["-c", "010", "-d", "1", "-s", "64k", "-S", "0", "-q"],
    ["-c", "5000", "-s", "0"],
    ["-c", "400", "-s", "65536", "-S", "4096", "-o", "60k", "-t", "none", "-n"],
    ["-c", "100", "-t", "directsync", "-U"],
    ["-c", "1000", "-o", "16773120", "-t", "unsafe"],  # wraps at the end
]


FORMATS = ["qcow2", "raw", "vmdk", "vdi", "vpc", "vhdx"]


def _cases(arglists: list[list[str]], formats: list[str]) -> list[tuple[str, list[str]]]:
    """Every format with the first two argument lists, qcow2 and raw with the others."""
    return [(f, a) for i, a in enumerate(arglists) for f in formats if i < 2 or f in ("qcow2", "raw")]


@pytest.mark.parametrize(("fmt", "args"), _cases(READS, FORMATS), ids=str)
def test_read_bench_prints_what_qemu_img_bench_prints(tmp_path: Path, fmt: str, args: list[str]) -> None:
    img = tmp_path / f"d.{fmt}"
    qemu_img("create", "-q", "-f", fmt, str(img), "16M")
    subprocess_args = ["bench", "-f", fmt, *args, str(img)]
    ref = qemu_img(*subprocess_args, check=False)
    mine = pyvirt_img(*subprocess_args)
    assert mine.returncode == ref.returncode == 0, mine.stderr + ref.stderr
    assert _lines(mine.stdout) == _lines(ref.stdout)


WRITES = [
    ["-c", "200", "--pattern=0x5a"],
    ["-c", "37", "-d", "4", "-s", "1000", "-S", "3000", "-o", "7", "--pattern=17"],
    ["-c", "64", "-d", "8", "--flush-interval=8", "--pattern=1", "-s", "64k"],
    ["-c", "50", "-d", "2", "--flush-interval=5", "--no-drain", "--pattern=200", "-t", "writethrough"],
    ["-c", "4100", "-s", "4096", "-S", "8192", "--pattern=9", "-t", "none"],  # wraps, rewrites
    ["-c", "30", "-s", "70000", "--pattern=3", "-t", "directsync", "-n"],
]


@pytest.mark.parametrize(("fmt", "args"), _cases(WRITES, [f for f in FORMATS if f != "vpc"]), ids=str)
def test_write_bench_leaves_what_qemu_img_bench_leaves(tmp_path: Path, fmt: str, args: list[str]) -> None:
    ours, theirs = _pair(tmp_path, fmt, "32M")
    mine = pyvirt_img("bench", "-w", "-f", fmt, *args, str(ours))
    ref = qemu_img("bench", "-w", "-f", fmt, *args, str(theirs), check=False)
    assert mine.returncode == ref.returncode == 0, mine.stderr + ref.stderr
    assert _lines(mine.stdout) == _lines(ref.stdout)
    assert_same(ours, theirs, fmt_a=fmt, fmt_b=fmt)
    if fmt in ("qcow2", "vdi", "vhdx"):
        assert_clean(ours)


def test_bench_writes_an_encrypted_image_through_image_opts(tmp_path: Path) -> None:
    """qemu-img 7.2's bench takes no --object (so it cannot open a LUKS image): qemu-img reads what
    pyvirt's bench wrote with the secret."""
    spec = luks_qcow2(tmp_path / "ours.qcow2", "8M")
    args = ["bench", "-w", "-c", "100", "-d", "4", "--pattern=77", "--object", LUKS_SECRET, "--image-opts"]
    mine = pyvirt_img(*args, spec)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith(
        "Sending 100 write requests, 4096 bytes each, 4 in parallel (starting at offset 0, step size 4096)\n"
    )
    want = tmp_path / "want.raw"
    want.write_bytes(bytes([77]) * 409600 + bytes((8 << 20) - 409600))
    r = qemu_img("compare", "--object", LUKS_SECRET, "--image-opts", spec, f"driver=raw,file.filename={want}",
                 check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


REFUSED = [
    ["-c", "-1"],
    ["-c", "3000000000"],
    ["-c", "x"],
    ["-d", "2x"],
    ["-s", "1x"],
    ["-s", "3G"],
    ["-S", "x"],
    ["-S", "3G"],
    ["-o", "x"],
    ["-o", "-1"],
    ["-o", "9E"],
    ["-t", "foo"],
    ["--pattern=256", "-w"],
    ["--pattern=x"],
    ["--flush-interval=x", "-w"],
    ["--flush-interval=8"],
    ["-w", "--flush-interval=2", "-d", "4"],
    ["-n"],
    ["-w", "-U"],
    ["-o", "16M", "-c", "1"],  # past the end: the request fails
    ["--image-opts", "-f", "qcow2"],
]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_bench_refuses_as_qemu_img_bench(tmp_path: Path, args: list[str]) -> None:
    img = tmp_path / "t.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(img), "16M")
    target = f"driver=qcow2,file.filename={img}" if "--image-opts" in args else str(img)
    ref = qemu_img("bench", *args, target, check=False)
    mine = pyvirt_img("bench", *args, target)
    assert ref.returncode == mine.returncode == 1, mine.stdout + mine.stderr
    want = ref.stderr.splitlines()[0].removeprefix("qemu-img: ")
    got = mine.stderr.splitlines()[0].removeprefix("pyvirt img: error: ")
    assert got.startswith(want.rstrip()), (got, want)
    assert mine.stdout == ref.stdout  # the header line before a failed request, nothing else


def test_bench_needs_one_file_and_a_nonzero_depth(tmp_path: Path) -> None:
    img = tmp_path / "t.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(img), "1M")
    for args in ([], [str(img), "x"]):
        r = pyvirt_img("bench", *args)
        assert r.returncode == 1
        assert "Expecting one image file name" in r.stderr
    # qemu-img 7.2 takes -d 0 and never finishes: refused instead.
    r = pyvirt_img("bench", "-d", "0", "-c", "10", str(img))
    assert r.returncode == 1 and "Invalid queue depth specified" in r.stderr
    missing = pyvirt_img("bench", str(tmp_path / "nonexist"))
    assert missing.returncode == 1 and "Could not open" in missing.stderr


def test_offset_size_and_step_place_the_writes(tmp_path: Path) -> None:
    """-o, -s and -S decide where bench writes: qemu-img map shows the written ranges."""
    img = tmp_path / "d.raw"
    qemu_img("create", "-q", "-f", "raw", str(img), "1M")
    r = pyvirt_img("bench", "-w", "-f", "raw", "-c", "3", "-o", "64k", "-s", "4k", "-S", "128k",
                   "--pattern=1", "-t", "writethrough", str(img))  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = img.read_bytes()
    for i in range(3):
        at = (64 << 10) + i * (128 << 10)
        assert data[at : at + 4096] == b"\x01" * 4096
        assert data[at + 4096 : at + 8192] == bytes(4096)
    assert data.count(1) == 3 * 4096


def test_flush_interval_and_no_drain_are_announced_and_native_aio_needs_direct_cache(tmp_path: Path) -> None:
    img = tmp_path / "d.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(img), "1M")
    for extra in ([], ["--no-drain"]):
        r = pyvirt_img("bench", "-w", "-c", "8", "-d", "2", "--flush-interval=2", *extra, str(img))
        assert r.returncode == 0 and "Sending flush every 2 requests\n" in r.stdout, r.stderr
    assert pyvirt_img("bench", "-c", "8", "-n", str(img)).returncode == 1
    for cache in ("none", "directsync"):
        assert pyvirt_img("bench", "-c", "8", "-n", "-t", cache, str(img)).returncode == 0


def test_force_share_reads_an_image_another_writer_holds(tmp_path: Path) -> None:
    from pyvirt.image import open_image

    img = tmp_path / "d.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(img), "1M")
    with open_image(str(img), readonly=False):
        locked = pyvirt_img("bench", "-c", "8", str(img))
        assert locked.returncode == 1 and "lock" in locked.stderr, locked.stderr
        shared = pyvirt_img("bench", "-c", "8", "-U", str(img))
        assert shared.returncode == 0, shared.stderr
        shared = pyvirt_img("bench", "-c", "8", "--force-share", str(img))
        assert shared.returncode == 0, shared.stderr
