"""Who QEMU runs as, and the files it is handed while it runs (libvirt's DAC driver, dynamic ownership).

A system daemon runs every QEMU as one unprivileged user and group (``user``/``group`` in pyvirtd.conf,
default ``pyvirt-qemu``, created on first start when missing) with the ``kvm`` group beside it for
``/dev/kvm``. While a domain runs, the files its QEMU opens by path are made accessible to that user,
and given back afterwards:

- files QEMU writes (disks, NVRAM, file chardevs) are chowned to the user and group;
- files QEMU only reads (read-only disks, CD-ROMs, backing files, loader, kernel, initrd) keep their
  owner; if the user cannot read one already, it gets the QEMU group with group read and no group write.

The owner, group and mode a file had before are kept in the domain's run record, so a restarted daemon
still gives them back; a file two running domains share is given back when the last one stops. A file
whose directory the QEMU user cannot traverse is refused with libvirt's message, rather than left for
QEMU to fail on. Permissions are judged from the mode bits (POSIX ACLs are not read).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import OperationFailed

log = logging.getLogger(__name__)

DEFAULT_USER = "pyvirt-qemu"
KVM_GROUP = "kvm"
NOLOGIN = "/usr/sbin/nologin"

Owner = list[int]  # [uid, gid, mode] a file had before it was handed over
R, W, X = 4, 2, 1


@dataclass(frozen=True)
class Identity:
    """The credentials QEMU runs with."""

    user: str
    group: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (kvm)

    @property
    def label(self) -> str:
        """libvirt's DAC label: ``+UID:+GID``."""
        return f"+{self.uid}:+{self.gid}"

    def ids(self) -> str:
        return f"uid:{self.uid}, gid:{self.gid}"


def resolve(user: str, group: str, *, create: bool = True) -> Identity | None:
    """The identity QEMU runs as; None when it keeps the daemon's (``user = "root"``).

    A missing user (and its group of the same name) is created as a system account without a login
    shell or a home when ``create`` is set; a group other than the user's own must exist."""
    if user == "root" and group in ("root", ""):
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        if not create:
            raise OperationFailed(f"QEMU user '{user}' does not exist") from None
        _create_user(user, group or user)
        pw = pwd.getpwnam(user)
    try:
        gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    except KeyError:
        raise OperationFailed(f"QEMU group '{group}' does not exist") from None
    if pw.pw_uid == 0:
        raise OperationFailed(f"QEMU user '{user}' is root; set user = \"root\" to run QEMU as root")
    extra: list[int] = []
    with contextlib.suppress(KeyError):
        kvm = grp.getgrnam(KVM_GROUP).gr_gid
        if kvm != gid:
            extra.append(kvm)
    return Identity(user, group or grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, gid, tuple(extra))


def _create_user(user: str, group: str) -> None:
    useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if useradd is None:
        raise OperationFailed(f"QEMU user '{user}' does not exist and useradd is not installed")
    argv = [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", NOLOGIN]
    try:
        grp.getgrnam(group)
        argv += ["--gid", group]
    except KeyError:
        if group != user:
            raise OperationFailed(f"QEMU group '{group}' does not exist") from None
        argv.append("--user-group")
    argv += ["--comment", "pyvirt QEMU processes", user]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 and done.returncode != 9:  # 9: created meanwhile by someone else
        raise OperationFailed(f"cannot create the QEMU user '{user}': {done.stderr.strip()}")
    log.info("created the system user %s for QEMU", user)


def allowed(st: os.stat_result, ident: Identity, want: int) -> bool:
    """Whether ``ident`` has the ``want`` bits (R/W/X) on a file with status ``st``."""
    if st.st_uid == ident.uid:
        bits = st.st_mode >> 6
    elif st.st_gid == ident.gid or st.st_gid in ident.groups:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def check_traversable(path: str, ident: Identity, what: str) -> None:
    """Refuse ``path`` when a directory on the way to it cannot be searched by ``ident``.

    ``what`` names the file as libvirt does ("storage file", "backing file '…' of storage file")."""
    seen: set[Path] = set()
    for candidate in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
        for parent in reversed(candidate.parents):
            if parent in seen:
                continue
            seen.add(parent)
            try:
                st = os.stat(parent)
            except OSError:
                continue  # the missing file is reported by whoever opens it
            if not allowed(st, ident, X):
                raise OperationFailed(
                    f"Cannot access {what} '{path}' (as {ident.ids()}): Permission denied "
                    f"(directory '{parent}' is not searchable by user '{ident.user}')"
                )


class Handover:
    """The files one domain's QEMU is given; what they were before is in :attr:`owners`."""

    def __init__(self, ident: Identity, held: Mapping[str, Owner]) -> None:
        self.ident = ident
        self.held = held  # files other running domains hold, with the owner they had before
        self.owners: dict[str, Owner] = {}
        self.access: dict[str, str] = {}  # path → "ro"/"rw": what this QEMU may open (qemu/landlock.py)

    def _remember(self, path: str, st: os.stat_result) -> None:
        if path not in self.owners:
            before = self.held.get(path)
            self.owners[path] = list(before) if before else [st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)]

    def writable(self, path: str, what: str) -> None:
        """Hand ``path`` (read and written by QEMU) to the QEMU user and group."""
        check_traversable(path, self.ident, what)
        self.access[path] = "rw"
        st = os.stat(path)
        if path in self.held or (st.st_uid, st.st_gid) != (self.ident.uid, self.ident.gid):
            self._remember(path, st)
            os.chown(path, self.ident.uid, self.ident.gid)

    def readable(self, path: str, what: str) -> None:
        """Make ``path`` readable (never writable) by the QEMU user."""
        check_traversable(path, self.ident, what)
        self.access.setdefault(path, "ro")
        st = os.stat(path)
        if path in self.held:
            self._remember(path, st)  # held for as long as any domain using it runs
        if allowed(st, self.ident, R):
            return
        self._remember(path, st)
        os.chown(path, -1, self.ident.gid)
        os.chmod(path, (stat.S_IMODE(st.st_mode) | stat.S_IRGRP) & ~stat.S_IWGRP)

    def undo(self) -> None:
        """Give back what this hand-over changed (a start that failed)."""
        restore(self.owners, self.held)


def restore(owners: Mapping[str, Owner], held: Iterable[str] = ()) -> None:
    """Give each file its owner, group and mode back, except those another running domain holds."""
    keep = set(held)
    for path, (uid, gid, mode) in owners.items():
        if path in keep:
            continue
        try:
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("cannot give %s back to %d:%d (mode %o): %s", path, uid, gid, mode, err.strerror)


def make_owned_file(path: Path, ident: Identity | None) -> None:
    """Create (empty) or truncate ``path`` for QEMU to write, owned by its user (a pidfile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        if ident is not None:
            os.fchown(fd, ident.uid, ident.gid)
    finally:
        os.close(fd)


def make_owned_dir(path: Path, ident: Identity | None) -> None:
    """Create ``path`` (where QEMU creates its channel sockets), owned by its user, mode 0750."""
    path.mkdir(mode=0o750, parents=True, exist_ok=True)
    if ident is not None:
        os.chown(path, ident.uid, ident.gid)
