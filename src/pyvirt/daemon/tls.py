"""The ``qemu+tls://`` listener: mutual TLS in front of the same HTTP API as the Unix sockets.

The daemon presents ``servercert.pem``/``serverkey.pem`` from its PKI directory and accepts only
clients whose certificate is signed by ``cacert.pem`` there (and valid now). There is no plain-TCP
listener.

Read-only is decided per connection at the handshake, never per request: a client asking for a
read-only connection offers the ALPN protocol ``pyvirt-ro`` instead of ``pyvirt``, and a client whose
certificate carries ``OU=pyvirt-readonly`` (``pyvirt pki issue-client --readonly``) is read-only
whatever it offers.

pyvirtd.conf may name other files (``ca_file``, ``cert_file``, ``key_file``), a revocation list
(``crl_file``) and, as libvirtd's ``tls_allowed_dn_list``, the client certificate subjects allowed, with
shell wildcards: a client whose certificate the CA signed but whose subject is not listed gets every
request refused (403, naming its subject), and the refusal is logged with its address.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from pyvirt.daemon.config import DaemonConfig
from pyvirt.daemon.http import Peer
from pyvirt.pki import READONLY_OU

if TYPE_CHECKING:
    from pyvirt.daemon.http import HTTPServer

log = logging.getLogger(__name__)

DEFAULT_PORT = 16514
ALPN_RW = "pyvirt"
ALPN_RO = "pyvirt-ro"


class TLSSetupError(Exception):
    """The TLS listener cannot start; the message says which file to fix and how."""


def server_context(pki_dir: Path, config: DaemonConfig | None = None) -> ssl.SSLContext:
    """The listener's context: our certificate, and client certificates required and checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols([ALPN_RW, ALPN_RO])
    files = (config or DaemonConfig()).tls_files(pki_dir)
    missing = [path for path in files.values() if not path.exists()]
    if missing:
        if all(path.parent == pki_dir for path in missing):
            where = f"{', '.join(path.name for path in missing)} in {pki_dir}"
        else:
            where = ", ".join(str(path) for path in missing)
        raise TLSSetupError(
            f"the TLS listener needs {where}: "
            "run 'pyvirt pki init' and 'pyvirt pki issue-server --hostname NAME'"
            + (", or fix ca_file/cert_file/key_file/crl_file in pyvirtd.conf" if config else "")
        )
    try:
        ctx.load_cert_chain(files["cert"], files["key"])
        ctx.load_verify_locations(files["ca"])
        if "crl" in files:
            ctx.load_verify_locations(files["crl"])
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except (OSError, ssl.SSLError) as err:
        names = ", ".join(str(path) for path in files.values())
        raise TLSSetupError(f"cannot load the TLS files ({names}): {err}") from err
    return ctx


def subject_dn(ssl_object: Any) -> str:
    """The client certificate's subject as RFC 4514 text (``O=pyvirt,CN=admin``), as ``pyvirt pki
    show`` prints it; "" without one."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return ""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


class PeerJudge:
    """Who a TLS client is, once its handshake passed: its subject, read-only or not, and whether
    ``tls_allowed_dn_list`` lets it in."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config

    def __call__(self, ssl_object: Any, address: str) -> Peer:
        dn = subject_dn(ssl_object)
        refused = ""
        if not self.config.dn_allowed(dn):
            refused = (
                f"access denied: the client certificate '{dn}' is not allowed on this server "
                "(tls_allowed_dn_list in pyvirtd.conf)"
            )
            log.warning("refused TLS client %s: certificate '%s' is not in tls_allowed_dn_list", address, dn)
        readonly = connection_is_readonly(ssl_object)
        return Peer(uid=-1, gid=-1, pid=-1, readonly=readonly, dn=dn, address=address, refused=refused)


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


async def start_tls_listener(
    server: HTTPServer, listen: str | socket.socket, pki_dir: Path, config: DaemonConfig | None = None
) -> tuple[str, int]:
    """Listen on ``listen`` (``[ADDR:]PORT``, or a bound TCP socket from systemd) with the certificates
    in ``pki_dir`` (or the files pyvirtd.conf names) and its client policy."""
    config = config or DaemonConfig()
    passed = listen if isinstance(listen, socket.socket) else None
    try:
        host, port = passed.getsockname()[:2] if passed is not None else parse_listen(str(listen))
    except ValueError as err:
        raise TLSSetupError(str(err)) from err
    ctx = server_context(pki_dir, config)
    try:
        await server.listen_tcp_tls(host, port, ctx, PeerJudge(config), sock=passed)
    except OSError as err:
        raise TLSSetupError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    log.info("listening for qemu+tls:// on %s:%d (CA %s)", host, port, config.tls_files(pki_dir)["ca"])
    return host, port
