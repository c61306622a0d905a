"""WebSocket streams of the daemon's HTTP layer over a real Unix socket, with a third-party client
(the ``websockets`` library) and with pyvirt's own (:mod:`pyvirt.client.websocket`)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, unix_connect

from pyvirt.client.transport import connect_unix
from pyvirt.client.websocket import WebSocket
from pyvirt.daemon.http import Request, Router, Stream
from pyvirt.errors import ConnectionFailed, InvalidState
from tests.support.rawhttp import connect, get, one, read_all, serve

T = TypeVar("T")


class StreamApp:
    def __init__(self) -> None:
        self.router = Router()
        self.router.add("GET", "/v1/echo", stream=self.echo)
        self.router.add("GET", "/v1/feed", stream=self.feed)
        self.router.add("GET", "/v1/busy", stream=self.busy)
        self.router.add("GET", "/v1/fail", stream=self.fail)
        self.router.add("GET", "/v1/console", stream=self.echo, mutating=True)

    async def echo(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        while (message := await stream.receive()) is not None:
            await stream.send(message)

    async def feed(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        for n in range(3):
            await stream.send(f"message {n}")

    async def busy(self, req: Request, stream: Stream) -> None:
        raise InvalidState("operation failed: Active console session exists for this domain")

    async def fail(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        raise RuntimeError("secret detail of the failure")


def run(tmp_path: Path, client: Callable[[str], T], *, app: StreamApp, **options: Any) -> T:
    return serve(tmp_path, app.router, client, **options)


def third_party(path: str, target: str, **options: Any) -> ClientConnection:
    return unix_connect(path, uri=f"ws://pyvirtd{target}", open_timeout=30, **options)


def test_a_standard_client_exchanges_messages(tmp_path: Path) -> None:
    def client(path: str) -> list[Any]:
        with third_party(path, "/v1/echo") as ws:
            ws.send("text ünïcode")
            text = ws.recv(timeout=30)
            ws.send(b"\x00\x01binary")
            binary = ws.recv(timeout=30)
            ws.send([b"frag", b"mented"])  # one message in two frames
            fragmented = ws.recv(timeout=30)
            pong = ws.ping(b"are you there").wait(30)
            return [text, binary, fragmented, pong]

    assert run(tmp_path, client, app=StreamApp()) == ["text ünïcode", b"\x00\x01binary", b"fragmented", True]


def test_the_server_ends_a_stream_with_a_close_frame(tmp_path: Path) -> None:
    def client(path: str) -> tuple[list[Any], int | None]:
        with third_party(path, "/v1/feed") as ws:
            messages = list(ws)  # iteration ends at a normal close
            return messages, ws.close_code

    assert run(tmp_path, client, app=StreamApp()) == (["message 0", "message 1", "message 2"], 1000)


def test_a_message_over_the_limit_closes_with_1009(tmp_path: Path) -> None:
    def client(path: str) -> int | None:
        with third_party(path, "/v1/echo", max_size=None) as ws:
            ws.send(b"x" * ((1 << 20) + 1))
            with pytest.raises(ConnectionClosedError) as closed:
                ws.recv(timeout=30)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert run(tmp_path, client, app=StreamApp()) == 1009


def test_refusals_before_the_upgrade_are_http_errors(tmp_path: Path) -> None:
    def refused(target: str) -> Any:
        def client(path: str) -> tuple[int, Any]:
            with pytest.raises(InvalidStatus) as err:
                third_party(path, target)
            return err.value.response.status_code, err.value.response.body

        return client

    app = StreamApp()
    status, body = run(tmp_path, refused("/v1/busy"), app=app)
    assert status == 409 and b"Active console session exists" in body
    status, body = run(tmp_path, refused("/v1/console"), app=app, readonly=True)
    assert status == 403 and b"read-only" in body
    assert run(tmp_path, refused("/v1/nowhere"), app=app)[0] == 404


def test_an_internal_error_after_the_upgrade_closes_with_1011_and_no_detail(tmp_path: Path) -> None:
    def client(path: str) -> tuple[int | None, str]:
        with third_party(path, "/v1/fail") as ws, pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=30)
        rcvd = closed.value.rcvd
        assert rcvd is not None
        return rcvd.code, rcvd.reason

    code, reason = run(tmp_path, client, app=StreamApp())
    assert code == 1011 and "internal error (request " in reason and "secret" not in reason


def test_handshake_mistakes(tmp_path: Path) -> None:
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    good = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    cases = [
        ("", 426, {"upgrade": "websocket"}),  # a plain GET on a stream route
        (good + key + "Sec-WebSocket-Version: 8\r\n", 426, {"sec-websocket-version": "13"}),
        (good + "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", 400, {}),
        (good + key + "Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n", 400, {}),
    ]
    for extra, status, headers in cases:

        def client(path: str, extra: str = extra) -> tuple[int, dict[str, str], Any]:
            with connect(path) as sock:
                sock.sendall(get("/v1/echo", extra))
                sock.shutdown(socket.SHUT_WR)
                return one(read_all(sock))

        got, got_headers, body = run(tmp_path, client, app=StreamApp())
        assert got == status, (extra, body)
        assert headers.items() <= got_headers.items(), (extra, got_headers)


def test_our_client(tmp_path: Path) -> None:
    def client(path: str) -> list[Any]:
        out: list[Any] = []
        with WebSocket(connect_unix(path), "/v1/echo") as ws:
            ws.send(b"\xffbytes")
            out.append(ws.receive(timeout=30))
            ws.send("text")
            out.append(ws.receive(timeout=30))
            with pytest.raises(TimeoutError):
                ws.receive(timeout=0.05)  # nothing was sent: nothing comes
        with WebSocket(connect_unix(path), "/v1/feed") as ws:
            out.append([ws.receive(timeout=30) for _ in range(4)])  # three, then the end (None)
        with pytest.raises(InvalidState, match="Active console session"):
            WebSocket(connect_unix(path), "/v1/busy")
        with WebSocket(connect_unix(path), "/v1/fail") as ws, pytest.raises(ConnectionFailed) as err:
            ws.receive(timeout=30)
        out.append(str(err.value))
        return out

    echoed, text, fed, failure = run(tmp_path, client, app=StreamApp())
    assert (echoed, text) == (b"\xffbytes", "text")
    assert fed == ["message 0", "message 1", "message 2", None]
    assert "ended the stream: internal error (request " in failure
