"""``pyvirt img commit`` (with and without ``-b``) against qemu-img commit on identical chains.

Each case builds the same chain twice with qemu-img and qemu-io, commits one copy with pyvirt and
the other with qemu-img, then has qemu-img judge: every image of the chain clean and identical to
qemu-img's result, and the same exit status, stdout and message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SRC, assert_clean, assert_same, make_layer, pyvirt_img, qemu_img, qemu_io, qinfo

# (file, size, cluster size, backing name or None, qemu-io commands). Zero clusters and holes in
# the middle layers: where a layer above is unallocated, the one below must show through; where a
# layer above has a zero cluster, the base must end up with zeros.
CHAIN3 = [
    ("base.qcow2", "4M", "65536", None, ["write -P 0x11 0 4M"]),
    (
        "mid.qcow2",
        "4M",
        "4096",
        "base.qcow2",
        ["write -P 0x22 1M 1M", "write -z 3M 64k", "write -P 0x23 3001k 3k"],
    ),
    (
        "top.qcow2",
        "4M",
        "65536",
        "mid.qcow2",
        ["write -P 0x33 1536k 64k", "write -z 1M 64k", "write -P 0x34 100k 1k"],
    ),
]

CHAIN4 = [
    ("base.qcow2", "4M", "65536", None, ["write -P 0x11 0 3M"]),
    (
        "m1.qcow2",
        "4M",
        "512",
        "base.qcow2",
        ["write -z 0 64k", "write -P 0x21 2M 700k", "write -P 0x22 3500k 4k"],
    ),
    ("m2.qcow2", "4M", "65536", "m1.qcow2", ["write -P 0x31 64k 64k", "write -z 2M 128k"]),
    (
        "top.qcow2",
        "4M",
        "4096",
        "m2.qcow2",
        ["write -z 2100k 8k", "write -P 0x41 3M 12k", "write -P 0x42 0 4k"],
    ),
]


def build(folder: Path, layers: list[tuple[str, str, str, str | None, list[str]]]) -> None:
    for name, size, cs, backing, cmds in layers:
        make_layer(folder / name, size, backing, f"cluster_size={cs}", cmds)


def twins(tmp_path: Path, layers: list[tuple[str, str, str, str | None, list[str]]]) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    build(ours, layers)
    shutil.copytree(ours, theirs)
    return ours, theirs


def message(stderr: str) -> str:
    """The error text without the program's name (``qemu-img: `` / ``pyvirt img: error: ``)."""
    return re.sub(r"^(qemu-img|pyvirt img: error): ", "", stderr, flags=re.M)


def run_both(ours: Path, theirs: Path, *args: str, cwd: str = ".") -> None:
    """Run the commit in both folders and check both answered alike."""
    mine = pyvirt_img("commit", *args, cwd=ours / cwd)
    qemu = qemu_img("commit", *args, cwd=theirs / cwd, check=False)
    assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout), mine.stderr
    assert message(mine.stderr) == message(qemu.stderr)


def assert_same_chain(ours: Path, theirs: Path, names: list[str]) -> None:
    for name in names:
        assert_clean(ours / name)
        assert_same(ours / name, theirs / name)


def layer_map(path: Path) -> str:
    """The allocation of this file alone, its backing file left out."""
    spec = f'json:{{"driver": "qcow2", "file": {{"driver": "file", "filename": "{path}"}}, "backing": null}}'
    return qemu_img("map", "--output=json", spec).stdout


def assert_untouched(ours: Path, theirs: Path, names: list[str]) -> None:
    """Files the commit must not write stay byte for byte as they were (qemu-img's are the witness)."""
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


@pytest.mark.parametrize(
    "args",
    [
        ["-b", "base.qcow2"],
        ["-b", "mid.qcow2"],  # the immediate backing file named: -b still implies -d
        [],  # the backing file, then the top emptied
        ["-d"],
        ["-q", "-b", "base.qcow2"],
    ],
    ids=" ".join,
)
def test_three_deep(tmp_path: Path, args: list[str]) -> None:
    ours, theirs = twins(tmp_path, CHAIN3)
    run_both(ours, theirs, *args, "top.qcow2")
    assert_same_chain(ours, theirs, ["base.qcow2", "mid.qcow2", "top.qcow2"])
    into = "base.qcow2" if "-b" in args and "base.qcow2" in args else "mid.qcow2"
    emptied = not args or args == ["-q"]
    assert_untouched(
        ours,
        theirs,
        [n for n in ("mid.qcow2", "top.qcow2") if n != into and not (emptied and n == "top.qcow2")],
    )
    if emptied:
        assert layer_map(ours / "top.qcow2") == layer_map(theirs / "top.qcow2")
        assert '"present": true' not in layer_map(ours / "top.qcow2")
    else:
        assert '"present": true' in layer_map(ours / "top.qcow2")


@pytest.mark.parametrize("base", ["m2.qcow2", "m1.qcow2", "base.qcow2"])
def test_four_deep_at_every_depth(tmp_path: Path, base: str) -> None:
    names = ["base.qcow2", "m1.qcow2", "m2.qcow2", "top.qcow2"]
    ours, theirs = twins(tmp_path, CHAIN4)
    run_both(ours, theirs, "-b", base, "top.qcow2")
    assert_same_chain(ours, theirs, names)
    assert_untouched(ours, theirs, [n for n in names if n != base])


RELATIVE = [
    ("e/base.qcow2", "4M", "65536", None, ["write -P 0x11 0 4M"]),
    ("e/mid.qcow2", "4M", "65536", "base.qcow2", ["write -P 0x22 1M 64k", "write -z 2M 64k"]),
    ("d/top.qcow2", "4M", "65536", "../e/mid.qcow2", ["write -P 0x33 0 64k", "write -z 1M 64k"]),
]


@pytest.mark.parametrize(
    ("cwd", "base"),
    [
        (".", "base.qcow2"),  # found from mid's folder
        (".", "./base.qcow2"),
        (".", "../e/base.qcow2"),
        (".", "../e/mid.qcow2"),
        ("d", "base.qcow2"),
        ("d", "../e/base.qcow2"),
        (".", "e/base.qcow2"),  # a name relative to the working folder is not one QEMU finds
        (".", "mid.qcow2"),
        (".", "d/../e/base.qcow2"),
        (".", "base.qcow2/"),
        (".", "top.qcow2"),
        (".", ""),
    ],
)
def test_relative_names_as_qemu_resolves_them(tmp_path: Path, cwd: str, base: str) -> None:
    ours, theirs = twins(tmp_path, RELATIVE)
    top = "top.qcow2" if cwd == "d" else "d/top.qcow2"
    run_both(ours, theirs, "-b", base, top, cwd=cwd)
    assert_same_chain(ours, theirs, ["e/base.qcow2", "e/mid.qcow2", "d/top.qcow2"])


def test_absolute_base_name(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path, RELATIVE)
    mine = pyvirt_img("commit", "-b", str(ours / "e/base.qcow2"), str(ours / "d/top.qcow2"))
    qemu_img("commit", "-b", str(theirs / "e/base.qcow2"), str(theirs / "d/top.qcow2"))
    assert mine.returncode == 0 and mine.stdout == "Image committed.\n", mine.stderr
    assert_same_chain(ours, theirs, ["e/base.qcow2", "e/mid.qcow2", "d/top.qcow2"])


def test_bad_base_changes_nothing(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path, CHAIN3)
    before = {p.name: p.read_bytes() for p in ours.iterdir()}
    for args in (["-b", "nope.qcow2"], ["-b", "top.qcow2"], ["-p", "-b", "nope.qcow2"]):
        run_both(ours, theirs, *args, "top.qcow2")
    run_both(ours, theirs, "base.qcow2")  # no backing file
    run_both(ours, theirs, "-p", "base.qcow2")
    assert {p.name: p.read_bytes() for p in ours.iterdir()} == before


def stdout_bytes(argv: list[str], cwd: Path) -> bytes:
    """The exact output (text mode would turn the progress line's ``\\r`` into newlines)."""
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(argv, capture_output=True, env=env, cwd=cwd, check=False).stdout


PROGRESS = re.compile(rb"    \(0\.00/100%\)\r(    \(\d{1,3}\.\d\d/100%\)\r)*    \(100\.00/100%\)\r\n")


def test_progress_output_shape(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path, CHAIN3)
    for args, tail in (
        (["-p", "-b", "base.qcow2"], b"Image committed.\n"),
        (["-p"], b"Image committed.\n"),
        (["-p", "-b", "nope"], b""),
    ):
        mine = stdout_bytes([sys.executable, "-m", "pyvirt.cli.img", "commit", *args, "top.qcow2"], ours)
        qemu = stdout_bytes(["qemu-img", "commit", *args, "top.qcow2"], theirs)
        for out in (mine, qemu):
            if tail:
                assert PROGRESS.fullmatch(out.removesuffix(tail)), out
            else:
                assert out == b"    (0.00/100%)\r\n"
        assert_same_chain(ours, theirs, ["base.qcow2", "mid.qcow2", "top.qcow2"])


def test_short_middle_layer_and_base_grown(tmp_path: Path) -> None:
    layers = [
        ("base.qcow2", "4M", "65536", None, ["write -P 0x11 0 4M"]),
        ("mid.qcow2", "1M", "4096", "base.qcow2", ["write -P 0x22 4k 8k"]),  # past 1M the chain reads zeros
        ("top.qcow2", "6M", "65536", "mid.qcow2", ["write -P 0x33 5M 4k"]),
    ]
    ours, theirs = twins(tmp_path, layers)
    run_both(ours, theirs, "-b", "base.qcow2", "top.qcow2")
    assert_same_chain(ours, theirs, ["base.qcow2", "mid.qcow2", "top.qcow2"])
    assert (
        qinfo(ours / "base.qcow2")["virtual-size"] == qinfo(theirs / "base.qcow2")["virtual-size"] == 6 << 20
    )


def test_raw_base(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    (ours / "base.raw").write_bytes(b"\x11" * (3 << 20) + b"\x12" * 1000)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(ours / "mid.qcow2"), "4M")
    qemu_io(ours / "mid.qcow2", "write -z 0 128k", "write -P 0x22 1M 64k")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(ours / "top.qcow2"))
    qemu_io(ours / "top.qcow2", "write -P 0x33 64k 4k", "write -z 1M 4k")
    shutil.copytree(ours, theirs)
    run_both(ours, theirs, "-b", "base.raw", "top.qcow2")
    assert_same(ours / "base.raw", theirs / "base.raw", fmt_a="raw", fmt_b="raw")
    assert (ours / "base.raw").stat().st_size == (theirs / "base.raw").stat().st_size
    assert_same_chain(ours, theirs, ["mid.qcow2", "top.qcow2"])


def test_options_qemu_accepts(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path, CHAIN3)
    run_both(ours, theirs, "-t", "none", "-r", "1M", "-b", "base.qcow2", "top.qcow2")
    for args in (["-t", "bogus"], ["-r", "abc"]):
        mine = pyvirt_img("commit", *args, "top.qcow2", cwd=ours)
        qemu = qemu_img("commit", *args, "top.qcow2", cwd=theirs, check=False)
        assert mine.returncode == qemu.returncode == 1
    assert_same_chain(ours, theirs, ["base.qcow2", "mid.qcow2", "top.qcow2"])
