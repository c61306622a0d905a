"""``pyvirtd.conf``: the daemon's settings, in libvirtd.conf's syntax and, where libvirt has one, its names.

Each setting is a field of :class:`DaemonConfig` with its type, default, check and a line of help
(``contrib/pyvirtd.conf`` documents every one; a test keeps the two in step). A setting the daemon does
not know, a value of the wrong type or out of range is refused at start, naming the setting and the
file: nothing in the file is silently ignored. The syntax is libvirt's
(:func:`pyvirt.clientconf.parse_conf`)::

    log_level = 3                                  # 1 debug, 2 info, 3 warning, 4 error
    max_clients = 50
    tls_allowed_dn_list = ["O=pyvirt,CN=admin", "O=pyvirt,CN=ops-*"]
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyvirt.clientconf import parse_conf
from pyvirt.errors import InvalidArgument

LOG_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class ConfigError(InvalidArgument):
    """pyvirtd.conf cannot be used; the message names the file and the setting."""


def _positive(value: int) -> str | None:
    return None if value >= 1 else "must be at least 1"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else "must not be negative"


def _perms(value: str) -> str | None:
    ok = len(value) in (3, 4) and all(c in "01234567" for c in value)
    return None if ok else 'must be an octal mode such as "0660"'


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a port number (1-65535)"


def _level(value: int) -> str | None:
    return None if value in LOG_LEVELS else "must be 1 (debug), 2 (info), 3 (warning) or 4 (error)"


def _flag(value: int) -> str | None:
    return None if value in (0, 1) else "must be 0 or 1"


def _account(value: str) -> str | None:
    ok = (
        bool(value) and len(value) <= 32 and value[0] != "-" and all(c.isalnum() or c in "-_." for c in value)
    )
    return None if ok else "must be a user or group name"


def _setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


@dataclass(frozen=True)
class DaemonConfig:
    """Every setting of pyvirtd.conf. ``""`` for a file means the default file of the PKI directory."""

    log_level: int = _setting(2, "1 debug, 2 info, 3 warning, 4 error (pyvirtd -v: debug)", _level)
    unix_sock_group: str = _setting("", "the group owning the read-write socket (default: root's)")
    unix_sock_rw_perms: str = _setting("0600", "the read-write socket's mode", _perms)
    unix_sock_ro_perms: str = _setting("0666", "the read-only socket's mode", _perms)
    max_clients: int = _setting(1000, "clients served at once; one more gets 503", _positive)
    max_queued_clients: int = _setting(1000, "connections waiting to be accepted (listen backlog)", _positive)
    keepalive_interval: int = _setting(
        5, "seconds between keepalive beats (102 Processing, WebSocket pings)", _positive
    )
    listen_tls: int = _setting(0, "1: serve qemu+tls:// (as pyvirtd --listen-tls)", _flag)
    listen_addr: str = _setting("0.0.0.0", "the address the TLS listener binds")
    tls_port: int = _setting(16514, "the TLS listener's port", _port)
    ca_file: str = _setting("", "the CA that signs client certificates (default: PKI_DIR/cacert.pem)")
    cert_file: str = _setting("", "the server certificate (default: PKI_DIR/servercert.pem)")
    key_file: str = _setting("", "the server key (default: PKI_DIR/serverkey.pem)")
    crl_file: str = _setting("", "a certificate revocation list (PEM) checked against client certificates")
    tls_allowed_dn_list: tuple[str, ...] | None = _setting(
        None,
        "client certificate subjects allowed (RFC 4514, as 'pyvirt pki show' prints them), with shell "
        "wildcards; unset: any certificate the CA signed; [] : none",
    )
    max_size: int = _setting(
        2 * 1024 * 1024, "bytes a QEMU log file may reach before it is rotated (virtlogd's name)", _positive
    )
    max_backups: int = _setting(
        3, "rotated QEMU log files kept beside the current one (virtlogd's name)", _not_negative
    )
    monitor_timeout: int = _setting(
        30, "seconds a starting QEMU may take to open its monitor before the start fails", _positive
    )
    user: str = _setting(
        "pyvirt-qemu",
        'the user QEMU runs as (system daemon; created when missing); "root": QEMU keeps root',
        _account,
    )
    group: str = _setting("pyvirt-qemu", "the group QEMU runs as (qemu.conf's name)", _account)

    @property
    def logging_level(self) -> int:
        return LOG_LEVELS[self.log_level]

    def tls_files(self, pki_dir: Path) -> dict[str, Path]:
        """The TLS listener's files: ``ca``, ``cert``, ``key`` and (when set) ``crl``."""
        files = {
            "ca": Path(self.ca_file) if self.ca_file else pki_dir / "cacert.pem",
            "cert": Path(self.cert_file) if self.cert_file else pki_dir / "servercert.pem",
            "key": Path(self.key_file) if self.key_file else pki_dir / "serverkey.pem",
        }
        if self.crl_file:
            files["crl"] = Path(self.crl_file)
        return files

    def dn_allowed(self, dn: str) -> bool:
        """Whether a client certificate's subject passes ``tls_allowed_dn_list`` (shell wildcards)."""
        if self.tls_allowed_dn_list is None:
            return True
        return any(fnmatch.fnmatchcase(dn, pattern) for pattern in self.tls_allowed_dn_list)


def settings() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(DaemonConfig))


def _kind(f: dataclasses.Field[Any]) -> type:
    return tuple if f.name == "tls_allowed_dn_list" else type(f.default)


_KIND_WORDS = {int: "a whole number", str: 'a "string"', tuple: 'a list of "strings"'}


def parse(text: str, origin: str) -> DaemonConfig:
    """The settings in ``text`` (from the file ``origin``); ConfigError names what is wrong."""
    try:
        raw = parse_conf(text, origin)
    except InvalidArgument as err:
        raise ConfigError(str(err)) from err
    known = {f.name: f for f in settings()}
    values: dict[str, Any] = {}
    for name, given in raw.items():
        value: Any = given
        spec = known.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "pyvirtd takes: " + ", ".join(known)
            raise ConfigError(f"{origin}: unknown setting '{name}' ({hint})")
        kind = _kind(spec)
        if kind is tuple:
            if not isinstance(value, list):
                raise ConfigError(f"{origin}: {name} must be {_KIND_WORDS[tuple]}")
            value = tuple(value)
        elif not isinstance(value, kind):
            raise ConfigError(f"{origin}: {name} must be {_KIND_WORDS[kind]}, not {value!r}")
        check = spec.metadata["check"]
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(f"{origin}: {name} {problem}, not {value!r}")
        values[name] = value
    return DaemonConfig(**values)


def load(path: Path) -> DaemonConfig:
    """pyvirtd.conf at ``path``; the defaults when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return DaemonConfig()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    return parse(text, str(path))
