"""Persistent dirty bitmaps survive every writing `pyvirt img` verb exactly as they survive qemu-img's.

Each case builds two identical images with qemu-img (bitmaps added with ``qemu-img bitmap``, one
enabled, one disabled, one with another granularity), runs the verb with qemu-img on one and with
pyvirt on the other, then compares what ``qemu-img info`` lists and every bit of every bitmap.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from .conftest import assert_clean, make_layer, pyvirt_img, qemu_img, qemu_io, qinfo


def bitmap_bits(path: Path) -> dict[str, tuple[int, int, frozenset[int]]]:
    """Every bitmap's flags, granularity and set bits, decoded from the file."""
    from pyvirt.image.qcow2 import bitmaps as B
    from pyvirt.image.qcow2 import header as H

    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h = H.Header.parse(os.pread(fd, 1 << 21, 0), size, source=str(path))
        bm = B.read_bitmaps(fd, h, size, source=str(path))
        assert bm is not None, "no valid bitmaps"
        out = {}
        per = h.cluster_size * 8
        for b in bm.bitmaps:
            raw = os.pread(fd, b.table_size * 8, b.table_offset)
            bits: set[int] = set()
            for i, (e,) in enumerate(struct.iter_unpack(">Q", raw)):
                off = e & 0x00FFFFFFFFFFFE00
                if off:
                    data = os.pread(fd, h.cluster_size, off)
                    bits.update(i * per + k for k in range(per) if data[k >> 3] >> (k & 7) & 1)
                elif e & 1:
                    bits.update(range(i * per, (i + 1) * per))
            out[b.name] = (b.flags, b.granularity, frozenset(bits))
        return out
    finally:
        os.close(fd)


def with_bitmaps(path: Path, backing: str | None = None) -> None:
    make_layer(path, "8M", backing, "cluster_size=65536", ["write -P 1 0 64k", "write -P 2 3M 100k"])
    qemu_img("bitmap", "--add", str(path), "live")
    qemu_img("bitmap", "--add", "--disable", str(path), "frozen")
    qemu_img("bitmap", "--add", "-g", "256k", str(path), "coarse")
    qemu_io(path, "write -P 3 1M 64k", "write -P 4 7M 4k")  # some bits set in the enabled ones


def layer_names(name: str, tmp: Path) -> tuple[Path, Path, Path]:
    d = tmp / name
    d.mkdir()
    return d / "base.qcow2", d / "top.qcow2", d / "other.qcow2"


CASES: dict[str, tuple[list[str], str]] = {
    # verb args (TOP/BASE/OTHER replaced), which image to judge
    "resize-grow": (["resize", "TOP", "20M"], "TOP"),
    "resize-grow-odd": (["resize", "TOP", "+123456512"], "TOP"),
    "resize-shrink": (["resize", "--shrink", "BASE", "3M"], "BASE"),
    "resize-shrink-odd": (["resize", "--shrink", "BASE", "1000448"], "BASE"),
    "snapshot-create": (["snapshot", "-c", "s2", "TOP"], "TOP"),
    "snapshot-delete": (["snapshot", "-d", "s1", "TOP"], "TOP"),
    "commit": (["commit", "TOP"], "BASE"),
    "commit-top": (["commit", "TOP"], "TOP"),
    "rebase-safe": (["rebase", "-b", "OTHER", "-F", "qcow2", "TOP"], "TOP"),
    "rebase-unsafe": (["rebase", "-u", "-b", "OTHER", "-F", "qcow2", "TOP"], "TOP"),
    "check-repair": (["check", "-r", "all", "TOP"], "TOP"),
}


def build(d: tuple[Path, Path, Path]) -> None:
    base, top, other = d
    with_bitmaps(base)
    make_layer(other, "8M", None, "cluster_size=65536", ["write -P 9 0 2M"])
    with_bitmaps(top, str(base))
    qemu_img("snapshot", "-c", "s1", str(top))
    qemu_io(top, "write -P 5 2M 64k")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bitmaps_kept_as_qemu_img_keeps_them(tmp_path: Path, case: str) -> None:
    args, judged = CASES[case]
    q, p = layer_names("q", tmp_path), layer_names("p", tmp_path)
    build(q)
    build(p)
    names = {"BASE": 0, "TOP": 1, "OTHER": 2}

    def argv(d: tuple[Path, Path, Path]) -> list[str]:
        return [str(d[names[a]]) if a in names else a for a in args]

    qemu_img(*argv(q))
    r = pyvirt_img(*argv(p))
    assert r.returncode == 0, r.stderr
    qj, pj = q[names[judged]], p[names[judged]]
    want = qinfo(qj)["format-specific"]["data"]["bitmaps"]
    assert len(want) == 3 and qinfo(pj)["format-specific"]["data"]["bitmaps"] == want
    assert bitmap_bits(pj) == bitmap_bits(qj)
    assert_clean(pj)


def test_snapshot_apply_refused_while_bitmaps_exist_as_qemu_img(tmp_path: Path) -> None:
    q, p = layer_names("q", tmp_path), layer_names("p", tmp_path)
    build(q)
    build(p)
    before = p[1].read_bytes()
    want = qemu_img("snapshot", "-a", "s1", str(q[1]), check=False)
    r = pyvirt_img("snapshot", "-a", "s1", str(p[1]))
    assert want.returncode == r.returncode == 1
    assert want.stderr.removeprefix("qemu-img: ") == r.stderr.removeprefix("pyvirt img: error: ")
    assert p[1].read_bytes() == before
