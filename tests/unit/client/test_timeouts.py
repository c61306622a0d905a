"""The client's connect and read timeouts against real sockets that never answer, and the daemon's
keepalive that lets long requests and quiet streams outlive the read timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from wsproto.utilities import generate_accept_token

from pyvirt import pki
from pyvirt.client.tls import open_tls
from pyvirt.client.transport import connect_unix
from pyvirt.client.websocket import WebSocket
from pyvirt.daemon.http import Request, Router, Stream
from pyvirt.errors import InvalidArgument, TimedOut
from pyvirt.uri import parse_uri
from tests.support.rawhttp import connect, read_all, serve

# Long enough for a beat every 0.1 s never to miss it on a loaded machine; short enough to wait for.
READ_TIMEOUT = 2
WORK = 3.0  # longer than READ_TIMEOUT: without keepalive, the client gives up first


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "pyvirt.conf"
    path.write_text(f"connect_timeout = 1\nread_timeout = {READ_TIMEOUT}\n")
    monkeypatch.setenv("PYVIRT_CONF", str(path))
    yield path


@pytest.fixture
def mute(tmp_path: Path) -> Iterator[str]:
    """A listening Unix socket whose connections are accepted by the kernel and never answered."""
    path = str(tmp_path / "mute")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(8)
        yield path


def test_a_daemon_that_never_answers_times_out(conf: Path, mute: str) -> None:
    transport = connect_unix(mute)
    with pytest.raises(TimedOut) as err:
        transport.request("GET", "/v1/version")
    transport.close()
    assert f"the daemon at {mute} did not answer within {READ_TIMEOUT} s" in str(err.value)
    assert f"read_timeout in {conf}" in str(err.value)


def test_a_daemon_that_accepts_no_connection_times_out(conf: Path, tmp_path: Path) -> None:
    path = str(tmp_path / "full")
    with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as first:
        listener.bind(path)
        listener.listen(0)
        first.connect(path)  # the backlog of 0 holds this one; a second has no room
        with pytest.raises(TimedOut) as err:
            connect_unix(path)
    assert "accepted no connection within 1 s" in str(err.value)
    assert f"connect_timeout in {conf}" in str(err.value)


def test_no_limit_when_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str) -> None:
    path = tmp_path / "pyvirt.conf"
    path.write_text("read_timeout = 0\n")
    monkeypatch.setenv("PYVIRT_CONF", str(path))
    transport = connect_unix(mute)
    assert transport.read_timeout is None and transport.sock.gettimeout() is None
    transport.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("read_timeout = -1\n", "read_timeout must be a whole number of seconds"),
        ('connect_timeout = "soon"\n', "connect_timeout must be a whole number of seconds"),
        ("read_timout = 5\n", "unknown setting 'read_timout'"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mute: str, text: str, message: str
) -> None:
    path = tmp_path / "pyvirt.conf"
    path.write_text(text)
    monkeypatch.setenv("PYVIRT_CONF", str(path))
    with pytest.raises(InvalidArgument) as err:
        connect_unix(mute)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_tls_listener_that_never_handshakes_times_out(conf: Path, tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    pki.issue_client(tmp_path, "admin")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        uri = parse_uri(f"qemu+tls://127.0.0.1:{port}/system?pkipath={tmp_path}&no_verify=1")
        with pytest.raises(TimedOut) as err:
            open_tls(uri, readonly=False)
    assert f"127.0.0.1:{port} accepted the connection but completed no TLS handshake within 1 s" in str(
        err.value
    )


class SlowApp:
    """A request and a stream that work longer than the client's read timeout before answering."""

    def __init__(self) -> None:
        self.router = Router()
        self.router.add("POST", "/v1/slow", self.slow, mutating=True)
        self.router.add("GET", "/v1/quiet", stream=self.quiet)

    async def slow(self, req: Request) -> dict[str, str]:
        await asyncio.sleep(WORK)
        return {"done": "yes"}

    async def quiet(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        await asyncio.sleep(WORK)
        await stream.send("after a while")


def test_a_long_request_outlives_the_read_timeout(conf: Path, tmp_path: Path) -> None:
    def client(path: str) -> object:
        transport = connect_unix(path)
        try:
            return transport.request("POST", "/v1/slow")
        finally:
            transport.close()

    assert serve(tmp_path, SlowApp().router, client, keepalive_interval=0.1) == {"done": "yes"}


def raw_slow(tmp_path: Path, expect: str) -> bytes:
    def client(path: str) -> bytes:
        with connect(path) as sock:
            sock.sendall(
                b"POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n"
                + expect.encode()
                + b"\r\n"
            )
            return read_all(sock)

    return serve(tmp_path, SlowApp().router, client, keepalive_interval=0.5)


def test_the_daemon_sends_processing_while_it_works_when_asked(tmp_path: Path) -> None:
    data = raw_slow(tmp_path, "Expect: 102-processing\r\n")
    interim, _, final = data.rpartition(b"HTTP/1.1 200 ")
    assert interim.count(b"HTTP/1.1 102 Processing\r\n\r\n") >= 2
    assert interim.replace(b"HTTP/1.1 102 Processing\r\n\r\n", b"") == b""
    assert final.endswith(b'{"done": "yes"}')


def test_a_client_that_did_not_ask_gets_no_interim_reply(tmp_path: Path) -> None:
    """Some HTTP clients (Python's http.client) take any reply but 100 for the final one."""
    data = raw_slow(tmp_path, "")
    assert data.startswith(b"HTTP/1.1 200 ") and b" 102 " not in data


def test_without_keepalive_a_long_request_times_out(conf: Path, tmp_path: Path) -> None:
    def client(path: str) -> str:
        transport = connect_unix(path)
        try:
            with pytest.raises(TimedOut) as err:
                transport.request("POST", "/v1/slow")
            return str(err.value)
        finally:
            transport.close()

    assert "did not answer within 2 s" in serve(tmp_path, SlowApp().router, client, keepalive_interval=60)


def test_a_quiet_stream_lives_on_keepalive_pings(conf: Path, tmp_path: Path) -> None:
    def client(path: str) -> object:
        with WebSocket(connect_unix(path), "/v1/quiet") as ws:
            return ws.receive()

    assert serve(tmp_path, SlowApp().router, client, keepalive_interval=0.1) == "after a while"


def test_a_silent_stream_times_out(conf: Path, tmp_path: Path) -> None:
    def client(path: str) -> str:
        with WebSocket(connect_unix(path), "/v1/quiet") as ws, pytest.raises(TimedOut) as err:
            ws.receive()
        return str(err.value)

    message = serve(tmp_path, SlowApp().router, client, keepalive_interval=60)
    assert "sent nothing, not even a keepalive ping, for 2 s" in message


def test_a_stream_whose_daemon_takes_no_data_times_out(conf: Path, tmp_path: Path) -> None:
    """A daemon that stops reading: the client's writes fail instead of blocking forever."""
    path = str(tmp_path / "s")
    stop = threading.Event()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(1)

        def handshake_then_nothing() -> None:
            conn, _ = listener.accept()
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + generate_accept_token(key) + b"\r\n\r\n"
            )
            stop.wait(30)
            conn.close()

        thread = threading.Thread(target=handshake_then_nothing)
        thread.start()
        try:
            ws = WebSocket(connect_unix(path), "/v1/upload")
            with pytest.raises(TimedOut) as err:
                while True:
                    ws.send(bytes(1 << 20))
            assert "took no data within 2 s" in str(err.value)
            ws.transport.close()
        finally:
            stop.set()
            thread.join(30)
