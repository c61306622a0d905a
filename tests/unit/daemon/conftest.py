"""Fixtures of the daemon's unit tests."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def root() -> Iterator[Path]:
    """A scratch PYVIRT_ROOT, short: monitor socket paths must fit a sockaddr_un."""
    with tempfile.TemporaryDirectory(prefix="pv", dir="/tmp") as tmp:
        yield Path(tmp)


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Fails the test if the daemon logged an error (an event it could not apply is one)."""
    caplog.set_level(logging.WARNING)
    found: list[logging.LogRecord] = []
    yield found
    found.extend(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert not found, [r.getMessage() for r in found]
