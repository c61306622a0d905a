"""The client's side of volume transfers and the event feed, against scripted stream routes served by
the daemon's real HTTP layer on a Unix socket."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyvirt.client import streams
from pyvirt.client.transport import connect_unix
from pyvirt.client.websocket import WebSocket
from pyvirt.daemon.http import Request, Router, Stream
from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.storage import stream as frames
from tests.support.rawhttp import serve

CHUNK = frames.CHUNK


class Scripted:
    """Stream routes that play a part; ``received`` keeps what the client sent."""

    def __init__(self) -> None:
        self.received: list[bytes | str] = []
        self.router = Router()
        self.router.add("GET", "/upload-ok", stream=self.upload_ok)
        self.router.add("GET", "/upload-refused", stream=self.upload_refused)
        self.router.add("GET", "/download", stream=self.download)
        self.router.add("GET", "/download-fails", stream=self.download_fails)
        self.router.add("GET", "/events", stream=self.events)

    async def upload_ok(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        while (message := await stream.receive()) is not None:
            self.received.append(message)
            if isinstance(message, str) and json.loads(message)["type"] == "end":
                await stream.send(frames.end_message(1234))
                return

    async def upload_refused(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        self.received.append(await stream.receive() or b"")
        await stream.send(frames.error_message("invalid-argument", "upload sends more than asked for"))

    async def download(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        await stream.send(b"a" * 10)
        await stream.send(frames.hole_message(CHUNK * 2))
        await stream.send(b"b" * 10)
        await stream.send(frames.end_message(CHUNK * 2 + 20))

    async def download_fails(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        await stream.send(b"a" * 10)
        await stream.send(frames.error_message("operation-failed", "read failed: I/O error"))

    async def events(self, req: Request, stream: Stream) -> None:
        await stream.accept()
        await stream.send(json.dumps({"kind": "domain", "name": "a", "event": "started"}))
        await stream.send(b"not an event")
        await stream.send(json.dumps({"kind": "pool", "name": "p", "event": "refreshed"}))


def open_ws(path: str, target: str) -> WebSocket:
    return WebSocket(connect_unix(path), target)


def test_upload_sends_data_holes_and_end(tmp_path: Path) -> None:
    source = tmp_path / "src"
    with open(source, "wb") as fh:
        fh.write(b"x" * 100)
        fh.seek(100 + 4 * CHUNK)  # a hole the file system can report (whole blocks)
        fh.write(b"y" * 100)
    app = Scripted()

    def client(path: str) -> int:
        fd = os.open(source, os.O_RDONLY)
        try:
            return streams.upload(open_ws(path, "/upload-ok"), fd, os.fstat(fd).st_size, sparse=True)
        finally:
            os.close(fd)

    assert serve(tmp_path, app.router, client) == 1234
    data = [m for m in app.received if isinstance(m, bytes)]
    controls = [json.loads(m) for m in app.received if isinstance(m, str)]
    joined = b"".join(data)
    assert joined.startswith(b"x" * 100) and joined.endswith(b"y" * 100)
    assert controls[-1] == {"type": "end", "bytes": 200 + 4 * CHUNK}
    holes = sum(c["length"] for c in controls if c["type"] == "hole")
    assert holes + sum(len(m) for m in data) == 200 + 4 * CHUNK
    assert holes > 0 and all(len(m) <= CHUNK for m in data)


def test_upload_stops_at_the_daemons_refusal(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(os.urandom(3 * CHUNK))
    app = Scripted()

    def client(path: str) -> str:
        fd = os.open(source, os.O_RDONLY)
        try:
            with pytest.raises(InvalidArgument) as err:
                streams.upload(open_ws(path, "/upload-refused"), fd, 3 * CHUNK, sparse=False)
            return str(err.value)
        finally:
            os.close(fd)

    assert serve(tmp_path, app.router, client) == "upload sends more than asked for"


def test_download_writes_data_and_keeps_holes(tmp_path: Path) -> None:
    target = tmp_path / "out"

    def client(path: str) -> int:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT)
        try:
            return streams.download(open_ws(path, "/download"), fd)
        finally:
            os.close(fd)

    assert serve(tmp_path, Scripted().router, client) == 2 * CHUNK + 20
    assert target.read_bytes() == b"a" * 10 + bytes(2 * CHUNK) + b"b" * 10
    assert target.stat().st_blocks * 512 < CHUNK  # the hole was not written


def test_download_raises_the_daemons_error(tmp_path: Path) -> None:
    target = tmp_path / "out"

    def client(path: str) -> str:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OperationFailed) as err:
                streams.download(open_ws(path, "/download-fails"), fd)
            return str(err.value)
        finally:
            os.close(fd)

    assert serve(tmp_path, Scripted().router, client) == "read failed: I/O error"


def test_event_stream(tmp_path: Path) -> None:
    def client(path: str) -> list[Any]:
        with streams.EventStream(open_ws(path, "/events")) as events:
            return list(events)  # binary messages are not events; the stream ends with the close

    assert serve(tmp_path, Scripted().router, client) == [
        {"kind": "domain", "name": "a", "event": "started"},
        {"kind": "pool", "name": "p", "event": "refreshed"},
    ]
