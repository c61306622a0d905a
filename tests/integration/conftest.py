"""Fixtures for integration tests: a real pyvirtd in a scratch root, the real test guest; the files' order
and work units when they run side by side (tests/support/schedule.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import schedule
from tests.support.daemon import Daemon, running_daemon
from tests.support.virtinstall import Oracle


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(schedule.Distribution(), "pyvirt-distribution")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    schedule.longest_first(items)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A daemon of the test's own."""
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def module_daemon() -> Iterator[Daemon]:
    """One daemon for all the tests of a module."""
    with running_daemon() as d:
        yield d


@pytest.fixture(scope="module")
def sata_raw(module_daemon: Daemon) -> Iterator[Path]:
    """The bootable test disk with its root on /dev/sda2: the disk of the appliances (OVA, OVF) the
    tests make, whose controller is SATA."""
    from tests.support import bootable

    raw = bootable.make_raw(module_daemon.root / "sata.raw", root="/dev/sda2")
    yield raw
    raw.unlink(missing_ok=True)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch directory QEMU's unprivileged user can traverse, as a host's image directories are:
    pytest's own (under /tmp/pytest-of-USER, mode 0700) would have every disk in it refused."""
    path = Path(tempfile.mkdtemp(prefix="pvt-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    """A private libvirtd 9.0 as a test file's oracle; skipped, saying why, where it cannot run."""
    reason = Oracle.missing()
    if reason:
        pytest.skip(f"libvirt 9.0 is not the oracle here: {reason}")
    with Oracle() as o:
        yield o
