"""systemd integration without libsystemd: readiness (``sd_notify``) and socket activation.

``Type=notify``: when ``$NOTIFY_SOCKET`` is set, :func:`notify` sends one datagram of ``KEY=VALUE``
lines to it (``READY=1`` once the API is served, ``STOPPING=1`` on the way out); a name starting with
``@`` is in the abstract namespace. Without the variable it does nothing.

Socket activation: when ``$LISTEN_PID`` is this process, ``$LISTEN_FDS`` listening sockets start at
descriptor 3 (``pyvirtd.socket``, ``pyvirtd-ro.socket`` and, for qemu+tls://,
``pyvirtd-tls.socket``). :func:`listen_fds` takes them (made close-on-exec, so that QEMU does not
inherit them) and unsets the variables, as ``sd_listen_fds(1)`` does. The daemon tells the sockets
apart by the path each is bound to (the TCP one is the TLS listener's).
"""

from __future__ import annotations

import os
import socket

SD_LISTEN_FDS_START = 3


def notify(*states: str) -> bool:
    """Send ``states`` (``READY=1``, ``STATUS=...``) to the service manager; whether one listens."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto("\n".join(states).encode(), target)
    return True


def listen_fds() -> list[socket.socket]:
    """The listening sockets passed by the service manager (none when not socket-activated)."""
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def bound_path(sock: socket.socket) -> str | None:
    """The filesystem path a Unix socket is bound to (None for another kind of socket)."""
    if sock.family != socket.AF_UNIX:
        return None
    name = sock.getsockname()
    return name if isinstance(name, str) and name else None
