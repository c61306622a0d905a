"""An HTTP server on the loopback that answers byte ranges (``Range: bytes=A-B``, 206 Partial Content),
as QEMU's curl block driver needs: the standard library's own serves whole files only. Given a user
and password, it answers only requests that carry them (HTTP Basic authentication), 401 otherwise."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    root: Path
    requests: list[str]
    authorization: str | None  # the Authorization header a request must carry

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _file(self) -> Path | None:
        path = (self.root / self.path.split("?")[0].lstrip("/")).resolve()
        return path if path.is_file() and path.is_relative_to(self.root) else None

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        self.requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}".strip())
        if self.authorization is not None and self.headers.get("Authorization") != self.authorization:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="pyvirt"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
        self.send_response(206 if match else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with path.open("rb") as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))


@contextmanager
def serving(root: Path, auth: tuple[str, str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Serve the files under ``root`` on 127.0.0.1: (port, the requests seen as 'METHOD PATH RANGE');
    with ``auth`` (user, password), to the requests that give them only."""
    requests: list[str] = []
    authorization = None
    if auth is not None:
        authorization = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    attrs = {"root": root.resolve(), "requests": requests, "authorization": authorization}
    handler = type("Handler", (_Handler,), attrs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
