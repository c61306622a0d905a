"""QEMU log rotation by copy and truncate: a writer holding the file open in append mode (as QEMU does)
goes on at the start of the cut file; backups shift and stop at max_backups."""

from __future__ import annotations

import os
from pathlib import Path

from pyvirt.qemu.logs import LogLimits, rotate_all, rotate_if_needed


def test_a_full_log_is_copied_and_cut_under_an_open_appender(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    qemu = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(qemu, b"a" * 100)
        assert not rotate_if_needed(path, LogLimits(max_size=101, max_backups=2))
        os.write(qemu, b"b")
        assert rotate_if_needed(path, LogLimits(max_size=101, max_backups=2))
        assert (tmp_path / "web.log.1").read_bytes() == b"a" * 100 + b"b"
        assert (tmp_path / "web.log.1").stat().st_mode & 0o777 == 0o640
        assert path.stat().st_size == 0
        os.write(qemu, b"after")  # QEMU's next line: at the start, no hole before it
        assert path.read_bytes() == b"after"
    finally:
        os.close(qemu)


def test_backups_shift_and_the_oldest_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    cap = LogLimits(max_size=1, max_backups=2)
    for n in range(1, 5):
        path.write_text(f"run {n}\n")
        assert rotate_if_needed(path, cap)
    assert (tmp_path / "web.log.1").read_text() == "run 4\n"
    assert (tmp_path / "web.log.2").read_text() == "run 3\n"
    assert not (tmp_path / "web.log.3").exists()


def test_no_backups_only_cuts(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text("x" * 10)
    assert rotate_if_needed(path, LogLimits(max_size=5, max_backups=0))
    assert path.read_text() == "" and sorted(p.name for p in tmp_path.iterdir()) == ["web.log"]


def test_rotate_all_takes_only_full_domain_logs(tmp_path: Path) -> None:
    (tmp_path / "big.log").write_text("x" * 50)
    (tmp_path / "small.log").write_text("x" * 5)
    (tmp_path / "big.log.1").write_text("x" * 50)  # a backup is not rotated itself
    assert rotate_all(tmp_path, LogLimits(max_size=10, max_backups=3)) == [tmp_path / "big.log"]
    assert (tmp_path / "big.log.2").exists() and (tmp_path / "small.log").read_text() == "x" * 5
    assert rotate_all(tmp_path / "absent", LogLimits()) == []
