"""The global -c, -r and --json reach every command that can honour them and are refused, naming
the option, by those that cannot (no command silently drops one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.cli.commands import COMMANDS, Command
from pyvirt.image.api import create_image


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyvirt.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYVIRT_DEFAULT_URI": "qemu+unix:///system?socket=/nonexistent", "PATH": "/usr/bin:/bin"},
    )


def test_img_refuses_a_remote_connection(tmp_path: Path) -> None:
    create_image(str(tmp_path / "a.qcow2"), "qcow2", 1 << 20)
    result = run("-c", "qemu+ssh://prod/system", "img", "info", str(tmp_path / "a.qcow2"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "error: option --connect: 'img info' works on local files only, "
        "not on the host of 'qemu+ssh://prod/system'\n"
    )
    # A local URI names this host: the files are the same.
    assert run("-c", "qemu:///system", "img", "info", str(tmp_path / "a.qcow2")).returncode == 0


def test_img_json_is_output_json(tmp_path: Path) -> None:
    create_image(str(tmp_path / "a.qcow2"), "qcow2", 1 << 20)
    result = run("--json", "img", "info", str(tmp_path / "a.qcow2"))
    assert result.returncode == 0 and '"virtual-size": 1048576' in result.stdout
    refused = run("--json", "img", "create", "-f", "raw", str(tmp_path / "b.raw"), "1M")
    assert refused.stderr == "error: option --json does not apply to 'img create': it has no JSON output\n"
    assert not (tmp_path / "b.raw").exists()


def test_readonly_refused_where_a_command_writes(tmp_path: Path) -> None:
    result = run("-r", "img", "create", "-f", "raw", str(tmp_path / "b.raw"), "1M")
    assert result.returncode == 1 and "option --readonly does not apply to 'img create'" in result.stderr
    assert not (tmp_path / "b.raw").exists()
    assert run("-r", "customize", "-a", "x.img", "--hostname", "h").stderr.startswith(
        "error: option --readonly does not apply to 'customize'"
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--json", "start", "web"], "--json"),
        (["--json", "pki", "show"], "--json"),
        (["-c", "qemu:///system", "pki", "init"], "--connect"),
        (["-c", "qemu:///system", "umount", "/mnt"], "--connect"),
        (["--json", "mount", "-a", "x.img", "-i", "/mnt"], "--json"),
        (["--json", "proxy"], "--json"),
        (["-c", "qemu:///system", "proxy"], "--connect"),
        (["--json", "template", "delete", "t"], "--json"),
    ],
)
def test_refused_naming_the_option(args: list[str], option: str) -> None:
    result = run(*args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: option {option} does not apply to ")


def test_connect_reaches_the_tools() -> None:
    """The tools that talk to a daemon use the global -c: here one that is not there."""
    remote = run("-c", "qemu+ssh://nowhere.invalid/system", "sysprep", "-d", "web")
    assert "qemu+ssh://nowhere.invalid/system" in remote.stderr
    # customize's own -c (after the tool's name), as virt-customize takes it.
    local = run(
        "customize", "-c", "qemu+unix:///system?socket=/nonexistent-pyvirt", "-d", "web", "--write", "/x:y"
    )
    assert local.returncode == 1 and "/nonexistent-pyvirt" in local.stderr, local.stderr
    for args in (
        ["clone", "--original", "t", "--name", "n"],
        ["template", "list"],
        ["start", "web"],
    ):
        result = run("-c", "qemu+unix:///system?socket=/nonexistent-pyvirt", *args)
        assert result.returncode == 1 and "/nonexistent-pyvirt" in result.stderr, (args, result.stderr)


def test_every_command_declares_what_it_honours() -> None:
    def walk(cmds: tuple[Command, ...]) -> list[Command]:
        return [c for cmd in cmds for c in (cmd, *cmd.sub)]

    for cmd in walk(COMMANDS):
        if cmd.sub:  # a tool with verbs: each verb says
            continue
        json_option = any(o[0] in ("json", "--json", "--output") for o in cmd.options)
        assert ("j" in cmd.globals) == json_option or cmd.name == "help", cmd.name
