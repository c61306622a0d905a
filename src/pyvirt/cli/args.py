"""A small virsh-style option parser driven by the command table (:mod:`pyvirt.cli.commands`):
positionals that may also be named (``--domain web01``), boolean flags and valued options. Lighter
to import than argparse, which keeps the CLI quick.
"""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.cli.commands import Command


class Parsed(dict[str, object]):
    """Option values by name, ``-`` spelled ``_`` (``--source-host`` is ``source_host``)."""

    def flag(self, name: str) -> bool:
        return bool(self.get(name, False))

    def text(self, name: str) -> str:
        value = self.get(name)
        assert isinstance(value, str)
        return value

    def opt(self, name: str) -> str | None:
        value = self.get(name)
        return value if isinstance(value, str) else None

    def texts(self, name: str) -> list[str]:
        """The values of a repeatable option (none given: an empty list)."""
        value = self.get(name)
        return [str(v) for v in value] if isinstance(value, list) else []


def suggest(word: str, candidates: list[str]) -> str:
    """``; did you mean 'x'?`` for the closest candidate, or nothing (only on the error path)."""
    import difflib

    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def parse(cmd: Command, argv: list[str]) -> Parsed:
    """Parse ``argv`` (the words after the verb) by the command's declared options."""
    verb = cmd.name
    out = Parsed()
    required: list[str] = []
    pending: list[str] = []  # positionals still to fill, in order
    kinds: dict[str, str] = {}
    for name, kind, _help in cmd.options:
        kinds[name] = kind.lstrip("*?")
        if kind[0] in "*?":
            pending.append(name)
            if kind[0] == "*":
                required.append(name)
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            for rest in args:
                _take_positional(cmd, out, pending, kinds, rest)
            break
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            found = kinds.get(key)
            if found == "bool" and not eq:
                out[key.replace("-", "_")] = True
            elif found is not None and found != "bool":
                if not eq:
                    if not args:
                        raise InvalidArgument(f"command '{verb}' requires a value for option --{key}")
                    value = args.pop(0)
                _store(out, key, found, value)
                if key in pending and not found.endswith("+"):
                    pending.remove(key)
            else:
                hint = suggest("--" + key, ["--" + n for n in kinds])
                raise InvalidArgument(f"command '{verb}' doesn't support option --{key}{hint}")
        elif arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            hint = suggest(arg, ["--" + n for n in kinds])
            raise InvalidArgument(f"command '{verb}' doesn't support option {arg}{hint}")
        else:
            _take_positional(cmd, out, pending, kinds, arg)
    for name in required:
        if name.replace("-", "_") not in out:
            raise InvalidArgument(f"command '{verb}' requires <{name}> option")
    return out


def _store(out: Parsed, name: str, kind: str, value: str) -> None:
    """Keep an option's value; a repeatable one (kind ``...+``) collects a list."""
    if kind.startswith("number") and not value.lstrip("-").isdigit():
        raise InvalidArgument(f"Numeric value '{value}' for <{name}> option is malformed or out of range")
    key = name.replace("-", "_")
    if kind.endswith("+"):
        values = out.setdefault(key, [])
        assert isinstance(values, list)
        values.append(value)
    else:
        out[key] = value


def _take_positional(
    cmd: Command, out: Parsed, pending: list[str], kinds: dict[str, str], value: str
) -> None:
    if not pending:
        raise InvalidArgument(f"unexpected data '{value}'")
    name = pending[0]
    if kinds[name].endswith("+"):  # a repeated positional (domstats' domains) takes every word left
        values = out.setdefault(name.replace("-", "_"), [])
        assert isinstance(values, list)
        values.append(value)
        return
    pending.pop(0)
    _store(out, name, kinds[name], value)


def getopt_spec(cmd: Command) -> tuple[str, list[str]]:
    """GNU getopt's (short, long) specification of a tool verb's options (``pyvirt img``)."""
    short, long = "", []
    for names, kind, _help in cmd.options:
        if not names.startswith("-"):
            continue
        takes = not kind.startswith("bool")
        for spelling in names.split():
            if spelling.startswith("--"):
                long.append(spelling[2:] + ("=" if takes else ""))
            else:
                short += spelling[1] + (":" if takes else "")
    return short, long


def filter_by_flags(items: list[dict[str, Any]], a: Parsed) -> list[dict[str, Any]]:
    """virsh's common list filters: --inactive/--all on "active", and (no-)autostart, persistent/transient."""
    if a.flag("inactive"):
        items = [i for i in items if not i["active"]]
    elif not a.flag("all"):
        items = [i for i in items if i["active"]]
    for flag, key, value in (
        ("autostart", "autostart", True),
        ("no_autostart", "autostart", False),
        ("persistent", "persistent", True),
        ("transient", "persistent", False),
    ):
        if a.flag(flag):
            items = [i for i in items if i[key] is value]
    return items
