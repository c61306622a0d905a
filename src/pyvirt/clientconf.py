"""The client configuration file, ``pyvirt.conf``: URI aliases and the default URI, as in libvirt.conf.

Beside :mod:`pyvirt.uri`, which resolves aliases with it (and so imports nothing of the client).

Like libvirt, root reads ``/etc/pyvirt/pyvirt.conf`` (under ``$PYVIRT_ROOT`` when set) and other users
``$XDG_CONFIG_HOME/pyvirt/pyvirt.conf`` (``~/.config/pyvirt/pyvirt.conf``); ``$PYVIRT_CONF`` names
another file. The syntax is libvirt's::

    # pyvirt -c hail list  ==  pyvirt -c qemu+ssh://root@hail.example.com/system list
    uri_aliases = [
      "hail=qemu+ssh://root@hail.example.com/system",
      "sleet=qemu+tls://sleet.example.com/system",
    ]
    uri_default = "qemu:///system"
    connect_timeout = 20    # seconds to reach the daemon (TCP, TLS handshake); 0: no limit
    read_timeout = 30       # seconds the daemon may stay silent; 0: no limit

An alias name is letters, digits, ``_``, ``-`` and ``.``; the first matching entry wins. Any other
setting is refused, naming it and the file.

``read_timeout`` bounds every wait for the daemon: a reply (the daemon sends ``102 Processing`` every
few seconds while a long request runs, so only a daemon that stopped answering reaches it), and on a
stream (console, events, volume transfers) the silence between the daemon's messages and WebSocket
keepalive pings.
"""

from __future__ import annotations

import os

from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from pathlib import Path

ConfValue = str | int | list[str]

_TOKEN: list[re.Pattern[str]] = []

SETTINGS = ("uri_aliases", "uri_default", "connect_timeout", "read_timeout")
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 30


def _token() -> re.Pattern[str]:
    """The tokenizer, compiled on first use: the default-URI path imports neither ``re`` nor it."""
    if _TOKEN:
        return _TOKEN[0]
    import re

    _TOKEN.append(
        re.compile(
            r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')
      | (?P<number>-?\d+)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[=\[\],;])
    )""",
            re.X,
        )
    )
    return _TOKEN[0]


def config_file() -> str:
    """The client configuration file's path (as a string: no pathlib on the CLI's start path)."""
    override = os.environ.get("PYVIRT_CONF")
    if override:
        return override
    if os.geteuid() == 0:
        return os.path.join(os.environ.get("PYVIRT_ROOT") or "/", "etc/pyvirt/pyvirt.conf")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(xdg, "pyvirt/pyvirt.conf")


def config_path() -> Path:
    from pathlib import Path

    return Path(config_file())


def parse_conf(text: str, origin: str = "pyvirt.conf") -> dict[str, ConfValue]:
    """libvirt's configuration syntax: ``name = "string" | number | ["string", ...]``."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _token().match(text, pos)
        line = text.count("\n", 0, pos) + 1
        if match is None or match.end() == pos:
            bad = text[pos:].lstrip()[:20]
            raise InvalidArgument(f"{origin}:{line}: cannot parse near '{bad}'")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "comment":
            tokens.append((kind, match.group(kind), text.count("\n", 0, match.start(kind)) + 1))
    out: dict[str, ConfValue] = {}
    i = 0

    def expect(kinds: tuple[str, ...], what: str) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(tokens):
            raise InvalidArgument(f"{origin}: expected {what} at end of file")
        tok = tokens[i]
        if tok[0] not in kinds and tok[1] not in kinds:
            raise InvalidArgument(f"{origin}:{tok[2]}: expected {what}, found '{tok[1]}'")
        i += 1
        return tok

    while i < len(tokens):
        if tokens[i][1] == ";":
            i += 1
            continue
        _, name, _ = expect(("name",), "a setting name")
        expect(("=",), "'='")
        kind, value, line = expect(("string", "number", "["), "a value")
        if kind == "string":
            out[name] = _unquote(value)
        elif kind == "number":
            out[name] = int(value)
        else:
            items: list[str] = []
            while True:
                kind, value, line = expect(("string", "]"), "a string or ']'")
                if value == "]":
                    break
                items.append(_unquote(value))
                kind, value, line = expect((",", "]"), "',' or ']'")
                if value == "]":
                    break
            out[name] = items
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    if token[0] == '"':
        import re

        body = re.sub(r"\\(.)", r"\1", body)
    return body


def load_conf(path: Path | None = None) -> dict[str, ConfValue]:
    """The client settings in ``path`` (default: :func:`config_path`); an unknown setting is refused."""
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err.strerror}") from err
    conf = parse_conf(text, str(path))
    for name in conf:
        if name not in SETTINGS:
            raise InvalidArgument(
                f"{path}: unknown setting '{name}' (pyvirt.conf takes {', '.join(SETTINGS)})"
            )
    return conf


def timeouts() -> tuple[float | None, float | None]:
    """The client's (connect, read) timeouts in seconds from pyvirt.conf; None means no limit."""
    path = config_file()
    conf = load_conf(config_path()) if os.path.exists(path) else {}
    out: list[float | None] = []
    for name, default in (("connect_timeout", CONNECT_TIMEOUT), ("read_timeout", READ_TIMEOUT)):
        value = conf.get(name, default)
        if not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{path}: {name} must be a whole number of seconds (0: no limit)")
        out.append(float(value) if value else None)
    return out[0], out[1]


def aliases(conf: dict[str, ConfValue], origin: str = "pyvirt.conf") -> dict[str, str]:
    raw = conf.get("uri_aliases", [])
    if not isinstance(raw, list):
        raise InvalidArgument(f'{origin}: uri_aliases must be a list of "name=URI" strings')
    import re

    out: dict[str, str] = {}
    for entry in raw:
        name, sep, uri = entry.partition("=")
        if not sep or not uri:
            raise InvalidArgument(f"{origin}: malformed URI alias '{entry}' (expected name=URI)")
        if not re.match(r"^[A-Za-z0-9_.\-]+$", name):
            raise InvalidArgument(
                f"{origin}: malformed URI alias name '{name}' (letters, digits, '_', '-' and '.' only)"
            )
        out.setdefault(name, uri)
    return out


def resolve_alias(name: str) -> str:
    """The URI an alias stands for; an unknown name is an error that says where aliases live."""
    path = config_path()
    table = aliases(load_conf(path), str(path))
    if name in table:
        return table[name]
    known = f" (known: {', '.join(sorted(table))})" if table else ""
    raise InvalidArgument(
        f"'{name}' is neither a connection URI nor an alias in {path}{known}; "
        "URIs look like qemu:///system or qemu+ssh://user@host/system"
    )


def configured_default() -> str | None:
    if not os.path.exists(config_file()):
        return None
    path = config_path()
    value = load_conf(path).get("uri_default")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{path}: uri_default must be a URI string")
    return value
