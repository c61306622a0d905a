"""``pyvirt event``'s lines for the daemon's domain events, as virsh event prints them."""

from __future__ import annotations

import pytest

from pyvirt.cli.domain import _EVENT_TYPES, _event_line


@pytest.mark.parametrize("action", ["none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi"])
def test_watchdog_is_its_own_event_type(action: str) -> None:
    event = {"kind": "domain", "name": "web", "event": "watchdog", "detail": action}
    assert _event_line(event) == ("watchdog", f": {action}")  # event 'watchdog' for domain 'web': ACTION
    assert "watchdog" in _EVENT_TYPES  # pyvirt event --event watchdog is accepted


def test_the_pause_it_causes_is_a_lifecycle_event() -> None:
    event = {"kind": "domain", "name": "web", "event": "suspended", "detail": "watchdog"}
    assert _event_line(event) == ("lifecycle", ": Suspended Watchdog")
