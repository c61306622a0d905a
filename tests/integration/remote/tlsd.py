"""A real pyvirtd listening for TLS on 127.0.0.1 with a fresh PKI (``pyvirt pki``), for the remote tests."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.remote.sshd import free_port
from tests.support.daemon import Daemon


class TLSDaemon:
    def __init__(self, daemon: Daemon, port: int) -> None:
        self.daemon = daemon
        self.port = port
        self.pki = daemon.root / "etc/pki/pyvirt"

    def uri(self, pkipath: Path | None = None, host: str = "127.0.0.1") -> str:
        return f"qemu+tls://{host}:{self.port}/system?pkipath={pkipath or self.pki}"

    def client_dir(self, tmp: Path, name: str) -> Path:
        """A directory with the daemon's CA certificate only: the test adds a client certificate."""
        out = tmp / name
        out.mkdir()
        shutil.copy(self.pki / "cacert.pem", out / "cacert.pem")
        return out


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing listens on 127.0.0.1:{port}"
        time.sleep(0.05)


@contextmanager
def tls_daemon() -> Iterator[TLSDaemon]:
    """A started daemon with a CA, a server certificate for 127.0.0.1 and a client certificate."""
    daemon = Daemon()
    try:
        daemon.cli("pki", "init").ok()
        daemon.cli("pki", "issue-server", "--hostname", "pyvirt-test.invalid").ok()
        daemon.cli("pki", "issue-client", "--cn", "admin").ok()
        port = free_port()
        daemon.start("--listen-tls", f"127.0.0.1:{port}")
        wait_port(port)
        yield TLSDaemon(daemon, port)
    finally:
        daemon.cleanup()
