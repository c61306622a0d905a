"""The ``qemu+tls://`` transport: mutual TLS to ``pyvirtd --listen-tls`` (default port 16514).

Certificates are looked up where libvirt keeps its own: ``pkipath=`` from the URI, else
``~/.pki/pyvirt`` for a normal user who has one, else ``/etc/pki/pyvirt`` (under ``$PYVIRT_ROOT``):
``cacert.pem``, ``clientcert.pem`` and ``clientkey.pem``. ``no_verify=1`` skips checking the
server's certificate (the server still checks ours).

A read-only connection offers the ALPN protocol ``pyvirt-ro``: the daemon then marks the whole
connection read-only (see :mod:`pyvirt.daemon.tls`).
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import Any

from pyvirt.client.transport import Transport
from pyvirt.errors import ConnectionFailed, TimedOut
from pyvirt.uri import URI

DEFAULT_PORT = 16514
ALPN_RW = "pyvirt"
ALPN_RO = "pyvirt-ro"


def pki_dir(uri: URI) -> Path:
    if uri.params.get("pkipath"):
        return Path(uri.params["pkipath"])
    root = os.environ.get("PYVIRT_ROOT")
    user = Path.home() / ".pki/pyvirt"
    if os.geteuid() != 0 and not root and (user / "clientcert.pem").exists():
        return user
    return Path(root or "/") / "etc/pki/pyvirt"


def client_context(directory: Path, *, verify: bool = True, readonly: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ALPN_RO if readonly else ALPN_RW])
    for name in ("cacert.pem", "clientcert.pem", "clientkey.pem"):
        if not (directory / name).exists():
            raise ConnectionFailed(
                f"no {name} in {directory}: qemu+tls:// needs the CA certificate and a client certificate "
                "('pyvirt pki issue-client' on the CA's host), or pkipath=DIR in the URI"
            )
    try:
        ctx.load_verify_locations(directory / "cacert.pem")
        ctx.load_cert_chain(directory / "clientcert.pem", directory / "clientkey.pem")
    except (OSError, ssl.SSLError) as err:
        raise ConnectionFailed(f"cannot load TLS certificates from {directory}: {err}") from err
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def explain_tls_error(where: str, err: BaseException) -> str:
    text = str(err)
    reason = getattr(err, "reason", None) or ""
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"the server certificate of {where} is not trusted ({getattr(err, 'verify_message', text)}): "
            "check cacert.pem, the host name in the URI, or use no_verify=1"
        )
    if any(
        word in reason or word in text
        for word in ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "CERTIFICATE_EXPIRED", "BAD_CERTIFICATE")
    ):
        return (
            f"{where} refused our client certificate ({reason or text}): it must be signed by the "
            "server's CA and be valid now ('pyvirt pki issue-client')"
        )
    return f"TLS connection to {where} failed: {text}"


def diagnose_client_cert(directory: Path) -> str:
    """Why a server may have refused ``clientcert.pem``, as far as this side can tell; "" if unknown."""
    import datetime

    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((directory / "clientcert.pem").read_bytes())
        ca = x509.load_pem_x509_certificate((directory / "cacert.pem").read_bytes())
    except (OSError, ValueError):
        return ""
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        return f"; {directory / 'clientcert.pem'} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if cert.not_valid_before_utc > now:
        return f"; {directory / 'clientcert.pem'} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    if cert.issuer != ca.subject:
        return (
            f"; {directory / 'clientcert.pem'} was issued by '{cert.issuer.rfc4514_string()}', "
            f"not by the CA in cacert.pem ('{ca.subject.rfc4514_string()}')"
        )
    return ""


class TLSTransport(Transport):
    """A Transport over an ``ssl.SSLSocket``; TLS alerts become errors that name the cause.

    With TLS 1.3 the server judges the client certificate after the client's handshake has already
    completed, so a refusal arrives on the first read: as an alert, or as the end of the connection.
    """

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        try:
            return super().read_response()
        except ConnectionFailed as err:
            cause = err.__cause__
            if isinstance(cause, ssl.SSLError):
                raise ConnectionFailed(explain_tls_error(self.description, cause)) from cause
            raise

    def send_request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        try:
            super().send_request(method, path, body, headers)
        except ConnectionFailed as err:
            cause = err.__cause__
            if isinstance(cause, ssl.SSLError):
                raise ConnectionFailed(explain_tls_error(self.description, cause)) from cause
            raise

    answered = False

    def __init__(
        self, sock: socket.socket, description: str, pki_dir: Path, read_timeout: float | None = None
    ) -> None:
        super().__init__(sock, description, read_timeout)
        self.pki_dir = pki_dir

    def _recv_until(self, marker: bytes) -> bytes:
        try:
            head = super()._recv_until(marker)
        except ssl.SSLError as err:
            raise ConnectionFailed(explain_tls_error(self.description, err)) from err
        except TimedOut:
            raise
        except ConnectionFailed as err:
            if self.answered:
                raise
            # pyvirtd closes without an alert when it rejects a certificate after a TLS 1.3 handshake.
            raise ConnectionFailed(
                f"{self.description} refused our client certificate (it closed the connection before "
                f"answering){diagnose_client_cert(self.pki_dir)}: it must be signed by the server's CA "
                "and be valid now ('pyvirt pki issue-client')"
            ) from err
        self.answered = True
        return head


def open_tls(uri: URI, readonly: bool) -> Transport:
    from pyvirt.clientconf import config_file, timeouts

    assert uri.host is not None
    directory = pki_dir(uri)
    ctx = client_context(directory, verify=not uri.flag("no_verify"), readonly=readonly)
    port = uri.port or DEFAULT_PORT
    where = f"{uri.host}:{port}"
    connect_timeout, read_timeout = timeouts()
    limit = f"within {connect_timeout:g} s (the limit is connect_timeout in {config_file()})"
    try:
        raw = socket.create_connection((uri.host, port), timeout=connect_timeout)
    except TimeoutError as err:
        raise TimedOut(f"cannot reach {uri.host} on port {port}: no answer {limit}") from err
    except OSError as err:
        raise ConnectionFailed(
            f"cannot reach {uri.host} on port {port}: {err.strerror or err} "
            "(is pyvirtd running with --listen-tls?)"
        ) from err
    try:
        sock = ctx.wrap_socket(raw, server_hostname=uri.host)
    except TimeoutError as err:
        raw.close()
        raise TimedOut(f"{where} accepted the connection but completed no TLS handshake {limit}") from err
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise ConnectionFailed(explain_tls_error(where, err)) from err
    return TLSTransport(sock, where, directory, read_timeout)
