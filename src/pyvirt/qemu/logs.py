"""QEMU log files capped and rotated, as virtlogd's ``max_size`` and ``max_backups`` do.

A QEMU writes its stdout and stderr straight into ``LOG_DIR/NAME.log`` (opened ``O_APPEND``), so that it
needs no daemon to log and outlives one. A file is therefore rotated by copy and truncate (logrotate's
``copytruncate``): its bytes go to ``NAME.log.1`` (older ones move to ``.2`` ... ``.max_backups``, the
oldest is dropped), and the file is cut to zero; QEMU's next write, being an append, lands at the new
start. Output written between the copy and the cut is lost, which is why the window is kept to one
``copy_file_range``.

The daemon checks a domain's log before each start and every :data:`CHECK_INTERVAL` seconds; so a file
may pass ``max_size`` by what QEMU writes in that interval. ``max_backups = 0`` keeps no old file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHECK_INTERVAL = 10.0


@dataclass(frozen=True)
class LogLimits:
    max_size: int = 2 * 1024 * 1024  # virtlogd's defaults
    max_backups: int = 3


# The daemon's limits (pyvirtd.conf's max_size and max_backups), set once at start.
limits = LogLimits()
_rotating = threading.Lock()  # a start and the periodic check may look at one file at once


def configure(max_size: int, max_backups: int) -> None:
    global limits
    limits = LogLimits(max_size, max_backups)


def backup(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def rotate_if_needed(path: Path, cap: LogLimits | None = None) -> bool:
    """Rotate ``path`` if it has reached ``max_size``; whether it did."""
    with _rotating:
        return _rotate(path, cap or limits)


def _rotate(path: Path, cap: LogLimits) -> bool:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size < cap.max_size:
        return False
    if cap.max_backups:
        with contextlib.suppress(FileNotFoundError):
            backup(path, cap.max_backups).unlink()
        for n in range(cap.max_backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                backup(path, n).rename(backup(path, n + 1))
        _copy(path, backup(path, 1))
    os.truncate(path, 0)
    log.info("rotated %s at %d bytes (max_size %d)", path, size, cap.max_size)
    return True


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        os.fchmod(dst.fileno(), os.fstat(src.fileno()).st_mode & 0o777)
        length = os.fstat(src.fileno()).st_size
        while length > 0:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), length)
            if copied == 0:  # the file shrank meanwhile
                break
            length -= copied


def rotate_all(log_dir: Path, cap: LogLimits | None = None) -> list[Path]:
    """Rotate every domain log in ``log_dir`` that reached ``max_size``; the ones rotated."""
    try:
        logs = sorted(log_dir.glob("*.log"))
    except OSError:
        return []
    rotated = []
    for path in logs:
        try:
            if rotate_if_needed(path, cap):
                rotated.append(path)
        except OSError as err:
            log.warning("cannot rotate %s: %s", path, err)
    return rotated
