"""Secret verbs (``secret-*``), with virsh 9.0's options, output and messages.

A value travels base64-encoded to the daemon; ``secret-set-value`` reads it from a file (base64, or
raw with ``--plain``), from the terminal (``--interactive``) or, insecurely as virsh warns, from the
command line.
"""

from __future__ import annotations

import sys

from pyvirt.cli.domain import _guard, _read_file
from pyvirt.cli.output import emit, emit_json, message, table
from pyvirt.errors import InvalidArgument, NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection, Secret

#: virsh reads a secret's file up to this size.
MAX_FILE = 1024
EVENT_TYPES = ("lifecycle", "value-changed")
_LIFECYCLE = {"defined": "Defined", "undefined": "Undefined"}


def _get(conn: Connection, key: str) -> Secret:
    try:
        return conn.secret(key)
    except (NotFound, InvalidArgument) as err:
        raise PyvirtError(f"failed to get secret '{key}'\nerror: {err}") from err


def _exclusive(a: Parsed, *pairs: tuple[str, str]) -> None:
    for one, other in pairs:
        if a.get(one) and a.get(other):
            raise InvalidArgument(f"Options --{one} and --{other} are mutually exclusive")


def cmd_secret_define(opts: GlobalOptions, a: Parsed) -> int:
    path = a.text("file")
    conn = opts.connect()
    secret = _guard(f"Failed to set attributes from {path}", lambda: conn.define_secret(_read_file(path)))
    message(f"Secret {secret.uuid} created")
    return 0


def cmd_secret_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    for flag in ("xpath", "wrap"):
        if a.get(flag):
            raise InvalidArgument(f"--{flag}: pyvirt prints the whole document (use an XML tool to select)")
    emit(_get(opts.connect(), a.text("secret")).xml() + "\n")
    return 0


def _decode(text: bytes) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except binascii.Error:
        raise InvalidArgument("the secret value is not valid base64 (use --plain for a raw value)") from None


def _read_value(a: Parsed) -> bytes:
    _exclusive(
        a,
        ("file", "base64"),
        ("plain", "base64"),
        ("interactive", "base64"),
        ("interactive", "plain"),
        ("interactive", "file"),
    )
    if (text := a.opt("base64")) is not None:
        sys.stderr.write("error: Passing secret value as command-line argument is insecure!\n")
        return _decode(text.encode())
    if (path := a.opt("file")) is not None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE + 1)
        except OSError as err:
            raise InvalidArgument(f"Failed to open file '{path}': {err.strerror}") from err
        if len(data) > MAX_FILE:
            raise InvalidArgument(f"File '{path}' is too large")
        return data if a.flag("plain") else _decode(data)
    if a.flag("interactive"):
        emit("Enter new value for secret:")
        sys.stdout.flush()
        if sys.stdin.isatty():
            import getpass

            line = getpass.getpass("")
        else:
            line = sys.stdin.readline().rstrip("\n")
        return line.encode()
    raise InvalidArgument("Input secret value is missing")


def cmd_secret_set_value(opts: GlobalOptions, a: Parsed) -> int:
    secret = _get(opts.connect(), a.text("secret"))
    value = _read_value(a)
    _guard("Failed to set secret value", lambda: secret.set_value(value))
    message("Secret value set")
    return 0


def cmd_secret_get_value(opts: GlobalOptions, a: Parsed) -> int:
    value = _get(opts.connect(), a.text("secret")).value()
    if a.flag("plain"):
        sys.stdout.flush()
        sys.stdout.buffer.write(value + b"\n")
    else:
        import base64

        emit(base64.b64encode(value).decode() + "\n")
    return 0


def cmd_secret_undefine(opts: GlobalOptions, a: Parsed) -> int:
    key = a.text("secret")
    secret = _get(opts.connect(), key)
    _guard(f"Failed to delete secret {key}", secret.undefine)
    message(f"Secret {key} deleted")
    return 0


def cmd_secret_list(opts: GlobalOptions, a: Parsed) -> int:
    secrets = opts.connect().list_secrets()
    for yes, no, key in (("ephemeral", "no_ephemeral", "ephemeral"), ("private", "no_private", "private")):
        wanted = {value for flag, value in ((yes, True), (no, False)) if a.flag(flag)}
        if wanted:
            secrets = [s for s in secrets if s[key] in wanted]  # type: ignore[literal-required]
    secrets.sort(key=lambda s: s["uuid"].lower())
    if opts.json or a.flag("json"):
        emit_json(secrets)
        return 0
    rows = [
        [s["uuid"], f"{s['usage_type']} {s['usage_id']}" if s["usage_type"] else "Unused"] for s in secrets
    ]
    emit(table(["UUID", "Usage"], rows) + "\n")
    return 0


def cmd_secret_event(opts: GlobalOptions, a: Parsed) -> int:
    import signal
    import time

    if a.flag("list"):
        emit("".join(f"{name}\n" for name in EVENT_TYPES) + "\n")
        return 0
    wanted = a.opt("event")
    if wanted is None:
        raise InvalidArgument("either --list or --event <type> is required")
    if wanted not in EVENT_TYPES:
        raise InvalidArgument(f"unknown event type {wanted}")
    conn = opts.connect()
    only = _get(conn, key).uuid if (key := a.opt("secret")) else None
    timeout = a.get("timeout")
    timed_out = []

    def expire(*_: object) -> None:
        timed_out.append(True)
        raise KeyboardInterrupt

    if timeout is not None:
        signal.signal(signal.SIGALRM, expire)
        signal.alarm(int(str(timeout)))
    count = 0
    try:
        for event in conn.events():
            if event["kind"] != "secret" or (only and event["name"] != only):
                continue
            name = str(event["event"])
            if wanted == "lifecycle" and name in _LIFECYCLE:
                line = f"event 'lifecycle' for secret {event['name']}: {_LIFECYCLE[name]}\n"
            elif wanted == "value-changed" and name == "value-changed":
                line = f"event 'value-changed' for secret {event['name']}\n"
            else:
                continue
            when = float(event["time"])
            stamp = ""
            if a.flag("timestamp"):  # virsh's virTimeStringNowRaw: UTC, milliseconds
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
                stamp += f".{int(when * 1000) % 1000:03d}+0000: "
            emit(stamp + line)
            sys.stdout.flush()
            count += 1
            if not a.flag("loop"):
                break
    except KeyboardInterrupt:
        emit("event loop timed out\n" if timed_out else "event loop interrupted\n")
    finally:
        signal.alarm(0)
    emit(f"events received: {count}\n\n")
    return 0 if count else 1
