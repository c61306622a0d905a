"""The daemon's HTTP layer over a real Unix socket, spoken to byte by byte: routing, errors, framing,
limits, the read-only refusal, the client cap, and the order of checks (nothing of a body is read
before its route is found and authorised)."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pyvirt.daemon.http import Request, Router
from pyvirt.errors import NotFound
from tests.support.rawhttp import connect, get, one, read_all, replies, serve

T = TypeVar("T")


class App:
    """A router with a few routes, counting the calls that reach a handler."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.router = Router()
        self.router.add("GET", "/v1/hello/{name}", self.hello)
        self.router.add("GET", "/v1/missing", self.missing)
        self.router.add("GET", "/v1/change", self.hello)
        self.router.add("POST", "/v1/change", self.change, mutating=True)
        self.router.add("DELETE", "/v1/change", self.change, mutating=True)
        self.router.add("GET", "/v1/boom", self.boom)

    async def hello(self, req: Request) -> dict[str, Any]:
        self.calls.append("hello")
        return {"name": req.params.get("name"), "q": req.query}

    async def missing(self, req: Request) -> dict[str, Any]:
        raise NotFound("Domain not found: no domain with matching name 'x'")

    async def change(self, req: Request) -> dict[str, Any]:
        self.calls.append("change")
        return {"changed": req.json()}

    async def boom(self, req: Request) -> dict[str, Any]:
        raise RuntimeError("secret detail of the failure")


def run(tmp_path: Path, client: Callable[[str], T], *, app: App | None = None, **options: Any) -> T:
    return serve(tmp_path, (app or App()).router, client, **options)


def exchange(payload: bytes) -> Callable[[str], bytes]:
    """A client that sends ``payload``, ends its side, and returns all the daemon said."""

    def client(path: str) -> bytes:
        with connect(path) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            return read_all(sock)

    return client


def test_routing_params_and_query(tmp_path: Path) -> None:
    status, headers, body = one(run(tmp_path, exchange(get("/v1/hello/web%2001?x=1"))))
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == {"name": "web 01", "q": {"x": "1"}}


def test_errors_carry_code_and_status(tmp_path: Path) -> None:
    cases = [
        (get("/v1/missing"), 404, "not-found"),
        (get("/v1/nowhere"), 404, "not-found"),
        (b"POST /v1/change HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n[1]", 400, "JSON object"),
        (b"nonsense\r\n\r\n", 400, "malformed request"),
        (b"GET /v1/hello/a HTTP/1.1\r\n\r\n", 400, "Host"),  # HTTP/1.1 requires Host
        (b"GET /v1/hello/a HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", 400, "malformed request"),
    ]
    for payload, status, fragment in cases:
        got, _headers, body = one(run(tmp_path, exchange(payload)))
        assert got == status, (payload, body)
        assert fragment in json.dumps(body), (payload, body)


def test_405_names_the_allowed_methods(tmp_path: Path) -> None:
    status, headers, body = one(run(tmp_path, exchange(b"PUT /v1/change HTTP/1.1\r\nHost: h\r\n\r\n")))
    assert status == 405
    assert headers["allow"] == "GET, POST, DELETE"
    assert "PUT is not allowed" in body["error"]["message"]


def test_500_hides_the_exception_and_logs_it_with_an_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="pyvirt.daemon.http"):
        status, _headers, body = one(run(tmp_path, exchange(get("/v1/boom"))))
    assert status == 500 and body["error"]["code"] == "internal"
    message = body["error"]["message"]
    assert "secret detail" not in message and "RuntimeError" not in message
    request_id = re.search(r"request ([0-9a-f]{8})", message)
    assert request_id, message
    (record,) = [r for r in caplog.records if request_id.group(1) in r.getMessage()]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])


def test_keep_alive_serves_several_requests(tmp_path: Path) -> None:
    two = get("/v1/hello/a") + get("/v1/hello/b", "Connection: close\r\n")
    got = replies(run(tmp_path, exchange(two)))
    assert [(status, body["name"]) for status, _h, body in got] == [(200, "a"), (200, "b")]


def test_an_error_reply_keeps_a_bodyless_connection(tmp_path: Path) -> None:
    got = replies(run(tmp_path, exchange(get("/v1/nowhere") + get("/v1/hello/b"))))
    assert [status for status, _h, _b in got] == [404, 200]


def test_chunked_body_is_read(tmp_path: Path) -> None:
    payload = (
        b"POST /v1/change HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
    )
    status, _headers, body = one(run(tmp_path, exchange(payload)))
    assert status == 200 and body == {"changed": {"a": 1}}


def test_framing_that_smuggles_is_refused(tmp_path: Path) -> None:
    app = App()
    cases = [
        (b"Content-Length: 2\r\nContent-Length: 2\r\n", 400, "more than once"),
        (b"Content-Length: 2, 2\r\n", 400, "more than once"),
        (b"Content-Length: 2\r\nContent-Length: 3\r\n", 400, "Content-Length"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", 400, "both"),
        (b"Transfer-Encoding: gzip\r\n", 501, "chunked"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501, "Transfer-Encoding"),
        (b"Content-Length: -2\r\n", 400, "Content-Length"),
    ]
    for framing, status, fragment in cases:
        payload = b"POST /v1/change HTTP/1.1\r\nHost: h\r\n" + framing + b"\r\n{}"
        got, headers, body = one(run(tmp_path, exchange(payload), app=app))
        assert (got, headers.get("connection")) == (status, "close"), (framing, body)
        assert fragment in body["error"]["message"], (framing, body)
    assert app.calls == []


def refused_before_body(method: str, path: str) -> Callable[[str], tuple[int, dict[str, str], Any]]:
    """A client that announces a 1 MB body, sends none of it, and reads the reply."""

    def client(sock_path: str) -> tuple[int, dict[str, str], Any]:
        with connect(sock_path) as sock:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n".encode())
            return one(read_all(sock))  # the daemon answers and closes without waiting for the body

    return client


def test_routes_and_rights_are_checked_before_the_body_is_read(tmp_path: Path) -> None:
    app = App()
    assert run(tmp_path, refused_before_body("POST", "/v1/nowhere"), app=app)[0] == 404
    status, headers, _body = run(tmp_path, refused_before_body("PUT", "/v1/change"), app=app)
    assert status == 405 and headers["connection"] == "close"
    status, _headers, body = run(tmp_path, refused_before_body("POST", "/v1/change"), app=app, readonly=True)
    assert status == 403 and body["error"]["code"] == "access-denied"
    assert "read-only" in body["error"]["message"]
    assert app.calls == []


def test_readonly_socket_allows_queries(tmp_path: Path) -> None:
    status, _headers, _body = one(run(tmp_path, exchange(get("/v1/hello/a")), readonly=True))
    assert status == 200


def test_size_limits(tmp_path: Path) -> None:
    app = App()
    big_head = get("/v1/hello/a", "X-Filler: " + "x" * 5000 + "\r\n")
    status, _headers, body = one(run(tmp_path, exchange(big_head), app=app, max_header=4096))
    assert status == 431 and "header too large" in body["error"]["message"]
    declared = b"POST /v1/change HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n"
    status, _headers, body = one(run(tmp_path, exchange(declared), app=app, max_body=1000))
    assert status == 413 and "2000 > 1000" in body["error"]["message"]
    chunk = b"400\r\n" + b" " * 0x400 + b"\r\n"
    chunked = b"POST /v1/change HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
    status, _headers, body = one(run(tmp_path, exchange(chunked + b"0\r\n\r\n"), app=app, max_body=1000))
    assert status == 413 and "too large" in body["error"]["message"]
    assert app.calls == []


def test_read_timeouts(tmp_path: Path) -> None:
    def partial_head(path: str) -> bytes:
        with connect(path) as sock:
            sock.sendall(b"GET /v1/hello/a HTTP/1.1\r\nHost: h\r\n")  # the head never ends
            return read_all(sock)

    def partial_body(path: str) -> bytes:
        with connect(path) as sock:
            sock.sendall(b"POST /v1/change HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n{}")
            return read_all(sock)

    def idle(path: str) -> bytes:
        with connect(path) as sock:
            return read_all(sock)

    assert one(run(tmp_path, partial_head, read_timeout=0.2))[0] == 408
    assert one(run(tmp_path, partial_body, read_timeout=0.2))[0] == 408
    assert run(tmp_path, idle, read_timeout=0.2) == b""  # an idle connection is just closed


def test_expect_100_continue(tmp_path: Path) -> None:
    def client(path: str) -> tuple[bytes, bytes]:
        with connect(path) as sock:
            sock.sendall(
                b"POST /v1/change HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = sock.recv(65536)
            sock.sendall(b"{}")
            sock.shutdown(socket.SHUT_WR)
            return interim, read_all(sock)

    interim, rest = run(tmp_path, client)
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert one(rest)[:1] == (200,)


def test_client_cap(tmp_path: Path) -> None:
    def client(path: str) -> list[tuple[int, Any]]:
        holders = [connect(path), connect(path)]
        try:
            for sock in holders:  # two clients served, and staying connected
                sock.sendall(get("/v1/hello/a"))
                assert one(sock.recv(65536))[0] == 200
            with connect(path) as third:
                third.sendall(get("/v1/hello/c"))
                refused = one(read_all(third))
            holders[1].sendall(get("/v1/hello/b", "Connection: close\r\n"))
            served = one(read_all(holders[1]))  # an admitted client is still served
            holders[0].sendall(get("/v1/hello/a", "Connection: close\r\n"))
            read_all(holders[0])  # the daemon closed it: its place is free
        finally:
            for sock in holders:
                sock.close()
        with connect(path) as later:  # room again
            later.sendall(get("/v1/hello/d", "Connection: close\r\n"))
            again = one(read_all(later))
        return [(status, body) for status, _h, body in (refused, served, again)]

    refused, served, again = run(tmp_path, client, max_clients=2)
    assert refused[0] == 503 and refused[1]["error"]["code"] == "connection-failed"
    assert "maximum of 2 clients" in refused[1]["error"]["message"]
    assert "max_clients" in refused[1]["error"]["message"]
    assert served == (200, {"name": "b", "q": {}})
    assert again[0] == 200


def test_head_gets_the_head_without_a_body(tmp_path: Path) -> None:
    # A body after a HEAD broke h11's framing: the connection's task died and the client got nothing.
    head = b"HEAD /v1/hello/a HTTP/1.1\r\nHost: h\r\n\r\n"
    data = run(tmp_path, exchange(head))
    status, _, rest = data.partition(b"\r\n")
    assert status == b"HTTP/1.1 405 Method Not Allowed"
    assert b"\r\nAllow: GET\r\n" in rest and rest.endswith(b"\r\n\r\n")  # the head, and nothing after
    # The request after a HEAD on the same connection gets its reply whole, body and all.
    data = run(tmp_path, exchange(head + b"nonsense\r\n\r\n"))
    assert data.count(b"HTTP/1.1 ") == 2
    assert data.endswith(b"}") and b"malformed request" in data
