"""A domain's snapshots as a tree: parents, children, and the selections ``snapshot-list`` makes.

Pure functions over ``{name: DomainSnapshot}``; the daemon answers list requests with them and the
unit tests check them without a daemon. The filters are libvirt's: ``roots``, ``leaves``/``no_leaves``,
the children (or, with ``descendants``, every descendant) of one snapshot, and two groups in which
the flags given are alternatives: by state (``inactive``, ``active``, ``disk_only``) and by location
(``internal``, ``external``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyvirt.conf.snapshot_xml import DomainSnapshot
from pyvirt.errors import InvalidArgument


@dataclass
class ListFilter:
    roots: bool = False
    leaves: bool = False
    no_leaves: bool = False
    start: str | None = None  # --from (or the current snapshot for --current)
    descendants: bool = False
    inactive: bool = False
    active: bool = False
    disk_only: bool = False
    internal: bool = False
    external: bool = False
    topological: bool = False


def sort_key(name: str) -> tuple[str, str]:
    """virsh's order: case-insensitive, then by exact bytes."""
    return (name.lower(), name)


def children(snaps: Mapping[str, DomainSnapshot], name: str | None) -> list[str]:
    """The snapshots whose parent is ``name`` (None: the roots), sorted."""
    return sorted((n for n, s in snaps.items() if s.parent == name), key=sort_key)


def _kids(snaps: Mapping[str, DomainSnapshot]) -> dict[str | None, list[str]]:
    """Parent → its children, sorted (one pass, for walks over the whole tree)."""
    kids: dict[str | None, list[str]] = {}
    for name in sorted(snaps, key=sort_key):
        kids.setdefault(snaps[name].parent, []).append(name)
    return kids


def descendants(snaps: Mapping[str, DomainSnapshot], name: str) -> list[str]:
    """Every snapshot below ``name``, parents before their children."""
    kids = _kids(snaps)
    out: list[str] = []
    todo = list(reversed(kids.get(name, [])))
    while todo:
        head = todo.pop()
        out.append(head)
        todo.extend(reversed(kids.get(head, [])))
    return out


def family_counts(snaps: Mapping[str, DomainSnapshot]) -> dict[str, tuple[int, int]]:
    """Name → (children, descendants) of every snapshot, in one walk of the tree (what a listing
    shows for each; asking :func:`descendants` for each would be quadratic)."""
    kids = _kids(snaps)
    order: list[str] = []
    todo = [n for n, s in snaps.items() if s.parent not in snaps]
    while todo:
        head = todo.pop()
        order.append(head)
        todo.extend(kids.get(head, []))
    counts: dict[str, tuple[int, int]] = {}
    for name in reversed(order):  # children before their parents
        below = kids.get(name, [])
        counts[name] = (len(below), sum(1 + counts[c][1] for c in below))
    return counts


def topological(snaps: Mapping[str, DomainSnapshot], names: list[str]) -> list[str]:
    """``names`` with every parent before its children (depth first from the roots)."""
    wanted = set(names)
    order = [n for root in children(snaps, None) for n in (root, *descendants(snaps, root))]
    return [n for n in order if n in wanted]


def select(snaps: Mapping[str, DomainSnapshot], f: ListFilter) -> list[str]:
    """The names ``snapshot-list`` shows for filter ``f``, sorted (or topologically)."""
    if f.roots and f.start is not None:
        raise InvalidArgument("--roots and --from are mutually exclusive")
    if f.leaves and f.no_leaves:
        raise InvalidArgument("--leaves and --no-leaves are mutually exclusive")
    if f.descendants and f.start is None:
        raise InvalidArgument("--descendants requires --from or --current")
    if f.start is not None:
        if f.start not in snaps:
            raise snapshot_not_found(f.start)
        names = descendants(snaps, f.start) if f.descendants else children(snaps, f.start)
    elif f.roots:
        names = children(snaps, None)
    else:
        names = sorted(snaps, key=sort_key)
    if f.leaves or f.no_leaves:
        has_children = {s.parent for s in snaps.values() if s.parent}
        names = [n for n in names if (n in has_children) == f.no_leaves]
    if f.inactive or f.active or f.disk_only:
        names = [n for n in names if _state_matches(snaps[n], f)]
    if f.internal or f.external:
        names = [n for n in names if (snaps[n].location == "external" and f.external)
                 or (snaps[n].location == "internal" and f.internal)]  # fmt: skip
    names = sorted(names, key=sort_key)
    return topological(snaps, names) if f.topological else names


def _state_matches(snap: DomainSnapshot, f: ListFilter) -> bool:
    if snap.state == "disk-snapshot":
        return f.disk_only
    if snap.state == "shutoff":
        return f.inactive
    return f.active


def snapshot_not_found(name: str) -> Exception:
    from pyvirt.errors import NotFound

    return NotFound(f"Domain snapshot not found: no domain snapshot with matching name '{name}'")
