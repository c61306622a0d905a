"""A real QEMU that hangs at start on a vhost-user backend that accepts its connection and never
answers: the start fails after pyvirtd.conf's monitor_timeout, the error says QEMU did not open its
monitor, what it waits for (the backend's socket) and its last output, and the domain is shut off."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

pytestmark = pytest.mark.slow
NIC = (
    "<interface type='vhostuser'><source type='unix' path='{path}' mode='client'/>"
    "<model type='virtio'/></interface>"
)
DOMAIN = (
    "<domain type='qemu'><name>hang1</name><memory unit='MiB'>64</memory>"
    "<memoryBacking><access mode='shared'/></memoryBacking>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{nic}</devices></domain>"
)


class SilentBackend:
    """Accepts every connection and keeps it open, answering nothing."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        os.chmod(path, 0o777)  # QEMU runs as its own user
        self.server.listen(4)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            with contextlib.suppress(OSError):
                conn.close()


def test_a_qemu_hung_on_a_silent_vhost_user_backend_fails_the_start_saying_why(tmp_path: Path) -> None:
    daemon = Daemon()
    conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("monitor_timeout = 3\n")
    scratch = daemon.root / "vhu"
    scratch.mkdir(mode=0o755)
    backend = SilentBackend(scratch / "vhu.sock")
    try:
        daemon.start()
        xml = tmp_path / "hang1.xml"
        xml.write_text(DOMAIN.format(nic=NIC.format(path=scratch / "vhu.sock")))
        daemon.cli("define", str(xml)).ok()
        result = daemon.cli("start", "hang1")
        assert result.rc == 1
        assert "QEMU did not open its monitor within 3 s" in result.err, result.err
        assert f"connected to {scratch / 'vhu.sock'}" in result.err, result.err
        assert daemon.state("hang1") == "shut off"
    finally:
        backend.close()
        daemon.cleanup()
