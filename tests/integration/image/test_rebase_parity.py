"""``pyvirt img rebase`` (safe and ``-u``) against qemu-img rebase on identical images.

Every case builds the same files twice, rebases one set with pyvirt and the other with qemu-img,
and compares exit status, output, message, the backing file recorded in the header, and (judged
by qemu-img) the image's content and metadata.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SRC, assert_clean, assert_same, make_layer, pyvirt_img, qemu_img, qinfo

Layer = tuple[str, str, str | None, list[str], str]  # file, size, backing, qemu-io commands, compat


def build(folder: Path, layers: list[Layer]) -> None:
    for name, size, backing, cmds, compat in layers:
        make_layer(folder / name, size, backing, f"compat={compat}", cmds)


# base (2M, shorter than the image: past its end the image reads zeros) <- mid <- top; other is the
# new backing file, with data where base ends.
FILES: list[Layer] = [
    ("base.qcow2", "2M", None, ["write -P 0x11 0 2M"], "1.1"),
    ("mid.qcow2", "4M", "base.qcow2", ["write -P 0x22 1M 64k", "write -z 1536k 64k"], "1.1"),
    ("top.qcow2", "4M", "mid.qcow2", ["write -P 0x33 0 64k", "write -z 3M 64k"], "1.1"),
    ("other.qcow2", "3M", None, ["write -P 0x44 512k 2M", "write -P 0x11 0 64k"], "1.1"),
    ("lone.qcow2", "4M", None, ["write -P 0x55 64k 64k"], "1.1"),
    ("old.qcow2", "4M", "base.qcow2", ["write -P 0x66 0 4k"], "0.10"),
]


def twins(tmp_path: Path) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    build(ours, FILES)
    shutil.copytree(ours, theirs)
    return ours, theirs


def message(stderr: str) -> str:
    return re.sub(r"^(qemu-img|pyvirt img: error): ", "", stderr, flags=re.M).replace(
        "Try 'qemu-img --help' for more information\n", ""
    )


def layer_map(path: Path) -> list[tuple[int, int, bool, bool]]:
    """Where this file alone has data and zero clusters (its backing file left out)."""
    spec = f'json:{{"driver": "qcow2", "file": {{"driver": "file", "filename": "{path}"}}, "backing": null}}'
    out = json.loads(qemu_img("map", "--output=json", spec).stdout)
    return [(e["start"], e["length"], e["data"], e["present"]) for e in out]


def backing_of(path: Path) -> tuple[str | None, str | None]:
    info = qinfo(path)
    return info.get("backing-filename"), info.get("backing-filename-format")


CASES = [
    ["-b", "other.qcow2", "-F", "qcow2", "top.qcow2"],
    ["-b", "base.qcow2", "-F", "qcow2", "top.qcow2"],  # onto an image of its own chain
    ["-b", "", "top.qcow2"],  # onto nothing: the whole chain copied in
    ["-b", "other.qcow2", "-F", "qcow2", "lone.qcow2"],  # no backing file before
    ["-b", "other.qcow2", "-F", "qcow2", "old.qcow2"],  # compat=0.10: no zero clusters
    ["-b", "other.qcow2", "top.qcow2"],  # no -F: copies, then refuses to write the header
    ["-b", "nope.qcow2", "-F", "qcow2", "top.qcow2"],
    ["-b", "other.qcow2", "-F", "bogus", "top.qcow2"],
    ["top.qcow2"],  # neither -b nor -u
    ["-u", "-b", "other.qcow2", "-F", "qcow2", "top.qcow2"],  # content changes: unsafe
    ["-u", "-b", "nope.qcow2", "-F", "qcow2", "top.qcow2"],
    ["-u", "-b", "other.qcow2", "top.qcow2"],
    ["-u", "top.qcow2"],  # unsafe without -b: the backing file is dropped
    ["-u", "-b", "", "top.qcow2"],
    ["-b", "other.qcow2", "-F", "raw", "top.qcow2"],
    ["-t", "bogus", "-b", "other.qcow2", "-F", "qcow2", "top.qcow2"],
    ["-T", "bogus", "-b", "other.qcow2", "-F", "qcow2", "top.qcow2"],
    ["-q", "-p", "-b", "other.qcow2", "-F", "qcow2", "top.qcow2"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(x or "''" for x in a))
def test_rebase_like_qemu(tmp_path: Path, args: list[str]) -> None:
    ours, theirs = twins(tmp_path)
    target = args[-1]
    flat = tmp_path / "before.raw"
    qemu_img("convert", "-O", "raw", str(ours / target), str(flat))
    mine = pyvirt_img("rebase", *args, cwd=ours)
    qemu = qemu_img("rebase", *args, cwd=theirs, check=False)
    assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout), mine.stderr
    assert message(mine.stderr) == message(qemu.stderr)
    assert backing_of(ours / target) == backing_of(theirs / target)
    if backing_of(ours / target)[0] == "nope.qcow2":  # (to judge the content, the chain must open)
        for folder in (ours, theirs):
            qemu_img("rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", str(folder / target))
    assert layer_map(ours / target) == layer_map(theirs / target)
    assert_clean(ours / target)
    assert_same(ours / target, theirs / target)
    if "-u" not in args or qemu.returncode:
        assert_same(ours / target, flat)  # safe mode (or a refusal) keeps what the image reads


def test_raw_image_cannot_take_a_backing_file(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path)
    for folder in (ours, theirs):
        (folder / "disk.raw").write_bytes(b"\x01" * 65536)
    args = ["-f", "raw", "-b", "other.qcow2", "-F", "qcow2", "disk.raw"]
    mine = pyvirt_img("rebase", *args, cwd=ours)
    qemu = qemu_img("rebase", *args, cwd=theirs, check=False)
    assert mine.returncode == qemu.returncode == 1
    assert message(mine.stderr) == message(qemu.stderr)
    assert (ours / "disk.raw").read_bytes() == (theirs / "disk.raw").read_bytes() == b"\x01" * 65536


def test_relative_new_backing_is_taken_from_the_image_folder(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path)
    for folder in (ours, theirs):
        (folder / "d").mkdir()
        shutil.move(folder / "lone.qcow2", folder / "d" / "lone.qcow2")
    args = ["-b", "../other.qcow2", "-F", "qcow2", "d/lone.qcow2"]
    mine = pyvirt_img("rebase", *args, cwd=ours)
    qemu_img("rebase", *args, cwd=theirs)
    assert mine.returncode == 0, mine.stderr
    assert backing_of(ours / "d/lone.qcow2") == ("../other.qcow2", "qcow2")
    assert_clean(ours / "d/lone.qcow2")
    assert_same(ours / "d/lone.qcow2", theirs / "d/lone.qcow2")
    wrong = ["-b", "other.qcow2", "-F", "qcow2", "d/lone.qcow2"]  # from the working folder: not found
    mine = pyvirt_img("rebase", *wrong, cwd=ours)
    qemu = qemu_img("rebase", *wrong, cwd=theirs, check=False)
    assert mine.returncode == qemu.returncode == 1
    assert message(mine.stderr) == message(qemu.stderr)


def stdout_bytes(argv: list[str], cwd: Path) -> bytes:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(argv, capture_output=True, env=env, cwd=cwd, check=False).stdout


PROGRESS = re.compile(rb"    \(0\.00/100%\)\r(    \(\d{1,3}\.\d\d/100%\)\r)*    \(100\.00/100%\)\r\n")


def test_progress_output_shape(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path)
    for args in (["-b", "other.qcow2", "-F", "qcow2"], ["-u", "-b", "base.qcow2", "-F", "qcow2"]):
        mine = stdout_bytes(
            [sys.executable, "-m", "pyvirt.cli.img", "rebase", "-p", *args, "top.qcow2"], ours
        )
        qemu = stdout_bytes(["qemu-img", "rebase", "-p", *args, "top.qcow2"], theirs)
        assert PROGRESS.fullmatch(mine), mine
        assert PROGRESS.fullmatch(qemu), qemu
    for args in (["-b", "nope.qcow2", "-F", "qcow2"], ["-t", "bogus", "-b", "x"]):
        mine = stdout_bytes(
            [sys.executable, "-m", "pyvirt.cli.img", "rebase", "-p", *args, "top.qcow2"], ours
        )
        qemu = stdout_bytes(["qemu-img", "rebase", "-p", *args, "top.qcow2"], theirs)
        assert mine == qemu == b"    (0.00/100%)\r\n"
    assert_same(ours / "top.qcow2", theirs / "top.qcow2")


def test_compat_010_image_without_backing_keeps_its_zeros(tmp_path: Path) -> None:
    """Where pyvirt deliberately differs: qemu-img 7.2 rebasing a compat=0.10 image that has no
    backing file writes none of the zeros the new backing file would hide (the image then reads the
    new backing file's data); safe mode here keeps what the image read."""
    ours = tmp_path / "ours"
    build(ours, [FILES[3], ("v2.qcow2", "4M", None, ["write -P 0x77 0 4k"], "0.10")])
    flat = tmp_path / "before.raw"
    qemu_img("convert", "-O", "raw", str(ours / "v2.qcow2"), str(flat))
    mine = pyvirt_img("rebase", "-b", "other.qcow2", "-F", "qcow2", "v2.qcow2", cwd=ours)
    assert mine.returncode == 0, mine.stderr
    assert backing_of(ours / "v2.qcow2") == ("other.qcow2", "qcow2")
    assert_clean(ours / "v2.qcow2")
    assert_same(ours / "v2.qcow2", flat)
