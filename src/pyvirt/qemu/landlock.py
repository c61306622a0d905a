"""Landlock: each QEMU confined to its own files, so that QEMUs running as the same user still cannot
open one another's disks (what sVirt's per-domain labels give libvirt).

The daemon builds a ruleset (system directories read-only, ``/dev`` read-write, and the domain's own
files: disks, backing files, NVRAM, file chardevs, its channel directory, its pidfile); the child
enforces it between fork and exec, after dropping its credentials. A kernel without Landlock leaves
the ownership and mode bits as the only fence, and the daemon says so once.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # x86_64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
TRUNCATE = 1 << 14  # ABI 3
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE

READ = READ_FILE | READ_DIR | EXECUTE
ALL = (1 << 13) - 1  # the rights of ABI 1 (every one but REFER, which is denied when unhandled)
# Read-only for every QEMU: its libraries, firmware, ROMs, keymaps and modules, and the host's facts.
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys")
SYSTEM_RW = ("/dev",)  # /dev/kvm, /dev/net/tun, ptys, /dev/null...; device nodes keep their modes

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi() -> int:
    """The kernel's Landlock ABI version; 0 without Landlock."""
    if os.uname().machine != "x86_64":
        return 0
    version = _libc.syscall(
        _CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(int(version), 0)


def build(access: Mapping[str, str]) -> int | None:
    """A ruleset descriptor allowing the system paths and ``access`` (path → ``ro``, ``rw``, ``dir``, a
    directory QEMU creates sockets and files in, such as file-backed guest memory, which it sizes with
    ftruncate, or ``rodir``, a tree it reads); None without Landlock."""
    version = abi()
    if version < 1:
        return None
    handled = ALL | (TRUNCATE if version >= 3 else 0)
    attr = struct.pack("=Q", handled)
    fd = _libc.syscall(_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for path in SYSTEM_READ:
            _allow(fd, path, READ, handled)
        for path in SYSTEM_RW:
            _allow(fd, path, ALL, handled)
        for path, kind in access.items():
            rights = {
                "ro": READ_FILE,
                "rw": READ_FILE | WRITE_FILE | TRUNCATE,
                "dir": ALL | TRUNCATE,
                "rodir": READ_FILE | READ_DIR,  # a tree QEMU only reads (a vvfat disk's directory)
            }[kind]
            _allow(fd, path, rights, handled)
    except BaseException:
        os.close(fd)
        raise
    return int(fd)


def _allow(ruleset: int, path: str, rights: int, handled: int) -> None:
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # /lib32 and the like, on hosts without them
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        rule = struct.pack("=Qi", rights & handled, target)
        if _libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), rule, 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule {path}: {os.strerror(err)}")
    finally:
        os.close(target)


def enforcer(ruleset: int) -> Callable[[], None]:
    """What the child calls before exec (after its last privileged step) to confine itself."""
    prctl, syscall = _libc.prctl, _libc.syscall

    def enforce() -> None:
        if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(errno.EPERM, "landlock_restrict_self failed")

    return enforce
