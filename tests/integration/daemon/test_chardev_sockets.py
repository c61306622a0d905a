"""Chardev UNIX sockets outside the domain's channel directory on a real TCG guest whose QEMU is
confined (its own user, Landlock): the serial console in bind mode, in a directory QEMU's user cannot
even enter, is bound by the daemon and inherited by QEMU (``-chardev socket,fd=N``), and the test
talks to the guest's shell through it; a second serial in connect mode reaches a server the test
runs, its socket handed to QEMU's user while the domain runs and given back after; QEMU's Landlock
ruleset grants neither directory; the bound socket goes when the domain stops."""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import stat
import time
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import BOOT_TIMEOUT, PROMPT, READY, domain_xml

pytestmark = pytest.mark.slow


class SocketConsole:
    """The guest's serial shell through a UNIX socket (the daemon's console relay serves ptys only)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.settimeout(1.0)
        self.buffer = b""

    def expect(self, pattern: str, timeout: float, poke: bool = False) -> re.Match[bytes]:
        """Read until ``pattern``; with ``poke``, press Enter now and then (output from before the
        connection is gone: a prompt asked for shows the shell is there)."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        next_poke = time.monotonic()
        while (match := regex.search(self.buffer)) is None:
            assert time.monotonic() < deadline, f"{pattern!r} not seen; got {self.buffer[-500:]!r}"
            if poke and time.monotonic() >= next_poke:
                self.sock.sendall(b"\n")
                next_poke = time.monotonic() + 5
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            assert chunk, f"the socket closed before {pattern!r}; got {self.buffer[-500:]!r}"
            self.buffer += chunk
        self.buffer = self.buffer[match.end() :]
        return match

    def run(self, command: str, timeout: float = 60) -> str:
        marker = f"M{time.monotonic_ns()}"
        self.sock.sendall(f"echo {marker}-begin; {command}; echo {marker}-end\n".encode())
        self.expect(f"\n{marker}-begin", timeout)
        return self.expect(f"(?s)(.*?){marker}-end", timeout).group(1).decode(errors="replace").strip()


@pytest.fixture(scope="module", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("QEMU's confinement is the system daemon's: needs root")


def test_unix_chardevs_outside_the_channel_directory(daemon: Daemon, tmp_path: Path) -> None:
    private, public = tmp_path / "private", tmp_path / "public"
    private.mkdir(mode=0o700)  # root's: QEMU's user can neither enter nor create anything here
    public.mkdir()
    public.chmod(0o755)
    console_path, server_path = private / "console.sock", public / "ttyS1.sock"
    console_path.write_text("")  # a stale file that is no socket is refused, named
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(server_path))  # root's, mode 0755: QEMU's user may not connect until handed it
    server.listen(1)
    server.settimeout(60)
    before = os.stat(server_path)
    xml = domain_xml("socks", memory_mib=128)
    xml = re.sub(
        r"<serial type=\"pty\">.*?</console>",
        f"<serial type='unix'><source mode='bind' path='{console_path}'/><target port='0'/></serial>"
        f"<serial type='unix'><source mode='connect' path='{server_path}'/><target port='1'/></serial>"
        f"<console type='unix'><source mode='bind' path='{console_path}'/><target type='serial' port='0'/>"
        "</console>",
        xml,
        flags=re.S,
    )
    assert str(server_path) in xml, xml
    (tmp_path / "socks.xml").write_text(xml)
    daemon.cli("define", str(tmp_path / "socks.xml")).ok()
    refused = daemon.cli("start", "socks")
    assert refused.rc == 1 and f"'{console_path}': it exists and is not a socket" in refused.err, refused.err
    console_path.unlink()

    daemon.cli("start", "socks").ok()
    try:
        console = SocketConsole(console_path)
        peer, _ = server.accept()  # QEMU connected to the test's server at start
    finally:
        server.close()
    qemu_uid = pwd.getpwnam("pyvirt-qemu").pw_uid
    pid = daemon.qemu_pids()["socks"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    chardevs = [a.decode() for a in argv if a.startswith(b"socket,id=charserial")]
    assert re.fullmatch(r"socket,id=charserial0,fd=\d+,server=on,wait=off", chardevs[0]), chardevs
    assert chardevs[1] == f"socket,id=charserial1,path={server_path}", chardevs
    assert os.stat(console_path).st_uid == 0 and stat.S_ISSOCK(os.stat(console_path).st_mode)
    assert os.stat(server_path).st_uid == qemu_uid  # handed over while the domain runs
    record = json.loads((daemon.run_dir / "socks.json").read_text())
    granted = set(record["access"])
    assert not {str(private), str(public), str(console_path)} & granted, granted  # no directory given

    # The guest's shell through the socket the daemon bound, and the guest's ttyS1 to the test's server.
    console.expect(f"{READY}|{PROMPT}", BOOT_TIMEOUT, poke=True)
    assert console.run("echo $((6 * 7))-answered") == "42-answered"
    console.run("echo PYVIRT-CONNECT-MARK > /dev/ttyS1")
    peer.settimeout(60)
    received = b""
    while b"PYVIRT-CONNECT-MARK" not in received:
        chunk = peer.recv(4096)
        assert chunk, received
        received += chunk
    peer.close()
    console.sock.close()

    daemon.cli("destroy", "socks").ok()
    assert not console_path.exists()  # the daemon's socket goes with the domain
    after = os.stat(server_path)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
