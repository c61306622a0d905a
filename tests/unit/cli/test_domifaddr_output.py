"""domifaddr's table: virsh names an interface (name and MAC) on its first address only, and on every
address with ``--full``. The daemon's side is a fake here; the addresses themselves are shown on a real
daemon in tests/integration/daemon/test_flags_network.py."""

from __future__ import annotations

from typing import Any

import pytest

from pyvirt.cli import network
from pyvirt.cli.args import parse
from pyvirt.cli.commands import find
from pyvirt.cli.main import GlobalOptions

ADDRESSES = [
    {"name": "vnet0", "mac": "52:54:00:00:00:01", "protocol": "ipv4", "address": "10.0.0.5/24"},
    {"name": "vnet0", "mac": "52:54:00:00:00:01", "protocol": "ipv6", "address": "fd00::5/64"},
    {"name": "vnet1", "mac": "52:54:00:00:00:02", "protocol": "ipv4", "address": "10.0.1.5/24"},
]


class FakeDomain:
    def interface_addresses(self, source: str | None = None) -> list[dict[str, Any]]:
        return ADDRESSES


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    monkeypatch.setattr(network, "_domain", lambda conn, key: FakeDomain())
    monkeypatch.setattr(GlobalOptions, "connect", lambda self: None)
    cmd = find("domifaddr")
    assert cmd is not None
    assert network.cmd_domifaddr(GlobalOptions(), parse(cmd, ["d1", *argv])) == 0
    return capsys.readouterr().out.splitlines()[2:-1]


def test_an_interface_is_named_once_unless_full(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [line.split() for line in run(monkeypatch, capsys)]
    assert rows == [
        ["vnet0", "52:54:00:00:00:01", "ipv4", "10.0.0.5/24"],
        ["-", "-", "ipv6", "fd00::5/64"],
        ["vnet1", "52:54:00:00:00:02", "ipv4", "10.0.1.5/24"],
    ]
    rows = [line.split() for line in run(monkeypatch, capsys, "--full")]
    assert rows == [[a["name"], a["mac"], a["protocol"], a["address"]] for a in ADDRESSES]
