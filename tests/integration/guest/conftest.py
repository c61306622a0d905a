"""Fixtures for the offline guest tools: the cached base disks, and a skip where libguestfs cannot run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.guest.disks import BUSYBOX, Snapshot, build_base_disks


def _libguestfs_missing() -> str | None:
    try:
        import guestfs  # noqa: F401
    except ImportError:
        return "python3-guestfs is not importable (make setup builds the venv on Debian's python3)"
    if not os.path.exists(BUSYBOX):
        return "busybox-static is not installed"
    return None


@pytest.fixture(scope="session")
def base_disks() -> tuple[Path, Path, Snapshot, Snapshot]:
    """(debian.qcow2, rhel.qcow2, debian snapshot, rhel snapshot); never written by tests."""
    reason = _libguestfs_missing()
    if reason:
        pytest.skip(reason)
    return build_base_disks()
