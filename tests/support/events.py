"""``pyvirt event --loop`` watchers for tests: started, shown listening, read up to what is awaited.

A watcher subscribes a moment after it starts, and a busy machine stretches that moment past any fixed
sleep: :func:`listening` defines a domain again (a ``Defined Updated`` event) until the watcher prints
it, so that what the test does next is seen.
"""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

from tests.support.daemon import BIN, Daemon


def watch(daemon: Daemon, *args: str) -> subprocess.Popen[bytes]:
    """``pyvirt event ARGS --loop`` in the background (no --timeout: it ends on SIGINT, which it takes
    even where the tests run as a background job of a shell, whose children start with SIGINT ignored)."""
    return subprocess.Popen(
        ["env", "--default-signal=INT", str(BIN / "pyvirt"), "event", *args, "--loop"],
        env=daemon.env,
        stdout=subprocess.PIPE,
    )


def read_until(
    proc: subprocess.Popen[bytes], wanted: bytes, bound: float = 300, settle: bool = False
) -> bytes:
    """What a watcher printed up to ``wanted``: a destroy's reply comes before its event reaches a
    watcher, so a test waits for the event rather than interrupting the watcher at once. With
    ``settle``, nothing printed within ``bound`` seconds is no failure."""
    assert proc.stdout is not None
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], bound)
        if not ready and settle:
            return seen
        chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{wanted!r} not printed by the watcher; it printed:\n{seen.decode()}")
        seen += chunk
    return seen


def listening(daemon: Daemon, proc: subprocess.Popen[bytes], domain: str, scratch: Path) -> bytes:
    """Define ``domain`` again until ``proc`` (watching its lifecycle events) prints it; what it printed."""
    again = scratch / f"{domain}-again.xml"
    again.write_text(daemon.cli("dumpxml", "--inactive", domain).ok().out)
    seen = b""
    while b": Defined Updated\n" not in seen:
        daemon.cli("define", str(again)).ok()
        seen += read_until(proc, b"\n", bound=5, settle=True)
    return seen
