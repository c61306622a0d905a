"""A scratch host layout for the storage driver's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.paths import Layout, system_layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = system_layout(tmp_path / "root")
    lay.run_dir.mkdir(parents=True)
    lay.ensure()
    return lay
