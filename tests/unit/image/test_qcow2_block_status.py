"""qcow2 block status found run by run (slice comparisons) agrees with a cluster-by-cluster walk."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import create_image, open_image
from pyvirt.image.base import Extent
from pyvirt.image.qcow2.image import Qcow2Image, _run_length
from pyvirt.image.qcow2.tables import L2_OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_ZERO


def _naive_run(table: array[int], i: int, i_end: int, e: int, step: int) -> int:
    k = 1
    while i + k < i_end and table[i + k] == e + k * step:
        k += 1
    return k


@pytest.mark.parametrize("seed", range(40))
def test_run_length_matches_a_linear_scan(seed: int) -> None:
    rnd = random.Random(seed)
    cs = 65536
    entries: list[int] = []
    while len(entries) < 600:
        kind = rnd.random()
        k = rnd.choice([1, 2, 3, 7, 64, 200])
        if kind < 0.4:
            base = rnd.randrange(1, 1000) * cs | (1 << 63)
            entries += [base + j * cs for j in range(k)]
        elif kind < 0.7:
            entries += [0] * k
        else:
            entries += [rnd.choice([1, 0, (1 << 63) | 5 * cs])] * k
    table = array("Q", entries)
    for _ in range(200):
        i = rnd.randrange(len(table))
        i_end = rnd.randrange(i + 1, len(table) + 1)
        e = table[i]
        for step in (0, cs):
            assert _run_length(table, i, i_end, e, step) == _naive_run(table, i, i_end, e, step)


def test_run_length_near_the_top_of_the_entry_range() -> None:
    e = (1 << 64) - 3 * 512
    table = array("Q", [e, e + 512, e + 1024])
    assert _run_length(table, 0, 3, e, 512) == 3
    assert _run_length(table, 0, 3, e, 1024) == 1


def _per_cluster(img: Qcow2Image, size: int) -> list[tuple[int, int, bool, bool, int | None]]:
    """Block status the slow way: one extent per cluster, then merged like the library merges."""
    out: list[tuple[int, int, bool, bool, int | None]] = []
    cs = img.cs
    for c in range(0, size, cs):
        e = img.l2_entry(c // cs)
        n = min(cs, size - c)
        x: tuple[int, int, bool, bool, int | None]
        if e & OFLAG_COMPRESSED:
            x = (c, n, True, False, None)
        elif e & OFLAG_ZERO:
            x = (c, n, False, True, None)
        elif e & L2_OFFSET_MASK:
            x = (c, n, True, False, e & L2_OFFSET_MASK)
        else:
            x = (c, n, False, True, None)
        if out:
            p = out[-1]
            contiguous = (p[4] is None and x[4] is None) or (
                p[4] is not None and x[4] is not None and p[4] + p[1] == x[4]
            )
            if p[2:4] == x[2:4] and contiguous and (x[4] is not None or not x[2]):
                out[-1] = (p[0], p[1] + n, p[2], p[3], p[4])
                continue
        out.append(x)
    return out


def _ours(extents: list[Extent]) -> list[tuple[int, int, bool, bool, int | None]]:
    out: list[tuple[int, int, bool, bool, int | None]] = []
    for x in extents:
        cur = (x.start, x.length, x.data, x.zero, x.offset)
        if out and x.compressed and out[-1][2] and out[-1][4] is None and out[-1][0] + out[-1][1] == x.start:
            p = out[-1]
            out[-1] = (p[0], p[1] + x.length, p[2], p[3], None)
            continue
        out.append(cur)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_block_status_agrees_with_a_cluster_walk(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    cs = rnd.choice([512, 4096, 65536])
    size = cs * rnd.randrange(300, 3000)
    path = tmp_path / "a.qcow2"
    create_image(str(path), "qcow2", size, cluster_size=cs)
    with open_image(str(path), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        for _ in range(40):
            c = rnd.randrange(0, size // cs)
            k = min(rnd.choice([1, 2, 5, 40, 300]), size // cs - c)
            kind = rnd.random()
            if kind < 0.6:
                img.write(c * cs, rnd.randbytes(k * cs))
            elif kind < 0.8:
                img.write_zeroes(c * cs, k * cs)
            elif kind < 0.9:
                img.discard(c * cs, k * cs)
            else:
                img.write_compressed([(c, rnd.randbytes(100) * (cs // 100) if cs > 512 else bytes(1) * 10)])
    with open_image(str(path)) as img:
        assert isinstance(img, Qcow2Image)
        assert _ours(img.block_status(0, size)) == _per_cluster(img, size)
        a = rnd.randrange(1, size - 1)
        b = rnd.randrange(a + 1, size + 1)
        sub = img.block_status(a, b - a)
        assert sub[0].start == a and sum(x.length for x in sub) == b - a


def test_a_data_run_running_past_the_file_end_is_refused(tmp_path: Path) -> None:
    """Only a run's first and last clusters are checked; the last one lies past the end here."""
    path = tmp_path / "a.qcow2"
    cs = 65536
    create_image(str(path), "qcow2", 1 << 20)
    with open_image(str(path), readonly=False) as img:
        img.write(0, b"x" * cs)
        assert isinstance(img, Qcow2Image)
        l2_off = img.l1[0] & L2_OFFSET_MASK
    end = path.stat().st_size
    run = array("Q", range((end - cs) | (1 << 63), ((end - cs) | (1 << 63)) + 16 * cs, cs))
    run.byteswap()
    with open(path, "r+b") as f:
        f.seek(l2_off)
        f.write(run.tobytes())
    with open_image(str(path)) as img, pytest.raises(ImageError, match="past the end"):
        img.block_status(0, 1 << 20)
