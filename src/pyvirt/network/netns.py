"""Run kernel-facing work inside a named network namespace.

A thread may switch its own network namespace with ``setns(2)``; netlink sockets, ``/dev/net/tun``
file descriptors, ``/proc/sys/net`` files and child processes created by that thread then belong to
the namespace. :class:`NetnsRunner` keeps one such worker thread; with no namespace it simply calls
in the caller's thread. The driver uses it so tests can run every bridge, tap, rule and dnsmasq in a
namespace they own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyvirt.errors import OperationFailed

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


def _setns(path: Path) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OperationFailed(f"cannot enter network namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsRunner:
    """Calls functions in a thread that lives in network namespace ``name`` (or directly when None)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if name is not None:
            path = NETNS_DIR / name
            if not path.exists():
                raise OperationFailed(f"network namespace '{name}' does not exist ({path})")
            self._pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"netns-{name}", initializer=_setns, initargs=(path,)
            )

    def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if self._pool is None:
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
