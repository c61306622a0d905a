"""The state an offline tool carries through one appliance launch: handle, OS, dry-run, and a change log.

Sysprep operations and customize steps change the guest only through :class:`Session`'s helpers, so
that ``--dry-run`` is honoured in one place and every change is recorded (for ``--json`` and tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyvirt.guest.appliance import Handle, log
from pyvirt.guest.inspect import OSInfo


@dataclass
class Session:
    """One launched appliance with the guest's file systems mounted at ``/``."""

    g: Handle
    info: OSInfo
    dry_run: bool = False
    network: bool = False
    quiet: bool = False
    start: float = field(default_factory=time.monotonic)
    changes: list[str] = field(default_factory=list)  # "verb path" lines, in order
    notes: list[str] = field(default_factory=list)  # things the user should know (random passwords...)

    def say(self, message: str) -> None:
        log(message, quiet=self.quiet, start=self.start)

    def record(self, verb: str, path: str) -> None:
        self.changes.append(f"{verb} {path}")

    # Queries (never change anything).
    def glob(self, pattern: str) -> list[str]:
        """Guest paths matching ``pattern`` (directories without glob_expand's trailing slash)."""
        return [p.rstrip("/") or "/" for p in self.g.glob_expand(pattern)]

    def exists(self, path: str) -> bool:
        return bool(self.g.exists(path))

    def is_file(self, path: str) -> bool:
        return bool(self.g.is_file(path))

    def is_dir(self, path: str) -> bool:
        return bool(self.g.is_dir(path))

    def read(self, path: str) -> str:
        data: bytes | str = self.g.read_file(path)
        return data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data

    def read_if_exists(self, path: str) -> str | None:
        return self.read(path) if self.is_file(path) else None

    # Changes (recorded; skipped in a dry run).
    def remove(self, path: str) -> None:
        """Remove a file or a whole tree; a symlink is removed, not followed."""
        self.record("remove", path)
        if not self.dry_run:
            self.g.rm_rf(path)

    def remove_glob(self, pattern: str) -> None:
        for path in self.glob(pattern):
            self.remove(path)

    def truncate(self, path: str) -> None:
        self.record("truncate", path)
        if not self.dry_run:
            self.g.truncate(path)

    def write(self, path: str, content: str | bytes, mode: int | None = None) -> None:
        """Write a whole file (created if missing); ``mode`` applies to new files and when given."""
        self.record("write", path)
        if self.dry_run:
            return
        existed = self.g.exists(path)
        self.g.write(path, content.encode() if isinstance(content, str) else content)
        if mode is not None:
            self.g.chmod(mode, path)
        elif not existed:
            self.g.chmod(0o644, path)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        if self.is_dir(path):
            return
        self.record("mkdir", path)
        if not self.dry_run:
            self.g.mkdir_p(path)
            self.g.chmod(mode, path)

    def symlink(self, target: str, link: str) -> None:
        self.record("link", f"{link} -> {target}")
        if not self.dry_run:
            self.g.ln_sf(target, link)

    def chown(self, uid: int, gid: int, path: str) -> None:
        if not self.dry_run:
            self.g.chown(uid, gid, path)
