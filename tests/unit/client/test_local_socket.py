"""The client's path-free socket rule agrees with pyvirt.paths for every mode and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.client.api import local_socket
from pyvirt.paths import layout_for


@pytest.mark.parametrize("mode", ["system", "session"])
@pytest.mark.parametrize("root", [None, "/tmp/pv-x"])
@pytest.mark.parametrize("runtime", [None, "/run/user/1000"])
def test_matches_layout(
    monkeypatch: pytest.MonkeyPatch, mode: str, root: str | None, runtime: str | None
) -> None:
    for name, value in (("PYVIRT_ROOT", root), ("XDG_RUNTIME_DIR", runtime)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    layout = layout_for(mode)
    assert Path(local_socket(mode)) == layout.socket
    assert Path(local_socket(mode, readonly=True)) == layout.socket_ro
