"""A QEMU killed with -9 under a running daemon: the domain is ``shut off (crashed)``, its run files and
console are released, and ``on_crash`` is honoured (``restart`` boots it again in a new QEMU)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = "pyvirt-guest: ready"


@pytest.mark.parametrize("on_crash", ["destroy", "preserve", "restart"])
def test_qemu_killed(daemon: Daemon, tmp_path: Path, on_crash: str) -> None:
    name = f"q9-{on_crash}"
    (tmp_path / "d.xml").write_text(domain_xml(name, on_crash=on_crash))
    daemon.cli("define", str(tmp_path / "d.xml")).ok()
    daemon.cli("start", name).ok()
    pid = daemon.qemu_pids()[name]
    os.kill(pid, signal.SIGKILL)
    if on_crash == "restart":
        deadline = time.monotonic() + 60
        while daemon.qemu_pids().get(name) in (None, pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        new = daemon.qemu_pids().get(name)
        assert new not in (None, pid), "the domain was not restarted"
        Console(daemon, name).expect(READY)
        assert daemon.cli("domstate", "--reason", name).ok().out.strip() == "running (booted)"
        assert "the QEMU of domain q9-restart died; restarting it" in daemon.log.read_text()
        daemon.cli("destroy", name).ok()
        assert daemon.cli("domstate", name).ok().out.strip() == "shut off"  # a destroy is no crash
        return
    daemon.wait_state(name, "shut off", 30)
    assert daemon.cli("domstate", "--reason", name).ok().out.strip() == "shut off (crashed)"
    assert not list(daemon.run_dir.glob(f"{name}.*"))
    log = (daemon.root / f"var/log/pyvirt/qemu/{name}.log").read_text()
    assert log.rstrip().endswith("shutting down, reason=crashed")
    daemon.cli("start", name).ok()  # and it starts again
    daemon.cli("destroy", name).ok()
