"""Access control on the local sockets: the read-only socket and ``-r`` refuse every change; the
main socket's group and modes come from pyvirtd.conf; an unprivileged user gets only the read-only
socket."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import pyvirt
from pyvirt.errors import AccessDenied
from tests.support.daemon import BIN, Daemon

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def test_readonly_lists_but_cannot_change(daemon: Daemon, tmp_path: Path) -> None:
    xml = tmp_path / "a1.xml"
    xml.write_text(MINI.format(name="a1"))
    daemon.cli("define", str(xml)).ok()
    assert "a1" in daemon.cli("-r", "list", "--all").ok().out
    assert "State:          shut off" in daemon.cli("-r", "dominfo", "a1").ok().out
    assert "<name>a1</name>" in daemon.cli("-r", "dumpxml", "a1").ok().out
    for args in (
        ["start", "a1"],
        ["destroy", "a1"],
        ["define", str(xml)],
        ["undefine", "a1"],
        ["autostart", "a1"],
        ["create", str(xml)],
    ):
        result = daemon.cli("-r", *args)
        assert result.rc == 1, (args, result)
        assert "access denied: this connection is read-only" in result.err, (args, result.err)
    # The read-only socket is read-only whatever the client claims.
    ro = daemon.root / "run/pyvirt/pyvirt-sock-ro"
    result = daemon.cli("-c", f"qemu+unix:///system?socket={ro}", "start", "a1")
    assert result.rc == 1 and "read-only" in result.err
    with daemon.connect(readonly=True) as conn:
        assert [d["name"] for d in conn.list_domains()] == ["a1"]
        with pytest.raises(AccessDenied, match="read-only"):
            conn.domain("a1").start()
        with pytest.raises(AccessDenied, match="read-only"):
            conn.domain("a1").console()
    assert daemon.cli("domstate", "a1").ok().out.strip() == "shut off"


def test_socket_modes_and_group_from_config(tmp_path: Path) -> None:
    group = next((g for g in ("adm", "users", "nogroup") if _group_exists(g)), None)
    if group is None:
        pytest.skip("no spare group to hand the socket to")
    daemon = Daemon()
    try:
        conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'unix_sock_group = "{group}"\nunix_sock_rw_perms = "0770"\n')
        daemon.start()
        main = daemon.socket.stat()
        ro = (daemon.root / "run/pyvirt/pyvirt-sock-ro").stat()
        assert stat.S_IMODE(main.st_mode) == 0o770
        assert main.st_gid == grp.getgrnam(group).gr_gid
        assert stat.S_IMODE(ro.st_mode) == 0o666
    finally:
        daemon.cleanup()


def test_default_modes(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE((daemon.root / "run/pyvirt/pyvirt-sock-ro").stat().st_mode) == 0o666


def test_unprivileged_user_gets_read_only(daemon: Daemon, tmp_path: Path) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is missing")
    os.chmod(daemon.root, 0o755)  # let the user reach the sockets, as /run/pyvirt allows
    env = {"HOME": "/", "PYVIRT_ROOT": str(daemon.root), "PATH": os.environ["PATH"]}
    as_nobody = [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_nobody, str(BIN / "pyvirt"), *args], env=env, capture_output=True, text=True, timeout=60
        )

    probe = run("-r", "-c", "qemu:///system", "list", "--all")
    if probe.returncode != 0 and "Permission denied" in probe.stderr and "pyvirt-sock" not in probe.stderr:
        pytest.skip(f"the venv is not readable by nobody: {probe.stderr.strip()}")
    assert probe.returncode == 0, probe.stderr
    refused = run("-c", "qemu:///system", "list", "--all")
    assert refused.returncode == 1
    assert "pyvirt-sock': Permission denied" in refused.stderr


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_python_api_open_readonly(daemon: Daemon) -> None:
    conn = pyvirt.open(
        f"qemu+unix:///system?socket={daemon.root / 'run/pyvirt/pyvirt-sock-ro'}", readonly=True
    )
    with conn, pytest.raises(AccessDenied):
        conn.define_xml(MINI.format(name="nope"))
