"""A domain with a <tpm> (pyvirt.conf.tpm) is defined and written back; its start is refused by name
before any QEMU runs when the host lacks the backend (swtpm, /dev/tpm0), and it stays shut off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        ("<backend type='emulator' version='2.0'/>", "swtpm"),
        ("<backend type='passthrough'><device path='/dev/tpm0'/></backend>", "/dev/tpm0"),
    ],
)
def test_tpm_start_refused_by_name(daemon: Daemon, tmp_path: Path, backend: str, reason: str) -> None:
    if reason == "swtpm" and shutil.which("swtpm"):
        reason = "does not start swtpm yet"
    if reason == "/dev/tpm0" and Path("/dev/tpm0").exists():
        reason = "not handed to QEMU yet"
    path = tmp_path / "tpm1.xml"
    path.write_text(domain_xml("tpm1", extra_devices=f"<tpm model='tpm-crb'>{backend}</tpm>"))
    daemon.cli("define", str(path)).ok()
    assert "<tpm model='tpm-crb'>" in daemon.cli("dumpxml", "tpm1").ok().out
    result = daemon.cli("start", "tpm1")
    assert result.rc == 1 and reason in result.err, result.err
    assert daemon.cli("domstate", "tpm1").ok().out.strip() == "shut off"
