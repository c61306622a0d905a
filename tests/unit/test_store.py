"""Atomic configuration writes: old or new content, never torn; no temporary files left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.store import atomic_symlink, atomic_write, remove, sweep_temp_files


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "etc/a.xml"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.xml"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.xml"
    atomic_write(target, b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.xml"]


def test_symlink_and_remove(tmp_path: Path) -> None:
    link = tmp_path / "autostart/web.xml"
    atomic_symlink("../web.xml", link)
    atomic_symlink("../web.xml", link)
    assert os.readlink(link) == "../web.xml"
    remove(link)
    remove(link)
    assert not link.exists()


def test_sweep_removes_what_killed_writers_left(tmp_path: Path) -> None:
    (tmp_path / "qemu/autostart").mkdir(parents=True)
    left = [
        tmp_path / "qemu/.vm1.xml.k3j_9x2a.tmp",  # atomic_write's
        tmp_path / "qemu/autostart/.vm1.xml.tmp",  # atomic_symlink's
    ]
    left[0].write_bytes(b"<domain")
    os.symlink("../vm1.xml", left[1])
    kept = [tmp_path / "qemu/vm1.xml", tmp_path / "qemu/notes.tmp", tmp_path / "qemu/.hidden"]
    for path in kept:
        path.write_bytes(b"x")
    assert sorted(sweep_temp_files(tmp_path)) == sorted(left)
    assert not any(os.path.lexists(p) for p in left)
    assert all(p.exists() for p in kept)
