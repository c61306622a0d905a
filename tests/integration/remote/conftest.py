"""Fixtures for remote access: a real sshd on 127.0.0.1 with generated keys, shared by a module, and a
pyvirtd listening for TLS (one per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.remote.sshd import SSHD, Sshd
from tests.integration.remote.tlsd import TLSDaemon, tls_daemon


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed (make setup installs it)")
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root")
    server = Sshd()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def tls() -> Iterator[TLSDaemon]:
    with tls_daemon() as server:
        yield server
