"""VHDX metadata updates go through the log (pyvirt.image.vhdx_journal): qemu-img replays an entry
pyvirt wrote and stopped after, as pyvirt does, and finds a cleanly updated image consistent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import pyvirt.image.vhdx_journal as J
from pyvirt.errors import ImageError
from pyvirt.image import create_image, open_image
from tests.integration.image.conftest import assert_clean, assert_same, qemu_img, qemu_io

MiB = 1 << 20


class Crash(Exception):
    pass


def test_qemu_replays_an_entry_we_stopped_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.vhdx"
    data = os.urandom(3 * MiB + 4096)
    create_image(str(p), "vhdx", 100 * MiB, block_size=MiB)
    img = open_image(str(p), readonly=False)
    img.write(30 * MiB - 4096, data)  # four new blocks
    real = J.pwrite_full

    def stop_after_the_entry(fd: int, bufs: list[bytes], offset: int) -> None:
        if offset != img.header.log_offset:  # type: ignore[attr-defined]
            raise Crash(offset)
        real(fd, bufs, offset)

    monkeypatch.setattr(J, "pwrite_full", stop_after_the_entry)
    with pytest.raises(Crash):
        img.flush()
    monkeypatch.undo()
    os.close(img.fd)  # the process is gone: no clean close
    expect = bytearray(100 * MiB)
    expect[30 * MiB - 4096 : 30 * MiB - 4096 + len(data)] = data
    (tmp_path / "expect.raw").write_bytes(bytes(expect))
    for name in ("qemu-img.vhdx", "qemu-io.vhdx", "pyvirt.vhdx"):
        shutil.copy(p, tmp_path / name)
    # Read-only, both refuse and name the command that replays the log.
    r = qemu_img("info", str(p), check=False)
    assert r.returncode == 1 and "contains a log that needs to be replayed" in r.stderr
    with pytest.raises(ImageError, match="contains a log that needs to be replayed"):
        open_image(str(p))
    # qemu-img check -r all replays it; so does a writable open by qemu-io, and by pyvirt.
    qemu_img("check", "-r", "all", str(tmp_path / "qemu-img.vhdx"))
    qemu_io(tmp_path / "qemu-io.vhdx", "read 0 4096", fmt="vhdx")
    with open_image(str(tmp_path / "pyvirt.vhdx"), readonly=False) as mine:
        assert mine.replayed  # type: ignore[attr-defined]
    for name in ("qemu-img.vhdx", "qemu-io.vhdx", "pyvirt.vhdx"):
        assert_same(tmp_path / name, tmp_path / "expect.raw", fmt_a="vhdx", fmt_b="raw")
        assert_clean(tmp_path / name)


def test_journaled_updates_are_consistent_for_qemu(tmp_path: Path) -> None:
    p = tmp_path / "a.vhdx"
    create_image(str(p), "vhdx", 200 * MiB, block_size=MiB)
    expect = bytearray(200 * MiB)
    with open_image(str(p), readonly=False) as img:
        for k, at in enumerate((0, 7 * MiB + 100, 150 * MiB - 3, 199 * MiB)):
            piece = bytes([k + 1]) * (MiB + 5000)
            piece = piece[: 200 * MiB - at]
            img.write(at, piece)
            expect[at : at + len(piece)] = piece
            img.flush()  # each flush one journaled BAT update
    (tmp_path / "expect.raw").write_bytes(bytes(expect))
    assert qemu_img("info", str(p)).returncode == 0  # no log left to replay: opens read-only
    assert_clean(p)
    assert_same(p, tmp_path / "expect.raw", fmt_a="vhdx", fmt_b="raw")
