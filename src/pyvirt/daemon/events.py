"""Lifecycle events: a small publish/subscribe bus feeding the daemon's event stream (a WebSocket at
``/v1/events``, one JSON text message per event).

What is published, by kind (``name`` is the object's; a volume's is ``POOL/VOLUME``):

- ``domain``: defined, undefined, started, stopped, suspended, resumed, shutdown, rebooted, crashed;
  device-added and device-removed (detail: the device's alias), tray-change (detail: the device's alias
  and ``opened`` or ``closed``), rtc-change (detail: the guest RTC's offset from its start, seconds),
  watchdog (detail: QEMU's action: none, pause, reset, poweroff, shutdown, debug or inject-nmi),
  io-error (detail: JSON path, alias, action, reason; a disk's I/O error, or a virtiofs share whose
  virtiofsd died: :mod:`pyvirt.daemon.virtiofs`)
- ``network``: defined, undefined, started, stopped
- ``pool``: defined, undefined, started, stopped, refreshed
- ``volume``: created, deleted, wiped, resized, uploaded
- ``block-job`` (``name``: the domain): completed, failed, canceled, ready; detail ``TYPE:TARGET:PATH``
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Event:
    kind: str  # domain, network, pool, volume
    name: str
    event: str  # see the module's docstring
    detail: str = ""
    time: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventBus:
    """Fan events out to every subscriber; a slow subscriber loses its oldest events, never blocks others."""

    def __init__(self, backlog: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._backlog = backlog

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._backlog)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, name: str, event: str, detail: str = "") -> None:
        item = Event(kind, name, event, detail, time.time())
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)
