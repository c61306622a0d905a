"""A serial port writing to a file with a <log> copy (pyvirt.conf.chardev_options) on a real guest:
what the guest writes to /dev/ttyS1 lands in both files, which the daemon handed to QEMU's user."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def test_file_serial_with_a_log_gets_what_the_guest_writes(daemon: Daemon, tmp_path: Path) -> None:
    out, log = tmp_path / "ttyS1.txt", tmp_path / "ttyS1.log"
    log.write_text("kept\n")
    serial = (
        f"<serial type='file'><source path='{out}'/><log file='{log}' append='on'/>"
        "<target port='1'/></serial>"
    )
    daemon.define(domain_xml("log1", extra_devices=serial))
    xml = daemon.cli("dumpxml", "log1").ok().out
    assert f"<log file='{log}' append='on'/>" in xml, xml
    daemon.cli("start", "log1").ok()
    console = Console(daemon, "log1")
    console.expect("pyvirt-guest: ready")
    console.run("echo PYVIRT-LOG-MARK > /dev/ttyS1")
    console.close()
    for _ in range(300):  # the UART drains at its own pace
        if "PYVIRT-LOG-MARK" in out.read_text() and "PYVIRT-LOG-MARK" in log.read_text():
            break
        time.sleep(0.1)
    daemon.cli("destroy", "log1").ok()
    assert "PYVIRT-LOG-MARK" in out.read_text()
    assert log.read_text().startswith("kept\n") and "PYVIRT-LOG-MARK" in log.read_text()  # appended
