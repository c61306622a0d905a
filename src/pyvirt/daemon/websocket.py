"""The server side of a WebSocket (RFC 6455) on an upgraded connection, framed by wsproto.

The HTTP layer (:mod:`pyvirt.daemon.http`) checks the opening handshake and hands a stream route's
handler a :class:`WebSocket`; the handler validates its request, then :meth:`WebSocket.accept`\\ s (the
``101 Switching Protocols`` reply) -- an error raised before that is an ordinary HTTP error reply.
After it, messages go both ways: ``bytes`` are binary messages, ``str`` text messages. Pings are
answered as they arrive; a message over ``max_message`` bytes closes the connection with 1009. An
accepted WebSocket pings the client every ``keepalive_interval`` seconds, whatever the handler is
doing, so that the client tells a quiet stream from a hung daemon (see :mod:`pyvirt.daemon.keepalive`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from pyvirt.daemon.keepalive import Heartbeat

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20
CLOSE_TIMEOUT = 10.0
_READ_SIZE = 65536

# Close codes (RFC 6455 section 7.4.1).
NORMAL = 1000
POLICY = 1008  # a message the stream does not take
TOO_BIG = 1009
INTERNAL = 1011


def accept_token(key: str) -> str | None:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (None: not a 16-byte base64 nonce)."""
    try:
        nonce = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    if len(nonce) != 16:
        return None
    return generate_accept_token(key.encode("ascii")).decode("ascii")


class WebSocket:
    """One accepted (or about to be accepted) WebSocket connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handshake: Callable[[], tuple[bytes, bytes]],
        *,
        max_message: int = MAX_MESSAGE,
        keepalive_interval: float | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._handshake = handshake
        self.max_message = max_message
        self._ws = Connection(ConnectionType.SERVER)
        self._messages: deque[bytes | str] = deque()
        self._partial: list[bytes | str] = []
        self._partial_size = 0
        self.accepted = False
        self.closed = False  # no more messages will arrive
        self.close_code: int | None = None
        self.keepalive_interval = keepalive_interval
        self._heartbeat: Heartbeat | None = None

    async def accept(self) -> None:
        """Send ``101 Switching Protocols``: from now on, this connection speaks WebSocket."""
        response, trailing = self._handshake()
        self.accepted = True
        self.writer.write(response)
        if self.keepalive_interval:
            self._heartbeat = Heartbeat(self.keepalive_interval, self._ping)
        if trailing:
            self._ws.receive_data(trailing)
            self._process()
        await self.writer.drain()

    def _ping(self) -> bool:
        """A keepalive beat; False once the stream is closing."""
        if self._ws.state is not ConnectionState.OPEN or self.writer.is_closing():
            return False
        self._write(Ping())
        return True

    def _write(self, event: Event) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(self._ws.send(event))

    def send_nowait(self, data: bytes | str) -> None:
        """Queue one message without waiting for the peer to take it (ends silently once closing)."""
        if self._ws.state is not ConnectionState.OPEN:
            return
        self._write(BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data))

    async def send(self, data: bytes | str) -> None:
        """Send one message, waiting while the peer is slow to take it."""
        self.send_nowait(data)
        await self.writer.drain()

    async def receive(self) -> bytes | str | None:
        """The next whole message; None once the peer closed (or the connection was lost)."""
        while not self._messages:
            if self.closed:
                return None
            try:
                data = await self.reader.read(_READ_SIZE)
            except ConnectionError:
                data = b""
            self._ws.receive_data(data or None)
            self._process()
        return self._messages.popleft()

    async def wait_closed(self) -> None:
        """Read (and drop) what the peer sends on a one-way stream, until it closes."""
        while await self.receive() is not None:
            pass

    def _process(self) -> None:
        for event in self._ws.events():
            if isinstance(event, Message):
                self._partial.append(event.data)
                self._partial_size += len(event.data)
                if self._partial_size > self.max_message:
                    self._fail(TOO_BIG, f"message larger than {self.max_message} bytes")
                    return
                if event.message_finished:
                    parts, self._partial, self._partial_size = self._partial, [], 0
                    if isinstance(event, TextMessage):
                        self._messages.append("".join(str(p) for p in parts))
                    else:
                        self._messages.append(b"".join(bytes(p) for p in parts))  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                self._write(event.response())
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                self.closed = True
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._write(event.response())
                elif self._ws.state is ConnectionState.OPEN:  # a framing error of the peer's
                    self._write(CloseConnection(code=event.code, reason=event.reason or ""))
                return

    def _fail(self, code: int, reason: str) -> None:
        log.warning("closing a WebSocket: %s", reason)
        if self._ws.state is ConnectionState.OPEN:
            self._write(CloseConnection(code=code, reason=reason))
        self.closed = True
        self.close_code = code

    async def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start (or finish) the closing handshake and wait a while for the peer's answer."""
        if not self.accepted:
            return
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._write(CloseConnection(code=code, reason=_fit_reason(reason)))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        if self._ws.state is ConnectionState.LOCAL_CLOSING:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(self._drain_until_closed(), CLOSE_TIMEOUT)
        self.closed = True

    async def _drain_until_closed(self) -> None:
        """Read and drop what the peer still sends until its close frame (or the end of the connection)."""
        while self._ws.state is ConnectionState.LOCAL_CLOSING:
            data = await self.reader.read(_READ_SIZE)
            self._ws.receive_data(data or None)
            for _event in self._ws.events():
                pass


def _fit_reason(reason: str) -> str:
    """A close frame's reason is at most 123 bytes of UTF-8."""
    encoded = reason.encode()
    if len(encoded) <= 123:
        return reason
    return encoded[:120].decode(errors="ignore") + "..."
