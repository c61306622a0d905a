"""A small certificate authority for ``qemu+tls://``: a CA, server and client certificates.

Files follow libvirt's names, in one directory: ``/etc/pki/pyvirt/`` (under ``$PYVIRT_ROOT`` when set)
for root and the daemon, ``~/.pki/pyvirt/`` for other users::

    cacert.pem  cakey.pem          the CA (the key stays on the machine that issues certificates)
    servercert.pem serverkey.pem   what pyvirtd --listen-tls presents
    clientcert.pem clientkey.pem   what a qemu+tls:// client presents

Keys are ECDSA P-256, written mode 0600. A client certificate issued with ``readonly=True`` carries
``OU=pyvirt-readonly`` in its subject; pyvirtd gives such a client a read-only connection whatever
it asks for.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyvirt.errors import AlreadyExists, InvalidArgument, NotFound
from pyvirt.store import atomic_write

READONLY_OU = "pyvirt-readonly"
CA_DAYS = 3650
CERT_DAYS = 1095


def default_dir() -> Path:
    """``/etc/pki/pyvirt`` for root (under ``$PYVIRT_ROOT``), ``~/.pki/pyvirt`` for other users."""
    root = os.environ.get("PYVIRT_ROOT")
    if os.geteuid() == 0 or root:
        return Path(root or "/") / "etc/pki/pyvirt"
    return Path.home() / ".pki/pyvirt"


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str | None = None, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write(path, data, 0o600)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def build_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
    issuer_key: ec.EllipticCurvePublicKey | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if days < 1:
        raise InvalidArgument(f"validity must be at least one day, not {days}")
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def init_ca(directory: Path, *, cn: str = "pyvirt CA", days: int = CA_DAYS, force: bool = False) -> Issued:
    cert_path, key_path = directory / "cacert.pem", directory / "cakey.pem"
    if cert_path.exists() and not force:
        raise AlreadyExists(f"a CA already exists in {directory} (cacert.pem); pass --force to replace it")
    key = new_key()
    name = _name(cn, "pyvirt")
    start, end = _validity(days)
    cert = build_certificate(name, key.public_key(), name, key, not_before=start, not_after=end, ca=True)
    _write_key(key_path, key)
    atomic_write(cert_path, _cert_pem(cert), 0o644)
    return Issued(cert_path, key_path)


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "cacert.pem", directory / "cakey.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as err:
        raise NotFound(
            f"no CA in {directory} ({Path(err.filename).name} missing): run 'pyvirt pki init' first"
        ) from err
    except ValueError as err:
        raise InvalidArgument(f"cannot load the CA from {directory}: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument(f"{key_path}: expected an EC private key")
    return cert, key


def default_server_names() -> list[str]:
    names = [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    return list(dict.fromkeys(n for n in names if n))


def _general_name(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def _install_cacert(ca_dir: Path, out_dir: Path, ca_cert: x509.Certificate) -> None:
    if out_dir.resolve() != ca_dir.resolve():
        atomic_write(out_dir / "cacert.pem", _cert_pem(ca_cert), 0o644)


def issue_server(
    ca_dir: Path, names: list[str], *, out_dir: Path | None = None, days: int = CERT_DAYS
) -> Issued:
    """``servercert.pem``/``serverkey.pem`` for ``names`` (host names and addresses, in the SAN)."""
    if not names:
        raise InvalidArgument("a server certificate needs at least one host name")
    ca_cert, ca_key = load_ca(ca_dir)
    out = out_dir or ca_dir
    key = new_key()
    start, end = _validity(days)
    cert = build_certificate(
        _name(names[0], "pyvirt"),
        key.public_key(),
        ca_cert.subject,
        ca_key,
        not_before=start,
        not_after=end,
        sans=[_general_name(n) for n in dict.fromkeys(names)],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        issuer_key=ca_key.public_key(),
    )
    _write_key(out / "serverkey.pem", key)
    atomic_write(out / "servercert.pem", _cert_pem(cert), 0o644)
    _install_cacert(ca_dir, out, ca_cert)
    return Issued(out / "servercert.pem", out / "serverkey.pem")


def issue_client(
    ca_dir: Path,
    cn: str,
    *,
    out_dir: Path | None = None,
    days: int = CERT_DAYS,
    readonly: bool = False,
) -> Issued:
    """``clientcert.pem``/``clientkey.pem`` for the client ``cn``; ``readonly`` limits it to queries."""
    ca_cert, ca_key = load_ca(ca_dir)
    out = out_dir or ca_dir
    key = new_key()
    start, end = _validity(days)
    cert = build_certificate(
        _name(cn, "pyvirt", READONLY_OU if readonly else None),
        key.public_key(),
        ca_cert.subject,
        ca_key,
        not_before=start,
        not_after=end,
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        issuer_key=ca_key.public_key(),
    )
    _write_key(out / "clientkey.pem", key)
    atomic_write(out / "clientcert.pem", _cert_pem(cert), 0o644)
    _install_cacert(ca_dir, out, ca_cert)
    return Issued(out / "clientcert.pem", out / "clientkey.pem")


def describe(path: Path) -> dict[str, str]:
    """Subject, issuer, validity and names of a certificate file, for ``pyvirt pki show``."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as err:
        raise NotFound(f"no certificate at {path}") from err
    except ValueError as err:
        raise InvalidArgument(f"{path} is not a PEM certificate: {err}") from err
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ", ".join(str(getattr(n, "value", n)) for n in sans)
    except x509.ExtensionNotFound:
        names = ""
    return {
        "file": str(path),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "names": names,
    }
