"""``vol-clone --reflink`` and ``vol-create-from --reflink`` through a real pyvirtd: the clone shares its
blocks with the original (FICLONE) on a copy-on-write file system (a loop-mounted btrfs), and is refused
with the file system's reason where sharing is impossible (ext4, or any non-raw create-from)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

pytestmark = [pytest.mark.slow, pytest.mark.root]

VOL_XML = (
    "<volume><name>{name}</name><capacity>{size}</capacity><target><format type='{fmt}'/></target></volume>"
)


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    image, mountpoint = tmp_path / "btrfs.img", tmp_path / "btrfs"
    with open(image, "wb") as fh:
        fh.truncate(256 << 20)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    mountpoint.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def shared_extents(path: Path) -> bool:
    """Whether every extent of ``path`` is marked shared (FIEMAP, through filefrag)."""
    out = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and ":" in line]
    return bool(rows) and all("shared" in row for row in rows)


def test_reflink_shares_blocks_on_btrfs(daemon: Daemon, tmp_path: Path, btrfs: Path) -> None:
    daemon.cli("pool-create-as", "cow", "dir", "--target", str(btrfs)).ok()
    original = btrfs / "base.img"
    original.write_bytes(os.urandom(1 << 20) * 2)
    daemon.cli("pool-refresh", "cow").ok()

    assert daemon.cli("vol-clone", "base.img", "copy.img", "--pool", "cow").ok()
    assert not shared_extents(btrfs / "copy.img")  # a plain clone copies the bytes
    out = daemon.cli("vol-clone", "base.img", "cow.img", "--pool", "cow", "--reflink").ok().out
    assert out == "Vol cow.img cloned from base.img\n\n"
    assert (btrfs / "cow.img").read_bytes() == original.read_bytes()
    assert shared_extents(btrfs / "cow.img") and shared_extents(original)

    xml = tmp_path / "from.xml"
    xml.write_text(VOL_XML.format(name="from.img", size=4 << 20, fmt="raw"))
    daemon.cli("vol-create-from", "cow", str(xml), "base.img", "--inputpool", "cow", "--reflink").ok()
    made = (btrfs / "from.img").read_bytes()
    assert made[: 2 << 20] == original.read_bytes() and made[2 << 20 :] == bytes(2 << 20)
    assert shared_extents(btrfs / "from.img")

    xml.write_text(VOL_XML.format(name="from.qcow2", size=4 << 20, fmt="qcow2"))
    result = daemon.cli("vol-create-from", "cow", str(xml), "base.img", "--inputpool", "cow", "--reflink")
    assert result.rc == 1 and "--reflink needs a raw input volume and a raw new volume" in result.err
    assert not (btrfs / "from.qcow2").exists()

    result = daemon.cli(
        "vol-clone", "base.img", "both.img", "--pool", "cow", "--reflink", "--prealloc-metadata"
    )
    assert result.rc == 1 and "--reflink and --prealloc-metadata" in result.err


def test_reflink_refused_where_the_file_system_cannot(daemon: Daemon, tmp_path: Path) -> None:
    folder = tmp_path / "ext"
    folder.mkdir()
    if subprocess.run(
        ["stat", "-f", "-c", "%T", str(folder)], capture_output=True, text=True
    ).stdout.strip() in (
        "btrfs",
        "xfs",
    ):
        pytest.skip("the scratch directory is on a file system with reflinks")
    daemon.cli("pool-create-as", "plain", "dir", "--target", str(folder)).ok()
    (folder / "base.img").write_bytes(b"x" * 65536)
    daemon.cli("pool-refresh", "plain").ok()
    result = daemon.cli("vol-clone", "base.img", "cow.img", "--pool", "plain", "--reflink")
    assert result.rc == 1
    assert "Failed to clone vol from base.img" in result.err
    assert f"failed to clone files from '{folder}/base.img'" in result.err and "copy-on-write" in result.err
    assert not (folder / "cow.img").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["base.img"]  # no temporary file left
