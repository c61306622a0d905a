"""TLS settings of pyvirtd.conf on a real daemon: the listener from listen_tls/listen_addr/tls_port, its
files from ca_file/cert_file/key_file, a revocation list, the tls_allowed_dn_list allow-list with
wildcards, read-only certificates; and the audit log of mutating requests, over TLS and the Unix socket."""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import pyvirt
from pyvirt import pki
from pyvirt.errors import InvalidState
from pyvirt.store import atomic_write
from tests.integration.remote.sshd import free_port
from tests.integration.remote.test_tls import MINI, assert_logged_refusal
from tests.integration.remote.tlsd import wait_port
from tests.support.daemon import Daemon

ALLOWED = ["O=pyvirt,CN=admin", "O=pyvirt,CN=ops-*", "OU=pyvirt-readonly,O=pyvirt,CN=*"]


class Policy:
    def __init__(self, daemon: Daemon, port: int, ca: Path) -> None:
        self.daemon = daemon
        self.port = port
        self.ca = ca

    def client(self, tmp: Path, cn: str, *, readonly: bool = False) -> str:
        """A URI whose pkipath holds a certificate for ``cn`` signed by the daemon's CA."""
        out = tmp / cn
        pki.issue_client(self.ca, cn, out_dir=out, readonly=readonly)
        return f"qemu+tls://127.0.0.1:{self.port}/system?pkipath={out}"

    def log(self) -> str:
        return self.daemon.log.read_text()


def revocation_list(ca: Path, revoked: Path) -> bytes:
    ca_cert, ca_key = pki.load_ca(ca)
    cert = x509.load_pem_x509_certificate(revoked.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(entry)
        .sign(ca_key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.PEM)


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[Policy]:
    daemon = Daemon()
    try:
        daemon.cli("pki", "init").ok()
        daemon.cli("pki", "issue-server", "--hostname", "pyvirt-test.invalid").ok()
        ca = daemon.root / "etc/pki/pyvirt"
        # The server's files elsewhere, named in pyvirtd.conf: the PKI directory's default is gone.
        files = daemon.root / "srv/tls"
        files.mkdir(parents=True)
        for name in ("servercert.pem", "serverkey.pem"):
            shutil.move(ca / name, files / name)
        shutil.copy(ca / "cacert.pem", files / "ca.pem")
        pki.issue_client(ca, "ops-revoked", out_dir=tmp_path / "ops-revoked")
        atomic_write(files / "crl.pem", revocation_list(ca, tmp_path / "ops-revoked/clientcert.pem"), 0o644)
        port = free_port()
        allowed = ", ".join(f'"{dn}"' for dn in ALLOWED)
        conf = daemon.root / "etc/pyvirt/pyvirtd.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f'listen_tls = 1\nlisten_addr = "127.0.0.1"\ntls_port = {port}\n'
            f'ca_file = "{files}/ca.pem"\ncert_file = "{files}/servercert.pem"\n'
            f'key_file = "{files}/serverkey.pem"\ncrl_file = "{files}/crl.pem"\n'
            f"tls_allowed_dn_list = [{allowed}]\n"
        )
        daemon.start()
        wait_port(port)
        yield Policy(daemon, port, ca)
    finally:
        daemon.cleanup()


def test_listed_certificates_get_in_and_their_changes_are_audited(policy: Policy, tmp_path: Path) -> None:
    xml = tmp_path / "p1.xml"
    xml.write_text(MINI.format(name="p1"))
    admin = policy.client(tmp_path, "admin")
    policy.daemon.cli("-c", admin, "define", str(xml)).ok()
    ops = policy.client(tmp_path, "ops-7")  # by the wildcard
    assert "p1" in policy.daemon.cli("-c", ops, "list", "--all").ok().out
    with pyvirt.open(ops) as conn, pytest.raises(InvalidState):
        conn.domain("p1").resume()  # shut off: nothing to resume
    log = policy.log()
    audit = [line for line in log.splitlines() if "pyvirtd.audit" in line]
    assert any(
        "domain.define POST /v1/domains by 'O=pyvirt,CN=admin' at 127.0.0.1:" in line
        and line.endswith(": ok")
        for line in audit
    ), audit
    assert any(
        "domain.resume POST /v1/domains/p1/resume by 'O=pyvirt,CN=ops-7' at 127.0.0.1:" in line
        and ": failed (invalid-state: " in line
        for line in audit
    ), audit
    assert not any("domain.list" in line for line in audit)  # queries are not audited


def test_an_unlisted_certificate_is_refused_by_name(policy: Policy, tmp_path: Path) -> None:
    mallory = policy.client(tmp_path, "mallory")  # signed by the CA, but not listed
    result = policy.daemon.cli("-c", mallory, "list")
    assert result.rc == 1
    assert result.err.startswith(
        "error: access denied: the client certificate 'O=pyvirt,CN=mallory' is not allowed on this server"
    ), result.err
    assert "tls_allowed_dn_list" in result.err
    assert "refused TLS client 127.0.0.1:" in policy.log()
    assert "certificate 'O=pyvirt,CN=mallory' is not in tls_allowed_dn_list" in policy.log()


def test_a_revoked_certificate_is_refused(policy: Policy, tmp_path: Path) -> None:
    revoked = f"qemu+tls://127.0.0.1:{policy.port}/system?pkipath={tmp_path / 'ops-revoked'}"
    shutil.copy(policy.ca / "cacert.pem", tmp_path / "ops-revoked/cacert.pem")
    result = policy.daemon.cli("-c", revoked, "list")
    assert result.rc == 1 and "refused our client certificate" in result.err, result.err
    assert_logged_refusal(policy, "certificate verify failed")  # type: ignore[arg-type]  # duck: .daemon


def test_a_readonly_certificate_queries_only(policy: Policy, tmp_path: Path) -> None:
    xml = tmp_path / "p2.xml"
    xml.write_text(MINI.format(name="p2"))
    viewer = policy.client(tmp_path, "viewer", readonly=True)
    policy.daemon.cli("-c", viewer, "list", "--all").ok()
    refused = policy.daemon.cli("-c", viewer, "define", str(xml))
    assert refused.rc == 1 and "read-only" in refused.err, refused.err
    audit = [line for line in policy.log().splitlines() if "pyvirtd.audit" in line]
    assert any(
        "POST /v1/domains by 'OU=pyvirt-readonly,O=pyvirt,CN=viewer' at 127.0.0.1:" in line
        and ": denied (access denied: this connection is read-only" in line
        for line in audit
    ), audit


def test_unix_socket_changes_are_audited_with_the_uid(policy: Policy, tmp_path: Path) -> None:
    import os

    xml = tmp_path / "p3.xml"
    xml.write_text(MINI.format(name="p3"))
    policy.daemon.cli("define", str(xml)).ok()
    policy.daemon.cli("undefine", "p3").ok()
    audit = [line for line in policy.log().splitlines() if "pyvirtd.audit" in line]
    uid = os.getuid()
    assert any(
        f"domain.define POST /v1/domains by uid {uid} pid " in line and line.endswith(": ok")
        for line in audit
    )
    assert any(f"domain.undefine DELETE /v1/domains/p3 by uid {uid} pid " in line for line in audit), audit
