"""``pyvirt img convert`` with several sources (concatenated) and with ``-n``, against qemu-img.

The same command runs through pyvirt and through qemu-img on the same inputs; qemu-img then judges
pyvirt's result: clean, identical content and the same virtual (and for raw, file) size.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io, qinfo


def sources(folder: Path) -> list[str]:
    """Raw and qcow2 sources of odd sizes: holes, zero clusters, compressed clusters, a backing file."""
    rnd = random.Random(5)
    (folder / "a.raw").write_bytes(rnd.randbytes(1000))  # not a whole sector
    with open(folder / "sparse.raw", "wb") as f:  # 70001 bytes, a hole in the middle
        f.write(rnd.randbytes(3000))
        f.seek(69000)
        f.write(rnd.randbytes(1001))
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", str(folder / "b.qcow2"), "70000")
    qemu_io(folder / "b.qcow2", "write -P 0x0b 0 8k", "write -z 8k 4k", "write -P 0x0c 65536 512")
    text = b"".join(b"%06d compressible\n" % i for i in range(20000))[: 1 << 20]
    (folder / "text.raw").write_bytes(text)
    qemu_img("convert", "-c", "-O", "qcow2", str(folder / "text.raw"), str(folder / "c.qcow2"))
    qemu_img("create", "-q", "-f", "qcow2", "-b", "c.qcow2", "-F", "qcow2", str(folder / "over.qcow2"))
    qemu_io(folder / "over.qcow2", "write -P 0x0d 4k 4k", "write -z 64k 64k")
    return ["a.raw", "b.qcow2", "sparse.raw", "over.qcow2", "a.raw"]


def twins(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    names = sources(ours)
    shutil.copytree(ours, theirs)
    return ours, theirs, names


def message(stderr: str) -> str:
    return re.sub(r"^(qemu-img|pyvirt img: error): ", "", stderr, flags=re.M)


@pytest.mark.parametrize(
    "args",
    [
        ["-O", "qcow2"],
        ["-O", "raw"],
        ["-O", "qcow2", "-c"],
        ["-O", "qcow2", "-o", "cluster_size=512"],
        ["-O", "qcow2", "-S", "0"],
        ["-O", "raw", "-p"],
    ],
    ids=" ".join,
)
def test_concatenated_sources(tmp_path: Path, args: list[str]) -> None:
    ours, theirs, names = twins(tmp_path)
    fmt = args[1]
    mine = pyvirt_img("convert", *args, *names, f"out.{fmt}", cwd=ours)
    qemu = qemu_img("convert", *args, *names, f"out.{fmt}", cwd=theirs)
    assert mine.returncode == 0, mine.stderr
    if "-p" not in args:
        assert mine.stdout == qemu.stdout == ""
    out, ref = ours / f"out.{fmt}", theirs / f"out.{fmt}"
    assert qinfo(out)["virtual-size"] == qinfo(ref)["virtual-size"]
    assert_same(out, ref, fmt_a=fmt, fmt_b=fmt)
    if fmt == "qcow2":
        assert_clean(out)
    else:
        assert out.stat().st_size == ref.stat().st_size


def test_all_sources_read_as_the_given_format(tmp_path: Path) -> None:
    ours, theirs, names = twins(tmp_path)
    mine = pyvirt_img("convert", "-f", "raw", "-O", "qcow2", *names, "out.qcow2", cwd=ours)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", *names, "out.qcow2", cwd=theirs)
    assert mine.returncode == 0, mine.stderr
    assert_clean(ours / "out.qcow2")
    assert_same(ours / "out.qcow2", theirs / "out.qcow2")
    wrong = pyvirt_img("convert", "-f", "qcow2", "-O", "raw", *names, "bad.raw", cwd=ours)
    theirs_wrong = qemu_img("convert", "-f", "qcow2", "-O", "raw", *names, "bad.raw", cwd=theirs, check=False)
    assert wrong.returncode == theirs_wrong.returncode == 1
    assert not (ours / "bad.raw").exists() and not (theirs / "bad.raw").exists()


def prepare_target(folder: Path, size: str, *, fill: bool = True) -> None:
    qemu_img("create", "-q", "-f", "qcow2", str(folder / "t.qcow2"), size)
    if fill:
        qemu_io(folder / "t.qcow2", f"write -P 0x77 0 {size}")


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "-O", "qcow2"],
        ["-n", "-O", "qcow2", "--target-is-zero"],  # (on a target that is zero: a promise kept)
        ["-n", "-O", "qcow2", "-B", "whatever.qcow2"],  # -B without creation: unallocated stays as it was
    ],
    ids=" ".join,
)
def test_into_existing_target(tmp_path: Path, args: list[str]) -> None:
    ours, theirs, names = twins(tmp_path)
    srcs = names if "-B" not in args else ["over.qcow2"]
    for folder in (ours, theirs):
        prepare_target(folder, "3M", fill="--target-is-zero" not in args)
    mine = pyvirt_img("convert", *args, *srcs, "t.qcow2", cwd=ours)
    qemu = qemu_img("convert", *args, *srcs, "t.qcow2", cwd=theirs, check=False)
    assert (mine.returncode, message(mine.stderr)) == (qemu.returncode, message(qemu.stderr)) == (0, "")
    assert_clean(ours / "t.qcow2")
    assert_same(ours / "t.qcow2", theirs / "t.qcow2")
    assert qinfo(ours / "t.qcow2")["virtual-size"] == 3 << 20  # not resized; its tail kept


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "-O", "qcow2", "{srcs}", "t.qcow2"],  # target too small for the sum
        ["-n", "-O", "qcow2", "-o", "cluster_size=4k", "{srcs}", "t.qcow2"],
        ["-O", "qcow2", "-B", "a.raw", "-F", "raw", "{srcs}", "new.qcow2"],
        ["-O", "qcow2", "--target-is-zero", "{srcs}", "new.qcow2"],
        ["-O", "qcow2", "a.raw"],
        ["-O", "qcow2", "a.raw", "missing.raw", "new.qcow2"],
    ],
    ids=lambda a: " ".join(a),
)
def test_refusals_match_qemu(tmp_path: Path, args: list[str]) -> None:
    ours, theirs, names = twins(tmp_path)
    for folder in (ours, theirs):
        prepare_target(folder, "64K")
    argv = [x for a in args for x in (names if a == "{srcs}" else [a])]
    before = (ours / "t.qcow2").read_bytes()
    mine = pyvirt_img("convert", *argv, cwd=ours)
    qemu = qemu_img("convert", *argv, cwd=theirs, check=False)
    assert mine.returncode == qemu.returncode == 1
    if "missing.raw" not in args:
        assert message(mine.stderr) == message(qemu.stderr)
    assert (ours / "t.qcow2").read_bytes() == before
    assert not (ours / "new.qcow2").exists() and not (theirs / "new.qcow2").exists()
