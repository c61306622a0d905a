"""A small HTTP/1.1 server on asyncio streams, for the daemon's JSON API over Unix sockets.

The API is a closed set of routes spoken only by pyvirt's own client, so this implements just what
that needs: requests with ``Content-Length`` bodies, keep-alive, JSON responses, and a ``101
Switching Protocols`` upgrade that hands the raw connection to a streaming handler (console, events).
Limits guard the daemon against hostile clients: header size, body size, and a read timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pyvirt.errors import AccessDenied, InvalidArgument, NotFound, PyvirtError

log = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 60.0
TLS_HANDSHAKE_TIMEOUT = 30.0

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Peer:
    uid: int
    gid: int
    pid: int
    readonly: bool


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: Peer
    params: dict[str, str] = field(default_factory=dict)
    # Set by the route's check (pyvirt.api.validate) before the handler runs: the request body and
    # the query parameters, validated against the action's declared types.
    data: Any = None
    args: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as err:
            raise InvalidArgument(f"request body is not JSON: {err}") from err
        if not isinstance(data, dict):
            raise InvalidArgument("request body must be a JSON object")
        return data

    def flag(self, name: str) -> bool:
        return self.query.get(name, "") in ("1", "true", "yes")


@dataclass
class Stream:
    """An upgraded connection, handed to a streaming handler."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


Handler = Callable[[Request], Awaitable[Any]]
StreamHandler = Callable[[Request, Stream], Awaitable[None]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler | None
    stream: StreamHandler | None
    mutating: bool
    # Refused on a read-only connection as well: True, or a query flag that asks for secrets.
    secret: bool | str = False
    check: Callable[[Request], None] | None = None  # validates the request, fills data and args


class Router:
    """The routes of the API; :mod:`pyvirt.daemon.routes` builds the daemon's from the API table."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler | None = None,
        *,
        stream: StreamHandler | None = None,
        mutating: bool = False,
        secret: bool | str = False,
        check: Callable[[Request], None] | None = None,
    ) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        self.routes.append(Route(method, re.compile(regex), handler, stream, mutating, secret, check))

    @staticmethod
    def authorize(route: Route, request: Request) -> None:
        """Refuse a read-only peer what would change the host or reveal secrets (needs no body)."""
        if not request.peer.readonly:
            return
        if route.mutating:
            raise AccessDenied(
                "access denied: this connection is read-only; "
                f"{request.method} {request.path} would change the host"
            )
        secret = route.secret
        if secret is True or (isinstance(secret, str) and request.flag(secret)):
            raise AccessDenied(
                "access denied: this connection is read-only; "
                f"{request.method} {request.path}{f' with {secret}' if isinstance(secret, str) else ''} "
                "returns secrets or guest data"
            )

    @staticmethod
    def validate(route: Route, request: Request) -> None:
        """Check the request's body and query against the route's declared types."""
        if route.check is not None:
            route.check(request)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method != method:
                allowed = True
                continue
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        if allowed:
            raise InvalidArgument(f"method {method} is not allowed on {path}")
        raise NotFound(f"no such API endpoint: {path}")


def peer_credentials(writer: asyncio.StreamWriter, readonly: bool) -> Peer:
    sock: socket.socket | None = writer.get_extra_info("socket")
    uid = gid = pid = -1
    if sock is not None and sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
    return Peer(uid=uid, gid=gid, pid=pid, readonly=readonly)


def encode_response(status: int, payload: Any, *, keep_alive: bool = True) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


def _tls_reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return f"no handshake within {TLS_HANDSHAKE_TIMEOUT:g} s"
    if isinstance(err, ssl.SSLError) and err.reason:
        return f"{err.reason.replace('_', ' ').lower()} ({err.library or 'SSL'})"
    return str(err) or type(err).__name__


def error_payload(err: PyvirtError) -> dict[str, Any]:
    return {"error": {"code": err.code, "message": err.message}}


class HTTPServer:
    """Serves one :class:`Router` on any number of Unix listening sockets and TLS listeners."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []

    async def listen_unix(self, sock: socket.socket, *, readonly: bool = False) -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._serve(reader, writer, peer_credentials(writer, readonly))
            finally:
                self._connections.discard(task)

        server = await asyncio.start_unix_server(on_connect, sock=sock, limit=MAX_HEADER)
        self._servers.append(server)

    async def listen_tcp_tls(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        """Serve mutual-TLS connections on ``host:port``; see :mod:`pyvirt.daemon.tls`.

        Connections are accepted here and their handshakes awaited one by one (not by
        ``start_server(ssl=...)``, which drops a failed handshake without a word), so that each
        refused client is logged with its address and the reason.
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = infos[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listeners.append(listener)
        self._acceptors.append(asyncio.create_task(self._accept_tls(listener, ctx)))

    async def _accept_tls(self, listener: socket.socket, ctx: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as err:
                log.warning("accepting a TLS connection failed: %s", err)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve_tls(conn, peer, ctx))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve_tls(self, conn: socket.socket, peer: Any, ctx: ssl.SSLContext) -> None:
        from pyvirt.daemon.tls import connection_is_readonly

        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=ctx, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (OSError, TimeoutError) as err:
            log.warning("refused TLS connection from %s: %s", _address(peer), _tls_reason(err))
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        readonly = connection_is_readonly(writer.get_extra_info("ssl_object"))
        await self._serve(reader, writer, Peer(uid=-1, gid=-1, pid=-1, readonly=readonly))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for acceptor in self._acceptors:
            acceptor.cancel()
        for listener in self._listeners:
            listener.close()
        for task in list(self._connections):
            task.cancel()
        for server in self._servers:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        try:
            while True:
                try:
                    request = await asyncio.wait_for(self._read_request(reader, peer), READ_TIMEOUT)
                except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                    return
                except PyvirtError as err:
                    writer.write(encode_response(400, error_payload(err), keep_alive=False))
                    await writer.drain()
                    return
                if request is None:
                    return
                keep_alive = request.headers.get("connection", "").lower() != "close"
                upgraded = await self._dispatch(request, reader, writer, keep_alive)
                if upgraded or not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader, peer: Peer) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as err:
            raise InvalidArgument("request header too large") from err
        except asyncio.IncompleteReadError as err:
            if not err.partial:
                return None
            raise
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError as err:
            raise InvalidArgument("malformed request line") from err
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise InvalidArgument("malformed header line")
            headers[key.strip().lower()] = value.strip()
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise InvalidArgument("bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            raise InvalidArgument(f"request body too large ({length} > {MAX_BODY} bytes)")
        body = await reader.readexactly(length) if length else b""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return Request(method.upper(), parts.path, query, headers, body, peer)

    async def _dispatch(
        self,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        try:
            route, params = self.router.match(request.method, request.path)
            request.params = params
            self.router.authorize(route, request)
            self.router.validate(route, request)
            if route.stream is not None:
                if request.headers.get("upgrade", "").lower() != "pyvirt-stream":
                    raise InvalidArgument("this endpoint needs 'Upgrade: pyvirt-stream'")
                # Validate before switching protocols: the stream handler raises before it upgrades.
                await route.stream(request, Stream(reader, writer))
                return True
            assert route.handler is not None
            result = await route.handler(request)
            status = 200
        except PyvirtError as err:
            status, result = err.http_status, error_payload(err)
        except Exception as err:
            log.exception("internal error serving %s %s", request.method, request.path)
            status, result = 500, {"error": {"code": "internal", "message": f"internal error: {err}"}}
        writer.write(encode_response(status, result, keep_alive=keep_alive))
        await writer.drain()
        return False


async def switch_protocols(stream: Stream) -> None:
    stream.writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: pyvirt-stream\r\nConnection: Upgrade\r\n\r\n"
    )
    await stream.writer.drain()
