"""Connection URIs, in libvirt's forms.

``qemu:///system``, ``qemu:///session``, ``qemu+unix:///system?socket=PATH``,
``qemu+ssh://[user@]host[:port]/system?keyfile=..&socket=..&no_verify=1&no_tty=1`` and
``qemu+tls://host[:port]/system?pkipath=..&no_verify=1``. Parsing is pure; the client picks a
transport from the result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from pyvirt.errors import InvalidArgument

TRANSPORTS = ("unix", "ssh", "tls")


@dataclass(frozen=True)
class URI:
    transport: str  # unix | ssh | tls
    mode: str  # system | session
    user: str | None = None
    host: str | None = None
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.transport == "unix"

    def canonical(self) -> str:
        scheme = "qemu" if self.transport == "unix" else f"qemu+{self.transport}"
        authority = ""
        if self.host:
            authority = (f"{self.user}@" if self.user else "") + self.host
            if self.port:
                authority += f":{self.port}"
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{scheme}://{authority}/{self.mode}" + (f"?{query}" if query else "")


def default_uri() -> str:
    env = os.environ.get("PYVIRT_DEFAULT_URI") or os.environ.get("LIBVIRT_DEFAULT_URI")
    if env:
        return env
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


def parse_uri(text: str) -> URI:
    parts = urlsplit(text)
    scheme = parts.scheme
    if scheme == "qemu":
        transport = "unix"
    elif scheme.startswith("qemu+"):
        transport = scheme[5:]
        if transport not in TRANSPORTS:
            raise InvalidArgument(f"unsupported transport '{transport}' in URI '{text}'")
    else:
        raise InvalidArgument(f"unsupported connection URI '{text}': expected qemu:// or qemu+TRANSPORT://")
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
    return URI(
        transport=transport,
        mode=mode,
        user=parts.username,
        host=host,
        port=port,
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )
