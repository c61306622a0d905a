"""`pyvirt help`, `help VERB`, `-h`/`--help` on every verb and tool, and "did you mean", through the
real entry point (no daemon is needed: help never connects)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyvirt.cli.commands import COMMANDS, GROUPS
from pyvirt.cli.main import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyvirt.cli.main", *args],
        capture_output=True,
        text=True,
        env={"PYVIRT_DEFAULT_URI": "qemu+unix:///system?socket=/nonexistent", "PATH": "/usr/bin:/bin"},
    )


def test_help_lists_every_command_by_group() -> None:
    out = run("help").stdout
    assert out.startswith("usage: pyvirt [-c URI] [-r] [--json] COMMAND [ARGS...]\n")
    assert out == run().stdout == run("--help").stdout
    for keyword, title in GROUPS:
        assert f"\n {title} (help keyword '{keyword}'):\n" in out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ")}
    for cmd in COMMANDS:
        if cmd.group is not None:
            assert cmd.name in listed, cmd.name
    assert "    pki init " in out and "    proxy " in out and "    img convert " in out
    assert "complete" not in listed


def test_help_verb_in_virsh_layout() -> None:
    out = run("help", "vol-info").stdout
    assert out == (
        "  NAME\n"
        "    vol-info - storage vol information\n\n"
        "  SYNOPSIS\n"
        "    vol-info <vol> [--bytes] [--physical] [--json] [--pool <string>]\n\n"
        "  DESCRIPTION\n"
        "    Returns basic information about the storage vol.\n\n"
        "  OPTIONS\n"
        "    [--vol] <string>  vol name, key or path\n"
        "    --bytes          sizes are represented in bytes rather than pretty units\n"
        "    --physical       return the physical size of the volume in allocation field\n"
        "    --json           print the result as JSON\n"
        "    --pool <string>  pool name or uuid\n\n\n"
    )


def test_help_keyword_lists_the_group() -> None:
    out = run("help", "network").stdout
    assert out.startswith(" Networking (help keyword 'network'):\n    net-autostart ")


def every_path() -> list[list[str]]:
    paths = []
    for cmd in COMMANDS:
        if cmd.group is None:
            continue
        paths.append([cmd.name])
        paths += [[cmd.name, sub.name] for sub in cmd.sub]
    return paths


@pytest.mark.parametrize("path", every_path(), ids=[" ".join(p) for p in every_path()])
def test_dash_h_and_help_on_every_command(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (main() is the entry point): one interpreter for all the commands."""
    assert main(["help", *path]) == 0
    expected = capsys.readouterr().out
    assert expected.startswith(f"  NAME\n    {' '.join(path)} - ")
    # Anywhere among the options, as virsh and GNU tools take it.
    for args in ([*path, "-h"], [*path, "--help"], [*path, "x", "--help"]):
        assert main(args) == 0
        assert capsys.readouterr() == (expected, "")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["lsit"], "error: unknown command: 'lsit'; did you mean 'list'?\n"),
        (["list", "--al"], "error: command 'list' doesn't support option --al; did you mean '--all'?\n"),
        (["help", "clnoe"], "error: command or command group 'clnoe' doesn't exist; did you mean 'clone'?\n"),
        (["help", "img", "creat"], "error: 'img' has no command 'creat'; did you mean 'create'?\n"),
        (["--jsno", "list"], "error: unsupported option '--jsno'; did you mean '--json'?. See --help.\n"),
        (["xyzzy"], "error: unknown command: 'xyzzy'\n"),
    ],
)
def test_did_you_mean(args: list[str], error: str) -> None:
    result = run(*args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error)
