"""pwrite_full: every byte written where it belongs, in write calls of at most WRITE_PIECE bytes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pyvirt.image import fileio
from pyvirt.image.fileio import WRITE_PIECE, pread_full, pwrite_full


@pytest.mark.parametrize("seed", range(20))
def test_pwrite_full_writes_every_buffer_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    sizes = [0, 1, 511, 4096, WRITE_PIECE - 1, WRITE_PIECE, WRITE_PIECE + 1, 3 << 20]
    bufs = [rng.randbytes(rng.choice(sizes)) for _ in range(rng.randint(1, 6))]
    calls: list[int] = []
    real = os.pwritev

    def recording(fd: int, batch: list[memoryview], offset: int) -> int:
        calls.append(sum(len(b) for b in batch))
        # A short write now and then: the rest must follow.
        if len(batch[0]) > 1 and rng.random() < 0.3:
            return real(fd, [batch[0][: len(batch[0]) // 2]], offset)
        return real(fd, batch, offset)

    monkeypatch.setattr(fileio.os, "pwritev", recording)
    offset = rng.randint(0, 9999)
    with open(tmp_path / "f", "w+b") as f:
        pwrite_full(f.fileno(), [memoryview(b) if i % 2 else b for i, b in enumerate(bufs)], offset)
        want = b"".join(bufs)
        got = bytearray(len(want))
        pread_full(f.fileno(), memoryview(got), offset)
    assert bytes(got) == want
    if want:
        assert os.path.getsize(tmp_path / "f") == offset + len(want)
    assert all(0 < n <= WRITE_PIECE for n in calls)
    assert len(calls) >= -(-len(want) // WRITE_PIECE)


def test_pwrite_full_many_small_buffers(tmp_path: Path) -> None:
    bufs = [os.urandom(100) for _ in range(5000)]  # more than IOV_MAX
    with open(tmp_path / "f", "w+b") as f:
        pwrite_full(f.fileno(), bufs, 7)
        assert os.pread(f.fileno(), 600000, 7) == b"".join(bufs)
