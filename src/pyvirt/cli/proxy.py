"""``pyvirt proxy``: bridge stdin/stdout to the local daemon's socket (the far end of qemu+ssh://).

Like libvirt's virt-ssh-helper: ssh runs it on the remote host; it connects to the daemon, greets
with one line (``pyvirt-proxy 1``) so the client knows the daemon was reached, then copies bytes both
ways until either side closes.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pyvirt proxy", description=__doc__)
    parser.add_argument("--mode", choices=("system", "session"), default=None)
    parser.add_argument("--socket", help="daemon socket path (default: the mode's socket)")
    parser.add_argument("--readonly", action="store_true", help="use the read-only socket")
    args = parser.parse_args(argv)
    from pyvirt.paths import default_mode, layout_for

    layout = layout_for(args.mode or default_mode())
    path = args.socket or str(layout.socket_ro if args.readonly else layout.socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sys.stderr.write(
            f"error: pyvirt proxy: cannot connect to {path}: {err.strerror} (is pyvirtd running?)\n"
        )
        return 1
    out_fd, in_fd = sys.stdout.fileno(), sys.stdin.fileno()
    os.write(out_fd, b"pyvirt-proxy 1\n")
    open_in = True
    while True:
        watch = [sock, in_fd] if open_in else [sock]
        readable, _, _ = select.select(watch, [], [])
        if sock in readable:
            data = sock.recv(65536)
            if not data:
                return 0
            view = memoryview(data)
            while view:
                view = view[os.write(out_fd, view) :]
        if open_in and in_fd in readable:
            data = os.read(in_fd, 65536)
            if not data:
                open_in = False
                sock.shutdown(socket.SHUT_WR)
                continue
            sock.sendall(data)
