"""Growing an image whose backing file is longer, and headers of small-cluster images, as QEMU does.

Growing must not let the longer backing file show through the new area: QEMU zeroes it (zero
clusters), and refuses for compat=0.10 images, which have none. qemu-img leaves the feature-name
table out of the header when clusters are 4 KiB or smaller; rewriting such a header (rebase -u,
a grown L1 table) must still fit. qemu-img on the same inputs is the reference.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io, qinfo


def message(stderr: str) -> str:
    return re.sub(r"^(qemu-img|pyvirt img: error): ", "", stderr, flags=re.M)


def both(tmp_path: Path) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shutil.copytree(ours, theirs)
    return ours, theirs


def short_overlay(folder: Path, compat: str, cluster: int = 65536) -> None:
    """base (3M, all data) <- mid (1M, compat as given) <- top (3M, data at 2M)."""
    folder.mkdir(parents=True)
    qemu_img("create", "-q", "-f", "qcow2", str(folder / "base.qcow2"), "3M")
    qemu_io(folder / "base.qcow2", "write -P 0x11 0 3M")
    opts = f"compat={compat},cluster_size={cluster}"
    qemu_img(
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        opts,
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        str(folder / "mid.qcow2"),
        "1M",
    )
    qemu_io(folder / "mid.qcow2", "write -P 0x22 0 64k")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(folder / "top.qcow2"), "3M")
    qemu_io(folder / "top.qcow2", "write -P 0x33 2M 64k")


@pytest.mark.parametrize("compat", ["1.1", "0.10"])
@pytest.mark.parametrize("verb", [["resize", "mid.qcow2", "3M"], ["commit", "-d", "top.qcow2"]], ids=" ".join)
def test_growing_over_a_longer_backing_file(tmp_path: Path, compat: str, verb: list[str]) -> None:
    short_overlay(tmp_path / "ours", compat)
    ours, theirs = both(tmp_path)
    before = (ours / "mid.qcow2").read_bytes()
    mine = pyvirt_img(*verb, cwd=ours)
    qemu = qemu_img(*verb, cwd=theirs, check=False)
    assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout), mine.stderr
    assert message(mine.stderr) == message(qemu.stderr)
    if compat == "0.10":  # no zero clusters: refused, nothing changed
        assert mine.returncode == 1
        assert (ours / "mid.qcow2").read_bytes() == before
    assert qinfo(ours / "mid.qcow2")["virtual-size"] == qinfo(theirs / "mid.qcow2")["virtual-size"]
    for name in ("mid.qcow2", "top.qcow2"):
        assert_clean(ours / name)
        assert_same(ours / name, theirs / name)


@pytest.mark.parametrize("cluster", [512, 4096])
def test_small_cluster_headers_are_rewritten(tmp_path: Path, cluster: int) -> None:
    short_overlay(tmp_path / "ours", "1.1", cluster)
    ours, theirs = both(tmp_path)
    long_name = "x" * 120 + ".qcow2"
    for folder in (ours, theirs):
        shutil.copy(folder / "base.qcow2", folder / long_name)
    for args in (
        ["rebase", "-u", "-b", long_name, "-F", "qcow2", "mid.qcow2"],
        ["resize", "mid.qcow2", "40M"],  # the L1 table moves: the header is written again
        ["rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2"],
        ["commit", "-b", "mid.qcow2", "top.qcow2"],
    ):
        mine = pyvirt_img(*args, cwd=ours)
        qemu = qemu_img(*args, cwd=theirs, check=False)
        assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout) == (0, qemu.stdout), (
            mine.stderr
        )
        assert (ours / "mid.qcow2").read_bytes()[:cluster] == (theirs / "mid.qcow2").read_bytes()[:cluster]
        assert_clean(ours / "mid.qcow2")
        assert_same(ours / "mid.qcow2", theirs / "mid.qcow2")
