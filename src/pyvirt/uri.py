"""Connection URIs, in libvirt's forms.

``qemu:///system``, ``qemu:///session``, ``qemu+unix:///system?socket=PATH``,
``qemu+ssh://[user@]host[:port]/system?keyfile=..&socket=..&no_verify=1&no_tty=1&command=..`` and
``qemu+tls://host[:port]/system?pkipath=..&no_verify=1``; as in libvirt, ``qemu://host/system``
(a host, no transport) means TLS. A bare name such as ``hail`` is looked up in the client
configuration's ``uri_aliases`` (see :mod:`pyvirt.clientconf`); that is the only part of parsing
that reads a file. The client picks a transport from the result.
"""

from __future__ import annotations

import os

from pyvirt.errors import InvalidArgument

TRANSPORTS = ("unix", "ssh", "tls")

# Query parameters each transport understands; anything else is refused rather than ignored.
PARAMS: dict[str, tuple[str, ...]] = {
    "unix": ("socket",),
    "ssh": ("keyfile", "socket", "no_verify", "no_tty", "command", "control_persist"),
    "tls": ("pkipath", "no_verify"),
}
FLAG_PARAMS = ("no_verify", "no_tty")
ALIAS_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class URI:
    """A parsed URI. (A plain class, not a dataclass: this module is on every CLI start.)"""

    __slots__ = ("host", "mode", "params", "port", "transport", "user")

    def __init__(
        self,
        transport: str,  # unix | ssh | tls
        mode: str,  # system | session
        user: str | None = None,
        host: str | None = None,
        port: int | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.mode = mode
        self.user = user
        self.host = host
        self.port = port
        self.params = params if params is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URI) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __hash__(self) -> int:
        return hash((self.transport, self.mode, self.user, self.host, self.port))

    def __repr__(self) -> str:
        return f"URI({self.canonical()!r})"

    @property
    def is_local(self) -> bool:
        return self.transport == "unix"

    def flag(self, name: str) -> bool:
        return self.params.get(name, "0") not in ("", "0")

    def canonical(self) -> str:
        from urllib.parse import quote

        scheme = "qemu" if self.transport == "unix" else f"qemu+{self.transport}"
        authority = ""
        if self.host:
            host = f"[{self.host}]" if ":" in self.host else self.host
            authority = (f"{quote(self.user, safe='')}@" if self.user else "") + host
            if self.port:
                authority += f":{self.port}"
        query = "&".join(f"{k}={quote(v, safe='/:,~@')}" for k, v in self.params.items())
        return f"{scheme}://{authority}/{self.mode}" + (f"?{query}" if query else "")


def default_uri() -> str:
    """``$PYVIRT_DEFAULT_URI``, ``$LIBVIRT_DEFAULT_URI``, the config's ``uri_default``, or by user."""
    env = os.environ.get("PYVIRT_DEFAULT_URI") or os.environ.get("LIBVIRT_DEFAULT_URI")
    if env:
        return env
    from pyvirt.clientconf import configured_default

    configured = configured_default()
    if configured:
        return configured
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


def parse_uri(text: str) -> URI:
    text = text.strip()
    if text in ("qemu:///system", "qemu:///session"):
        return URI("unix", text[8:])  # the common case, without urllib.parse
    if text and ":" not in text and set(text) <= ALIAS_CHARS:
        # Imported here so that every caller gets aliases, and only when a bare name is given.
        from pyvirt.clientconf import resolve_alias

        text = resolve_alias(text)
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "qemu":
        transport = "tls" if parts.hostname else "unix"
    elif scheme.startswith("qemu+"):
        transport = scheme[5:]
        if transport == "tcp":
            raise InvalidArgument(
                f"URI '{text}': pyvirtd has no plain-TCP listener; use qemu+tls:// or qemu+ssh://"
            )
        if transport in ("libssh", "libssh2", "ext"):
            raise InvalidArgument(f"URI '{text}': transport '{transport}' is not supported; use qemu+ssh://")
        if transport not in TRANSPORTS:
            raise InvalidArgument(f"unsupported transport '{transport}' in URI '{text}'")
    else:
        raise InvalidArgument(
            f"unsupported connection URI '{text}': expected qemu:// or qemu+TRANSPORT:// "
            "(or an alias from uri_aliases in pyvirt.conf)"
        )
    mode = parts.path.strip("/")
    if mode not in ("system", "session"):
        raise InvalidArgument(
            f"unexpected QEMU URI path '{parts.path}', try qemu:///system or qemu:///session"
        )
    host = parts.hostname
    if transport == "unix" and host:
        raise InvalidArgument(f"URI '{text}' names a host: use qemu+ssh:// or qemu+tls:// for remote hosts")
    if transport in ("ssh", "tls") and not host:
        raise InvalidArgument(f"URI '{text}' needs a host name")
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidArgument(f"bad port in URI '{text}'") from err
    if transport == "unix" and port:
        raise InvalidArgument(f"URI '{text}' names a port but no host")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    known = PARAMS[transport]
    for key, value in params.items():
        if key not in known:
            raise InvalidArgument(
                f"unknown parameter '{key}' in URI '{text}' (qemu+{transport} knows: {', '.join(known)})"
            )
        if key in FLAG_PARAMS and value not in ("0", "1"):
            raise InvalidArgument(f"URI parameter {key}={value}: expected 0 or 1")
        if key not in FLAG_PARAMS and not value:
            raise InvalidArgument(f"URI parameter '{key}' needs a value")
    return URI(
        transport=transport,
        mode=mode,
        user=parts.username,
        host=host,
        port=port,
        params=params,
    )
