"""The client side of the daemon's WebSocket streams (RFC 6455): console, events, volume transfers.

The opening handshake goes through the connection's :class:`~pyvirt.client.transport.Transport` (so a
refusal is the daemon's JSON error, and TLS and ssh failures are explained as for any request); the
frames after it are wsproto's. Blocking, like the rest of the client: :meth:`WebSocket.receive` waits
for a whole message (with an optional timeout), and :meth:`WebSocket.fileno` lets a caller ``select``
on the stream beside other files. Only the stream commands import this module (CLI start-up time).

A stream may be quiet for hours (an idle console, the event feed), so it has no read timeout. Instead
the daemon pings every few seconds (its ``keepalive_interval``), and a stream that hears nothing at all
-- no message, no ping -- for the connection's ``read_timeout`` fails with
:class:`~pyvirt.errors.TimedOut`: the daemon is hung or the network is gone. Writes are bounded the
same way: a daemon that takes no data for ``read_timeout`` seconds fails the stream.
"""

from __future__ import annotations

import base64
import os
import select
import time
from collections import deque
from typing import TYPE_CHECKING

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from pyvirt.errors import ConnectionFailed, TimedOut

if TYPE_CHECKING:
    from pyvirt.client.transport import Transport

# Close codes after which a stream simply ended (RFC 6455 7.4.1): normal, going away, none given, and
# the connection lost without a close frame (a daemon restarting).
_ENDED = {1000, 1001, 1005, 1006}
CLOSE_TIMEOUT = 5.0


class WebSocket:
    """A WebSocket to the daemon over one transport; ``bytes`` are binary messages, ``str`` text ones."""

    def __init__(self, transport: Transport, path: str) -> None:
        self.transport = transport
        self.sock = transport.sock
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        headers, leftover = transport.upgrade(
            path,
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
            },
        )
        if headers.get("sec-websocket-accept", "").encode() != generate_accept_token(key.encode()):
            transport.close()
            raise ConnectionFailed(f"{transport.description} answered the WebSocket handshake wrongly")
        self._ws = Connection(ConnectionType.CLIENT)
        self._messages: deque[bytes | str] = deque()
        self._partial: list[bytes | str] = []
        self.closed = False  # no more messages will arrive
        self.close_code: int | None = None
        self.close_reason = ""
        self.silence_limit = transport.read_timeout  # None: no limit
        self._heard = time.monotonic()  # when the daemon last sent anything
        if leftover:
            self._feed(leftover)

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def buffered(self) -> bool:
        """Whether :meth:`receive` has something without waiting on the socket (select would not say)."""
        pending = getattr(self.sock, "pending", None)  # TLS: decrypted bytes already read
        return bool(self._messages) or self.closed or (pending is not None and pending() > 0)

    def alive_for(self) -> float | None:
        """Seconds left before the daemon's silence fails the stream (None: no limit)."""
        if self.silence_limit is None:
            return None
        return max(0.0, self._heard + self.silence_limit - time.monotonic())

    def check_alive(self) -> None:
        """Raise :class:`TimedOut` if the daemon sent nothing, not even a keepalive ping, for too long."""
        if self.alive_for() == 0.0:
            raise TimedOut(
                f"the daemon at {self.transport.description} sent nothing, not even a keepalive ping, "
                f"for {self.silence_limit:g} s: is it hung? (the limit is read_timeout in pyvirt.conf)"
            )

    def pending(self) -> bool:
        """Whether a message (or the end of the stream) is waiting; reads what arrived, never waits."""
        while not self._messages and not self.closed:
            if not self.buffered() and not select.select([self.sock], [], [], 0)[0]:
                break
            self._read()
        self.check_alive()
        return bool(self._messages) or self.closed

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError as err:  # a frame begun and never finished
            raise self.transport.silence("sent part of a message and nothing more") from err
        except OSError as err:
            raise ConnectionFailed(
                f"cannot read from the daemon at {self.transport.description}: {err}"
            ) from err
        if data:
            self._heard = time.monotonic()
        self._feed(data)

    def _sendall(self, data: bytes) -> None:
        """Send it all; each part must be taken within ``read_timeout`` (a daemon still reading is fine)."""
        view = memoryview(data)
        try:
            while view:
                view = view[self.sock.send(view) :]
        except TimeoutError as err:
            raise self.transport.silence("took no data") from err
        except OSError as err:
            raise ConnectionFailed(
                f"cannot send to the daemon at {self.transport.description}: {err}"
            ) from err

    def send(self, data: bytes | str) -> None:
        """Send one message (binary for ``bytes``, text for ``str``)."""
        if self._ws.state is not ConnectionState.OPEN:
            raise ConnectionFailed(f"the stream from {self.transport.description} is closed")
        message = BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data)
        self._sendall(self._ws.send(message))

    def receive(self, timeout: float | None = None) -> bytes | str | None:
        """The next whole message; None once the daemon ended the stream.

        Raises TimeoutError when no whole message came within ``timeout`` seconds, ConnectionFailed
        when the daemon closed the stream over an error (the reason is its message), and TimedOut when
        the daemon fell silent (see the module's docstring).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self.closed:
                self._raise_if_failed()
                return None
            if not self.buffered():
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                alive = self.alive_for()
                if alive is not None and (wait is None or alive < wait):
                    if not select.select([self.sock], [], [], alive)[0]:
                        self.check_alive()
                        continue
                elif not select.select([self.sock], [], [], wait)[0]:
                    raise TimeoutError("no message from the daemon in time")
            self._read()
        return self._messages.popleft()

    def _raise_if_failed(self) -> None:
        if self.close_code is not None and self.close_code not in _ENDED:
            reason = self.close_reason or f"close code {self.close_code}"
            raise ConnectionFailed(f"the daemon at {self.transport.description} ended the stream: {reason}")

    def _feed(self, data: bytes) -> None:
        self._ws.receive_data(data or None)
        for event in self._ws.events():
            if isinstance(event, Message):
                self._partial.append(event.data)
                if event.message_finished:
                    parts, self._partial = self._partial, []
                    if isinstance(event, TextMessage):
                        self._messages.append("".join(str(p) for p in parts))
                    else:
                        self._messages.append(b"".join(bytes(p) for p in parts))  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                self._sendall(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = True
                self.close_code, self.close_reason = event.code, event.reason or ""
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    try:  # noqa: SIM105
                        self.sock.sendall(self._ws.send(event.response()))
                    except OSError:
                        pass

    def _state(self) -> ConnectionState:
        return self._ws.state

    def close(self, code: int = 1000) -> None:
        """Close the stream (waiting briefly for the daemon's answer) and the connection under it."""
        try:
            if self._ws.state is ConnectionState.OPEN:
                self._sendall(self._ws.send(CloseConnection(code=code)))
                deadline = time.monotonic() + CLOSE_TIMEOUT
                while self._state() is ConnectionState.LOCAL_CLOSING:
                    wait = deadline - time.monotonic()
                    if wait <= 0 or not select.select([self.sock], [], [], wait)[0]:
                        break
                    self._ws.receive_data(self.sock.recv(65536) or None)
                    for _event in self._ws.events():
                        pass
        except (OSError, ConnectionFailed):
            pass
        finally:
            self.closed = True
            self.transport.close()
