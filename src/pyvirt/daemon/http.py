"""The daemon's HTTP/1.1 server on asyncio streams: h11 parses, this module routes and enforces.

Every request goes through the same steps, each refusing with a JSON error and a status:

1. the head is read (h11, at most :data:`MAX_HEADER` bytes, within the read timeout: 431, 408; a
   malformed request 400, a transfer coding other than chunked 501);
2. framing is checked: ``Transfer-Encoding`` with ``Content-Length``, or a ``Content-Length`` given
   twice, is refused (400): that is how requests are smuggled past proxies;
3. the route is found (404; 405 with an ``Allow`` header) and the peer authorised (a read-only peer
   asking for a change: 403) -- all *before* any of the body is read;
4. the body is read (chunked or by length, at most :data:`MAX_BODY` bytes: 413, within the timeout),
   or, on a stream route, the connection becomes a WebSocket (:mod:`pyvirt.daemon.websocket`);
5. the handler runs, with a ``102 Processing`` interim reply every ``keepalive_interval`` seconds
   when the request asked for them with ``Expect: 102-processing`` (pyvirt's client bounds its wait
   by silence: a long request must not look like a hung daemon; other clients, some of which take
   any reply for the final one, get none); an unexpected exception is logged with a request id, and
   the 500 reply gives only that id.

Every mutating request is logged (logger ``pyvirtd.audit``, at info level whatever the daemon's
``log_level``) with the peer -- uid and pid on a Unix socket, the certificate's subject and address
over TLS --, the action and its result; so are refused ones.

A daemon serves at most ``max_clients`` clients at once (``max_clients`` in pyvirtd.conf, as in
libvirtd.conf): a connection counts from its first request until it closes, and one whose first
request comes over the cap gets a 503 naming the cap, and is closed. (A connection that never sends a
request is closed after the read timeout.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from pyvirt.daemon.keepalive import KEEPALIVE_INTERVAL, Heartbeat
from pyvirt.daemon.websocket import WebSocket, accept_token
from pyvirt.errors import AccessDenied, ConnectionFailed, InvalidArgument, NotFound, PyvirtError

log = logging.getLogger(__name__)
audit = logging.getLogger("pyvirtd.audit")
audit.setLevel(logging.INFO)

MAX_HEADER = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 60.0
TLS_HANDSHAKE_TIMEOUT = 30.0
MAX_CLIENTS = 1000
_READ_SIZE = 65536


class MethodNotAllowed(InvalidArgument):
    """The path exists, but not with this method; ``allowed`` lists the methods it has."""

    http_status = 405

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class _HTTPRefusal(InvalidArgument):
    """A request refused by the HTTP layer itself, with its own status."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.headers = headers or []


@dataclass
class Peer:
    uid: int
    gid: int
    pid: int
    readonly: bool
    dn: str = ""  # a TLS client's certificate subject
    address: str = ""  # a TLS client's address
    refused: str = ""  # why every request of this peer is refused (tls_allowed_dn_list)
    # Called once this peer's connection closes (not when the daemon stops): autodestroy. While any
    # is registered the connection is never closed for idling, only by the client.
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def __str__(self) -> str:
        if self.address:
            return f"'{self.dn}' at {self.address}"
        return f"uid {self.uid} pid {self.pid}"


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
    id: str = ""

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
class RawReply:
    """A handler's reply that is not JSON (Prometheus' text format): sent as it is."""

    body: bytes
    content_type: str


# A stream route's connection, once upgraded: a WebSocket (RFC 6455).
Stream = WebSocket

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
    action: str = ""  # the API action's name, for the audit log


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
        action: str = "",
    ) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        self.routes.append(
            Route(method, re.compile(regex), handler, stream, mutating, secret, check, action or template)
        )

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
        allowed: list[str] = []
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method != method:
                if route.method not in allowed:
                    allowed.append(route.method)
                continue
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        if allowed:
            raise MethodNotAllowed(f"method {method} is not allowed on {path}", allowed)
        raise NotFound(f"no such API endpoint: {path}")


def peer_credentials(writer: asyncio.StreamWriter, readonly: bool) -> Peer:
    sock: socket.socket | None = writer.get_extra_info("socket")
    uid = gid = pid = -1
    if sock is not None and sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
    return Peer(uid=uid, gid=gid, pid=pid, readonly=readonly)


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


def log_audit(route: Route, request: Request, result: str) -> None:
    """One line per mutating request: the action, the request, who asked, and what came of it."""
    audit.info("%s %s %s by %s: %s", route.action, request.method, request.path, request.peer, result)


def _outcome(err: BaseException) -> str:
    if isinstance(err, PyvirtError):
        return f"failed ({err.code}: {err.message})"
    return f"failed ({type(err).__name__})"


def error_payload(err: PyvirtError) -> dict[str, Any]:
    return {"error": {"code": err.code, "message": err.message}}


def handshake_headers(method: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    """The 101 reply's headers for a WebSocket opening handshake (RFC 6455 section 4.2), or the refusal."""
    upgrade = headers.get("upgrade", "").lower()
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if upgrade != "websocket" or "upgrade" not in tokens:
        raise _HTTPRefusal(
            426,
            "this endpoint is a WebSocket stream: it needs 'Upgrade: websocket' and 'Connection: Upgrade'",
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    if method != "GET":
        raise InvalidArgument("a WebSocket is opened with GET")
    if headers.get("sec-websocket-version", "") != "13":
        raise _HTTPRefusal(
            426, "only WebSocket version 13 (RFC 6455) is spoken here", [("Sec-WebSocket-Version", "13")]
        )
    key = headers.get("sec-websocket-key", "")
    token = accept_token(key)
    if token is None:
        raise InvalidArgument("missing or malformed Sec-WebSocket-Key")
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", token)]


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def _content_length_repeated(raw: bytes) -> bool:
    """Whether the head at the start of ``raw`` gives Content-Length more than once, on two lines or as
    a list on one (h11 folds equal repeats into one value)."""
    text = raw.lower()
    end = min((i for i in (text.find(b"\n\r\n"), text.find(b"\n\n")) if i >= 0), default=len(text))
    first = text.find(b"\ncontent-length:", 0, end)
    if first < 0:
        return False
    if text.find(b"\ncontent-length:", first + 1, end) >= 0:
        return True
    line_end = text.find(b"\n", first + 1)
    return b"," in text[first : line_end if line_end >= 0 else end]


def _head_size(raw: bytes) -> int:
    """The length of the header block at the start of ``raw`` (h11 accepts LF line ends too)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(raw)


class _Closed(Exception):
    """The client went away, or the connection can serve no further request."""


class _Connection:
    """One client connection: h11's state machine fed from an asyncio stream."""

    def __init__(
        self,
        server: HTTPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=server.max_header)
        self.raw = b""  # what this cycle's head was parsed from (see _content_length_repeated)
        self.admitted = False  # counted among the clients served (from its first request on)
        self.head_only = False  # this cycle's request is a HEAD: its reply has no body

    async def next_event(self) -> object:
        """h11's next event (or PAUSED), reading from the client as h11 needs."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(_READ_SIZE)
            if len(self.raw) <= self.server.max_header:
                self.raw += data
            self.h11.receive_data(data)

    async def read_head(self) -> h11.Request | None:
        """The next request's head; None when the client closed between requests."""
        self.raw = self.h11.trailing_data[0]
        self.head_only = False
        event = await self.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request), event
        self.head_only = event.method == b"HEAD"
        return event

    async def read_body(self, limit: int) -> bytes:
        if self.h11.client_is_waiting_for_100_continue:
            self.send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise _HTTPRefusal(413, f"request body too large (more than {limit} bytes)")
                chunks.append(bytes(event.data))
                continue
            raise _Closed()

    def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)

    def processing(self) -> bool:
        """Send ``102 Processing`` (a keepalive beat); False once the client is gone."""
        if self.writer.is_closing():
            return False
        self.send(h11.InformationalResponse(status_code=102, headers=[], reason=b"Processing"))
        return True

    async def respond(
        self,
        status: int,
        payload: Any,
        *,
        headers: list[tuple[str, str]] | None = None,
        close: bool = False,
    ) -> None:
        if isinstance(payload, RawReply):
            body, content_type = payload.body, payload.content_type
        else:
            body, content_type = b"" if payload is None else json.dumps(payload).encode(), "application/json"
        fields = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        fields += headers or []
        if close:
            fields.append(("Connection", "close"))
        # One write for the whole reply: a client reading the head gets the body in the same read.
        reason = _REASONS.get(status, b"")
        data = self.h11.send(h11.Response(status_code=status, headers=fields, reason=reason))
        if body and not self.head_only:  # h11 refuses a body after a HEAD (it was an escaping error)
            data += self.h11.send(h11.Data(data=body))
        data += self.h11.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()

    async def refuse(self, err: PyvirtError, *, close: bool = False) -> None:
        headers = list(getattr(err, "headers", []))
        if isinstance(err, MethodNotAllowed):
            headers.append(("Allow", ", ".join(err.allowed)))
        await self.respond(err.http_status, error_payload(err), headers=headers, close=close)


class HTTPServer:
    """Serves one :class:`Router` on any number of Unix listening sockets and TLS listeners."""

    def __init__(
        self,
        router: Router,
        *,
        max_clients: int = MAX_CLIENTS,
        max_header: int = MAX_HEADER,
        max_body: int = MAX_BODY,
        read_timeout: float = READ_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        backlog: int = 128,
    ) -> None:
        self.router = router
        self.max_clients = max_clients
        self.max_header = max_header
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.keepalive_interval = keepalive_interval
        self.backlog = backlog  # connections waiting to be accepted, on every listener
        # Told of each answered request: (action, HTTP status, seconds) — the daemon's metrics.
        self.observer: Callable[[str, int, float], None] | None = None
        self.clients = 0
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

        server = await asyncio.start_unix_server(
            on_connect, sock=sock, limit=self.max_header, backlog=self.backlog
        )
        self._servers.append(server)

    async def listen_tcp(self, host: str, port: int) -> None:
        """Serve plain HTTP on ``host:port``, every peer read-only (the metrics listener: its router
        holds nothing else)."""

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                peer = Peer(
                    uid=-1, gid=-1, pid=-1, readonly=True, address=_address(writer.get_extra_info("peername"))
                )
                await self._serve(reader, writer, peer)
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(
            on_connect, host, port, limit=self.max_header, backlog=self.backlog, reuse_address=True
        )
        self._servers.append(server)

    async def listen_tcp_tls(
        self,
        host: str,
        port: int,
        ctx: ssl.SSLContext,
        judge: Callable[[Any, str], Peer],
        *,
        sock: socket.socket | None = None,
    ) -> None:
        """Serve mutual-TLS connections on ``host:port`` (or on ``sock``, a TCP socket already bound,
        as systemd passes one); ``judge`` tells who a client is from its TLS object and address (see
        :mod:`pyvirt.daemon.tls`).

        Connections are accepted here and their handshakes awaited one by one (not by
        ``start_server(ssl=...)``, which drops a failed handshake without a word), so that each
        refused client is logged with its address and the reason.
        """
        loop = asyncio.get_running_loop()
        if sock is None:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _name, address = infos[0]
            listener = socket.socket(family, kind, proto)
        else:
            listener, address = sock, None
        try:
            if address is not None:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(address)
            listener.listen(self.backlog)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listeners.append(listener)
        self._acceptors.append(asyncio.create_task(self._accept_tls(listener, ctx, judge)))

    async def _accept_tls(
        self, listener: socket.socket, ctx: ssl.SSLContext, judge: Callable[[Any, str], Peer]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as err:
                log.warning("accepting a TLS connection failed: %s", err)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve_tls(conn, peer, ctx, judge))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve_tls(
        self, conn: socket.socket, peer: Any, ctx: ssl.SSLContext, judge: Callable[[Any, str], Peer]
    ) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.max_header)
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
        await self._serve(reader, writer, judge(writer.get_extra_info("ssl_object"), _address(peer)))

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
        conn = _Connection(self, reader, writer, peer)
        stopping = False
        try:
            while await self._serve_one(conn):
                conn.h11.start_next_cycle()
        except (_Closed, ConnectionError):
            pass
        except asyncio.CancelledError:
            stopping = True
        finally:
            if conn.admitted:
                self.clients -= 1
            writer.close()
            for callback in () if stopping else peer.on_close:
                try:
                    callback()
                except Exception:
                    log.exception("a close callback of %s failed", peer)

    async def _serve_one(self, conn: _Connection) -> bool:
        """Serve one request; whether the connection may carry another."""
        try:
            async with asyncio.timeout(None if conn.peer.on_close else self.read_timeout):
                head = await conn.read_head()
        except TimeoutError:
            if conn.raw:
                await conn.refuse(_HTTPRefusal(408, "request not received in time"), close=True)
            return False
        except h11.RemoteProtocolError as err:
            if conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = err.error_status_hint
                message = "request header too large" if status == 431 else f"malformed request: {err}"
                await conn.refuse(_HTTPRefusal(status, message), close=True)
            return False
        if head is None:
            return False
        # h11 bounds only a head still incomplete; one that arrived whole in a read is measured here.
        if len(conn.raw) > self.max_header and _head_size(conn.raw) > self.max_header:
            await conn.refuse(_HTTPRefusal(431, "request header too large"), close=True)
            return False
        request = self._request(conn, head)
        if not conn.admitted and self.clients >= self.max_clients:
            log.warning("refused a client: %d clients already (max_clients)", self.max_clients)
            refusal = ConnectionFailed(
                f"pyvirtd is serving its maximum of {self.max_clients} clients; try again later "
                "(max_clients in pyvirtd.conf)"
            )
            await conn.refuse(refusal, close=True)
            return False
        if not conn.admitted:
            conn.admitted = True
            self.clients += 1
        if conn.peer.refused:
            await conn.refuse(AccessDenied(conn.peer.refused), close=True)
            return False
        has_body = "transfer-encoding" in request.headers or request.headers.get("content-length", "0") != "0"
        try:
            route = self._authorise(conn, request, has_body)
        except PyvirtError as err:
            if isinstance(err, AccessDenied):
                audit.info(
                    "%s %s by %s: denied (%s)", request.method, request.path, request.peer, err.message
                )
            # Nothing of the body was read: a connection with a body pending is not reused.
            await conn.refuse(err, close=has_body)
            if has_body:
                return False
            await conn.read_body(0)  # the end of a bodyless request, already in h11's buffer
            return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if route.stream is not None:
            return await self._upgrade(conn, request, route)
        try:
            async with asyncio.timeout(self.read_timeout):
                request.body = await conn.read_body(self.max_body)
        except TimeoutError:
            await conn.refuse(_HTTPRefusal(408, "request body not received in time"), close=True)
            return False
        except h11.RemoteProtocolError as err:
            await conn.refuse(_HTTPRefusal(400, f"malformed request body: {err}"), close=True)
            return False
        except PyvirtError as err:
            await conn.refuse(err, close=True)
            return False
        started = time.monotonic()
        try:
            result = await self._handle(conn, route, request)
        except PyvirtError as err:
            status = err.http_status
            await conn.refuse(err)
        except Exception:
            status = 500
            await conn.respond(500, self._internal_error(request))
        else:
            status = 200
            await conn.respond(200, result)
        if self.observer is not None:
            self.observer(route.action, status, time.monotonic() - started)
        return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE

    async def _handle(self, conn: _Connection, route: Route, request: Request) -> Any:
        """The handler's result, with a keepalive beat (``102 Processing``) while it works if the client
        asked for it; a mutating request is audited."""
        assert route.handler is not None
        heartbeat = None
        if "102-processing" in request.headers.get("expect", "").lower():
            heartbeat = Heartbeat(self.keepalive_interval, conn.processing)
        outcome = "cancelled"
        try:
            self.router.validate(route, request)
            result = await route.handler(request)
            outcome = "ok"
            return result
        except Exception as err:
            outcome = _outcome(err)
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if route.mutating:
                log_audit(route, request, outcome)

    def _request(self, conn: _Connection, head: h11.Request) -> Request:
        headers: dict[str, str] = {}
        for name, value in head.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        target = head.target.decode("latin-1")
        if "?" in target:
            parts = urlsplit(target)
            path = parts.path
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        else:
            path, query = target, {}
        return Request(head.method.decode("latin-1").upper(), path, query, headers, b"", conn.peer)

    def _authorise(self, conn: _Connection, request: Request, has_body: bool) -> Route:
        """The request's route, once its framing is sound and the peer may use it; nothing of the body
        has been read yet."""
        if "transfer-encoding" in request.headers and "content-length" in request.headers:
            raise InvalidArgument("a request may not carry both Transfer-Encoding and Content-Length")
        length = request.headers.get("content-length")
        if length is not None and _content_length_repeated(conn.raw):
            raise InvalidArgument("Content-Length is given more than once")
        route, request.params = self.router.match(request.method, request.path)
        self.router.authorize(route, request)
        if length is not None and int(length) > self.max_body:  # h11 checked it is digits
            raise _HTTPRefusal(413, f"request body too large ({length} > {self.max_body} bytes)")
        if route.stream is not None and has_body:
            raise InvalidArgument(f"{request.path} opens a stream: the request may not have a body")
        return route

    async def _upgrade(self, conn: _Connection, request: Request, route: Route) -> bool:
        """Hand a stream route to its handler on a WebSocket; the connection ends with the stream."""
        assert route.stream is not None
        try:
            self.router.validate(route, request)
            accept_headers = handshake_headers(request.method, request.headers)
            # The (empty) body, so that h11 is ready to switch protocols.
            async with asyncio.timeout(self.read_timeout):
                await conn.read_body(0)
        except PyvirtError as err:
            await conn.refuse(err, close=True)
            return False
        except (TimeoutError, h11.RemoteProtocolError):
            return False

        def accept() -> tuple[bytes, bytes]:
            if route.mutating:
                log_audit(route, request, "stream opened")
            response = h11.InformationalResponse(
                status_code=101, headers=accept_headers, reason=b"Switching Protocols"
            )
            data = conn.h11.send(response)
            return data or b"", conn.h11.trailing_data[0]

        ws = WebSocket(conn.reader, conn.writer, accept, keepalive_interval=self.keepalive_interval)
        outcome = "cancelled"
        try:
            await route.stream(request, ws)
        except PyvirtError as err:
            outcome = _outcome(err)
            if not ws.accepted:
                await conn.refuse(err, close=True)
            else:
                await ws.close(1011, err.message)
        except ConnectionError:  # the client went away mid-stream
            outcome = "the client went away"
        except Exception as err:
            outcome = _outcome(err)
            payload = self._internal_error(request)
            if not ws.accepted:
                await conn.respond(500, payload, close=True)
            else:
                await ws.close(1011, payload["error"]["message"])
        else:
            outcome = "ok"
            if ws.accepted:
                await ws.close()
            else:
                log.error(
                    "stream handler of %s %s neither accepted nor refused", request.method, request.path
                )
        finally:
            if route.mutating:
                log_audit(route, request, f"stream ended: {outcome}" if ws.accepted else outcome)
        return False

    @staticmethod
    def _internal_error(request: Request) -> dict[str, Any]:
        request.id = os.urandom(4).hex()
        log.exception("internal error serving %s %s (request %s)", request.method, request.path, request.id)
        message = f"internal error (request {request.id}; the daemon's log has the details)"
        return {"error": {"code": "internal", "message": message}}
