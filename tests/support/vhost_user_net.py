"""A minimal vhost-user net backend for tests: it listens on a UNIX socket, answers the requests QEMU
sends while it starts a ``vhost-user`` netdev (features, queue state) and records every request.

It moves no packets and serves no rings (QEMU 7.2 ends with SIGSEGV once a guest's driver starts the
NIC on it): a test of what QEMU and the daemon do at start, with no DPDK or OVS on the machine. The
protocol is QEMU's docs/interop/vhost-user.rst: a 12-byte header (request, flags, payload size), the
payload, descriptors as SCM_RIGHTS.
"""

from __future__ import annotations

import array
import os
import socket
import struct
import threading
from pathlib import Path

GET_FEATURES, SET_OWNER, SET_MEM_TABLE, GET_VRING_BASE = 1, 3, 5, 11
GET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 17
NAMES = {1: "GET_FEATURES", 3: "SET_OWNER", 5: "SET_MEM_TABLE", 11: "GET_VRING_BASE"}
VERSION, REPLY = 0x1, 0x4
# VIRTIO_F_VERSION_1 and VIRTIO_NET_F_MRG_RXBUF; no VHOST_USER_F_PROTOCOL_FEATURES, so QEMU asks no more.
FEATURES = (1 << 32) | (1 << 15)


class Backend:
    """Listens on ``path`` from construction, serving in a thread; ``requests``: their names, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o777)  # QEMU runs as its own user
        self._server.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()

    def _serve(self) -> None:
        """One connection after the other (the daemon's probe that a backend listens comes first)."""
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        while True:
            header, fds = _recv(conn, 12)
            for fd in fds:
                os.close(fd)
            if len(header) < 12:
                return
            request, _flags, size = struct.unpack("<III", header)
            payload = _exact(conn, size) if size else b""
            self.requests.append(NAMES.get(request, str(request)))
            reply = _reply(request, payload)
            if reply is not None:
                conn.sendall(struct.pack("<III", request, VERSION | REPLY, len(reply)) + reply)


def _reply(request: int, payload: bytes) -> bytes | None:
    if request == GET_FEATURES:
        return struct.pack("<Q", FEATURES)
    if request in (GET_PROTOCOL_FEATURES, GET_QUEUE_NUM):
        return struct.pack("<Q", 1 if request == GET_QUEUE_NUM else 0)
    if request == GET_VRING_BASE:
        return payload[:4] + struct.pack("<I", 0)  # the ring's index, its next descriptor 0
    return None


def _recv(conn: socket.socket, size: int) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(size, socket.CMSG_SPACE(8 * fds.itemsize))
    for level, kind, cdata in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    if data and len(data) < size:
        data += _exact(conn, size - len(data))
    return data, list(fds)


def _exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
