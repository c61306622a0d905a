"""VHDX metadata through the log (pyvirt.image.vhdx_journal): a crash at each step leaves an image
that opens as before the update or, once the log entry is stable, replays to the image after it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

import pyvirt.image.vhdx_journal as J
from pyvirt.errors import ImageError
from pyvirt.image import check, create_image, open_image
from pyvirt.image.vhdx import VhdxImage

MiB = 1 << 20


class Crash(Exception):
    pass


def _crash_at(monkeypatch: pytest.MonkeyPatch, writes_allowed: int) -> list[int]:
    """The journal's writes fail from the ``writes_allowed + 1``-th on: the process "stops" there."""
    real, done = J.pwrite_full, []

    def write(fd: int, bufs: list[bytes], offset: int) -> None:
        if len(done) >= writes_allowed:
            raise Crash(offset)
        done.append(offset)
        real(fd, bufs, offset)

    monkeypatch.setattr(J, "pwrite_full", write)
    return done


def _log_guid(p: Path) -> bytes:
    data = p.read_bytes()
    seqs = [struct.unpack_from("<Q", data, h + 8)[0] for h in (64 << 10, 128 << 10)]
    h = (64 << 10, 128 << 10)[seqs.index(max(seqs))]
    return data[h + 48 : h + 64]


def _written(p: Path, data: bytes, *, crash_after: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    create_image(str(p), "vhdx", 64 * MiB)
    img = open_image(str(p), readonly=False)
    assert isinstance(img, VhdxImage)
    img.write(20 * MiB, data)
    if crash_after is None:
        img.close()
        return
    done = _crash_at(monkeypatch, crash_after)
    with pytest.raises(Crash):
        img.flush()
    monkeypatch.undo()
    assert done == [img.header.log_offset][:crash_after]
    os.close(img.fd)  # no clean close: the process is gone


def test_a_clean_update_leaves_an_empty_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p, data = tmp_path / "a.vhdx", os.urandom(MiB)
    _written(p, data, crash_after=None, monkeypatch=monkeypatch)
    assert _log_guid(p) == bytes(16)
    log = p.read_bytes()[MiB : MiB + 4096]
    assert log[:4] == b"loge"  # the entry stays in the log, under a GUID no header names
    with open_image(str(p)) as img:
        assert img.read(20 * MiB, MiB) == data
    assert check(str(p)).exit_code == 0


def test_crash_after_the_entry_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p, data = tmp_path / "a.vhdx", os.urandom(MiB)
    _written(p, data, crash_after=1, monkeypatch=monkeypatch)
    assert _log_guid(p) != bytes(16)
    bat = struct.unpack_from("<Q", p.read_bytes(), 2 * MiB + 8 * 2)[0]
    assert bat & 7 != 6  # block 2 not yet mapped in place
    with pytest.raises(ImageError, match="contains a log that needs to be replayed"):
        open_image(str(p))
    with open_image(str(p), readonly=False) as img:
        assert isinstance(img, VhdxImage) and img.replayed
        assert img.read(20 * MiB, MiB) == data
    assert _log_guid(p) == bytes(16)
    assert check(str(p)).exit_code == 0


def test_crash_before_the_entry_keeps_the_old_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p, data = tmp_path / "a.vhdx", os.urandom(MiB)
    _written(p, data, crash_after=0, monkeypatch=monkeypatch)
    assert _log_guid(p) != bytes(16)  # named, but no entry under it: no log
    with open_image(str(p)) as img:
        assert img.read(20 * MiB, MiB) == bytes(MiB)
    assert check(str(p)).exit_code == 0


def test_updates_larger_than_the_log_go_in_several_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert J.most_per_entry(MiB) == 253  # 255 sectors: two hold the header and descriptors
    assert J.most_per_entry(3 * 4096) == 1
    p = tmp_path / "a.vhdx"
    create_image(str(p), "vhdx", 3 << 30, block_size=MiB)  # 3072 blocks: 6 BAT sectors
    img = open_image(str(p), readonly=False)
    assert isinstance(img, VhdxImage)
    with img:
        for b in range(0, 3072, 512):
            img.write(b * MiB, b"\x09" * 4096)
        assert len(img._bat_sectors()) == 6
        monkeypatch.setattr(J, "most_per_entry", lambda _n: 1)  # as if the log held one sector an entry
        img.flush()
        assert img.log_seq == 6
    with open_image(str(p)) as img:
        assert all(img.read(b * MiB, 4096) == b"\x09" * 4096 for b in range(0, 3072, 512))
    assert check(str(p)).exit_code == 0
