"""The systemd units as installed: Exec paths that are this install's commands, socket paths that are
pyvirtd's, and units that systemd-analyze accepts."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.paths import layout_for
from tests.support.daemon import BIN

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts/install-systemd.py"


def unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def install(unitdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--unitdir", str(unitdir), *extra], capture_output=True, text=True
    )


def test_units_name_this_installs_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = install(tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "pyvirt-guests.service",
        "pyvirtd-ro.socket",
        "pyvirtd-tls.socket",
        "pyvirtd.service",
        "pyvirtd.socket",
    ]
    daemon = unit(tmp_path / "pyvirtd.service")
    assert daemon["Service"]["Type"] == "notify"
    assert daemon["Service"]["ExecStart"] == f"{BIN}/pyvirtd --system"
    guests = unit(tmp_path / "pyvirt-guests.service")
    assert guests["Service"]["ExecStart"].startswith(f"{BIN}/pyvirt-guests ")
    assert guests["Service"]["ExecStop"].startswith(f"{BIN}/pyvirt-guests ")
    for name in names:
        assert "@BINDIR@" not in (tmp_path / name).read_text()
    # The sockets systemd makes are the ones pyvirtd serves for qemu:///system.
    monkeypatch.delenv("PYVIRT_ROOT", raising=False)
    layout = layout_for("system")
    assert unit(tmp_path / "pyvirtd.socket")["Socket"]["ListenStream"] == str(layout.socket)
    assert unit(tmp_path / "pyvirtd-ro.socket")["Socket"]["ListenStream"] == str(layout.socket_ro)
    assert unit(tmp_path / "pyvirtd.socket")["Socket"]["SocketMode"] == "0600"
    assert unit(tmp_path / "pyvirtd-ro.socket")["Socket"]["SocketMode"] == "0666"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze on this machine to judge the units")
    units = [str(tmp_path / name) for name in names]
    verify = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


def test_a_bindir_without_pyvirt_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = install(tmp_path / "units", "--bindir", str(empty))
    assert result.returncode == 1
    assert f"runs {empty}/" in result.stderr and "which is not an installed command" in result.stderr
    assert not (tmp_path / "units").exists() or not os.listdir(tmp_path / "units")
