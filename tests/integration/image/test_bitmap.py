"""``pyvirt img bitmap`` against ``qemu-img bitmap``: the same operations on twin images leave the same
bitmaps — names, flags and granularities (``qemu-img info``), and the same bits, as QEMU itself reads
them (``x-debug-block-dirty-bitmap-sha256`` and the dirty count of each bitmap) — and a clean image."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.image.conftest import (
    LUKS_SECRET,
    assert_clean,
    luks_qcow2,
    pyvirt_img,
    qemu_img,
    qemu_io,
    qinfo,
)


def qemu_bitmaps(path: Path) -> dict[str, tuple[str, int]]:
    """Bitmap name → (sha256 of its bits, dirty count), as QEMU reads the image."""
    names = [b["name"] for b in qinfo(path).get("format-specific", {}).get("data", {}).get("bitmaps", [])]
    cmds = [
        {"execute": "qmp_capabilities"},
        {"execute": "query-named-block-nodes", "arguments": {"flat": True}},
    ]
    cmds += [
        {"execute": "x-debug-block-dirty-bitmap-sha256", "arguments": {"node": "d", "name": n}} for n in names
    ]
    cmds.append({"execute": "quit"})
    out = subprocess.run(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio",
         "-blockdev", f"driver=qcow2,node-name=d,read-only=on,file.driver=file,file.filename={path}"],
        input="".join(json.dumps(c) + "\n" for c in cmds), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    replies = [json.loads(line) for line in out.splitlines() if '"return"' in line]
    nodes = replies[1]["return"]
    counts = {
        b["name"]: b["count"] for n in nodes if n["node-name"] == "d" for b in n.get("dirty-bitmaps", [])
    }
    return {n: (replies[2 + i]["return"]["sha256"], counts[n]) for i, n in enumerate(names)}


def info_bitmaps(path: Path) -> list[dict[str, object]]:
    bitmaps: list[dict[str, object]] = qinfo(path)["format-specific"]["data"].get("bitmaps", [])
    return bitmaps


def twins(tmp_path: Path, size: str = "10M", options: str = "cluster_size=65536") -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", options, str(ours), size)
    shutil.copy(ours, theirs)
    return ours, theirs


def both(ours: Path, theirs: Path, *args: str) -> None:
    """Run one bitmap command on each twin: ours through pyvirt, theirs through qemu-img."""
    *opts, name = args
    mine = pyvirt_img("bitmap", *opts, str(ours), name)
    ref = qemu_img("bitmap", *opts, str(theirs), name, check=False)
    assert mine.returncode == ref.returncode == 0, (mine.stderr, ref.stderr)


def write_both(ours: Path, theirs: Path, *cmds: str) -> None:
    qemu_io(ours, *cmds)
    qemu_io(theirs, *cmds)


def assert_twins(ours: Path, theirs: Path) -> None:
    assert info_bitmaps(ours) == info_bitmaps(theirs)
    assert qemu_bitmaps(ours) == qemu_bitmaps(theirs)
    assert_clean(ours)


def test_add_enable_disable_clear_remove_as_qemu_img(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path)
    both(ours, theirs, "--add", "b0")
    both(ours, theirs, "--add", "-g", "128k", "--disable", "b1")
    both(ours, theirs, "--add", "-g", "512", "small")
    write_both(ours, theirs, "write 0 100k", "write 5M 1M", "write 9999k 1k")
    assert_twins(ours, theirs)
    assert qemu_bitmaps(ours)["b0"][1] > 0 and qemu_bitmaps(ours)["b1"][1] == 0
    both(ours, theirs, "--enable", "b1")
    both(ours, theirs, "--disable", "b0")
    write_both(ours, theirs, "write 3M 64k")
    assert_twins(ours, theirs)
    both(ours, theirs, "--clear", "b0")
    both(ours, theirs, "--remove", "small")
    assert_twins(ours, theirs)
    assert [b["name"] for b in info_bitmaps(ours)] == ["b0", "b1"]
    both(ours, theirs, "--remove", "b0")
    both(ours, theirs, "--remove", "b1")
    assert info_bitmaps(ours) == info_bitmaps(theirs) == []
    assert_clean(ours)


def test_merge_within_and_from_another_file_with_other_granularities(tmp_path: Path) -> None:
    ours, theirs = twins(tmp_path)
    both(ours, theirs, "--add", "-g", "64k", "a")
    both(ours, theirs, "--add", "-g", "1M", "--disable", "b")
    write_both(ours, theirs, "write 1000k 200k", "write 7M 4k")
    both(ours, theirs, "--merge", "a", "b")
    assert_twins(ours, theirs)
    other = tmp_path / "other.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(other), "10M")
    qemu_img("bitmap", "--add", "-g", "4k", str(other), "src")
    qemu_io(other, "write 4k 4k", "write 9M 512k")
    mine = pyvirt_img("bitmap", "--merge", "src", "-b", str(other), "-F", "qcow2", str(ours), "a")
    ref = qemu_img("bitmap", "--merge", "src", "-b", str(other), "-F", "qcow2", str(theirs), "a")
    assert mine.returncode == ref.returncode == 0, mine.stderr
    assert_twins(ours, theirs)


def test_small_clusters_and_a_default_granularity_as_qemu_picks_it(tmp_path: Path) -> None:
    for cluster, expected in (("512", 4096), ("4096", 4096), ("2M", 65536)):
        ours, theirs = twins(tmp_path / cluster, "3M", f"cluster_size={cluster}")
        both(ours, theirs, "--add", "x")
        write_both(ours, theirs, "write 1M 300k")
        assert_twins(ours, theirs)
        assert info_bitmaps(ours)[0]["granularity"] == expected


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ([], ["--add", "IMG"], "Expecting filename and bitmap name"),
        ([], ["IMG", "x"], "Need at least one of --add, --remove, --clear, --enable, --disable, or --merge"),
        ([], ["-g", "64k", "--enable", "IMG", "x"], "granularity only supported with --add"),
        ([], ["-b", "y", "--add", "IMG", "x"], "Merge bitmap source file only supported with --merge"),
        ([], ["-F", "qcow2", "--add", "IMG", "x"], "-F only supported with -b"),
        (
            [["--add", "x"]],
            ["--add", "IMG", "x"],
            "Operation add on bitmap x failed: Bitmap already exists: x",
        ),
        (
            [],
            ["--remove", "IMG", "nope"],
            "Operation remove on bitmap nope failed: Dirty bitmap 'nope' not found",
        ),
        ([], ["--add", "-g", "100", "IMG", "x"], "Granularity must be power of 2 and at least 512"),
        ([], ["--add", "IMG", ""], "Operation add on bitmap  failed: Bitmap name cannot be empty"),
        (
            [["--add", "x"]],
            ["--merge", "nope", "IMG", "x"],
            "on bitmap x failed: Dirty bitmap 'nope' not found",
        ),
    ],
)
def test_refusals_as_qemu_img(tmp_path: Path, setup: list[list[str]], args: list[str], message: str) -> None:
    ours, theirs = twins(tmp_path)
    for step in setup:
        both(ours, theirs, *step)
    mine = pyvirt_img("bitmap", *[str(ours) if a == "IMG" else a for a in args])
    ref = qemu_img("bitmap", *[str(theirs) if a == "IMG" else a for a in args], check=False)
    assert mine.returncode == ref.returncode == 1
    assert message in mine.stderr and message in ref.stderr
    assert info_bitmaps(ours) == info_bitmaps(theirs)


def test_v2_and_raw_images_cannot_hold_bitmaps(tmp_path: Path) -> None:
    old = tmp_path / "old.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", str(old), "1M")
    before = old.read_bytes()
    result = pyvirt_img("bitmap", "--add", str(old), "x")
    assert result.returncode == 1 and "Cannot store dirty bitmaps in qcow2 v2 files" in result.stderr
    assert old.read_bytes() == before
    raw = tmp_path / "r.raw"
    raw.write_bytes(bytes(1 << 20))
    result = pyvirt_img("bitmap", "--add", "-f", "raw", str(raw), "x")
    assert result.returncode == 1 and "Can't store persistent bitmaps" in result.stderr


def test_an_encrypted_image_through_image_opts_and_its_secret(tmp_path: Path) -> None:
    secret = LUKS_SECRET
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    for path in (ours, theirs):
        luks_qcow2(path, "4M")
    for path, tool in ((ours, pyvirt_img), (theirs, qemu_img)):
        spec = f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"
        for action in (["--add", "-g", "8k"], ["--disable", "--clear"]):
            result = tool("bitmap", "--object", secret, "--image-opts", *action, spec, "enc")
            assert result.returncode == 0, result.stderr
    assert info_bitmaps(ours) == info_bitmaps(theirs) == [{"flags": [], "name": "enc", "granularity": 8192}]
    wrong = pyvirt_img(
        "bitmap", "--object", "secret,id=s0,data=nope", "--image-opts", "--remove",
        f"driver=qcow2,file.filename={ours},encrypt.key-secret=s0", "enc",
    )  # fmt: skip
    assert wrong.returncode == 1 and info_bitmaps(ours)[0]["name"] == "enc"


def _mark_in_use(path: Path, name: str) -> None:
    """What a QEMU killed while tracking leaves behind: the bitmap flagged in use (inconsistent)."""
    import os
    import struct

    from pyvirt.image.qcow2 import bitmaps as B
    from pyvirt.image.qcow2 import header as H

    fd = os.open(path, os.O_RDWR)
    try:
        h = H.Header.parse(os.pread(fd, 65536, 0), os.fstat(fd).st_size)
        found = B.read_bitmaps(fd, h, os.fstat(fd).st_size, source=str(path))
        assert found is not None
        b = next(b for b in found.bitmaps if b.name == name)
        os.pwrite(fd, struct.pack(">I", b.flags | B.FLAG_IN_USE), b.entry + 12)
    finally:
        os.close(fd)


def test_convert_bitmaps_copies_them_as_qemu_img(tmp_path: Path) -> None:
    src = tmp_path / "src.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "10M")
    qemu_img("bitmap", "--add", str(src), "b0")
    qemu_img("bitmap", "--add", "-g", "1M", "--disable", str(src), "b1")
    qemu_io(src, "write 0 100k", "write 6M 8k")
    qemu_img("bitmap", "--merge", "b0", str(src), "b1")
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    mine = pyvirt_img("convert", "--bitmaps", "-O", "qcow2", str(src), str(ours))
    assert mine.returncode == 0, mine.stderr
    qemu_img("convert", "--bitmaps", "-O", "qcow2", str(src), str(theirs))
    assert_twins(ours, theirs)
    assert qemu_bitmaps(ours) == qemu_bitmaps(src)
    again = pyvirt_img("convert", "--bitmaps", "-n", "-O", "qcow2", str(src), str(ours))
    assert again.returncode == 1 and "Failed to create bitmap b1: Bitmap already exists: b1" in again.stderr
    _mark_in_use(src, "b0")
    broken = pyvirt_img("convert", "--bitmaps", "-O", "qcow2", str(src), str(tmp_path / "broken.qcow2"))
    assert broken.returncode == 1 and "Cannot copy inconsistent bitmap 'b0'" in broken.stderr
    skipped = tmp_path / "skipped.qcow2"
    result = pyvirt_img(
        "convert", "--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", str(src), str(skipped)
    )
    assert result.returncode == 0, result.stderr
    assert [b["name"] for b in info_bitmaps(skipped)] == ["b1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bitmaps", "-O", "raw"], "Format driver 'raw' does not support bitmaps"),
        (["--bitmaps", "-O", "qcow2", "-o", "compat=0.10"], "Format driver 'qcow2' does not support bitmaps"),
        (["--skip-broken-bitmaps", "-O", "qcow2"], "Use of --skip-broken-bitmaps requires --bitmaps"),
    ],
)
def test_convert_bitmaps_refusals_as_qemu_img(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "src.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "1M")
    mine = pyvirt_img("convert", *args, str(src), str(tmp_path / "ours"))
    ref = qemu_img("convert", *args, str(src), str(tmp_path / "theirs"), check=False)
    assert mine.returncode == ref.returncode == 1
    assert message in mine.stderr and message in ref.stderr
    assert not (tmp_path / "ours").exists()


def test_convert_bitmaps_needs_a_qcow2_source(tmp_path: Path) -> None:
    raw = tmp_path / "src.raw"
    raw.write_bytes(bytes(1 << 20))
    mine = pyvirt_img("convert", "--bitmaps", "-f", "raw", "-O", "qcow2", str(raw), str(tmp_path / "o.qcow2"))
    assert mine.returncode == 1 and "Source lacks bitmap support" in mine.stderr
    two = pyvirt_img("convert", "--bitmaps", "-O", "qcow2", str(raw), str(raw), str(tmp_path / "o.qcow2"))
    assert two.returncode == 1 and "Copying bitmaps only possible with single source" in two.stderr


@pytest.mark.parametrize(
    "options", [[], ["-o", "cluster_size=4k"], ["-o", "cluster_size=2M"], ["--output=json"]]
)
def test_measure_counts_the_bitmaps_room_as_qemu_img(tmp_path: Path, options: list[str]) -> None:
    src = tmp_path / "src.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "100M")
    qemu_img("bitmap", "--add", str(src), "a")
    qemu_img("bitmap", "--add", "-g", "512", str(src), "a-rather-long-bitmap-name-" * 3)
    qemu_io(src, "write 0 1M")
    mine = pyvirt_img("measure", "-O", "qcow2", *options, str(src))
    ref = qemu_img("measure", "-O", "qcow2", *options, str(src))
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout == ref.stdout
    assert "bitmaps" in mine.stdout
