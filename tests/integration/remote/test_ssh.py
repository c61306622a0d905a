"""qemu+ssh:// against a real sshd on 127.0.0.1: every verb, the console and event streams, aliases,
and a clear error for each way the connection can fail."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import pyvirt
from pyvirt.client.streams import EventStream
from pyvirt.errors import AccessDenied, ConnectionFailed
from pyvirt.uri import parse_uri
from tests.integration.remote.sshd import BIN, Sshd
from tests.integration.remote.transfers import check_volume_transfers
from tests.support.daemon import Console, Daemon
from tests.support.guest import READY, domain_xml, guest_artifacts


def read_events(stream: EventStream, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        event = stream.next(timeout=max(0.0, deadline - time.monotonic()))
        assert event is not None, f"event stream closed after {events}"
        events.append(event)
    return events


@pytest.mark.slow
def test_every_verb_over_ssh(sshd: Sshd, daemon: Daemon, tmp_path: Path) -> None:
    guest_artifacts()
    uri = sshd.uri(socket_path=daemon.socket)
    xml = tmp_path / "far01.xml"
    xml.write_text(domain_xml("far01"))

    def cli(*args: str) -> str:
        return daemon.cli("-c", uri, *args).ok().out

    assert cli("uri").strip() == parse_uri(uri).canonical()
    assert "Running hypervisor: QEMU" in cli("version")
    assert cli("hostname").strip() == socket.gethostname()
    assert re.search(r"^CPU\(s\):\s+\d+", cli("nodeinfo"), re.M)

    # The event stream rides its own ssh connection; subscribed once the upgrade is answered.
    conn = pyvirt.open(uri)
    events = conn.events()
    try:
        assert cli("define", str(xml)) == f"Domain 'far01' defined from {xml}\n\n"
        assert re.search(r"^ -\s+far01\s+shut off\s*$", cli("list", "--all"), re.M)
        assert cli("start", "far01") == "Domain 'far01' started\n\n"
        assert re.search(r"^State:\s+running$", cli("dominfo", "far01"), re.M)
        assert cli("domstate", "far01").strip() == "running"
        assert "<name>far01</name>" in cli("dumpxml", "far01")
        assert re.search(r"^ 1\s+far01\s+running\s*$", cli("list"), re.M)

        console = Console(conn, "far01")
        try:
            console.expect(READY)
            assert console.run("echo over-ssh-$((6*7))") == "over-ssh-42"
        finally:
            console.close()

        # The CLI's own console verb over ssh: piped input, output back.
        out = daemon.cli(
            "-c", uri, "console", "far01", "--force", "--timeout", "8", input="echo via-cli-$((2+3))\n"
        ).ok()
        assert "Connected to domain 'far01'" in out.out
        assert "via-cli-5" in out.out

        assert cli("suspend", "far01") == "Domain 'far01' suspended\n\n"
        assert cli("resume", "far01") == "Domain 'far01' resumed\n\n"
        assert cli("destroy", "far01") == "Domain 'far01' destroyed\n\n"
        assert cli("domstate", "far01").strip() == "shut off"
        assert cli("undefine", "far01") == "Domain 'far01' has been undefined\n\n"
        assert "far01" not in cli("list", "--all")

        seen = [(e["event"], e["detail"]) for e in read_events(events, 6)]
        assert seen == [
            ("defined", "added"),
            ("started", "booted"),
            ("suspended", "paused"),
            ("resumed", "unpaused"),
            ("stopped", "destroyed"),
            ("undefined", "removed"),
        ], seen
    finally:
        events.close()
        conn.close()


def test_volume_transfers_over_ssh(sshd: Sshd, daemon: Daemon, tmp_path: Path) -> None:
    check_volume_transfers(daemon, sshd.uri(socket_path=daemon.socket), tmp_path)


def test_python_api_over_ssh(sshd: Sshd, daemon: Daemon) -> None:
    with pyvirt.open(sshd.uri(socket_path=daemon.socket)) as conn:
        assert conn.list_domains() == []
        assert conn.version()
        assert conn.hostname() == socket.gethostname()


def test_command_param_names_the_remote_pyvirt(sshd: Sshd, daemon: Daemon) -> None:
    uri = sshd.uri(socket_path=daemon.socket, command=str(BIN / "pyvirt"))
    assert "Name" in daemon.cli("-c", uri, "list", "--all").ok().out


def test_readonly_over_ssh(sshd: Sshd, daemon: Daemon, tmp_path: Path) -> None:
    uri = sshd.uri(socket_path=daemon.socket)
    xml = tmp_path / "ro1.xml"
    xml.write_text(
        "<domain type='qemu'><name>ro1</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
    )
    daemon.cli("-c", uri, "define", str(xml)).ok()
    assert "ro1" in daemon.cli("-r", "-c", uri, "list", "--all").ok().out
    for args in (["start", "ro1"], ["destroy", "ro1"], ["define", str(xml)], ["undefine", "ro1"]):
        result = daemon.cli("-r", "-c", uri, *args)
        assert result.rc == 1, result
        assert "read-only" in result.err, result.err
    with pyvirt.open(uri, readonly=True) as conn, pytest.raises(AccessDenied, match="read-only"):
        conn.domain("ro1").start()


def test_alias_from_client_config(sshd: Sshd, daemon: Daemon) -> None:
    uri = sshd.uri(socket_path=daemon.socket)
    conf = daemon.root / "etc/pyvirt/pyvirt.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'# client aliases\nuri_aliases = [\n  "hail={uri}",\n  "sleet=qemu:///session",\n]\n')
    assert "Name" in daemon.cli("-c", "hail", "list", "--all").ok().out
    assert daemon.cli("-c", "hail", "uri").ok().out.startswith("qemu+ssh://root@127.0.0.1:")
    missing = daemon.cli("-c", "snow", "list")
    assert missing.rc == 1
    assert "'snow' is neither a connection URI nor an alias" in missing.err
    assert "hail, sleet" in missing.err
    # PYVIRT_DEFAULT_URI may name an alias too.
    assert "Name" in daemon.cli("list", env={"PYVIRT_DEFAULT_URI": "hail"}).ok().out


def test_wrong_key_is_named(sshd: Sshd, daemon: Daemon) -> None:
    result = daemon.cli("-c", sshd.uri(socket_path=daemon.socket, key=sshd.stranger_key), "list")
    assert result.rc == 1
    assert "ssh authentication as root@127.0.0.1 was refused" in result.err
    assert "id_stranger" in result.err and "Permission denied" in result.err


def test_wrong_port_is_named(sshd: Sshd, daemon: Daemon) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: connections are refused
        result = daemon.cli("-c", sshd.uri(socket_path=daemon.socket, port=closed_port), "list")
    assert result.rc == 1
    assert f"cannot reach 127.0.0.1 on port {closed_port}" in result.err
    assert "Connection refused" in result.err


def test_host_without_pyvirt_is_named(sshd: Sshd, daemon: Daemon) -> None:
    uri = sshd.uri(socket_path=daemon.socket, command="/opt/nowhere/bin/pyvirt")
    result = daemon.cli("-c", uri, "list")
    assert result.rc == 1
    assert "pyvirt is not installed on 127.0.0.1" in result.err
    assert "/opt/nowhere/bin/pyvirt" in result.err
    with pytest.raises(ConnectionFailed, match="pyvirt is not installed"):
        pyvirt.open(uri)


def test_remote_daemon_down_is_named(sshd: Sshd, daemon: Daemon) -> None:
    result = daemon.cli("-c", sshd.uri(socket_path=daemon.root / "run/pyvirt/nobody-here"), "list")
    assert result.rc == 1
    assert "pyvirt on 127.0.0.1 cannot reach its daemon (is pyvirtd running there?)" in result.err


def test_commands_share_one_ssh_connection(sshd: Sshd, daemon: Daemon) -> None:
    """The first command leaves a master connection; the next ones ride on it (one sshd login)."""
    from pyvirt.client.remote import shared_connection_options
    from pyvirt.uri import parse_uri

    uri = sshd.uri(socket_path=daemon.socket)
    sshd.close_shared_connections()
    logins_before = sshd.log.read_text().count("Accepted publickey")
    for _ in range(3):
        assert "Name" in daemon.cli("-c", uri, "list", "--all").ok().out
    assert sshd.log.read_text().count("Accepted publickey") == logins_before + 1
    check = subprocess.run(
        [
            "ssh",
            *shared_connection_options(parse_uri(uri)),
            "-p",
            str(sshd.port),
            "-O",
            "check",
            "root@127.0.0.1",
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    # control_persist=0: every command logs in afresh
    for _ in range(2):
        daemon.cli("-c", uri + "&control_persist=0", "list").ok()
    assert sshd.log.read_text().count("Accepted publickey") == logins_before + 3
