"""Transports from client to daemon: HTTP/1.1 over a Unix socket (local), over ssh or TLS (remote).

Kept to C-level modules (``_socket``, and ``_json`` through :mod:`pyvirt.client.jsonwire`) on the
local path so that the CLI starts fast. One connection
carries any number of requests (keep-alive); a stream (:mod:`pyvirt.client.websocket`) takes a
connection of its own over.

No wait is unbounded: reaching the daemon takes at most ``connect_timeout`` seconds, and the daemon
may stay silent for at most ``read_timeout`` seconds (both in pyvirt.conf, see
:mod:`pyvirt.clientconf`), else :class:`~pyvirt.errors.TimedOut`. A long request is not cut short: the
daemon sends ``102 Processing`` every few seconds while it works (asked for with ``Expect:
102-processing``), and those are skipped here.
"""

from __future__ import annotations

import _socket
import time

from pyvirt.client import jsonwire
from pyvirt.errors import ConnectionFailed, PyvirtError, TimedOut, error_from_wire

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encode a path segment (urllib.parse.quote's job, without its import cost)."""
    allowed = _SAFE | set(safe)
    return "".join(c if c in allowed else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _setting(name: str) -> str:
    from pyvirt.clientconf import config_file

    return f"{name} in {config_file()}"


class Transport:
    """A byte stream to a daemon, with request/response framing on top; every read and write waits at
    most ``read_timeout`` seconds (None: no limit)."""

    def __init__(self, sock: _socket.socket, description: str, read_timeout: float | None = None) -> None:
        self.sock = sock
        self.description = description
        self.read_timeout = read_timeout
        self._buf = b""
        self.spent = False  # the daemon closes the connection after its last reply (Connection: close)
        sock.settimeout(read_timeout)

    def silence(self, what: str = "did not answer") -> TimedOut:
        """The error for a daemon that stayed silent (or took no data) for ``read_timeout`` seconds."""
        return TimedOut(
            f"the daemon at {self.description} {what} within {self.read_timeout:g} s: is it hung? "
            f"(the limit is {_setting('read_timeout')})"
        )

    def close(self) -> None:
        try:  # noqa: SIM105 - contextlib costs the CLI 0.4 ms of imports
            self.sock.close()
        except OSError:
            pass

    def _recv_more(self, size: int) -> None:
        try:
            chunk = self.sock.recv(size)
        except TimeoutError as err:
            raise self.silence() from err
        if not chunk:
            raise ConnectionFailed(f"the daemon at {self.description} closed the connection")
        self._buf += chunk

    def _recv_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            self._recv_more(65536)
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _recv_exactly(self, length: int) -> bytes:
        while len(self._buf) < length:
            self._recv_more(max(65536, length - len(self._buf)))
        data, self._buf = self._buf[:length], self._buf[length:]
        return data

    def send_request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        payload = b"" if body is None else jsonwire.dumps(body).encode()
        # Expect: the daemon's keepalive beats while the request runs (see read_response).
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: pyvirtd",
            "Expect: 102-processing",
            f"Content-Length: {len(payload)}",
        ]
        if payload:
            lines.append("Content-Type: application/json")
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        except TimeoutError as err:
            raise self.silence("took no request") from err
        except OSError as err:
            raise ConnectionFailed(f"cannot send to the daemon at {self.description}: {err}") from err

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """The reply's status, headers and body; interim replies (``102 Processing``) are skipped."""
        while True:
            try:
                status, headers = self._read_head()
                if 100 <= status < 200:
                    if status == 101:
                        return status, headers, b""
                    continue  # an interim reply: the daemon is still at work
                return status, headers, self._recv_exactly(int(headers.get("content-length", "0") or 0))
            except OSError as err:
                raise ConnectionFailed(f"cannot read from the daemon at {self.description}: {err}") from err

    def _read_head(self) -> tuple[int, dict[str, str]]:
        lines = self._recv_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError) as err:
            raise ConnectionFailed(f"malformed reply from {self.description}: {lines[0]!r}") from err
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return status, headers

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.send_request(method, path, body)
        status, headers, raw = self.read_response()
        self.spent = headers.get("connection", "").lower() == "close"
        if status < 400 and headers.get("content-type", "").startswith("text/plain"):
            return raw.decode()  # the metrics' text format
        data = jsonwire.loads(raw) if raw else None
        if status >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise error_from_wire(str(err.get("code", "internal")), str(err.get("message", f"HTTP {status}")))
        return data

    def upgrade(self, path: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
        """Ask to switch this connection's protocol (``101``): the reply's headers, and the bytes
        already received past them; the daemon's error when it refuses."""
        self.send_request("GET", path, headers=headers)
        status, reply, raw = self.read_response()
        if status != 101:
            data = jsonwire.loads(raw) if raw else {}
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise error_from_wire(str(err.get("code", "internal")), str(err.get("message", f"HTTP {status}")))
        leftover, self._buf = self._buf, b""
        return reply, leftover


def connect_unix(path: str) -> Transport:
    """A transport on the daemon's Unix socket, with the timeouts of pyvirt.conf."""
    from pyvirt.clientconf import timeouts

    connect_timeout, read_timeout = timeouts()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        _connect_unix(sock, path, connect_timeout)
    except TimeoutError as err:
        sock.close()
        raise TimedOut(
            f"Failed to connect socket to '{path}': the daemon accepted no connection within "
            f"{connect_timeout:g} s: is it hung? (the limit is {_setting('connect_timeout')})"
        ) from err
    except FileNotFoundError as err:
        sock.close()
        raise ConnectionFailed(
            f"Failed to connect socket to '{path}': No such file or directory (is pyvirtd running?)"
        ) from err
    except PermissionError as err:
        sock.close()
        raise ConnectionFailed(f"Failed to connect socket to '{path}': Permission denied") from err
    except OSError as err:
        sock.close()
        raise ConnectionFailed(f"Failed to connect socket to '{path}': {err.strerror}") from err
    return Transport(sock, path, read_timeout)


def _connect_unix(sock: _socket.socket, path: str, timeout: float | None) -> None:
    """Connect, waiting at most ``timeout`` seconds while the daemon's backlog is full (TimeoutError).

    A Unix socket does not wait for room in the backlog as TCP does: a socket with a timeout gets
    EAGAIN at once, so the wait is a retry here.
    """
    if timeout is None:
        sock.connect(path)
        return
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError from None
            time.sleep(0.02)


__all__ = ["ConnectionFailed", "PyvirtError", "Transport", "connect_unix"]
