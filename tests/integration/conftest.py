"""Fixtures for integration tests: a real pyvirtd in a scratch root, the real test guest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.daemon import Daemon


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    d.start()
    try:
        yield d
    finally:
        d.cleanup()
