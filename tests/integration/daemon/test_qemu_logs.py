"""QEMU logs capped and rotated on a real daemon with real (TCG) QEMUs: pyvirtd.conf's max_size and
max_backups, applied before each start."""

from __future__ import annotations

from pathlib import Path

from tests.support.daemon import Daemon

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def test_each_start_rotates_a_full_log_keeping_max_backups(tmp_path: Path) -> None:
    daemon = Daemon()
    conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("max_size = 1\nmax_backups = 2\n")  # any content is full: every start rotates
    try:
        daemon.start()
        xml = tmp_path / "lg.xml"
        xml.write_text(MINI.format(name="lg"))
        daemon.cli("define", str(xml)).ok()
        for _ in range(4):
            daemon.cli("start", "lg").ok()
            daemon.cli("destroy", "lg").ok()
        logs = daemon.root / "var/log/pyvirt/qemu"
        assert sorted(p.name for p in logs.iterdir() if p.name.startswith("lg.")) == [
            "lg.log",
            "lg.log.1",
            "lg.log.2",
        ]
        # The current log holds the fourth run only, the backups the third and the second.
        for name in ("lg.log", "lg.log.1", "lg.log.2"):
            text = (logs / name).read_text()
            assert text.count("starting up pyvirt") == 1, (name, text)
            assert "shutting down, reason=destroyed" in text
    finally:
        daemon.cleanup()
