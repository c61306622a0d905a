"""pyvirt.pki: the CA, server and client certificates, their extensions, files and refusals."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyvirt import pki
from pyvirt.cli.pki import main as pki_main
from pyvirt.errors import AlreadyExists, InvalidArgument, NotFound


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_server_client(tmp_path: Path) -> None:
    ca = pki.init_ca(tmp_path, cn="test CA")
    ca_cert = load(ca.cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    server = pki.issue_server(tmp_path, ["hail.example.com", "127.0.0.1", "::1"])
    cert = load(server.cert)
    assert cert.issuer == ca_cert.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["hail.example.com"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    client = load(pki.issue_client(tmp_path, "admin").cert)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert not client.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    client.verify_directly_issued_by(ca_cert)
    cert.verify_directly_issued_by(ca_cert)
    for name in ("cakey.pem", "serverkey.pem", "clientkey.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_readonly_client_and_out_dir(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "ca")
    issued = pki.issue_client(tmp_path / "ca", "viewer", out_dir=tmp_path / "out", readonly=True)
    assert issued.cert == tmp_path / "out/clientcert.pem"
    subject = load(issued.cert).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == pki.READONLY_OU
    assert (tmp_path / "out/cacert.pem").read_bytes() == (tmp_path / "ca/cacert.pem").read_bytes()
    assert not (tmp_path / "ca/clientcert.pem").exists()


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="run 'pyvirt pki init' first"):
        pki.issue_server(tmp_path, ["h"])
    pki.init_ca(tmp_path)
    with pytest.raises(AlreadyExists, match="pass --force"):
        pki.init_ca(tmp_path)
    first = (tmp_path / "cacert.pem").read_bytes()
    pki.init_ca(tmp_path, force=True)
    assert (tmp_path / "cacert.pem").read_bytes() != first
    with pytest.raises(InvalidArgument, match="at least one host name"):
        pki.issue_server(tmp_path, [])
    with pytest.raises(InvalidArgument, match="at least one day"):
        pki.issue_client(tmp_path, "x", days=0)


def test_default_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYVIRT_ROOT", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert pki.default_dir() == Path("/etc/pki/pyvirt")
    monkeypatch.setenv("PYVIRT_ROOT", str(tmp_path))
    assert pki.default_dir() == tmp_path / "etc/pki/pyvirt"
    monkeypatch.delenv("PYVIRT_ROOT")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pki.default_dir() == tmp_path / ".pki/pyvirt"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pki_main(["init", "--dir", str(tmp_path)]) == 0
    assert pki_main(["issue-server", "--dir", str(tmp_path), "--hostname", "hail.example.com"]) == 0
    assert "hail.example.com, " in capsys.readouterr().out
    names = pki.describe(tmp_path / "servercert.pem")["names"]
    assert "hail.example.com" in names and "127.0.0.1" in names and "localhost" in names
    assert pki_main(["issue-client", "--dir", str(tmp_path), "--cn", "ops", "--days", "7"]) == 0
    assert pki_main(["show", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CN=ops" in out and "CN=hail.example.com" in out


def test_cli_issue_server_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """issue-server --out: the server's files and a copy of the CA certificate go there, not to the CA's
    directory."""
    assert pki_main(["init", "--dir", str(tmp_path / "ca")]) == 0
    out = tmp_path / "for-host"
    argv = ["issue-server", "--dir", str(tmp_path / "ca"), "--hostname", "h1", "--out", str(out)]
    assert pki_main(argv) == 0
    assert f"server certificate {out / 'servercert.pem'}" in capsys.readouterr().out
    assert "h1" in pki.describe(out / "servercert.pem")["names"]
    assert (out / "serverkey.pem").stat().st_mode & 0o077 == 0
    assert (out / "cacert.pem").read_bytes() == (tmp_path / "ca/cacert.pem").read_bytes()
    assert not (tmp_path / "ca/servercert.pem").exists()
