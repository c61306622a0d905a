"""A real pyvirtd spoken to byte by byte over its sockets: what its HTTP layer accepts and refuses, and
the cap on concurrent clients set in pyvirtd.conf."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)
GUARD = 60.0  # a socket timeout that only turns a hang into a failure


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(GUARD)
    sock.connect(str(path))
    return sock


def reply(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """One response: the daemon closes after it, or it gives its length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def exchange(path: Path, payload: bytes) -> tuple[int, dict[str, str], Any]:
    with connect(path) as sock:
        sock.sendall(payload)
        return reply(sock)


def test_what_the_http_layer_refuses_and_accepts(daemon: Daemon) -> None:
    status, headers, _body = exchange(daemon.socket, b"PUT /v1/domains HTTP/1.1\r\nHost: p\r\n\r\n")
    assert status == 405 and headers["allow"] == "GET, POST"

    twice = b"Content-Length: 2\r\nContent-Length: 2\r\n"
    status, _headers, body = exchange(
        daemon.socket, b"POST /v1/domains HTTP/1.1\r\nHost: p\r\n" + twice + b"\r\n{}"
    )
    assert status == 400 and "more than once" in body["error"]["message"]

    status, _headers, body = exchange(
        daemon.socket, b"POST /v1/domains HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: gzip\r\n\r\n"
    )
    assert status == 501

    # A chunked body is read whole: the domain is defined.
    document = json.dumps({"xml": MINI.format(name="chunky")}).encode()
    half = len(document) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (document[:half], document[half:])
    )
    status, _headers, body = exchange(
        daemon.socket,
        b"POST /v1/domains HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert status == 200 and body["name"] == "chunky"
    assert "chunky" in daemon.cli("list", "--all").ok().out

    # The read-only socket refuses a change before reading its body (none is ever sent here).
    ro = daemon.root / "run/pyvirt/pyvirt-sock-ro"
    status, headers, body = exchange(
        ro, b"POST /v1/domains/chunky/start HTTP/1.1\r\nHost: p\r\nContent-Length: 100000\r\n\r\n"
    )
    assert status == 403 and body["error"]["code"] == "access-denied"
    assert headers["connection"] == "close"
    assert daemon.state("chunky") == "shut off"


def test_client_cap_from_pyvirtd_conf(tmp_path: Path) -> None:
    daemon = Daemon()
    try:
        conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("max_clients = 2\n")
        daemon.start()
        holders = [connect(daemon.socket), connect(daemon.socket)]
        try:
            # Both are being served (each answered a request) and stay connected.
            for sock in holders:
                sock.sendall(b"GET /v1/domains HTTP/1.1\r\nHost: p\r\n\r\n")
                assert reply(sock)[0] == 200
            refused = daemon.cli("list", "--all")
            assert refused.rc == 1
            assert "maximum of 2 clients" in refused.err and "max_clients" in refused.err, refused.err
            for sock in holders:  # each leaves; the daemon has freed its place when it closes
                sock.sendall(b"GET /v1/domains HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
                reply(sock)
                assert sock.recv(65536) == b""
        finally:
            for sock in holders:
                sock.close()
        daemon.cli("list", "--all").ok()  # room again

        daemon.stop()
        conf.write_text('max_clients = "none"\n')
        try:
            daemon.start(wait=10)
        except RuntimeError as err:
            assert f"error: {conf}: max_clients must be a whole number, not 'none'" in str(err)
        else:
            raise AssertionError("pyvirtd started with max_clients = none")
    finally:
        daemon.cleanup()
