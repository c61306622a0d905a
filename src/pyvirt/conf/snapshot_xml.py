"""Domain snapshots in libvirt's ``domainsnapshot`` XML: the model, the parser and the writer.

What a user writes (``snapshot-create``) names the snapshot, describes it and says, per disk and for
the memory, where the state goes: ``internal`` (inside the qcow2 image), ``external`` (a new overlay or
memory file) or ``no``. What the daemon adds once the snapshot exists (its state, parent, creation time
and the domain's definition) is read back only when metadata is redefined (``--redefine``,
``snapshot-edit``); anywhere else it is refused by name rather than ignored. The stored form (the
metadata file) also says whether the snapshot is the domain's current one (``<active>1</active>``,
as libvirt writes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvirt.conf.xmlescape import escape_attr
from pyvirt.conf.xmlutil import Elem, XNode, parse_document, serialize, x
from pyvirt.errors import InvalidArgument, XMLError

#: Where a disk's or the memory's state goes.
DISK_MODES = ("internal", "external", "no", "manual")
MEMORY_MODES = ("internal", "external", "no")
#: A snapshot's ``<state>``: the domain's state when it was taken, or disk-snapshot (disks only).
STATES = ("running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended", "disk-snapshot")
#: Elements the daemon fills in: read only when metadata is redefined.
_REDEFINE_ONLY = ("state", "parent", "creationTime", "domain", "active")


@dataclass
class SnapshotDisk:
    """One ``<disks><disk>``: ``name`` is the disk's target (``vda``) or its source path."""

    name: str
    snapshot: str | None = None  # internal | external | no | manual; None: the default
    type: str | None = None  # the overlay's storage type: file
    driver_type: str | None = None  # the overlay's format: qcow2
    source: str | None = None  # the overlay's file


@dataclass
class DomainSnapshot:
    name: str | None = None
    description: str | None = None
    state: str | None = None
    parent: str | None = None
    creation_time: int | None = None
    memory: str | None = None  # internal | external | no
    memory_file: str | None = None
    disks: list[SnapshotDisk] = field(default_factory=list)
    domain_xml: str | None = None  # the domain's definition when the snapshot was taken
    current: bool = False  # stored form only

    @property
    def location(self) -> str:
        """virsh snapshot-info's Location: external if any state went to a file of its own."""
        if self.memory == "external" or any(d.snapshot == "external" for d in self.disks):
            return "external"
        return "internal"

    @property
    def disk_only(self) -> bool:
        return self.state == "disk-snapshot"

    @property
    def active(self) -> bool:
        """Taken of a running domain, with its memory (what snapshot-list --active lists)."""
        return self.state not in ("shutoff", "disk-snapshot", None)


def check_name(name: str) -> str:
    """A snapshot name is a file name in the metadata directory: not empty, no '/', no leading dot."""
    if not name or name.strip() != name:
        raise InvalidArgument(
            f"invalid snapshot name {name!r}: it must not be empty or start or end with a space"
        )
    if "/" in name or name.startswith(".") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(
            f"invalid snapshot name {name!r}: no '/', control characters or leading '.' allowed"
        )
    if len(name.encode()) > 250:
        raise InvalidArgument(f"invalid snapshot name '{name[:40]}...': longer than 250 bytes")
    return name


def parse_snapshot(text: str, *, redefine: bool = False) -> DomainSnapshot:
    """Parse snapshot XML; without ``redefine`` the daemon-filled elements are refused by name."""
    root = parse_document(text, raw_paths=frozenset({"domain"}))
    if root.tag != "domainsnapshot":
        raise XMLError(f"expected a <domainsnapshot> root element, found <{root.tag}>")
    el = Elem(root)
    if not redefine:
        for tag in _REDEFINE_ONLY:
            if el.children(tag):
                raise InvalidArgument(
                    f"element '{tag}' of a snapshot is set by the daemon: it is read only when "
                    "redefining snapshot metadata (--redefine)"
                )
    snap = DomainSnapshot()
    name = el.child("name")
    if name is not None:
        snap.name = check_name(name.text())
    desc = el.child("description")
    if desc is not None:
        snap.description = desc.text(required=False)
    state = el.child("state")
    if state is not None:
        snap.state = state.text()
        if snap.state not in STATES:
            raise XMLError(f"invalid state '{snap.state}' in domain snapshot XML")
    parent = el.child("parent")
    if parent is not None:
        pname = parent.child("name")
        if pname is None:
            raise XMLError("element 'parent' of a snapshot needs a 'name'")
        snap.parent = check_name(pname.text())
        parent.done()
    created = el.child("creationTime")
    if created is not None:
        snap.creation_time = created.text_int(minimum=0)
    memory = el.child("memory")
    if memory is not None:
        snap.memory = memory.choice("snapshot", MEMORY_MODES)
        snap.memory_file = memory.attr("file")
        if snap.memory_file is not None and snap.memory is None:
            snap.memory = "external"
        if snap.memory_file is not None and snap.memory != "external":
            raise XMLError(f"memory state cannot be saved with snapshot type '{snap.memory}' to a file")
        if snap.memory_file is not None and not snap.memory_file.startswith("/"):
            raise XMLError(f"memory snapshot file path '{snap.memory_file}' must be absolute")
        memory.done()
    disks = el.child("disks")
    if disks is not None:
        for disk in disks.children("disk"):
            snap.disks.append(_parse_disk(disk))
        disks.done()
        seen: set[str] = set()
        for d in snap.disks:
            if d.name in seen:
                raise XMLError(f"disk '{d.name}' specified twice in domain snapshot XML")
            seen.add(d.name)
    dom = el.child("domain")
    if dom is not None:
        snap.domain_xml = _domain_text(dom)
    active = el.child("active")
    if active is not None:
        snap.current = active.text_int(minimum=0, maximum=1) == 1
    el.done()
    return snap


def _parse_disk(disk: Elem) -> SnapshotDisk:
    out = SnapshotDisk(name=disk.require("name"))
    out.snapshot = disk.choice("snapshot", DISK_MODES)
    out.type = disk.choice("type", ("file",))
    driver = disk.child("driver")
    if driver is not None:
        out.driver_type = driver.choice("type", ("qcow2",))
        driver.done()
    source = disk.child("source")
    if source is not None:
        out.source = source.attr("file")
        source.done()
        if out.source is not None and not out.source.startswith("/"):
            raise XMLError(f"snapshot file '{out.source}' of disk '{out.name}' must be an absolute path")
    if out.snapshot is None and (out.source or out.driver_type):
        out.snapshot = "external"
    if out.snapshot not in (None, "external") and (out.source or out.driver_type or out.type):
        raise XMLError(f"disk '{out.name}': a source or driver is only for snapshot='external'")
    disk.done()
    return out


def _domain_text(dom: Elem) -> str:
    attrs = "".join(f" {k}='{escape_attr(v)}'" for k, v in dom.node.attrib.items())
    inner = dom.node.raw_inner or ""
    if not inner:
        return f"<domain{attrs}/>\n"
    body = "\n".join("  " + line if line else line for line in inner.split("\n"))
    return f"<domain{attrs}>\n{body}\n</domain>\n"


def format_snapshot(snap: DomainSnapshot, *, stored: bool = False) -> str:
    """The snapshot as libvirt prints it; ``stored`` adds whether it is the current one."""
    root = XNode("domainsnapshot")
    root.add(x("name", text=snap.name) if snap.name is not None else None)
    root.add(x("description", text=snap.description) if snap.description else None)
    root.add(x("state", text=snap.state) if snap.state else None)
    if snap.parent:
        root.add(XNode("parent").add(x("name", text=snap.parent)))
    if snap.creation_time is not None:
        root.add(x("creationTime", text=str(snap.creation_time)))
    if snap.memory is not None:
        root.add(x("memory", {"snapshot": snap.memory, "file": snap.memory_file}))
    if snap.disks:
        disks = XNode("disks")
        for d in snap.disks:
            node = x("disk", {"name": d.name, "snapshot": d.snapshot, "type": d.type})
            node.add(x("driver", {"type": d.driver_type}) if d.driver_type else None)
            node.add(x("source", {"file": d.source}) if d.source else None)
            disks.add(node)
        root.add(disks)
    text = serialize(root)
    tail: list[str] = []
    if snap.domain_xml:
        tail.extend("  " + line for line in snap.domain_xml.rstrip("\n").split("\n"))
    if stored:
        tail.append(f"  <active>{1 if snap.current else 0}</active>")
    if not tail:
        return text
    if text.rstrip().endswith("/>") and text.count("\n") == 1:  # <domainsnapshot/>
        return "<domainsnapshot>\n" + "\n".join(tail) + "\n</domainsnapshot>\n"
    head = text.rstrip("\n").rsplit("\n", 1)[0]
    return head + "\n" + "\n".join(tail) + "\n</domainsnapshot>\n"
