"""Parsers for the tools with GNU-style options (``sysprep``, ``clone``, ``pki`` …), built from the
command table (:mod:`pyvirt.cli.commands`), so each option is declared once.

An option's value lands in the attribute named by its first long spelling (``--dry-run`` is
``dry_run``), unless the tool renames it (``dest``). Two flags a tool maps to one attribute are
each other's opposites (``--network``/``--no-network``: True, False, or None when neither is given).
Steps (``@``) are collected in command-line order in ``steps``. ``-h``/``--help`` is answered
before the tool runs (by :mod:`pyvirt.cli.main`), from the same table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from pyvirt.cli.commands import Command, find
from pyvirt.cli.help import split_kind
from pyvirt.errors import InvalidArgument


class ToolParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments: "):
            from pyvirt.cli.args import suggest

            unknown = next((w for w in message.split()[2:] if w.startswith("-")), "")
            spellings = [s for action in self._actions for s in action.option_strings]
            hint = suggest(unknown, spellings) if unknown else ""
        raise InvalidArgument(f"{message}{hint} (see {self.prog} --help)")


class _Ordered(argparse.Action):
    """Append (option, value) to the shared ``steps`` list, so options apply in the order given."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        ns.steps.append((self.dest, values))


_TYPES: dict[str, Any] = {"number": int, "path": Path}


def _add_options(parser: argparse.ArgumentParser, cmd: Command, dest: dict[str, str]) -> None:
    flags = {names for names, kind, _help in cmd.options if kind == "bool"}
    # --no-X is the opposite of --X: one attribute.
    dest = {**{f"no_{n[2:]}".replace("-", "_"): n[2:] for n in flags if f"--no-{n[2:]}" in flags}, **dest}
    bools_by_dest: dict[str, list[str]] = {}
    for names, kind, _help in cmd.options:
        mark, kind_type, _repeat, _metavar = split_kind(kind)
        if kind_type == "bool" and names.startswith("-"):
            key = _dest(names, dest)
            bools_by_dest.setdefault(key, []).append(names)
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for names, kind, text in cmd.options:
        mark, kind_type, repeat, metavar = split_kind(kind)
        if not names.startswith("-"):
            nargs = ("+" if mark == "*" else "*") if repeat else (None if mark == "*" else "?")
            kw: dict[str, Any] = {"metavar": names, "nargs": nargs, "help": text}
            if kind_type in _TYPES:
                kw["type"] = _TYPES[kind_type]
            parser.add_argument(dest.get(names.lower(), names.lower()), **kw)
            continue
        spellings = names.split()
        key = _dest(names, dest)
        kw = {"dest": key, "help": text}
        target: Any = parser
        if kind_type == "bool":
            pair = bools_by_dest[key]
            if mark == "@":
                kw.update(action=_Ordered, nargs=0)
            elif len(pair) == 2:
                target = exclusive.get(key) or parser.add_mutually_exclusive_group()
                exclusive[key] = target
                kw.update(action="store_true" if pair[0] == names else "store_false", default=None)
            else:
                kw["action"] = "store_true"
        else:
            kw["metavar"] = metavar
            if kind_type in _TYPES:
                kw["type"] = _TYPES[kind_type]
            if mark == "@":
                kw["action"] = _Ordered
            elif repeat:
                kw.update(action="append", default=[])
            if mark == "*":
                kw["required"] = True
        target.add_argument(*spellings, **kw)


def _dest(names: str, dest: dict[str, str]) -> str:
    spellings = names.split()
    long = next((s for s in spellings if s.startswith("--")), spellings[0])
    key = long.lstrip("-").replace("-", "_")
    return dest.get(key, key)


def tool_parser(
    path: str, defaults: dict[str, Any] | None = None, dest: dict[str, str] | None = None
) -> ToolParser:
    """The parser for the table's command ``path`` ("sysprep", "template build", "pki" …).

    ``defaults`` are attribute defaults (the global options' values, a default pool …); ``dest``
    renames attributes (``{"add": "disks"}``); ``--no-X`` sets X's attribute to False. A command
    with verbs gets a sub-parser for each, its name in the attribute ``dest.get("COMMAND", "command")``.
    """
    words = path.split()
    cmd = find(words[0])
    assert cmd is not None, path
    prog = f"pyvirt {cmd.name}"
    if len(words) > 1:
        sub = cmd.subcommand(words[1])
        assert sub is not None, path
        cmd, prog = sub, f"{prog} {sub.name}"
    rename = dest or {}
    parser = ToolParser(prog=prog, description=cmd.summary, add_help=False)
    parser.set_defaults(steps=[], **(defaults or {}))
    if cmd.sub:
        subs = parser.add_subparsers(dest=rename.get("COMMAND", "command"), metavar="COMMAND")
        subs.required = True
        for sub in cmd.sub:
            p = subs.add_parser(sub.name, help=sub.summary, add_help=False)
            p.set_defaults(steps=[], **(defaults or {}))
            _add_options(p, sub, rename)
        return parser
    _add_options(parser, cmd, rename)
    return parser
