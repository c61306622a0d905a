"""A small virsh-style option parser: positionals that may also be named (``--domain web01``),
boolean flags and valued options. Lighter to import than argparse, which keeps the CLI quick.
"""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


class Spec:
    """A verb's arguments. (A plain class: dataclasses would pull ``inspect`` into every CLI start.)"""

    def __init__(
        self,
        verb: str,
        positionals: list[str] | None = None,
        optional_positionals: list[str] | None = None,
        flags: list[str] | None = None,
        options: list[str] | None = None,
        help: str = "",
    ) -> None:
        self.verb = verb
        self.positionals = positionals or []  # required, in order
        self.optional_positionals = optional_positionals or []
        self.flags = flags or []  # "--all" style, stored as "all"
        self.options = options or []  # take a value
        self.help = help


class Parsed(dict[str, object]):
    def flag(self, name: str) -> bool:
        return bool(self.get(name, False))

    def text(self, name: str) -> str:
        value = self.get(name)
        assert isinstance(value, str)
        return value

    def opt(self, name: str) -> str | None:
        value = self.get(name)
        return value if isinstance(value, str) else None


def usage(spec: Spec) -> str:
    parts = [f"<{p}>" for p in spec.positionals] + [f"[<{p}>]" for p in spec.optional_positionals]
    parts += [f"[--{f}]" for f in spec.flags] + [f"[--{o} <value>]" for o in spec.options]
    return f"usage: pyvirt {spec.verb} {' '.join(parts)}\n" + (f"\n  {spec.help}\n" if spec.help else "")


def parse(spec: Spec, argv: list[str]) -> Parsed:
    out = Parsed()
    pending = list(spec.positionals) + list(spec.optional_positionals)
    names = {n.replace("_", "-") for n in pending}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            for rest in args:
                _take_positional(spec, out, pending, rest)
            break
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            attr = key.replace("-", "_")
            if key in spec.flags and not eq:
                out[attr] = True
            elif key in spec.options or key in names:
                if not eq:
                    if not args:
                        raise InvalidArgument(f"command '{spec.verb}' requires a value for option --{key}")
                    value = args.pop(0)
                out[attr] = value
                if attr in pending:
                    pending.remove(attr)
            else:
                raise InvalidArgument(f"command '{spec.verb}' doesn't support option --{key}")
        elif arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            raise InvalidArgument(f"command '{spec.verb}' doesn't support option {arg}")
        else:
            _take_positional(spec, out, pending, arg)
    for name in spec.positionals:
        if name not in out:
            raise InvalidArgument(f"command '{spec.verb}' requires <{name}> option")
    return out


def _take_positional(spec: Spec, out: Parsed, pending: list[str], value: str) -> None:
    if not pending:
        raise InvalidArgument(f"unexpected data '{value}'")
    out[pending.pop(0)] = value


def parse_or_usage(argv: list[str], spec: Spec) -> Parsed | None:
    """Parse ``argv``, or print the verb's usage and return None for ``--help``."""
    if "--help" in argv:
        import sys

        sys.stdout.write(usage(spec))
        return None
    return parse(spec, argv)


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
