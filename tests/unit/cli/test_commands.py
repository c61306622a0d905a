"""The command table is whole: every command runs a function that exists, every option has a
line of help, names are unique, and the parsers the tools build from it accept what they declare."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from pyvirt.cli.commands import COMMANDS, GROUPS, Command
from pyvirt.cli.help import split_kind

KINDS = {
    "bool",
    "string",
    "number",
    "domain",
    "network",
    "pool",
    "vol",
    "secret",
    "file",
    "dir",
    "path",
    "uri",
}


def every() -> list[tuple[str, Command]]:
    out = []
    for cmd in COMMANDS:
        out.append((cmd.name, cmd))
        out += [(f"{cmd.name} {sub.name}", sub) for sub in cmd.sub]
    return out


@pytest.mark.parametrize(("path", "cmd"), every(), ids=[p for p, _ in every()])
def test_declaration_is_complete(path: str, cmd: Command) -> None:
    assert cmd.summary and cmd.description
    assert cmd.group is None or cmd.group in {k for k, _ in GROUPS}
    names = [o[0] for o in cmd.options]
    assert len(names) == len(set(names)), names
    for name, kind, text in cmd.options:
        assert text, f"{path} {name}: no help"
        mark, kind_type, _repeat, _metavar = split_kind(kind)
        assert kind_type in KINDS, f"{path} {name}: kind {kind}"
        if cmd.style == "virsh":
            assert not name.startswith("-") and mark != "@"
    assert set(cmd.globals) <= set("clrj")


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_function_exists_with_its_signature(cmd: Command) -> None:
    module, func = cmd.function()
    __import__(module)
    target = getattr(sys.modules[module], func)
    params = list(inspect.signature(target).parameters)
    assert params == (["opts", "a"] if cmd.style == "virsh" else ["argv", "opts"]), params


def test_names_are_unique() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))


def test_table_import_is_plain() -> None:
    """The table loads with every command: no typing, dataclasses, enum or re."""
    code = (
        "import sys; import pyvirt.cli.commands, pyvirt.cli.args; "
        "print(' '.join(m for m in ('typing', 'dataclasses', 'enum', 're', 'json') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path[1:])})  # fmt: skip
    assert out.stdout.split() == []
