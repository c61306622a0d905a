"""The daemon's WebSocket streams spoken by a third-party client (the ``websockets`` library) over the
Unix socket: the console of a real TCG guest, the event stream, and a volume upload and download."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, unix_connect

from tests.support.daemon import Daemon
from tests.support.guest import READY, domain_xml

pytestmark = pytest.mark.slow

NET_XML = "<network><name>wsnet</name><bridge name='pvws0'/></network>"


def ws(daemon: Daemon, target: str) -> ClientConnection:
    return unix_connect(str(daemon.socket), uri=f"ws://localhost{target}", open_timeout=30)


def read_until(conn: ClientConnection, pattern: str, timeout: float = 120) -> str:
    """Console output (binary messages) until ``pattern`` matches; what was read."""
    text = ""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{pattern!r} not seen; console said:\n{text[-2000:]}"
        try:
            message = conn.recv(timeout=min(remaining, 1.0))
        except TimeoutError:
            continue
        assert isinstance(message, bytes), f"the console sent a text message: {message!r}"
        text += message.decode(errors="replace")
    return text


def test_console_with_a_standard_websocket_client(daemon: Daemon, tmp_path: Path) -> None:
    xml = tmp_path / "ws1.xml"
    xml.write_text(domain_xml("ws1"))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "ws1").ok()

    with ws(daemon, "/v1/domains/ws1/console?history=1") as console:
        read_until(console, READY)
        console.send(b"echo websocket-$((6*7))\n")
        assert "websocket-42" in read_until(console, r"websocket-42\r?\n")
        console.send("echo typed-as-text-$((2+3))\n")  # text messages are typed too (a browser's)
        read_until(console, r"typed-as-text-5\r?\n")

        # A second client is refused while one is attached, before any upgrade.
        with pytest.raises(InvalidStatus) as refused:
            ws(daemon, "/v1/domains/ws1/console")
        assert refused.value.response.status_code == 409
        assert b"Active console session exists" in refused.value.response.body

        # force takes the console over: the first client's stream ends with a normal close.
        with ws(daemon, "/v1/domains/ws1/console?force=1") as taker:
            with pytest.raises(ConnectionClosedOK):
                while True:
                    console.recv(timeout=30)
            taker.send(b"echo taken-over\n")
            read_until(taker, r"taken-over\r?\n")
    daemon.cli("destroy", "ws1").ok()


def test_events_with_a_standard_websocket_client(daemon: Daemon, tmp_path: Path) -> None:
    xml = tmp_path / "ev1.xml"
    xml.write_text(domain_xml("ev1"))
    net = tmp_path / "net.xml"
    net.write_text(NET_XML)
    with ws(daemon, "/v1/events") as events:
        daemon.cli("define", str(xml)).ok()
        daemon.cli("start", "ev1").ok()
        daemon.cli("destroy", "ev1").ok()
        daemon.cli("undefine", "ev1").ok()
        daemon.cli("net-define", str(net)).ok()
        daemon.cli("net-undefine", "wsnet").ok()
        daemon.cli("vol-create-as", "default", "ev.img", "1M").ok()
        daemon.cli("pool-refresh", "default").ok()
        daemon.cli("vol-delete", "ev.img", "--pool", "default").ok()
        seen: list[tuple[str, str, str]] = []
        while len(seen) < 9:
            message = events.recv(timeout=60)
            assert isinstance(message, str), f"an event came as a binary message: {message!r}"
            event = json.loads(message)
            assert set(event) == {"kind", "name", "event", "detail", "time"}
            seen.append((event["kind"], event["name"], event["event"]))
    assert seen == [
        ("domain", "ev1", "defined"),
        ("domain", "ev1", "started"),
        ("domain", "ev1", "stopped"),
        ("domain", "ev1", "undefined"),
        ("network", "wsnet", "defined"),
        ("network", "wsnet", "undefined"),
        ("volume", "default/ev.img", "created"),
        ("pool", "default", "refreshed"),
        ("volume", "default/ev.img", "deleted"),
    ]


def control(conn: ClientConnection) -> dict[str, Any]:
    message = conn.recv(timeout=60)
    assert isinstance(message, str), message
    parsed: dict[str, Any] = json.loads(message)
    return parsed


def test_volume_transfer_with_a_standard_websocket_client(daemon: Daemon) -> None:
    daemon.cli("vol-create-as", "default", "t.img", "4M", "--allocation", "0").ok()
    path = Path(daemon.cli("vol-path", "t.img", "--pool", "default").ok().out.strip())
    data = os.urandom(1 << 20)
    base = "/v1/pools/default/volumes/t.img"

    # Upload: 1 MiB of data, a 2 MiB hole, 1 MiB of data, starting 0 bytes into the volume.
    with ws(daemon, f"{base}/upload") as up:
        up.send(data)
        up.send(json.dumps({"type": "hole", "length": 2 << 20}))
        up.send(data)
        up.send(json.dumps({"type": "end"}))
        assert control(up) == {"type": "end", "bytes": 4 << 20}
    assert path.read_bytes() == data + bytes(2 << 20) + data

    # A sparse download sends the hole as a hole message, and ends with the byte count.
    with ws(daemon, f"{base}/download?sparse=1") as down:
        received = b""
        while True:
            message = down.recv(timeout=60)
            if isinstance(message, bytes):
                received += message
                continue
            fields = json.loads(message)
            if fields["type"] == "hole":
                received += bytes(fields["length"])
                continue
            assert fields == {"type": "end", "bytes": 4 << 20}
            break
    assert received == data + bytes(2 << 20) + data

    # More than the length asked for is refused with an error message, and nothing past it written.
    with ws(daemon, f"{base}/upload?offset=0&length=10") as up:
        up.send(b"x" * 11)
        reply = control(up)
        assert reply["type"] == "error" and "more than the 10 bytes" in reply["error"]["message"]
    assert path.read_bytes()[:11] == data[:11]
