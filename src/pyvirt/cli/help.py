"""``pyvirt help``, ``pyvirt help VERB`` and ``-h``/``--help``, in virsh's layout, from the command table.

The rendering pieces (:func:`synopsis`, :func:`option_rows`, :func:`listed`) also make the man page
(``scripts/make-man.py``).
"""

from __future__ import annotations

import sys

from pyvirt.cli.commands import COMMANDS, GLOBAL_OPTIONS, GROUPS, Command, find
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def split_kind(kind: str) -> tuple[str, str, bool, str]:
    """An option's kind as (mark, type, repeatable, metavar): mark is ``*``, ``?``, ``@`` or ``""``."""
    mark = kind[0] if kind[0] in "*?@" else ""
    body, _, metavar = kind[len(mark) :].partition("=")
    repeat = body.endswith("+")
    kind_type = body.rstrip("+")
    if not metavar:
        metavar = "N" if kind_type == "number" else kind_type.upper()
    return mark, kind_type, repeat, metavar


def _virsh_value(kind_type: str) -> str:
    return "<number>" if kind_type == "number" else "<string>"


def synopsis(cmd: Command, parent: Command | None = None) -> str:
    """The command's one-line synopsis, without ``pyvirt``."""
    words = [f"{parent.name} {cmd.name}" if parent else cmd.name]
    if cmd.sub:
        return f"{words[0]} COMMAND [OPTIONS]"
    for name, kind, _help in cmd.options:
        mark, kind_type, repeat, metavar = split_kind(kind)
        if cmd.style == "virsh":
            if mark == "*":
                words.append(f"<{name}>" + ("..." if repeat else ""))
            elif kind_type == "bool":
                words.append(f"[--{name}]")
            else:
                words.append(f"[--{name} {_virsh_value(kind_type)}]" + ("..." if repeat else ""))
            continue
        first = name.split()[0]
        if not first.startswith("-"):
            text = first + ("..." if repeat else "")
            words.append(text if mark == "*" else f"[{text}]")
            continue
        text = first if kind_type == "bool" else f"{first} {metavar}"
        words.append((text if mark == "*" else f"[{text}]") + ("..." if repeat else ""))
    return " ".join(words)


def option_rows(cmd: Command) -> list[tuple[str, str]]:
    """(option as written, its help) for each option, as the OPTIONS section lists them."""
    rows = []
    for name, kind, text in cmd.options:
        mark, kind_type, _repeat, metavar = split_kind(kind)
        if cmd.style == "virsh":
            if kind_type == "bool":
                rows.append((f"--{name}", text))
            elif mark == "*":
                rows.append((f"[--{name}] {_virsh_value(kind_type)}", text))
            else:
                rows.append((f"--{name} {_virsh_value(kind_type)}", text))
            continue
        if not name.startswith("-"):
            rows.append((name, text))
            continue
        spelled = ", ".join(name.split())
        rows.append((spelled if kind_type == "bool" else f"{spelled} {metavar}", text))
    return rows


def listed(group: str) -> list[tuple[str, str]]:
    """(name, summary) of a group's commands, a tool's verbs each on its own line, sorted."""
    rows = []
    for cmd in COMMANDS:
        if cmd.group != group:
            continue
        if cmd.sub:
            rows += [(f"{cmd.name} {sub.name}", sub.summary) for sub in cmd.sub]
        else:
            rows.append((cmd.name, cmd.summary))
    return sorted(rows)


def _group_text(keyword: str, title: str) -> str:
    lines = [f" {title} (help keyword '{keyword}'):\n"]
    lines += [f"    {name:<30} {summary}\n" for name, summary in listed(keyword)]
    return "".join(lines) + "\n"


def general() -> str:
    """``pyvirt help``: usage, the global options, then every command by group."""
    import textwrap

    out = "usage: pyvirt [-c URI] [-r] [--json] COMMAND [ARGS...]\n\nGlobal options:\n"
    for name, kind, text in GLOBAL_OPTIONS:
        _mark, kind_type, _repeat, metavar = split_kind(kind)
        spelled = ", ".join(name.split()) + ("" if kind_type == "bool" else f" {metavar}")
        lines = textwrap.wrap(text, 76)
        out += f"  {spelled:<20} {lines[0]}\n" + "".join(f"{'':23}{line}\n" for line in lines[1:])
    out += "\nGrouped commands:\n\n"
    for keyword, title in GROUPS:
        out += _group_text(keyword, title)
    return out


def command_help(cmd: Command, parent: Command | None = None) -> str:
    """``pyvirt help VERB``: NAME, SYNOPSIS, DESCRIPTION, OPTIONS (and a tool's COMMANDS)."""
    name = f"{parent.name} {cmd.name}" if parent else cmd.name
    out = f"  NAME\n    {name} - {cmd.summary}\n\n  SYNOPSIS\n    {synopsis(cmd, parent)}\n\n"
    out += "  DESCRIPTION\n" + "".join(f"    {line}\n" for line in cmd.description.splitlines()) + "\n"
    if cmd.sub:
        out += "  COMMANDS\n"
        out += "".join(f"    {sub.name:<15}  {sub.summary}\n" for sub in cmd.sub)
        out += f"\n  (pyvirt help {cmd.name} COMMAND for a command's options)\n\n"
    else:
        rows = option_rows(cmd)
        if rows:
            out += "  OPTIONS\n" + "".join(f"    {spelled:<15}  {text}\n" for spelled, text in rows) + "\n"
    return out + "\n"


def show(words: list[str]) -> int:
    """Print the help ``words`` ask for: nothing (all), a verb, a tool and its verb, or a group."""
    if not words:
        sys.stdout.write(general())
        return 0
    cmd = find(words[0])
    if cmd is None or cmd.group is None:
        for keyword, title in GROUPS:
            if words[0] == keyword:
                sys.stdout.write(_group_text(keyword, title))
                return 0
        from pyvirt.cli.args import suggest

        names = [c.name for c in COMMANDS if c.group is not None] + [k for k, _ in GROUPS]
        hint = suggest(words[0], names)
        raise InvalidArgument(f"command or command group '{words[0]}' doesn't exist{hint}")
    if len(words) > 1 and cmd.sub:
        sub = cmd.subcommand(words[1])
        if sub is None:
            from pyvirt.cli.args import suggest

            hint = suggest(words[1], [s.name for s in cmd.sub])
            raise InvalidArgument(f"'{cmd.name}' has no command '{words[1]}'{hint}")
        sys.stdout.write(command_help(sub, cmd))
        return 0
    if len(words) > 1:
        raise InvalidArgument(f"unexpected data '{words[1]}'")
    sys.stdout.write(command_help(cmd))
    return 0


def cmd_help(opts: GlobalOptions, a: Parsed) -> int:
    """``pyvirt help [COMMAND [SUBCOMMAND]]``."""
    return show([w for w in (a.opt("command"), a.opt("subcommand")) if w])
