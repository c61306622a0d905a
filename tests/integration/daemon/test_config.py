"""pyvirtd.conf on a real daemon: an unknown setting or a bad value stops it with an error naming both
the setting and the file; log_level and max_queued_clients take effect."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def configured(text: str) -> Daemon:
    daemon = Daemon()
    conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)
    return daemon


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_client = 5\n", "unknown setting 'max_client' (did you mean 'max_clients'?)"),
        ("log_level = 9\n", "log_level must be 1 (debug), 2 (info), 3 (warning) or 4 (error), not 9"),
    ],
)
def test_a_bad_setting_stops_the_daemon_naming_it(text: str, message: str) -> None:
    daemon = configured(text)
    try:
        with pytest.raises(RuntimeError) as err:
            daemon.start(wait=20)
        assert f"error: {daemon.root}/etc/pyvirt/pyvirtd.conf: {message}" in str(err.value)
        assert not daemon.socket.exists()
    finally:
        daemon.cleanup()


def test_log_level_and_backlog_take_effect(tmp_path: Path) -> None:
    daemon = configured("log_level = 3\nmax_queued_clients = 7\n")
    try:
        daemon.start(verbose=False)
        xml = tmp_path / "c1.xml"
        xml.write_text(MINI.format(name="c1"))
        daemon.cli("define", str(xml)).ok()
        log = daemon.log.read_text()
        assert " INFO pyvirtd: " not in log  # "listening on ..." is info: below log_level 3
        assert f"domain.define POST /v1/domains by uid {os.getuid()} pid " in log  # the audit always is
        for path in (daemon.socket, daemon.root / "run/pyvirt/pyvirt-sock-ro"):
            row = subprocess.run(["ss", "-xlH", "src", str(path)], capture_output=True, text=True).stdout
            assert row.split()[3] == "7", row  # Send-Q of a listening socket: its backlog
    finally:
        daemon.cleanup()


def test_info_is_logged_by_default(daemon: Daemon) -> None:
    daemon.cli("list").ok()  # served: the daemon is past its start-up lines
    assert " INFO pyvirtd: pyvirtd " in daemon.log.read_text()  # the line the test above expects gone
