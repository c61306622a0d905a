"""Write the man pages pyvirt(1) and pyvirtd(8), generated from the CLI's command table
(:mod:`pyvirt.cli.commands`) and pyvirtd's option parser, into DIR/man1 and DIR/man8.

``scripts/setup.sh`` runs it with DIR = .venv/share/man, where ``man`` finds the pages of the
commands in .venv/bin (``man pyvirt`` with the venv on PATH); ``make man`` does the same.

Usage: .venv/bin/python scripts/make-man.py DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyvirt import __version__
from pyvirt.cli.commands import COMMANDS, GLOBAL_OPTIONS, GROUPS, Command
from pyvirt.cli.help import option_rows, split_kind, synopsis


def esc(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting with a control character."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in out.split("\n"))


def header(name: str, section: int, title: str) -> list[str]:
    return [
        f'.TH {name.upper()} {section} "" "pyvirt {__version__}" "{title}"',
        ".SH NAME",
        esc(name),
    ]


def paragraph(text: str) -> list[str]:
    return [".PP", esc(" ".join(text.split("\n")))]


def options_list(rows: list[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for spelled, text in rows:
        lines += [".TP", f"\\fB{esc(spelled)}\\fR", esc(text)]
    return lines


def command_entry(cmd: Command, parent: Command | None = None) -> list[str]:
    lines = [".TP", f"\\fB{esc(synopsis(cmd, parent))}\\fR", esc(cmd.summary)]
    description = " ".join(cmd.description.split("\n"))
    if description.rstrip(".").lower() != cmd.summary.rstrip(".").lower():
        lines += [".br", esc(description)]
    rows = option_rows(cmd)
    if rows:
        lines += [".RS", *options_list(rows), ".RE"]
    return lines


def pyvirt_page() -> str:
    lines = header("pyvirt", 1, "User Commands")
    lines[-1] += " \\- manage KVM hosts: domains, networks, storage, disk images and guests"
    lines += [
        ".SH SYNOPSIS",
        ".B pyvirt",
        "[\\fB\\-c\\fR \\fIURI\\fR] [\\fB\\-r\\fR] [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]",
        ".SH DESCRIPTION",
        *paragraph(
            "pyvirt is the client of the pyvirtd(8) daemon, with virsh's verbs, options and output, "
            "and pyvirt's own tools: disk images (qemu-img's verbs), offline guest tools, templates "
            "and clones, and the certificates of remote access."
        ),
        *paragraph(
            "A verb's options may be given in any order; its positional arguments may also be given "
            "by name (pyvirt start --domain web01). Every command answers -h and --help; "
            "pyvirt help lists the commands by group."
        ),
        ".SH GLOBAL OPTIONS",
    ]
    rows = []
    for name, kind, text in GLOBAL_OPTIONS:
        _mark, kind_type, _repeat, metavar = split_kind(kind)
        rows.append((", ".join(name.split()) + ("" if kind_type == "bool" else f" {metavar}"), text))
    lines += options_list(rows)
    lines += paragraph(
        "Not every command can honour every global option: one that cannot (--json for a command "
        "without JSON output, -c to a remote host for img) is refused with an error naming it."
    )
    lines.append(".SH COMMANDS")
    for keyword, title in GROUPS:
        members = [c for c in COMMANDS if c.group == keyword]
        if not members:
            continue
        lines.append(f".SS {esc(title)}")
        for cmd in sorted(members, key=lambda c: c.name):
            if cmd.sub:
                lines += [".TP", f"\\fB{esc(cmd.name)}\\fR \\fICOMMAND\\fR", esc(cmd.summary)]
                for sub in cmd.sub:
                    lines += command_entry(sub, cmd)
            else:
                lines += command_entry(cmd)
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B PYVIRT_DEFAULT_URI",
        "the connection URI when no \\-c is given",
        ".TP",
        ".B PYVIRT_ROOT",
        "a directory prefixed to every system path (tests and demos)",
        ".TP",
        ".BR EDITOR ",
        " VISUAL",
        "the editor of the *\\-edit commands",
        ".SH EXIT STATUS",
        "0 on success, 1 on an error (printed as \\fBerror:\\fR ... on standard error); "
        "img verbs exit as qemu\\-img does.",
        ".SH SEE ALSO",
        ".BR pyvirtd (8),",
        ".BR virsh (1),",
        ".BR qemu\\-img (1)",
    ]
    return "\n".join(lines) + "\n"


def configuration_section() -> list[str]:
    """pyvirtd.conf's settings, from the daemon's table of them (pyvirt.daemon.config)."""
    from pyvirt.daemon.config import settings

    lines = [".SH CONFIGURATION"]
    lines += paragraph(
        "/etc/pyvirt/pyvirtd.conf (or --config FILE) takes libvirtd.conf's syntax: name = value, "
        'a value being a number, a "string" or a list ["a", "b"]; # starts a comment. A setting '
        "pyvirtd does not know, or a value of the wrong type or out of range, stops pyvirtd with an "
        "error naming the setting and the file. The settings, with their defaults:"
    )
    rows = []
    for field in settings():
        default = field.default
        shown = "(unset)" if default is None else f'"{default}"' if isinstance(default, str) else str(default)
        rows.append((f"{field.name} = {shown}", field.metadata["help"]))
    return lines + options_list(rows)


def pyvirtd_page() -> str:
    from pyvirt.daemon import main as daemon

    parser = daemon.build_parser()
    lines = header("pyvirtd", 8, "System Administration")
    lines[-1] += " \\- the pyvirt management daemon"
    lines += [".SH SYNOPSIS", ".B pyvirtd", "[\\fIOPTIONS\\fR]", ".SH DESCRIPTION"]
    doc = (daemon.__doc__ or "").split("\n\n", 1)[1]
    lines += paragraph(" ".join(doc.split()).replace("``", ""))
    lines.append(".SH OPTIONS")
    rows = []
    for action in parser._actions:
        if not action.option_strings:
            continue
        spelled = ", ".join(action.option_strings)
        if action.nargs != 0 and action.metavar is not None:
            spelled += f" {action.metavar}"
        elif action.nargs != 0 and action.type is not None:
            spelled += f" {action.dest.upper()}"
        rows.append((spelled, action.help or ""))
    lines += options_list(rows)
    lines += configuration_section()
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B PYVIRT_ROOT",
        "a directory prefixed to every system path (tests and demos)",
        ".SH FILES",
        ".TP",
        ".I /etc/pyvirt/pyvirtd.conf",
        "configuration (see CONFIGURATION)",
        ".TP",
        ".I /etc/pyvirt/qemu/",
        "domain definitions (networks/ and storage/ beside it)",
        ".TP",
        ".IR /run/pyvirt/pyvirt\\-sock ",
        " /run/pyvirt/pyvirt\\-sock\\-ro",
        "the API sockets: read\\-write (mode 0600) and read\\-only",
        ".SH SEE ALSO",
        ".BR pyvirt (1)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    out = Path(argv[0])
    for section, name, text in ((1, "pyvirt", pyvirt_page()), (8, "pyvirtd", pyvirtd_page())):
        directory = out / f"man{section}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.{section}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
