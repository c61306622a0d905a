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


def _xmlutil_create_as(
    name: str | None, description: str | None, memspec: str | None, diskspecs: list[str]
) -> str:
    """What the project's XML writer makes of the same options (create_as_xml avoids importing it)."""
    from pyvirt.conf.xmlutil import XNode, serialize, x

    root = XNode("domainsnapshot")
    root.add(x("name", text=name) if name else None)
    root.add(x("description", text=description) if description else None)
    if memspec is not None:
        mem = parse_memspec(memspec)
        root.add(x("memory", {"snapshot": mem.get("snapshot"), "file": mem.get("file") or None}))
    if diskspecs:
        disks = XNode("disks")
        for spec in map(parse_diskspec, diskspecs):
            node = x(
                "disk", {"name": spec["name"], "snapshot": spec.get("snapshot"), "type": spec.get("stype")}
            )
            node.add(x("driver", {"type": spec["driver"]}) if spec.get("driver") else None)
            node.add(x("source", {"file": spec["file"]}) if spec.get("file") else None)
            disks.add(node)
        root.add(disks)
    return serialize(root)


@pytest.mark.parametrize(
    "args",
    [
        (None, None, None, []),
        ("n", None, None, []),
        ("a&b<c>'\"", "line\nwith\ttab & <tags>", "file=/m 'q',,\"x\"&", []),
        (None, "", "", ["vda"]),
        (
            "s",
            "d",
            "snapshot=no",
            ["vda,snapshot=external,driver=qcow2,stype=file,file=/o<'&>,,x", "hdc,snapshot=no"],
        ),
        ("s", None, "/m\r\n", ["vdb,driver=raw", "vdc,file=/x", "vdd,stype=block"]),
    ],
)
def test_create_as_xml_is_what_xmlutil_writes(
    args: tuple[str | None, str | None, str | None, list[str]],
) -> None:
    assert create_as_xml(*args) == _xmlutil_create_as(*args)


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
