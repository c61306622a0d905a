"""What the client does on the daemon's streams: the event feed, and volume uploads and downloads.

Each runs on its own :class:`~pyvirt.client.websocket.WebSocket`; the messages of a volume transfer are
described in :mod:`pyvirt.storage.stream`. Imported only by the stream commands (CLI start-up time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from pyvirt.client.websocket import WebSocket
from pyvirt.errors import OperationFailed, PyvirtError, error_from_wire
from pyvirt.storage import stream as frames


class EventStream:
    """Lifecycle events (domain, network, pool, volume) as dicts, in the order the daemon saw them.

    Iterating waits for each next event and ends when the daemon ends the stream; :meth:`next` waits
    at most ``timeout`` seconds (TimeoutError). Close it (or use it as a context manager) when done.
    """

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; None once the stream ended."""
        while True:
            message = self.ws.receive(timeout)
            if message is None:
                return None
            if isinstance(message, str):
                event = json.loads(message)
                if isinstance(event, dict):
                    return event

    def close(self) -> None:
        self.ws.close()


def _failure(fields: dict[str, Any]) -> PyvirtError:
    err = fields.get("error", {})
    if not isinstance(err, dict):
        err = {}
    return error_from_wire(str(err.get("code", "internal")), str(err.get("message", "transfer failed")))


def _reply(ws: WebSocket, timeout: float | None = None) -> tuple[str, dict[str, Any]]:
    """The daemon's next control message (a data message here is a protocol error)."""
    message = ws.receive(timeout)
    if message is None:
        raise OperationFailed("the daemon ended the transfer without a word")
    if isinstance(message, bytes):
        raise OperationFailed("the daemon sent data where it should have answered")
    try:
        return frames.parse_control(message)
    except ValueError as err:
        raise OperationFailed(f"the daemon's answer is malformed: {err}") from err


def upload(ws: WebSocket, fd: int, end: int, *, sparse: bool) -> int:
    """Send ``fd``'s bytes from 0 to ``end`` (holes as hole messages with ``sparse``); the count the
    daemon wrote. An error the daemon reports mid-way stops the upload at once."""
    with ws:
        for is_data, start, count in frames.extents(fd, 0, end, sparse=sparse):
            if not is_data:
                ws.send(frames.hole_message(count))
                continue
            pos = start
            while pos < start + count:
                chunk = os.pread(fd, min(frames.CHUNK, start + count - pos), pos)
                if not chunk:
                    break
                ws.send(chunk)
                pos += len(chunk)
                if ws.pending():
                    # The daemon speaks before the end only to refuse the rest (pings aside).
                    _kind, fields = _reply(ws)
                    raise _failure(fields)
        ws.send(frames.end_message(end))
        kind, fields = _reply(ws)
        if kind != frames.END:
            raise _failure(fields)
        return int(fields.get("bytes", 0))


def download(ws: WebSocket, fd: int) -> int:
    """Write what the daemon sends into ``fd`` from offset 0 (holes stay holes); the bytes covered."""
    pos = 0
    with ws:
        while True:
            message = ws.receive()
            if message is None:
                raise OperationFailed("the daemon ended the download early")
            if isinstance(message, bytes):
                view = memoryview(message)
                while view:
                    written = os.pwrite(fd, view, pos)
                    view = view[written:]
                    pos += written
                continue
            try:
                kind, fields = frames.parse_control(message)
            except ValueError as err:
                raise OperationFailed(f"the daemon's message is malformed: {err}") from err
            if kind == frames.HOLE:
                # Sent only for sparse downloads: the hole stays a hole in the file.
                pos += int(fields["length"])
                os.ftruncate(fd, max(pos, os.fstat(fd).st_size))
            elif kind == frames.END:
                return pos
            else:
                raise _failure(fields)
