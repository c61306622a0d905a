"""The ``qemu+tls://`` transport: mutual TLS to ``pyvirtd --listen-tls`` (default port 16514).

Certificates are looked up where libvirt keeps its own: ``pkipath=`` from the URI, else
``~/.pki/pyvirt`` for a normal user, else ``/etc/pki/pyvirt``: ``cacert.pem``, ``clientcert.pem`` and
``clientkey.pem``.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

from pyvirt.client.transport import Transport
from pyvirt.errors import ConnectionFailed
from pyvirt.uri import URI

DEFAULT_PORT = 16514


def pki_dir(uri: URI) -> Path:
    if uri.params.get("pkipath"):
        return Path(uri.params["pkipath"])
    user = Path.home() / ".pki/pyvirt"
    if os.geteuid() != 0 and user.exists():
        return user
    root = os.environ.get("PYVIRT_ROOT")
    return Path(root or "/") / "etc/pki/pyvirt"


def client_context(directory: Path, *, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(directory / "cacert.pem")
        ctx.load_cert_chain(directory / "clientcert.pem", directory / "clientkey.pem")
    except (OSError, ssl.SSLError) as err:
        raise ConnectionFailed(f"cannot load TLS certificates from {directory}: {err}") from err
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_tls(uri: URI, readonly: bool) -> Transport:
    assert uri.host is not None
    ctx = client_context(pki_dir(uri), verify=uri.params.get("no_verify") != "1")
    port = uri.port or DEFAULT_PORT
    try:
        raw = socket.create_connection((uri.host, port), timeout=20)
    except OSError as err:
        raise ConnectionFailed(f"cannot reach {uri.host} on port {port}: {err.strerror or err}") from err
    try:
        sock = ctx.wrap_socket(raw, server_hostname=uri.host)
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise ConnectionFailed(f"TLS handshake with {uri.host}:{port} failed: {err}") from err
    sock.settimeout(None)
    if readonly:
        sock.close()
        raise ConnectionFailed("read-only connections are not available over qemu+tls:// yet; use qemu+ssh://")
    return Transport(sock, f"{uri.host}:{port}")
