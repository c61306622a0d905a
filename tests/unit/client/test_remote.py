"""The ssh command line built from a URI, the explanation of each ssh failure, and the proxy's socket."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvirt.cli.proxy import pump, socket_path
from pyvirt.client.remote import explain_ssh_failure, shell_quote, ssh_argv
from pyvirt.errors import ConnectionFailed, InvalidArgument
from pyvirt.uri import parse_uri


def test_argv_full() -> None:
    uri = parse_uri(
        "qemu+ssh://root@hail:2222/system?keyfile=/k/id&socket=/run/s&no_verify=1&no_tty=1&command=/opt/pv/bin/pyvirt"
    )
    argv = ssh_argv(uri, readonly=True)
    assert argv[:3] == ["ssh", "-p", "2222"]
    assert argv[argv.index("-i") + 1] == "/k/id" and "IdentitiesOnly=yes" in argv
    assert "UserKnownHostsFile=/dev/null" in argv and "StrictHostKeyChecking=no" in argv
    assert "BatchMode=yes" in argv and "-T" in argv
    assert argv[-3:] == [
        "root@hail",
        "--",
        "/opt/pv/bin/pyvirt proxy --mode system --socket /run/s --readonly",
    ]


def test_argv_minimal_and_quoting() -> None:
    argv = ssh_argv(parse_uri("qemu+ssh://hail/session?socket=/a%20b"), readonly=False)
    assert "-p" not in argv and "-i" not in argv and "BatchMode=yes" not in argv
    assert argv[-2:] == ["--", "pyvirt proxy --mode session --socket '/a b'"]


@pytest.mark.parametrize("text", ["qemu+ssh://-oProxyCommand=x/system", "qemu+ssh://h/system?keyfile=-oX"])
def test_argv_refuses_option_injection(text: str) -> None:
    with pytest.raises(InvalidArgument, match="may not start with '-'"):
        ssh_argv(parse_uri(text), readonly=False)


URI = parse_uri("qemu+ssh://root@hail:2222/system?keyfile=/k/id")


@pytest.mark.parametrize(
    ("code", "stderr", "expected"),
    [
        (255, "ssh: connect to host hail port 2222: Connection refused", "cannot reach hail on port 2222"),
        (255, "ssh: connect to host hail port 2222: Connection timed out", "cannot reach hail on port 2222"),
        (255, "ssh: Could not resolve hostname hail: Name or service not known", "cannot resolve host"),
        (255, "root@hail: Permission denied (publickey).", "ssh authentication as root@hail was refused"),
        (255, "Host key verification failed.", "the host key of hail is unknown or changed"),
        (127, "bash: line 1: pyvirt: command not found", "pyvirt is not installed on hail"),
        (127, "sh: 1: /opt/x/pyvirt: not found", "pyvirt is not installed on hail"),
        (1, "error: pyvirt proxy: cannot connect to /run/pyvirt/pyvirt-sock: No such file or directory "
            "(is pyvirtd running?)", "pyvirt on hail cannot reach its daemon"),
        (255, "", "ssh connection to hail failed: ssh exited with status 255"),
    ],
)  # fmt: skip
def test_explanations(code: int, stderr: str, expected: str) -> None:
    message = explain_ssh_failure(URI, code, stderr)
    assert message.startswith(expected), message
    if stderr:
        assert message.endswith(stderr.splitlines()[-1])


def test_key_is_named() -> None:
    assert "(is /k/id in the remote authorized_keys?)" in explain_ssh_failure(URI, 255, "Permission denied")


def test_proxy_socket_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYVIRT_ROOT", str(tmp_path))
    assert socket_path("system", None, False) == str(tmp_path / "run/pyvirt/pyvirt-sock")
    assert socket_path("system", None, True) == str(tmp_path / "run/pyvirt/pyvirt-sock-ro")
    assert socket_path(None, "/x/pyvirt-sock", True) == "/x/pyvirt-sock-ro"
    assert socket_path(None, "/x/pyvirt-sock-ro", True) == "/x/pyvirt-sock-ro"
    assert socket_path(None, "/x/pyvirt-sock", False) == "/x/pyvirt-sock"


def test_proxy_pump_copies_both_ways() -> None:
    daemon_end, proxy_end = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    worker = threading.Thread(target=pump, args=(proxy_end, in_r, out_w))
    worker.start()
    os.write(in_w, b"GET / HTTP/1.1\r\n\r\n")
    assert daemon_end.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    daemon_end.sendall(b"reply")
    got = b""
    while not got.endswith(b"reply"):
        got += os.read(out_r, 100)
    assert got == b"pyvirt-proxy 1\nreply"
    os.close(in_w)  # end of input reaches the daemon as a half-close
    assert daemon_end.recv(100) == b""
    daemon_end.close()
    worker.join(5)
    assert not worker.is_alive()
    for fd in (in_r, out_r, out_w):
        os.close(fd)
    proxy_end.close()


@given(st.text())
def test_shell_quote_agrees_with_shlex(word: str) -> None:
    import shlex

    assert shell_quote(word) == shlex.quote(word)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A runtime folder short enough for ssh's control sockets (pytest's tmp_path is too long)."""
    path = Path(tempfile.mkdtemp(prefix="pvt", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_long_runtime_dir_falls_back_to_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 40)))
    monkeypatch.delenv("PYVIRT_SSH_CONTROL_PERSIST", raising=False)
    argv = ssh_argv(parse_uri("qemu+ssh://h/system"), readonly=False)
    assert f"ControlPath=/tmp/pyvirt-ssh-{os.getuid()}/%C-" in " ".join(argv)


def test_connection_sharing_by_default(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    tmp_path = short_tmp
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("PYVIRT_SSH_CONTROL_PERSIST", raising=False)
    argv = ssh_argv(parse_uri("qemu+ssh://root@hail/system?keyfile=/k/a"), readonly=False)
    assert "ControlMaster=auto" in argv and "ControlPersist=60" in argv
    path = next(a for a in argv if a.startswith("ControlPath="))[len("ControlPath=") :]
    assert path.startswith(f"{tmp_path}/pyvirt/ssh/%C-")
    assert (tmp_path / "pyvirt/ssh").stat().st_mode & 0o777 == 0o700
    # another key, or host-key checks off, never shares that connection
    other_key = ssh_argv(parse_uri("qemu+ssh://root@hail/system?keyfile=/k/b"), readonly=False)
    unchecked = ssh_argv(parse_uri("qemu+ssh://root@hail/system?keyfile=/k/a&no_verify=1"), readonly=False)
    same = ssh_argv(parse_uri("qemu+ssh://root@hail/system?keyfile=/k/a"), readonly=True)
    paths = [next(a for a in v if a.startswith("ControlPath=")) for v in (other_key, unchecked, same)]
    assert paths[0] != f"ControlPath={path}" and paths[1] != f"ControlPath={path}"
    assert paths[2] == f"ControlPath={path}"


def test_connection_sharing_off(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp))
    monkeypatch.setenv("PYVIRT_SSH_CONTROL_PERSIST", "0")
    assert not any(a.startswith("Control") for a in ssh_argv(parse_uri("qemu+ssh://h/system"), False))
    monkeypatch.delenv("PYVIRT_SSH_CONTROL_PERSIST")
    argv = ssh_argv(parse_uri("qemu+ssh://h/system?control_persist=0"), False)
    assert not any(a.startswith("Control") for a in argv)
    assert "ControlPersist=5" in ssh_argv(parse_uri("qemu+ssh://h/system?control_persist=5"), False)
    with pytest.raises(InvalidArgument, match="control_persist"):
        ssh_argv(parse_uri("qemu+ssh://h/system?control_persist=1m"), False)


def test_control_dir_must_be_private(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    tmp_path = short_tmp
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "pyvirt/ssh").mkdir(parents=True)
    (tmp_path / "pyvirt/ssh").chmod(0o755)
    with pytest.raises(ConnectionFailed, match="0700"):
        ssh_argv(parse_uri("qemu+ssh://h/system"), False)
