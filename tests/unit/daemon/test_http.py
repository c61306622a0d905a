"""The daemon's HTTP layer over a real Unix socket: routing, errors, limits, read-only refusal."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from pyvirt.daemon.http import HTTPServer, Request, Router
from pyvirt.errors import NotFound


async def serve_and_call(tmp_path: Path, payloads: list[bytes], readonly: bool = False) -> list[bytes]:
    router = Router()

    async def hello(req: Request) -> dict[str, Any]:
        return {"name": req.params["name"], "q": req.query}

    async def missing(req: Request) -> dict[str, Any]:
        raise NotFound("Domain not found: no domain with matching name 'x'")

    async def change(req: Request) -> dict[str, Any]:
        return {"changed": req.json()}

    router.add("GET", "/v1/hello/{name}", hello)
    router.add("GET", "/v1/missing", missing)
    router.add("POST", "/v1/change", change, mutating=True)
    server = HTTPServer(router)
    path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    await server.listen_unix(sock, readonly=readonly)

    def client() -> list[bytes]:
        out = []
        for payload in payloads:
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(str(path))
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
                out.append(data)
        return out

    try:
        return await asyncio.to_thread(client)
    finally:
        await server.close()


def body(reply: bytes) -> Any:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_routing_params_and_query(tmp_path: Path) -> None:
    (reply,) = asyncio.run(serve_and_call(tmp_path, [b"GET /v1/hello/web%2001?x=1 HTTP/1.1\r\n\r\n"]))
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert body(reply) == {"name": "web 01", "q": {"x": "1"}}


def test_errors_carry_code_and_status(tmp_path: Path) -> None:
    replies = asyncio.run(
        serve_and_call(
            tmp_path,
            [
                b"GET /v1/missing HTTP/1.1\r\n\r\n",
                b"GET /v1/nowhere HTTP/1.1\r\n\r\n",
                b"DELETE /v1/hello/x HTTP/1.1\r\n\r\n",
                b"POST /v1/change HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]",
                b"nonsense\r\n\r\n",
                b"POST /v1/change HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            ],
        )
    )
    assert replies[0].startswith(b"HTTP/1.1 404") and body(replies[0])["error"]["code"] == "not-found"
    assert replies[1].startswith(b"HTTP/1.1 404")
    assert replies[2].startswith(b"HTTP/1.1 400") and "not allowed" in body(replies[2])["error"]["message"]
    assert replies[3].startswith(b"HTTP/1.1 400") and "JSON object" in body(replies[3])["error"]["message"]
    assert replies[4].startswith(b"HTTP/1.1 400")
    assert replies[5].startswith(b"HTTP/1.1 400") and "too large" in body(replies[5])["error"]["message"]


def test_readonly_socket_refuses_mutations(tmp_path: Path) -> None:
    replies = asyncio.run(
        serve_and_call(
            tmp_path,
            [b"POST /v1/change HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"GET /v1/hello/a HTTP/1.1\r\n\r\n"],
            readonly=True,
        )
    )
    assert replies[0].startswith(b"HTTP/1.1 403") and body(replies[0])["error"]["code"] == "access-denied"
    assert replies[1].startswith(b"HTTP/1.1 200")


def test_keep_alive_serves_several_requests(tmp_path: Path) -> None:
    two = b"GET /v1/hello/a HTTP/1.1\r\n\r\nGET /v1/hello/b HTTP/1.1\r\nConnection: close\r\n\r\n"
    (reply,) = asyncio.run(serve_and_call(tmp_path, [two]))
    assert reply.count(b"HTTP/1.1 200 OK") == 2
