"""``pyvirt proxy``: bridge stdin/stdout to the local daemon's socket (the far end of qemu+ssh://).

Like libvirt's virt-ssh-helper: ssh runs it on the remote host; it connects to the daemon, greets
with one line (``pyvirt-proxy 1``) so the client knows the daemon was reached, then copies bytes both
ways until either side closes. With ``--readonly`` it uses the read-only socket: the mode's, or
``PATH-ro`` beside a ``--socket PATH`` (as ``pyvirt-sock-ro`` sits beside ``pyvirt-sock``), so the
daemon itself refuses every change.
"""

from __future__ import annotations

import _socket
import os
import select
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def socket_path(mode: str | None, explicit: str | None, readonly: bool) -> str:
    if explicit:
        if readonly and not explicit.endswith("-ro"):
            return explicit + "-ro"
        return explicit
    from pyvirt.client.api import local_socket

    return local_socket(mode or ("system" if os.geteuid() == 0 else "session"), readonly)


def main(opts: GlobalOptions, a: Parsed) -> int:
    """Options as declared in :mod:`pyvirt.cli.commands`; the global ``-r`` is ``--readonly``."""
    mode = a.opt("mode")
    if mode not in (None, "system", "session"):
        sys.stderr.write(f"error: pyvirt proxy: bad mode '{mode}'\n")
        return 2
    explicit = a.opt("socket")
    readonly = a.flag("readonly") or opts.readonly
    path = socket_path(mode, explicit, readonly)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sys.stderr.write(
            f"error: pyvirt proxy: cannot connect to {path}: {err.strerror} (is pyvirtd running?)\n"
        )
        return 1
    return pump(sock, sys.stdin.fileno(), sys.stdout.fileno())


def pump(sock: _socket.socket, in_fd: int, out_fd: int) -> int:
    os.write(out_fd, b"pyvirt-proxy 1\n")
    open_in = True
    while True:
        watch: list[_socket.socket | int] = [sock, in_fd] if open_in else [sock]
        readable, _, _ = select.select(watch, [], [])
        if sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return 0
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(out_fd, view) :]
            except BrokenPipeError:
                return 0
        if open_in and in_fd in readable:
            data = os.read(in_fd, 65536)
            if not data:
                open_in = False
                sock.shutdown(_socket.SHUT_WR)
                continue
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return 0
