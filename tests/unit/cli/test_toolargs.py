"""The tools' parsers built from the table keep their semantics: repeatable options, ordered steps,
opposite flags, required options, typed values, sub-verbs and the global options as defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.cli.toolargs import tool_parser
from pyvirt.errors import InvalidArgument


def test_sysprep_options() -> None:
    p = tool_parser("sysprep", {"connect": "qemu:///session", "json": True}, dest={"add": "disks"})
    ns = p.parse_args(
        ["-a", "x.img", "--add", "y.img", "--write", "/a:1", "--hostname", "h", "--delete", "/b", "-n"]
    )
    assert ns.disks == ["x.img", "y.img"]
    assert ns.steps == [("write", "/a:1"), ("hostname", "h"), ("delete", "/b")]
    assert ns.dry_run is True and ns.connect == "qemu:///session" and ns.json is True
    assert ns.network is None
    assert p.parse_args(["--no-network"]).network is False
    assert p.parse_args(["--network"]).network is True
    assert p.parse_args(["-c", "qemu:///system"]).connect == "qemu:///system"
    assert p.parse_args(["--operations", "a", "--enable", "b"]).operations == ["a", "b"]
    with pytest.raises(InvalidArgument, match="not allowed with argument"):
        p.parse_args(["--network", "--no-network"])


def test_steps_do_not_leak_between_parses() -> None:
    p = tool_parser("customize")
    assert p.parse_args(["--prepare-template"]).steps == [("prepare_template", [])]
    assert tool_parser("customize").parse_args([]).steps == []


def test_clone_required_and_typed() -> None:
    p = tool_parser("clone", {"user": "pyvirt", "pool": "default"}, dest={"full": "linked"})
    ns = p.parse_args(["--original", "t", "--name", "n", "--vcpus", "2", "--full"])
    assert (ns.original, ns.name, ns.vcpus, ns.linked, ns.user) == ("t", "n", 2, False, "pyvirt")
    with pytest.raises(InvalidArgument, match="--original"):
        p.parse_args(["--name", "n"])
    with pytest.raises(InvalidArgument, match="invalid int value"):
        p.parse_args(["--original", "t", "--name", "n", "--vcpus", "two"])


def test_sub_verbs_and_positionals() -> None:
    p = tool_parser("pki", dest={"COMMAND": "action", "file": "files"})
    ns = p.parse_args(["show", "a.pem", "b.pem"])
    assert ns.action == "show" and ns.files == [Path("a.pem"), Path("b.pem")]
    ns = p.parse_args(["issue-server", "--hostname", "a", "--hostname", "b", "--days", "3"])
    assert ns.hostname == ["a", "b"] and ns.days == 3
    with pytest.raises(InvalidArgument):
        p.parse_args([])
    t = tool_parser("template", dest={"COMMAND": "verb"})
    ns = t.parse_args(["import", "--os", "debian-12", "f.img", "tmpl"])
    assert (ns.verb, ns.os, ns.file, ns.name) == ("import", "debian-12", "f.img", "tmpl")
    assert tool_parser("umount", {"retry": 5}).parse_args(["/mnt"]).retry == 5


def test_unknown_option_suggests_the_closest() -> None:
    with pytest.raises(
        InvalidArgument, match=r"unrecognized arguments: --hostnme x; did you mean '--hostname'\?"
    ):
        tool_parser("customize").parse_args(["--hostnme", "x"])
