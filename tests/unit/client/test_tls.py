"""TLS contexts on both sides with certificates from pyvirt.pki: a real handshake over 127.0.0.1,
read-only by ALPN or by certificate, the listen-address syntax, and the client's pki directory."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from pyvirt import pki
from pyvirt.client.tls import client_context, diagnose_client_cert, pki_dir
from pyvirt.daemon.tls import TLSSetupError, connection_is_readonly, parse_listen, server_context
from pyvirt.errors import ConnectionFailed
from pyvirt.uri import parse_uri


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.init_ca(directory)
    pki.issue_server(directory, ["localhost", "127.0.0.1"])
    pki.issue_client(directory, "admin")
    return directory


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[bool, str]:
    """(read-only as the server judged it, or an error text), over a real 127.0.0.1 connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                result["readonly"] = connection_is_readonly(tls)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as err:
            result["error"] = str(err)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.recv(2)
    except (ssl.SSLError, OSError) as err:
        result.setdefault("error", str(err))
    thread.join(10)
    listener.close()
    if "error" in result:
        return False, str(result["error"])
    return bool(result["readonly"]), ""


def test_mutual_tls_and_readonly(ca: Path, tmp_path: Path) -> None:
    server = server_context(ca)
    assert handshake(server, client_context(ca)) == (False, "")
    assert handshake(server, client_context(ca, readonly=True)) == (True, "")
    viewer = tmp_path / "viewer"
    pki.issue_client(ca, "viewer", out_dir=viewer, readonly=True)
    assert handshake(server, client_context(viewer)) == (True, "")


def test_client_without_certificate_is_refused(ca: Path) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(ca / "cacert.pem")
    _, error = handshake(server_context(ca), bare)
    assert error and "certificate" in error.lower()


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TLSSetupError, match=r"needs cacert\.pem, servercert\.pem, serverkey\.pem"):
        server_context(tmp_path)
    with pytest.raises(ConnectionFailed, match=r"no cacert\.pem in"):
        client_context(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16514", ("0.0.0.0", 16514)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("[::1]:1234", ("::1", 1234)),
        ("[::1]", ("::1", 16514)),
        ("localhost", ("localhost", 16514)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:0", "h:99999", "[::1", "h:x"])
def test_parse_listen_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_client_pki_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert pki_dir(parse_uri("qemu+tls://h/system?pkipath=/p")) == Path("/p")
    monkeypatch.setenv("PYVIRT_ROOT", str(tmp_path))
    assert pki_dir(parse_uri("qemu+tls://h/system")) == tmp_path / "etc/pki/pyvirt"
    monkeypatch.delenv("PYVIRT_ROOT")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pki_dir(parse_uri("qemu+tls://h/system")) == Path("/etc/pki/pyvirt")
    (tmp_path / ".pki/pyvirt").mkdir(parents=True)
    (tmp_path / ".pki/pyvirt/clientcert.pem").write_text("")
    assert pki_dir(parse_uri("qemu+tls://h/system")) == tmp_path / ".pki/pyvirt"


def test_diagnosis_names_another_ca(ca: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init_ca(other, cn="other CA")
    client = tmp_path / "client"
    pki.issue_client(other, "mallory", out_dir=client)
    (client / "cacert.pem").write_bytes((ca / "cacert.pem").read_bytes())
    assert "was issued by 'O=pyvirt,CN=other CA'" in diagnose_client_cert(client)
    assert diagnose_client_cert(ca) == ""
