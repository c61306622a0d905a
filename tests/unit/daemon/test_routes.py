"""The router built from the API table: one handler per action, requests checked before handlers run."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from pyvirt.api.table import ACTIONS
from pyvirt.daemon.http import HTTPServer, Request, Stream
from pyvirt.daemon.routes import RouteTableError, build_router


def stub_handlers(seen: list[tuple[str, Any, dict[str, Any]]]) -> dict[str, Any]:
    handlers: dict[str, Any] = {}
    for action in ACTIONS:
        if action.stream:

            async def stream(req: Request, s: Stream, name: str = action.name) -> None:
                seen.append((name, req.data, req.args))

            handlers[action.name] = stream
        else:

            async def plain(req: Request, name: str = action.name) -> dict[str, Any]:
                seen.append((name, req.data, req.args))
                return {"action": name, "params": req.params}

            handlers[action.name] = plain
    return handlers


def test_refuses_missing_and_unknown_handlers() -> None:
    handlers = stub_handlers([])
    del handlers["domain.start"]
    handlers["domain.frobnicate"] = handlers["domain.info"]
    with pytest.raises(
        RouteTableError, match=r"without a handler: domain\.start.*of no action: domain\.frob"
    ):
        build_router(handlers)


async def call(tmp_path: Path, requests: list[bytes], readonly: bool) -> list[tuple[int, Any]]:
    seen: list[tuple[str, Any, dict[str, Any]]] = []
    server = HTTPServer(build_router(stub_handlers(seen)))
    path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    await server.listen_unix(sock, readonly=readonly)

    def client() -> list[tuple[int, Any]]:
        out = []
        for payload in requests:
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(str(path))
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                out.append((int(head.split()[1]), json.loads(body) if body else None))
        return out

    try:
        return await asyncio.to_thread(client)
    finally:
        await server.close()


def post(path: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


def test_routes_each_action_and_checks_requests(tmp_path: Path) -> None:
    replies = asyncio.run(
        call(
            tmp_path,
            [
                post("/v1/domains/web/start", {"paused": True}),
                post("/v1/domains/web/start", {"pause": True}),
                post("/v1/pools/p/volumes/v/resize", {"capacity": "1G"}),
                b"GET /v1/domains/web/xml?inactive=1&bogus=2 HTTP/1.1\r\nHost: h\r\n\r\n",
                post("/v1/domains/web/frobnicate", {}),
                post("/v1/networks/lan/autostart", {"enabled": False}),
            ],
            readonly=False,
        )
    )
    assert replies[0] == (200, {"action": "domain.start", "params": {"name": "web"}})
    assert replies[1][0] == 400 and "unknown field 'pause'" in replies[1][1]["error"]["message"]
    assert replies[2][0] == 400 and "field 'capacity' must be an integer" in replies[2][1]["error"]["message"]
    assert replies[3][0] == 400 and "unknown query parameter 'bogus'" in replies[3][1]["error"]["message"]
    assert replies[4][0] == 404
    assert replies[5] == (200, {"action": "network.autostart", "params": {"name": "lan"}})


def test_readonly_refuses_mutating_and_secret(tmp_path: Path) -> None:
    replies = asyncio.run(
        call(
            tmp_path,
            [
                b"GET /v1/domains/web/xml HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /v1/domains/web/xml?security_info=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                post("/v1/domains/web/start", {}),
                b"GET /v1/pools/p/volumes/v/download HTTP/1.1\r\nHost: h\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            ],
            readonly=True,
        )
    )
    assert replies[0][0] == 200
    assert [status for status, _ in replies[1:]] == [403, 403, 403]
    assert "security_info" in replies[1][1]["error"]["message"]
