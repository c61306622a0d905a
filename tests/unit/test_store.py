"""Atomic configuration writes: old or new content, never torn; no temporary files left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.store import atomic_symlink, atomic_write, remove


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
