"""Our table and field layouts against real virsh 9.0 output (its built-in test driver)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvirt.cli.output import fields, table

needs_virsh = pytest.mark.skipif(
    shutil.which("virsh") is None, reason="virsh (libvirt-clients) not installed"
)


def virsh(*cmd: str) -> str:
    return subprocess.run(["virsh", "-c", "test:///default", *cmd], capture_output=True, text=True).stdout


@needs_virsh
def test_list_table_matches_virsh() -> None:
    assert virsh("list", "--all") == table(["Id", "Name", "State"], [["1", "test", "running"]]) + "\n"


@needs_virsh
def test_domblklist_and_net_list_tables_match_virsh() -> None:
    assert virsh("domblklist", "test") == table(["Target", "Source"], [["vda", "/guest/diskimage1"]]) + "\n"
    expected = (
        table(["Name", "State", "Autostart", "Persistent"], [["default", "active", "no", "yes"]]) + "\n"
    )
    assert virsh("net-list", "--all") == expected


@needs_virsh
def test_dominfo_and_nodeinfo_layouts_match_virsh() -> None:
    for line in virsh("dominfo", "test").splitlines():
        if not line:
            continue
        label, _, value = line.partition(":")
        value = value.strip()
        if value:
            assert fields([(label + ":", value)]) == line + "\n"
    for line in virsh("nodeinfo").splitlines():
        if line:
            label, _, value = line.partition(":")
            assert fields([(label + ":", value.strip())], width=20) == line + "\n"


def test_empty_table_has_header_and_rule() -> None:
    assert table(["Id", "Name", "State"], []) == " Id   Name   State\n--------------------\n"
