"""snapshot-list's selections over a snapshot tree, without a daemon."""

from __future__ import annotations

import pytest

from pyvirt.conf.snapshot_tree import (
    ListFilter,
    children,
    descendants,
    family_counts,
    select,
    topological,
)
from pyvirt.conf.snapshot_xml import DomainSnapshot, SnapshotDisk
from pyvirt.errors import InvalidArgument, NotFound


def _snaps() -> dict[str, DomainSnapshot]:
    """root ─┬─ B (shut off, internal) ── c (disk-only, external)
    └─ a (running)              z: a second root (paused)"""
    ext = [SnapshotDisk("vda", "external", "file", "qcow2", "/o")]
    return {
        "root": DomainSnapshot(name="root", state="running", memory="internal"),
        "B": DomainSnapshot(name="B", state="shutoff", parent="root", memory="no"),
        "a": DomainSnapshot(name="a", state="running", parent="root", memory="internal"),
        "c": DomainSnapshot(name="c", state="disk-snapshot", parent="B", memory="no", disks=ext),
        "z": DomainSnapshot(name="z", state="paused", memory="internal"),
    }


def test_tree_relations() -> None:
    snaps = _snaps()
    assert children(snaps, None) == ["root", "z"]
    assert children(snaps, "root") == ["a", "B"]  # case-insensitive order, as virsh
    assert descendants(snaps, "root") == ["a", "B", "c"]
    assert topological(snaps, ["c", "z", "B", "root"]) == ["root", "B", "c", "z"]


def test_family_counts_agree_with_children_and_descendants() -> None:
    snaps = _snaps()
    chain = {f"s{i}": DomainSnapshot(name=f"s{i}", state="shutoff", parent=f"s{i - 1}" if i else None)
             for i in range(300)}  # fmt: skip
    for tree in (snaps, chain, {}):
        counts = family_counts(tree)
        assert counts == {n: (len(children(tree, n)), len(descendants(tree, n))) for n in tree}
    assert family_counts(snaps)["root"] == (2, 3) and family_counts(chain)["s0"] == (1, 299)


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        ({}, ["a", "B", "c", "root", "z"]),
        ({"roots": True}, ["root", "z"]),
        ({"leaves": True}, ["a", "c", "z"]),
        ({"no_leaves": True}, ["B", "root"]),
        ({"start": "root"}, ["a", "B"]),
        ({"start": "root", "descendants": True}, ["a", "B", "c"]),
        ({"start": "root", "leaves": True}, ["a"]),
        ({"inactive": True}, ["B"]),
        ({"active": True}, ["a", "root", "z"]),
        ({"disk_only": True}, ["c"]),
        ({"inactive": True, "disk_only": True}, ["B", "c"]),
        ({"external": True}, ["c"]),
        ({"internal": True}, ["a", "B", "root", "z"]),
        ({"internal": True, "external": True}, ["a", "B", "c", "root", "z"]),
        ({"active": True, "leaves": True}, ["a", "z"]),
        ({"topological": True}, ["root", "a", "B", "c", "z"]),
    ],
)
def test_filters(flags: dict[str, object], names: list[str]) -> None:
    assert select(_snaps(), ListFilter(**flags)) == names  # type: ignore[arg-type]


def test_conflicting_filters_and_unknown_start_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="mutually exclusive"):
        select(_snaps(), ListFilter(leaves=True, no_leaves=True))
    with pytest.raises(InvalidArgument, match="mutually exclusive"):
        select(_snaps(), ListFilter(roots=True, start="root"))
    with pytest.raises(InvalidArgument, match="--from"):
        select(_snaps(), ListFilter(descendants=True))
    with pytest.raises(NotFound, match="no domain snapshot with matching name 'nope'"):
        select(_snaps(), ListFilter(start="nope"))
