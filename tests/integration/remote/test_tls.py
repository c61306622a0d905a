"""qemu+tls:// against ``pyvirtd --listen-tls 127.0.0.1:PORT`` with certificates from ``pyvirt pki``:
a good client certificate works; none, one from another CA and an expired one are refused; read-only
connections (asked for, or forced by the certificate) list but cannot change anything."""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest

import pyvirt
from pyvirt import pki
from pyvirt.errors import AccessDenied, ConnectionFailed
from pyvirt.store import atomic_write
from tests.integration.remote.sshd import free_port
from tests.integration.remote.tlsd import TLSDaemon
from tests.integration.remote.transfers import check_volume_transfers
from tests.support.daemon import Console, Daemon
from tests.support.guest import READY, domain_xml, guest_artifacts

MINI = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def assert_logged_refusal(tls: TLSDaemon, reason: str) -> None:
    """The daemon names each refused handshake, with the peer and why, in its log."""
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in tls.daemon.log.read_text().splitlines() if "refused TLS connection" in ln]
        if any("from 127.0.0.1:" in ln and reason in ln for ln in lines):
            return
        assert time.monotonic() < deadline, f"no refusal naming {reason!r} logged: {lines}"
        time.sleep(0.05)


def test_pki_files_and_modes(tls: TLSDaemon) -> None:
    for name in ("cacert.pem", "servercert.pem", "clientcert.pem"):
        assert (tls.pki / name).stat().st_mode & 0o777 == 0o644
    for name in ("cakey.pem", "serverkey.pem", "clientkey.pem"):
        assert (tls.pki / name).stat().st_mode & 0o777 == 0o600
    server = pki.describe(tls.pki / "servercert.pem")
    assert "pyvirt-test.invalid" in server["names"]
    assert "127.0.0.1" in server["names"] and "localhost" in server["names"]
    shown = tls.daemon.cli("pki", "show").ok().out
    assert "CN=admin" in shown


def test_good_client_certificate_works(tls: TLSDaemon, tmp_path: Path) -> None:
    xml = tmp_path / "t1.xml"
    xml.write_text(MINI.format(name="t1"))
    for host in ("127.0.0.1", "localhost"):  # the server certificate names both
        uri = tls.uri(host=host)
        assert "Name" in tls.daemon.cli("-c", uri, "list", "--all").ok().out
    uri = tls.uri()
    assert tls.daemon.cli("-c", uri, "uri").ok().out.startswith(f"qemu+tls://127.0.0.1:{tls.port}/system")
    with pyvirt.open(uri) as conn:
        events = conn.events()  # a second TLS connection, made a WebSocket
        try:
            tls.daemon.cli("-c", uri, "define", str(xml)).ok()
            assert "Persistent:     yes" in tls.daemon.cli("-c", uri, "dominfo", "t1").ok().out
            assert [d["name"] for d in conn.list_domains()] == ["t1"]
            tls.daemon.cli("-c", uri, "undefine", "t1").ok()
            seen = [events.next(timeout=30) for _ in range(2)]
            assert [(e["kind"], e["event"]) for e in seen if e] == [
                ("domain", "defined"),
                ("domain", "undefined"),
            ]
        finally:
            events.close()


def test_volume_transfers_over_tls(tls: TLSDaemon, tmp_path: Path) -> None:
    check_volume_transfers(tls.daemon, tls.uri(), tmp_path)


@pytest.mark.slow
def test_console_over_tls(tls: TLSDaemon, tmp_path: Path) -> None:
    guest_artifacts()
    xml = tmp_path / "tc1.xml"
    xml.write_text(domain_xml("tc1"))
    uri = tls.uri()
    tls.daemon.cli("-c", uri, "define", str(xml)).ok()
    tls.daemon.cli("-c", uri, "start", "tc1").ok()
    with pyvirt.open(uri) as conn:
        console = Console(conn, "tc1")
        try:
            console.expect(READY)
            assert console.run("echo over-tls-$((6*7))") == "over-tls-42"
        finally:
            console.close()
    out = tls.daemon.cli(
        "-c", uri, "console", "tc1", "--force", "--timeout", "8", input="echo via-cli-$((2+3))\n"
    ).ok()
    assert "via-cli-5" in out.out
    tls.daemon.cli("-c", uri, "destroy", "tc1").ok()


def test_tls_readonly_connection(tls: TLSDaemon, tmp_path: Path) -> None:
    xml = tmp_path / "r1.xml"
    xml.write_text(MINI.format(name="r1"))
    uri = tls.uri()
    tls.daemon.cli("-c", uri, "define", str(xml)).ok()
    assert "r1" in tls.daemon.cli("-r", "-c", uri, "list", "--all").ok().out
    assert "r1" in tls.daemon.cli("-r", "-c", uri, "dumpxml", "r1").ok().out
    for args in (["start", "r1"], ["destroy", "r1"], ["define", str(xml)], ["undefine", "r1"]):
        result = tls.daemon.cli("-r", "-c", uri, *args)
        assert result.rc == 1 and "read-only" in result.err, (args, result)
    with pyvirt.open(uri, readonly=True) as conn, pytest.raises(AccessDenied):
        conn.define_xml(MINI.format(name="r2"))


def test_readonly_certificate_is_enforced_by_the_server(tls: TLSDaemon, tmp_path: Path) -> None:
    viewer = tls.client_dir(tmp_path, "viewer")
    pki.issue_client(tls.pki, "viewer", out_dir=viewer, readonly=True)
    uri = tls.uri(viewer)
    assert "Name" in tls.daemon.cli("-c", uri, "list", "--all").ok().out
    xml = tmp_path / "v1.xml"
    xml.write_text(MINI.format(name="v1"))
    result = tls.daemon.cli("-c", uri, "define", str(xml))  # no -r: the certificate decides
    assert result.rc == 1 and "read-only" in result.err, result


def test_no_client_certificate_is_refused(tls: TLSDaemon, tmp_path: Path) -> None:
    # The server's verdict, with a raw TLS client that presents no certificate at all.
    ctx = ssl.create_default_context(cafile=str(tls.pki / "cacert.pem"))
    with socket.create_connection(("127.0.0.1", tls.port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"GET /v1/domains HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                reply = sock.recv(100)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
            reply = str(err).encode()
    assert not reply.startswith(b"HTTP/"), reply  # an alert or a closed connection, never an answer
    assert_logged_refusal(tls, "peer did not return a certificate")
    # The client's message when it has no certificate to present.
    bare = tls.client_dir(tmp_path, "bare")
    result = tls.daemon.cli("-c", tls.uri(bare), "list")
    assert result.rc == 1
    assert f"no clientcert.pem in {bare}" in result.err


def test_certificate_from_another_ca_is_refused(tls: TLSDaemon, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca"
    pki.init_ca(other_ca, cn="someone else's CA")
    client = tls.client_dir(tmp_path, "stranger")
    pki.issue_client(other_ca, "mallory", out_dir=client)
    shutil.copy(tls.pki / "cacert.pem", client / "cacert.pem")  # trust the server, but not trusted by it
    result = tls.daemon.cli("-c", tls.uri(client), "list")
    assert result.rc == 1
    assert f"127.0.0.1:{tls.port} refused our client certificate" in result.err, result.err
    with pytest.raises(ConnectionFailed, match="refused our client certificate"):
        pyvirt.open(tls.uri(client)).list_domains()
    assert_logged_refusal(tls, "certificate verify failed")


def test_expired_certificate_is_refused(tls: TLSDaemon, tmp_path: Path) -> None:
    ca_cert, ca_key = pki.load_ca(tls.pki)
    key = pki.new_key()
    now = datetime.datetime.now(datetime.UTC)
    cert = pki.build_certificate(
        pki._name("expired"),
        key.public_key(),
        ca_cert.subject,
        ca_key,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
        issuer_key=ca_key.public_key(),
    )
    client = tls.client_dir(tmp_path, "expired")
    pki._write_key(client / "clientkey.pem", key)
    atomic_write(client / "clientcert.pem", pki._cert_pem(cert), 0o644)
    result = tls.daemon.cli("-c", tls.uri(client), "list")
    assert result.rc == 1
    assert "refused our client certificate" in result.err, result.err
    assert "EXPIRED" in result.err.upper()
    assert_logged_refusal(tls, "certificate verify failed")


def test_server_certificate_is_checked(tls: TLSDaemon, tmp_path: Path) -> None:
    # A client trusting another CA refuses the server, unless no_verify=1.
    client = tmp_path / "wrong-trust"
    pki.init_ca(client)
    pki.issue_client(tls.pki, "admin", out_dir=tmp_path / "issued")
    for name in ("clientcert.pem", "clientkey.pem"):
        shutil.copy(tmp_path / "issued" / name, client / name)
    result = tls.daemon.cli("-c", tls.uri(client), "list")
    assert result.rc == 1 and "is not trusted" in result.err, result.err
    assert "Name" in tls.daemon.cli("-c", tls.uri(client) + "&no_verify=1", "list").ok().out


def test_listener_needs_certificates() -> None:
    daemon = Daemon()
    try:
        with pytest.raises(RuntimeError, match=r"the TLS listener needs cacert.pem, servercert.pem"):
            daemon.start("--listen-tls", f"127.0.0.1:{free_port()}")
        assert "pyvirt pki init" in daemon.log.read_text()
    finally:
        daemon.cleanup()


def tcp_listen_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed between the listing and the readlink
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def test_only_the_tls_listener_uses_tcp(tls: TLSDaemon) -> None:
    assert tls.daemon.proc is not None
    assert socket_inodes(tls.daemon.proc.pid) & tcp_listen_inodes()  # --listen-tls: one TCP listener
    plain = Daemon()
    try:
        plain.start()
        assert plain.proc is not None
        assert not socket_inodes(plain.proc.pid) & tcp_listen_inodes()  # no option: no TCP at all
    finally:
        plain.cleanup()
