"""Atomic configuration files: a kill at any moment leaves the old file or the new one, never a torn one.

Write to a temporary file in the same directory, fsync it, rename it over the target, then fsync the
directory so that the rename itself is durable. A kill between the two leaves the temporary file
(``.NAME.XXXXXXXX.tmp``); the daemon sweeps them from its directories when it starts
(:func:`sweep_temp_files`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from pyvirt.errors import OperationFailed


class WriteFailed(OperationFailed, OSError):
    """A file could not be written (a full disk, say): a pyvirt error that names the file and the cause,
    so the daemon answers with it rather than an internal error, and still an OSError for callers."""

    def __init__(self, path: Path, err: OSError) -> None:
        super().__init__(f"cannot write '{path}': {err.strerror or err}")
        self.errno = err.errno
        self.strerror = err.strerror


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and, unless ``durable=False``, durably.

    Run-time state (under /run, a tmpfs that does not survive a reboot anyway) needs atomicity only:
    skipping its fsyncs keeps them off the domain start path.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WriteFailed(path, err) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if durable:
                os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise WriteFailed(path, err) from err
        raise
    if durable:
        fsync_dir(path.parent)


def is_temp_file(name: str) -> bool:
    """True for the names :func:`atomic_write` and :func:`atomic_symlink` give their temporary files."""
    return name.startswith(".") and name.endswith(".tmp") and len(name) > len("..tmp")


def sweep_temp_files(*directories: Path) -> list[Path]:
    """Remove the temporary files a killed writer left under ``directories`` (recursively); returns them.

    Only for directories no other process writes into while this runs (the daemon's own, at start)."""
    removed: list[Path] = []
    for directory in directories:
        for parent, _dirs, files in os.walk(directory):
            for name in files:
                if is_temp_file(name):
                    path = Path(parent) / name
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
    return removed


def fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_symlink(target: str, link: Path) -> None:
    """Create or replace the symlink ``link`` → ``target`` atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.rename(tmp, link)
    fsync_dir(link.parent)


def remove(path: Path) -> None:
    """Remove ``path`` if present, durably."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
