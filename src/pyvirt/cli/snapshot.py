"""Snapshot verbs (snapshot-create, -create-as, -list, -info, -dumpxml, -current, -edit, -parent,
-revert, -delete), with virsh 9.0's output and messages."""

from __future__ import annotations

from pyvirt.cli.output import emit, emit_json, fields, table
from pyvirt.errors import InvalidArgument, NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Domain


def _domain(opts: GlobalOptions, a: Parsed) -> Domain:
    """The domain, looked up (one call; virsh's 'failed to get domain' if there is none)."""
    from pyvirt.cli.domain import _domain as lookup

    return lookup(opts.connect(), a.text("domain"))


def _handle(opts: GlobalOptions, a: Parsed) -> Domain:
    """A handle on the domain without a lookup call, for the verbs that print nothing of it: each
    snapshot action finds the domain by name, id or UUID itself, so the lookup would be one round
    trip to the daemon more (under load, a wake-up of the daemon and one of the CLI). The verb is
    wrapped in :func:`_named`, which reports an unknown domain as the lookup does."""
    from pyvirt.client.api import Domain

    return Domain(opts.connect(), a.text("domain"))


def _unknown_domain(err: PyvirtError) -> bool:
    return isinstance(err, NotFound) and str(err).startswith("Domain not found")


def _named(verb: Callable[[GlobalOptions, Parsed], int]) -> Callable[[GlobalOptions, Parsed], int]:
    """``verb`` (which uses :func:`_handle`) with the daemon's "Domain not found" turned into virsh's
    "failed to get domain 'KEY'"."""

    def run(opts: GlobalOptions, a: Parsed) -> int:
        try:
            return verb(opts, a)
        except PyvirtError as err:
            if _unknown_domain(err):
                raise PyvirtError(f"failed to get domain '{a.text('domain')}'") from err
            raise

    return run


def _snapshot_name(dom: Domain, a: Parsed) -> str:
    """--snapshotname, or the current snapshot's with --current (virsh's rule: one of them)."""
    name = a.opt("snapshotname")
    if name is not None and a.flag("current"):
        raise InvalidArgument("--snapshotname and --current are mutually exclusive")
    if name is not None:
        return name
    if not a.flag("current"):
        raise InvalidArgument("--snapshotname or --current is required")
    return str(_current(dom)["name"])


def _current(dom: Domain) -> Any:
    try:
        return dom.current_snapshot()
    except NotFound as err:
        if _unknown_domain(err):
            raise
        raise PyvirtError(f"domain '{dom.name}' has no current snapshot") from err


_CREATE_FLAGS = (
    "no_metadata",
    "halt",
    "disk_only",
    "reuse_external",
    "quiesce",
    "atomic",
    "live",
    "validate",
)


@_named
def cmd_snapshot_create(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.domain import _read_file

    path = a.opt("xmlfile")
    xml = _read_file(path) if path else "<domainsnapshot/>"
    dom = _handle(opts, a)
    flags = {k: a.flag(k) for k in (*_CREATE_FLAGS, "redefine", "current")}
    info = dom.create_snapshot(xml, **flags)
    if path:
        emit(f"Domain snapshot {info['name']} created from '{path}'\n")
    else:
        emit(f"Domain snapshot {info['name']} created\n")
    return 0


def parse_diskspec(spec: str) -> dict[str, str]:
    """virsh's ``disk[,snapshot=type][,driver=type][,stype=type][,file=name]`` (``,,`` is a comma)."""
    from pyvirt.qemu import keyval

    parts = keyval.split(spec)
    out = {"name": parts[0]}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or key not in ("snapshot", "driver", "stype", "file") or key in out:
            raise InvalidArgument(f"unable to parse diskspec: {spec}")
        out[key] = value
    if not out["name"]:
        raise InvalidArgument(f"unable to parse diskspec: {spec}")
    return out


def parse_memspec(spec: str) -> dict[str, str]:
    """virsh's ``[file=]name[,snapshot=type]``."""
    from pyvirt.qemu import keyval

    out: dict[str, str] = {}
    for index, part in enumerate(keyval.split(spec)):
        key, eq, value = part.partition("=")
        if not eq and index == 0:
            key, value = "file", part
        elif key not in ("file", "snapshot") or key in out:
            raise InvalidArgument(f"unable to parse memspec: {spec}")
        out[key] = value
    return out


def create_as_xml(
    name: str | None, description: str | None, memspec: str | None, diskspecs: list[str]
) -> str:
    """The domainsnapshot XML snapshot-create-as builds from its options, as
    :func:`pyvirt.conf.xmlutil.serialize` writes it. Written here: xmlutil's imports (dataclasses,
    re, inspect) would cost more than the rest of the verb's start-up; test_snapshot_cli holds the
    two writers to the same output."""
    from pyvirt.conf.xmlescape import escape_text

    inner: list[str] = []
    if name:
        inner.append(f"  <name>{escape_text(name)}</name>")
    if description:
        inner.append(f"  <description>{escape_text(description)}</description>")
    if memspec is not None:
        mem = parse_memspec(memspec)
        inner.append(
            f"  <memory{_attrs(('snapshot', mem.get('snapshot')), ('file', mem.get('file') or None))}/>"
        )
    if diskspecs:
        inner.append("  <disks>")
        for spec in map(parse_diskspec, diskspecs):
            attrs = _attrs(
                ("name", spec["name"]), ("snapshot", spec.get("snapshot")), ("type", spec.get("stype"))
            )
            body = []
            if spec.get("driver"):
                body.append(f"      <driver{_attrs(('type', spec['driver']))}/>")
            if spec.get("file"):
                body.append(f"      <source{_attrs(('file', spec['file']))}/>")
            inner.extend([f"    <disk{attrs}>", *body, "    </disk>"] if body else [f"    <disk{attrs}/>"])
        inner.append("  </disks>")
    if not inner:
        return "<domainsnapshot/>\n"
    return "\n".join(["<domainsnapshot>", *inner, "</domainsnapshot>"]) + "\n"


def _attrs(*pairs: tuple[str, str | None]) -> str:
    from pyvirt.conf.xmlescape import escape_attr

    return "".join(f" {key}='{escape_attr(value)}'" for key, value in pairs if value is not None)


@_named
def cmd_snapshot_create_as(opts: GlobalOptions, a: Parsed) -> int:
    specs = a.get("diskspec") or []
    assert isinstance(specs, list)
    xml = create_as_xml(a.opt("name"), a.opt("description"), a.opt("memspec"), specs)
    if a.flag("print_xml"):
        emit(xml + "\n")
        return 0
    dom = _handle(opts, a)
    info = dom.create_snapshot(xml, **{k: a.flag(k) for k in _CREATE_FLAGS})
    emit(f"Domain snapshot {info['name']} created\n")
    return 0


def cmd_snapshot_current(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts, a)
    name = a.opt("snapshotname")
    if name is not None:
        if a.flag("name") or a.flag("security_info"):
            raise InvalidArgument("--snapshotname cannot be used with --name or --security-info")
        dom.set_current_snapshot(name)
        emit(f"Snapshot {name} set as current\n")
        return 0
    current = _current(dom)
    if a.flag("name"):
        emit(current["name"] + "\n")
    else:
        emit(dom.snapshot_xml(current["name"], security_info=a.flag("security_info")) + "\n")
    return 0


def cmd_snapshot_info(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts, a)
    info = dom.snapshot(_snapshot_name(dom, a))
    emit(
        fields(
            [
                ("Name:", info["name"]),
                ("Domain:", dom.name),
                ("Current:", "yes" if info["current"] else "no"),
                ("State:", info["state"]),
                ("Location:", info["location"]),
                ("Parent:", info["parent"] or "-"),
                ("Children:", info["children"]),
                ("Descendants:", info["descendants"]),
                ("Metadata:", "yes" if info["metadata"] else "no"),
            ]
        )
        + "\n"
    )
    return 0


def cmd_snapshot_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts, a)
    emit(dom.snapshot_xml(a.text("snapshotname"), security_info=a.flag("security_info")) + "\n")
    return 0


def cmd_snapshot_parent(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts, a)
    info = dom.snapshot(_snapshot_name(dom, a))
    if info["parent"] is None:
        raise PyvirtError(f"snapshot '{info['name']}' has no parent")
    emit(info["parent"] + "\n")
    return 0


@_named
def cmd_snapshot_revert(opts: GlobalOptions, a: Parsed) -> int:
    dom = _handle(opts, a)
    name = _snapshot_name(dom, a)
    dom.revert_to_snapshot(
        name,
        running=a.flag("running"),
        paused=a.flag("paused"),
        force=a.flag("force"),
        reset_nvram=a.flag("reset_nvram"),
    )
    emit(f"Domain snapshot {name} reverted\n")
    return 0


@_named
def cmd_snapshot_delete(opts: GlobalOptions, a: Parsed) -> int:
    dom = _handle(opts, a)
    name = _snapshot_name(dom, a)
    try:
        dom.delete_snapshot(
            name,
            children=a.flag("children"),
            children_only=a.flag("children_only"),
            metadata=a.flag("metadata"),
        )
    except PyvirtError as err:
        from pyvirt.cli.domain import CommandFailed

        if _unknown_domain(err):
            raise
        raise CommandFailed(f"Failed to delete snapshot {name}", err) from err
    emit(f"Domain snapshot {name} {'children ' if a.flag('children_only') else ''}deleted\n")
    return 0


def cmd_snapshot_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    for flag in ("rename", "clone"):
        if a.flag(flag):
            raise InvalidArgument(
                f"--{flag}: renaming or cloning snapshot metadata is not supported (an internal snapshot "
                "is found in its images by its name)"
            )
    dom = _domain(opts, a)
    # --current: edit the current snapshot, or with a name make the edited one current (virsh's rule)
    name = a.opt("snapshotname") or _snapshot_name(dom, a)
    original = dom.snapshot_xml(name, security_info=True)

    def redefine(xml: str) -> object:
        from pyvirt.conf.snapshot_xml import parse_snapshot

        edited = parse_snapshot(xml, redefine=True).name
        if edited != name:
            raise InvalidArgument(
                f"cannot change snapshot name from {name} to {edited} (--rename is not supported)"
            )
        return dom.create_snapshot(xml, redefine=True, current=a.flag("current"))

    return edit_xml(original, f"Snapshot {name}", redefine, success=f"Snapshot {name} edited.")


@_named
def cmd_snapshot_list(opts: GlobalOptions, a: Parsed) -> int:
    dom = _handle(opts, a)
    flags: dict[str, Any] = {
        k: a.flag(k)
        for k in (
            "roots", "leaves", "no_leaves", "current", "descendants", "inactive", "active", "disk_only",
            "internal", "external", "metadata", "no_metadata", "topological",
        )
    }  # fmt: skip
    tree = a.flag("tree")
    start = a.opt("from")
    if tree and (flags["roots"] or a.flag("parent") or a.flag("name")):
        raise InvalidArgument("--tree cannot be used with --roots, --parent or --name")
    if tree and (start or flags["current"]):
        flags["descendants"] = True  # a tree from a snapshot shows all below it, as virsh
    snaps: list[Any] = dom.snapshots(from_=start, **flags)
    if opts.json or a.flag("json"):
        emit_json(snaps)
        return 0
    if tree:
        root_name = start or (_current(dom)["name"] if flags["current"] else None)
        if root_name is not None:
            snaps = [{**dom.snapshot(root_name), "parent": None}, *snaps]
        emit(tree_text(snaps) + "\n")
        return 0
    if a.flag("name"):
        emit("".join(s["name"] + "\n" for s in snaps) + "\n")
        return 0
    import time

    header = ["Name", "Creation Time", "State"]
    rows = []
    for s in snaps:
        when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(s["creation_time"]))
        rows.append([s["name"], when, s["state"]])
        if a.flag("parent"):
            rows[-1].append(s["parent"] or "")
    if a.flag("parent"):
        header.append("Parent")
    emit(table(header, rows) + "\n")
    return 0


def tree_text(snaps: list[dict[str, Any]]) -> str:
    """virsh's ``--tree`` drawing (vshTreePrint) of snapshots with their ``parent``s, in list order."""
    out: list[str] = []
    names = [s["name"] for s in snaps]
    parents = [s["parent"] if s["parent"] in names else None for s in snaps]

    def draw(dev: int, last: int, root: bool, indent: str) -> None:
        out.append(f"{indent}{'' if root else '+- '}{names[dev]}\n")
        if not root:
            indent += (" " if dev == last else "|") + " "
        kids = [i for i, p in enumerate(parents) if p == names[dev]]
        if kids:
            out.append(f"{indent}  |\n")
        for kid in kids:
            draw(kid, kids[-1], False, indent + "  ")
        if not kids and dev == last:
            out.append(f"{indent}\n")

    for index, parent in enumerate(parents):
        if parent is None:
            draw(index, index, True, "")
    return "".join(out)
