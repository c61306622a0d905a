"""pyvirtd under systemd, with the real mechanisms and no systemd: readiness sent to a real Unix
datagram socket ($NOTIFY_SOCKET), and listening sockets passed as real descriptors (LISTEN_FDS)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Daemon

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)

# What systemd does for a socket-activated service: the sockets at descriptors 3, 4, ..., and
# LISTEN_PID/LISTEN_FDS naming the process that gets them (so a wrapper that then execs pyvirtd).
ACTIVATE = """
import os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
for n, fd in enumerate(fds):
    os.dup2(fd, 3 + n)
for fd in fds:
    if fd >= 3 + len(fds):
        os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = str(len(fds))
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("abstract", [False, True])
def test_readiness_and_stopping_are_notified(tmp_path: Path, abstract: bool) -> None:
    name = f"pyvirt-test-notify-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name if abstract else name)
        notify.settimeout(60)  # only turns a hang into a failure
        daemon = Daemon(extra_env={"NOTIFY_SOCKET": "@" + name if abstract else name})
        try:
            daemon.start()
            ready = notify.recv(4096).decode().split("\n")
            assert ready == ["READY=1", f"STATUS=serving on {daemon.socket}"]
            daemon.cli("list").ok()  # ready meant ready
            daemon.stop()
            assert notify.recv(4096) == b"STOPPING=1"
        finally:
            daemon.cleanup()


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def activate(daemon: Daemon, sockets: list[socket.socket]) -> subprocess.Popen[bytes]:
    fds = [s.fileno() for s in sockets]
    logfh = open(daemon.log, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, ",".join(map(str, fds)), str(BIN / "pyvirtd"), "--verbose"],
        env=daemon.env,
        pass_fds=fds,
        stdout=logfh,
        stderr=logfh,
        start_new_session=True,
    )
    logfh.close()
    return proc


def test_socket_activation_serves_the_passed_sockets(tmp_path: Path) -> None:
    daemon = Daemon()
    run = daemon.socket.parent
    run.mkdir(parents=True)
    rw, ro = listening(daemon.socket), listening(run / "pyvirt-sock-ro")
    try:
        inode = daemon.socket.stat().st_ino
        daemon.proc = activate(daemon, [rw, ro])
        xml = tmp_path / "sa.xml"
        xml.write_text(MINI.format(name="sa"))
        daemon.cli("define", str(xml)).ok()  # through the socket we made, waiting in its backlog
        assert "sa" in daemon.cli("-r", "list", "--all").ok().out
        refused = daemon.cli("-r", "undefine", "sa")  # the second socket is the read-only one
        assert refused.rc == 1 and "read-only" in refused.err, refused.err
        assert daemon.socket.stat().st_ino == inode  # served, not bound again
        assert "sockets from systemd" in daemon.log.read_text()
        for fd in (3, 4):  # QEMU and dnsmasq must not inherit them
            flags = (Path(f"/proc/{daemon.proc.pid}/fdinfo/{fd}").read_text().split("flags:")[1]).split()[0]
            assert int(flags, 8) & os.O_CLOEXEC, (fd, flags)
        daemon.stop()
        # The sockets stay for the next daemon: still there, still listening.
        assert daemon.socket.stat().st_ino == inode
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(daemon.socket))
    finally:
        rw.close()
        ro.close()
        daemon.cleanup()


def test_a_passed_tcp_socket_serves_tls(tmp_path: Path) -> None:
    daemon = Daemon()
    run = daemon.socket.parent
    run.mkdir(parents=True)
    rw, ro = listening(daemon.socket), listening(run / "pyvirt-sock-ro")
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    try:
        daemon.cli("pki", "init").ok()
        daemon.cli("pki", "issue-server", "--hostname", "pyvirt-test.invalid").ok()
        daemon.cli("pki", "issue-client", "--cn", "admin").ok()
        daemon.proc = activate(daemon, [rw, ro, tcp])
        pkipath = daemon.root / "etc/pki/pyvirt"
        uri = f"qemu+tls://127.0.0.1:{port}/system?pkipath={pkipath}"
        assert "Name" in daemon.cli("-c", uri, "list", "--all").ok().out
        assert f"listening for qemu+tls:// on 127.0.0.1:{port}" in daemon.log.read_text()
    finally:
        for sock in (rw, ro, tcp):
            sock.close()
        daemon.cleanup()


def test_a_socket_pyvirtd_does_not_serve_is_refused(tmp_path: Path) -> None:
    daemon = Daemon()
    other = listening(tmp_path / "other")
    try:
        proc = activate(daemon, [other])
        assert proc.wait(60) == 1
        log = daemon.log.read_text()
        assert f"error: systemd passed a socket pyvirtd does not serve ({tmp_path / 'other'})" in log, log
    finally:
        other.close()
        daemon.cleanup()
