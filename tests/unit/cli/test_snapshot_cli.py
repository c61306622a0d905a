"""snapshot-create-as's --diskspec/--memspec and snapshot-list --tree, checked against virsh's own
output where virsh is installed (its test driver needs no daemon)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvirt.cli.snapshot import create_as_xml, parse_diskspec, parse_memspec, tree_text
from pyvirt.conf.snapshot_xml import parse_snapshot
from pyvirt.errors import InvalidArgument

VIRSH = shutil.which("virsh")


def test_specs_are_parsed_as_virsh_does() -> None:
    spec = parse_diskspec("vda,snapshot=external,driver=qcow2,stype=file,file=/a,,b")
    assert spec == {"name": "vda", "snapshot": "external", "driver": "qcow2", "stype": "file", "file": "/a,b"}
    assert parse_memspec("/m") == {"file": "/m"}
    assert parse_memspec("file=/m,snapshot=external") == {"file": "/m", "snapshot": "external"}
    for bad in ("vda,colour=red", "vda,file", ",file=/x", "vda,file=/a,file=/b"):
        with pytest.raises(InvalidArgument, match="unable to parse diskspec"):
            parse_diskspec(bad)
    with pytest.raises(InvalidArgument, match="unable to parse memspec"):
        parse_memspec("/m,bogus=1")


def test_create_as_xml_parses_back() -> None:
    xml = create_as_xml("n", "d", "file=/m", ["vda,file=/o", "hdc,snapshot=no"])
    snap = parse_snapshot(xml)
    assert (snap.name, snap.description, snap.memory, snap.memory_file) == ("n", "d", "external", "/m")
    assert [(d.name, d.snapshot, d.source) for d in snap.disks] == [
        ("vda", "external", "/o"),
        ("hdc", "no", None),
    ]


def _chain(*pairs: tuple[str, str | None]) -> list[dict[str, object]]:
    return [{"name": n, "parent": p} for n, p in pairs]


def test_tree_drawing() -> None:
    snaps = _chain(("s1", None), ("s2", "s1"), ("s3", "s2"), ("s4", "s1"), ("t", None))
    assert tree_text(snaps) == "s1\n  |\n  +- s2\n  |   |\n  |   +- s3\n  |     \n  +- s4\n    \nt\n\n"


@pytest.mark.skipif(VIRSH is None, reason="virsh is not installed (the oracle for the tree layout)")
def test_tree_matches_virsh_test_driver() -> None:
    assert VIRSH is not None
    script = (
        "snapshot-create-as test s1; snapshot-create-as test s2; snapshot-create-as test s3; "
        "snapshot-current test s1; snapshot-create-as test s4; snapshot-current test s2; "
        "snapshot-create-as test s5; snapshot-list test --tree"
    )
    out = subprocess.run([VIRSH, "-c", "test:///default", script], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    drawn = out[out.index("s1\n  |") :]
    snaps = _chain(("s1", None), ("s2", "s1"), ("s3", "s2"), ("s4", "s1"), ("s5", "s2"))
    assert drawn == tree_text(snaps) + "\n"
