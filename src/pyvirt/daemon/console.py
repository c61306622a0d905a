"""Serial console relay: the daemon holds a domain's pty and relays it to one attached client at a time.

The pty is read continuously (so a guest never blocks on a full pty) into a ring buffer of recent
output; an attached client receives live output, and may ask for the buffered history first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

HISTORY_BYTES = 64 * 1024


class ConsoleRelay:
    """One domain's serial pty."""

    def __init__(self, name: str, pty_path: str) -> None:
        self.name = name
        self.pty_path = pty_path
        self._fd: int | None = None
        self._history = bytearray()
        self._sink: Callable[[bytes], None] | None = None
        self._on_detach: Callable[[], None] | None = None
        self._pending = bytearray()  # typed input the pty could not take yet

    def open(self) -> None:
        self._fd = os.open(self.pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def close(self) -> None:
        if self._fd is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = None
        self.detach()

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # The slave side hung up (QEMU closed the pty); stop polling until closed.
            asyncio.get_running_loop().remove_reader(self._fd)
            return
        self._history += data
        if len(self._history) > HISTORY_BYTES:
            del self._history[: len(self._history) - HISTORY_BYTES]
        if self._sink is not None:
            self._sink(data)

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def attach(
        self, sink: Callable[[bytes], None], on_detach: Callable[[], None], *, history: bool = False
    ) -> None:
        if history and self._history:
            sink(bytes(self._history))
        self._sink = sink
        self._on_detach = on_detach

    def detach(self) -> None:
        callback = self._on_detach
        self._sink = None
        self._on_detach = None
        if callback is not None:
            callback()

    def is_sink(self, sink: Callable[[bytes], None]) -> bool:
        return self._sink is sink

    def write(self, data: bytes) -> None:
        """Queue input for the guest; what the pty cannot take now is sent when it becomes writable."""
        if self._fd is None:
            return
        was_empty = not self._pending
        self._pending += data
        if was_empty:
            self._flush()

    def _flush(self) -> None:
        if self._fd is None:
            return
        loop = asyncio.get_running_loop()
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                loop.add_writer(self._fd, self._writable)
                return
            except OSError as err:
                log.warning("console of %s: write failed: %s", self.name, err)
                self._pending.clear()
                return
            del self._pending[:written]

    def _writable(self) -> None:
        assert self._fd is not None
        asyncio.get_running_loop().remove_writer(self._fd)
        self._flush()

    def history(self) -> bytes:
        return bytes(self._history)


def drop_relay(relay: ConsoleRelay | None) -> None:
    if relay is not None:
        with contextlib.suppress(Exception):
            relay.close()
