"""A daemon's HTTP layer served on a real Unix socket for unit tests, and a raw client for it: bytes in,
responses split into (status, headers, JSON body)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyvirt.daemon.http import HTTPServer, Router

T = TypeVar("T")
GUARD = 30.0  # a socket timeout that only turns a hang into a failure


def serve(
    tmp_path: Path, router: Router, client: Callable[[str], T], *, readonly: bool = False, **limits: Any
) -> T:
    """Serve ``router`` on a Unix socket and run the blocking ``client(socket_path)`` in a thread."""

    async def main() -> T:
        server = HTTPServer(router, **limits)
        path = str(tmp_path / "s")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.listen()
        await server.listen_unix(sock, readonly=readonly)
        try:
            return await asyncio.to_thread(client, path)
        finally:
            await server.close()
            Path(path).unlink()

    return asyncio.run(main())


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(GUARD)
    sock.connect(path)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def replies(data: bytes) -> list[tuple[int, dict[str, str], Any]]:
    """Split a byte stream of responses into (status, headers, JSON body)."""
    out = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body, data = data[:length], data[length:]
        out.append((status, headers, json.loads(body) if body else None))
    return out


def one(data: bytes) -> tuple[int, dict[str, str], Any]:
    (reply,) = replies(data)
    return reply


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: pyvirtd\r\n{extra}\r\n".encode()
