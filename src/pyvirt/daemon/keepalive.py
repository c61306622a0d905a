"""The daemon's keepalive: a callback repeated every ``interval`` seconds on the event loop.

While a request runs that asked for it (``Expect: 102-processing``), the HTTP layer sends ``102
Processing`` on each beat, and an open WebSocket sends a ping: a client then tells a daemon at work
(or a quiet stream) from a hung one by silence alone (its ``read_timeout``), however long the work
takes. Timer callbacks, not tasks: a request
that ends before the first beat costs one timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

KEEPALIVE_INTERVAL = 5.0  # libvirtd.conf's keepalive_interval default


class Heartbeat:
    """Call ``beat`` every ``interval`` seconds until :meth:`stop`, or until ``beat`` returns False."""

    def __init__(self, interval: float, beat: Callable[[], bool]) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._beat = beat
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        if self._handle is None:
            return
        if self._beat():
            self._handle = self._loop.call_later(self._interval, self._fire)
        else:
            self._handle = None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
