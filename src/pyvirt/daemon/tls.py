"""The ``qemu+tls://`` listener: mutual TLS in front of the same HTTP API as the Unix sockets.

The daemon presents ``servercert.pem``/``serverkey.pem`` from its PKI directory and accepts only
clients whose certificate is signed by ``cacert.pem`` there (and valid now). There is no plain-TCP
listener.

Read-only is decided per connection at the handshake, never per request: a client asking for a
read-only connection offers the ALPN protocol ``pyvirt-ro`` instead of ``pyvirt``, and a client whose
certificate carries ``OU=pyvirt-readonly`` (``pyvirt pki issue-client --readonly``) is read-only
whatever it offers.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.pki import READONLY_OU

if TYPE_CHECKING:
    from pyvirt.daemon.http import HTTPServer

log = logging.getLogger(__name__)

DEFAULT_PORT = 16514
ALPN_RW = "pyvirt"
ALPN_RO = "pyvirt-ro"


class TLSSetupError(Exception):
    """The TLS listener cannot start; the message says which file to fix and how."""


def server_context(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols([ALPN_RW, ALPN_RO])
    files = {name: pki_dir / name for name in ("cacert.pem", "servercert.pem", "serverkey.pem")}
    missing = [name for name, path in files.items() if not path.exists()]
    if missing:
        raise TLSSetupError(
            f"--listen-tls needs {', '.join(missing)} in {pki_dir}: "
            "run 'pyvirt pki init' and 'pyvirt pki issue-server --hostname NAME'"
        )
    try:
        ctx.load_cert_chain(files["servercert.pem"], files["serverkey.pem"])
        ctx.load_verify_locations(files["cacert.pem"])
    except (OSError, ssl.SSLError) as err:
        raise TLSSetupError(f"cannot load the TLS certificates in {pki_dir}: {err}") from err
    return ctx


def connection_is_readonly(ssl_object: Any) -> bool:
    """Read-only if the client offered ``pyvirt-ro`` or its certificate says ``OU=pyvirt-readonly``."""
    if ssl_object is None:
        return True
    if ssl_object.selected_alpn_protocol() == ALPN_RO:
        return True
    cert = ssl_object.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "organizationalUnitName" and value == READONLY_OU:
                return True
    return False


def parse_listen(text: str) -> tuple[str, int]:
    """``[ADDR:]PORT`` → (address, port); ``[::1]:16514`` for IPv6; the default address is 0.0.0.0."""
    host, port_text = "0.0.0.0", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] not in (":", ""):
            raise ValueError(f"bad listen address '{text}': expected [ADDR]:PORT")
        host, port_text = text[1:end], text[end + 2 :] or str(DEFAULT_PORT)
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    elif not text.isdigit():
        host, port_text = text, str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in listen address '{text}'")
    return host, int(port_text)


async def start_tls_listener(server: HTTPServer, listen: str, pki_dir: Path) -> tuple[str, int]:
    """Listen on ``listen`` (``[ADDR:]PORT``) with the certificates in ``pki_dir``."""
    try:
        host, port = parse_listen(listen)
    except ValueError as err:
        raise TLSSetupError(str(err)) from err
    ctx = server_context(pki_dir)
    try:
        await server.listen_tcp_tls(host, port, ctx)
    except OSError as err:
        raise TLSSetupError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    log.info("listening for qemu+tls:// on %s:%d (certificates in %s)", host, port, pki_dir)
    return host, port
