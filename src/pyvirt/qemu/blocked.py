"""What a process that stopped answering is waiting for, from /proc and the kernel's socket diagnostics:
the system call it sleeps in and the UNIX sockets it holds (their peers' paths, or the paths it listens
on). Said in the error of a QEMU that never opened its monitor: one blocked on a chardev or vhost-user
backend that accepted its connection and never answers stays in that wait before its monitor starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct

# x86_64 system call numbers a process waits in.
_SYSCALLS = {
    0: "read",
    7: "poll",
    17: "pread64",
    19: "readv",
    23: "select",
    35: "nanosleep",
    42: "connect",
    43: "accept",
    45: "recvfrom",
    47: "recvmsg",
    61: "wait4",
    202: "futex",
    230: "clock_nanosleep",
    232: "epoll_wait",
    270: "pselect6",
    271: "ppoll",
    281: "epoll_pwait",
    288: "accept4",
}
_NETLINK_SOCK_DIAG = 4  # not in Python's socket module
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_UDIAG_SHOW_NAME, _UDIAG_SHOW_PEER = 0x1, 0x4
_UNIX_DIAG_NAME, _UNIX_DIAG_PEER = 0, 2
_TCP_LISTEN = 10


def syscall(pid: int) -> str | None:
    """The system call ``pid`` sleeps in (``ppoll``, ``recvmsg``...), or None when it runs or is unknown."""
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            first = fh.read().split()
    except OSError:
        return None
    if not first or not first[0].isdigit():
        return None  # "running", or no access
    return _SYSCALLS.get(int(first[0]), f"system call {first[0]}")


def _unix_diag(ino: int) -> tuple[str | None, int | None, int] | None:
    """(bound path, peer inode, state) of the UNIX socket ``ino``; None if it is no UNIX socket."""
    req = struct.pack(
        "=BBHIIIII",
        socket.AF_UNIX,
        0,
        0,
        0xFFFFFFFF,
        ino,
        _UDIAG_SHOW_NAME | _UDIAG_SHOW_PEER,
        0xFFFFFFFF,
        0xFFFFFFFF,
    )
    header = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(header + req)
        data = nl.recv(65536)
    if len(data) < 16 + 16:
        return None
    _length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data)
    if kind == _NLMSG_ERROR:
        return None
    _family, _type, state, _pad, _ino = struct.unpack_from("=BBBBI", data, 16)
    name: str | None = None
    peer: int | None = None
    offset = 16 + 16
    while offset + 4 <= len(data):
        rta_len, rta_type = struct.unpack_from("=HH", data, offset)
        if rta_len < 4:
            break
        payload = data[offset + 4 : offset + rta_len]
        if rta_type == _UNIX_DIAG_NAME and payload:
            name = (
                ("@" + payload[1:].decode(errors="replace"))
                if payload[0] == 0
                else os.fsdecode(payload.rstrip(b"\0"))
            )
        elif rta_type == _UNIX_DIAG_PEER and len(payload) >= 4:
            peer = struct.unpack_from("=I", payload)[0]
        offset += (rta_len + 3) & ~3
    return name, peer, state


def unix_sockets(pid: int, skip: frozenset[str] = frozenset()) -> list[str]:
    """The UNIX sockets ``pid`` holds, said as ``connected to PATH`` (the peer's bound path) or
    ``listening on PATH``, sorted; paths in ``skip`` (the monitor's) left out."""
    found: set[str] = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fd_dir}/{fd}")
                if not target.startswith("socket:["):
                    continue
                mine = _unix_diag(int(target[8:-1]))
                if mine is None:
                    continue
                name, peer, state = mine
                if state == _TCP_LISTEN and name:
                    if name not in skip:
                        found.add(f"listening on {name}")
                elif peer:
                    theirs = _unix_diag(peer)
                    if theirs is not None and theirs[0] and theirs[0] not in skip:
                        found.add(f"connected to {theirs[0]}")
    return sorted(found)


def describe(pid: int, skip: frozenset[str] = frozenset()) -> str:
    """``waiting in ppoll, connected to /run/vhu.sock``; empty when nothing is known."""
    parts = []
    call = syscall(pid)
    if call is not None:
        parts.append(f"waiting in {call}")
    parts.extend(unix_sockets(pid, skip))
    return ", ".join(parts)
