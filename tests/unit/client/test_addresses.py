"""Waiting for a guest's address (pyvirt launch --wait-ip): the lease first, the agent when it answers."""

from __future__ import annotations

from typing import Any

import pytest

from pyvirt.client.addresses import usable, wait_address
from pyvirt.errors import InvalidState, OperationFailed, UnsupportedConfig


def _addr(ip: str, protocol: str = "ipv4") -> dict[str, Any]:
    return {"name": "vnet0", "mac": "52:54:00:00:00:01", "protocol": protocol, "address": f"{ip}/24"}


class FakeDomain:
    """Replies per source, one list per call (the last repeats)."""

    name = "vm1"

    def __init__(self, lease: list[Any], agent: list[Any]) -> None:
        self.replies = {None: lease, "agent": agent}
        self.calls: list[str | None] = []

    def interface_addresses(self, source: str | None = None) -> list[Any]:
        self.calls.append(source)
        queue = self.replies[source]
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        return list(reply)


def test_usable_addresses() -> None:
    assert usable(_addr("10.0.0.5")) and not usable(_addr("127.0.0.1"))
    assert not usable(_addr("169.254.1.1")) and not usable(_addr("fe80::1", "ipv6"))


def test_the_lease_wins_and_a_missing_agent_is_asked_once() -> None:
    dom = FakeDomain(lease=[[], [], [_addr("10.0.0.9")]], agent=[UnsupportedConfig("no agent")])
    assert wait_address(dom, timeout=10, interval=0)["address"] == "10.0.0.9/24"  # type: ignore[arg-type]
    assert dom.calls == [None, "agent", None, None]


def test_the_agent_answers_when_there_is_no_lease() -> None:
    answer = [_addr("127.0.0.1"), _addr("192.168.5.4")]
    dom = FakeDomain(lease=[[]], agent=[OperationFailed("not yet"), answer])
    assert wait_address(dom, timeout=10, interval=0)["address"] == "192.168.5.4/24"  # type: ignore[arg-type]


def test_timeout_and_a_stopped_domain() -> None:
    with pytest.raises(TimeoutError, match="no IPv4 address after 0 s"):
        wait_address(FakeDomain(lease=[[]], agent=[[]]), timeout=0, interval=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidState):
        wait_address(FakeDomain(lease=[InvalidState("not running")], agent=[[]]), 5, 0)  # type: ignore[arg-type]
