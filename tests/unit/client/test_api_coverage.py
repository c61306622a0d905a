"""The Python client covers the API table: every action has a method, and nothing builds paths by hand."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import pyvirt
from pyvirt.api.table import BY_NAME
from pyvirt.client.api import Connection, action_path
from pyvirt.errors import NotFound
from pyvirt.uri import parse_uri

SRC = Path(pyvirt.__file__).parent


def actions_called(folder: Path) -> set[str]:
    """The action names passed as first argument to ``.call(...)``/``.stream(...)`` in ``folder``."""
    found = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("call", "stream", "_call")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_every_action_has_a_client_method() -> None:
    called = actions_called(SRC / "client")
    assert called - set(BY_NAME) == set(), "calls of actions the table does not declare"
    assert set(BY_NAME) - called == set(), "actions no client method calls"


@pytest.mark.parametrize("package", ["client", "cli"])
def test_no_hand_built_paths(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        assert "/v1" not in path.read_text(), f"{path} builds an API path by hand"


def test_action_path_quotes_params_and_keeps_only_set_query() -> None:
    assert action_path("domain.xml", {"name": "web 01/x"}, {"inactive": True, "security_info": False}) == (
        "/v1/domains/web%2001%2Fx/xml?inactive=1"
    )
    assert action_path("volume.download", {"pool": "p", "vol": "v"}, {"offset": 0, "length": 9}) == (
        "/v1/pools/p/volumes/v/download?length=9"
    )
    assert action_path("network.leases", {"name": "n"}, {"mac": None}) == "/v1/networks/n/leases"


class OpenSocket:
    """A socket with nothing to read: the daemon has not closed it."""

    def gettimeout(self) -> float | None:
        return None

    def setblocking(self, flag: bool) -> None:
        pass

    def settimeout(self, value: float | None) -> None:
        pass

    def recv(self, size: int, flags: int = 0) -> bytes:
        raise BlockingIOError


class FakeTransport:
    """Answers by route; records every request."""

    spent = False
    sock = OpenSocket()

    def __init__(self, replies: dict[tuple[str, str], Any]) -> None:
        self.replies = replies
        self.sent: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.sent.append((method, path, body))
        reply = self.replies.get((method, path))
        if reply is None:
            raise NotFound(f"Domain not found: no domain with matching name '{path}'")
        return reply

    def close(self) -> None:
        pass


def connection(replies: dict[tuple[str, str], Any]) -> tuple[Connection, FakeTransport]:
    transport = FakeTransport(replies)
    return Connection(transport, parse_uri("qemu:///system")), transport  # type: ignore[arg-type]


def test_lookup_is_one_call_and_fails_at_once() -> None:
    info = {"name": "web", "uuid": "u", "id": None, "state": "shut off"}
    conn, transport = connection({("GET", "/v1/domains/u"): info})
    dom = conn.domain("u")
    assert dom.name == "web" and dom.info(cached=True) == info
    assert len(transport.sent) == 1
    with pytest.raises(NotFound):
        conn.domain("typo")
    with pytest.raises(NotFound):
        conn.network("typo")
    with pytest.raises(NotFound):
        conn.pool("typo")


def test_methods_send_the_declared_bodies() -> None:
    summary = {"name": "web"}
    conn, transport = connection(
        {
            ("GET", "/v1/domains/web"): summary,
            ("POST", "/v1/domains/web/start"): summary,
            ("POST", "/v1/domains/web/interfaces"): {"mac": "52:54:00:00:00:01", "target": None},
            ("DELETE", "/v1/domains/web/interfaces/52%3A54%3A00%3A00%3A00%3A01?config=1"): {},
            ("POST", "/v1/domains/web/interfaces/vnet0/link"): {},
        }
    )
    dom = conn.domain("web")
    dom.start(paused=True)
    dom.attach_interface("network", "default", live=True)
    dom.detach_interface("52:54:00:00:00:01", config=True)
    dom.set_link("vnet0", False)
    assert transport.sent[1:] == [
        ("POST", "/v1/domains/web/start", {"paused": True}),
        (
            "POST",
            "/v1/domains/web/interfaces",
            {"type": "network", "live": True, "config": False, "source": "default"},
        ),
        ("DELETE", "/v1/domains/web/interfaces/52%3A54%3A00%3A00%3A00%3A01?config=1", None),
        ("POST", "/v1/domains/web/interfaces/vnet0/link", {"state": "down"}),
    ]


def test_a_connection_the_daemon_ended_is_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle connection the daemon closed (its read timeout), or one it marked spent, is replaced."""
    import socket

    from pyvirt.client import api
    from pyvirt.client.transport import Transport

    ours, theirs = socket.socketpair()
    conn = Connection(Transport(ours, "test", read_timeout=30.0), parse_uri("qemu:///system"))
    fresh = FakeTransport({("GET", "/v1/domains"): []})
    monkeypatch.setattr(api, "open_transport", lambda uri, readonly: fresh)
    assert api._usable(conn.transport)  # at once, although reads wait up to 30 s
    assert ours.gettimeout() == 30.0
    theirs.close()
    assert conn.list_domains() == []
    assert conn.transport is fresh and fresh.sent == [("GET", "/v1/domains", None)]
    fresh.spent = True
    again = FakeTransport({("GET", "/v1/domains"): []})
    monkeypatch.setattr(api, "open_transport", lambda uri, readonly: again)
    conn.list_domains()
    assert conn.transport is again
