"""Helpers shared by the storage driver's unit tests."""

from __future__ import annotations

from pathlib import Path

from pyvirt.paths import Layout
from pyvirt.storage.driver import StorageDriver


def make_driver(layout: Layout) -> StorageDriver:
    """A driver over ``layout`` as the daemon makes one at start-up (call again to 'restart')."""
    driver = StorageDriver(layout)
    driver.load()
    return driver


def pool_xml(name: str, path: Path, uuid: str | None = None) -> str:
    uuid_xml = f"<uuid>{uuid}</uuid>" if uuid else ""
    return f"<pool type='dir'><name>{name}</name>{uuid_xml}<target><path>{path}</path></target></pool>"
