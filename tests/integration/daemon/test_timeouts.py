"""A real pyvirtd that stops answering (SIGSTOP: the kernel still accepts connections for it) fails the
client with a clear error instead of hanging it; a running one keeps an idle event stream alive with
keepalive pings past the client's read timeout."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pyvirt.client.api import Connection
from tests.support.daemon import Daemon


@pytest.fixture
def quick_daemon(tmp_path: Path) -> Daemon:
    daemon = Daemon()
    conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("keepalive_interval = 1\n")
    client_conf = tmp_path / "pyvirt.conf"
    client_conf.write_text("connect_timeout = 2\nread_timeout = 3\n")
    daemon.env["PYVIRT_CONF"] = str(client_conf)
    daemon.start()
    return daemon


def test_a_hung_daemon_fails_the_cli_with_an_error(quick_daemon: Daemon) -> None:
    daemon = quick_daemon
    try:
        assert daemon.proc is not None
        daemon.cli("list", "--all").ok()
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            result = daemon.cli("list", "--all", timeout=60)
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        assert result.rc == 1
        assert result.err.startswith("error: "), result.err
        assert f"the daemon at {daemon.socket} did not answer within 3 s" in result.err
        assert "read_timeout in " in result.err
        daemon.cli("list", "--all").ok()  # answering again
    finally:
        daemon.cleanup()


def test_an_idle_event_stream_outlives_the_read_timeout(
    quick_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = quick_daemon
    monkeypatch.setenv("PYVIRT_CONF", daemon.env["PYVIRT_CONF"])
    try:
        conn: Connection = daemon.connect()
        assert conn.transport.read_timeout == 3
        with conn.events() as events:
            assert events.ws.silence_limit == 3
            # Nothing happens for twice the read timeout: our own wait ends, not the stream.
            with pytest.raises(TimeoutError):
                events.next(timeout=6)
            assert not events.ws.closed
            daemon.cli("pool-define-as", "idle", "dir", "--target", str(daemon.root / "idle")).ok()
            event = events.next(timeout=30)
            assert event is not None and event["kind"] == "pool" and event["name"] == "idle"
        conn.close()
    finally:
        daemon.cleanup()
