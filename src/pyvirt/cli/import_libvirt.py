"""``pyvirt import-libvirt``: a libvirt host's domains, networks and storage pools defined in pyvirt.

Where the definitions come from:

- ``--dir DIR`` (default ``/etc/libvirt``) reads libvirt's own files, no libvirt needed:
  ``qemu/*.xml`` (domains), ``qemu/networks/*.xml``, ``storage/*.xml``, and the ``autostart``
  folder beside each (its entries' names say what starts at boot). What runs is read from libvirt's
  status files where a host keeps them: ``run/libvirt/{qemu,network,storage}/NAME.xml`` under the
  root ``DIR`` belongs to (``/`` for ``/etc/libvirt``).
- ``--uri URI`` asks a running libvirtd through ``virsh -c URI`` (Debian's libvirt-clients):
  ``dumpxml --inactive --security-info``, ``net-dumpxml --inactive``, ``pool-dumpxml --inactive``,
  and the lists of what is active and autostarted. Without virsh it refuses, saying so.

Every object is defined unchanged (its XML as libvirt keeps it: names, UUIDs, MACs, paths), pools
first, then networks, then domains, and marked autostart where libvirt had it. Nothing is started:
a domain, network or pool running under libvirt is left to it and reported, since starting a second
copy would share its disks or its bridge. What cannot be carried over (pyvirt refuses the XML, a name
pyvirt already uses) is reported with the reason, and the rest still imported. ``--dry-run`` reads and
checks everything (pyvirt's parser and validator, the names in use) and defines nothing. The exit
status is 1 when something could not be imported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.errors import InvalidArgument, OperationFailed, PyvirtError

if TYPE_CHECKING:
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection

KINDS = ("pool", "network", "domain")  # the order of definition: what a domain needs comes first


@dataclass
class Item:
    """One libvirt object to carry over."""

    kind: str
    name: str
    xml: str
    origin: str  # the file read, or "URI: NAME"
    autostart: bool = False
    active: bool = False


@dataclass
class Outcome:
    kind: str
    name: str
    status: str  # imported | would-import | skipped | failed
    detail: str


# --- reading libvirt's definitions ---------------------------------------------------------------


def _name_of(xml: str, origin: str) -> str:
    from pyvirt.conf.xmlutil import parse_document

    root = parse_document(xml)
    for child in root.children:
        if child.tag == "name" and child.text.strip():
            return child.text.strip()
    raise InvalidArgument(f"{origin}: no <name>")


def read_dir(folder: Path) -> tuple[list[Item], list[Outcome]]:
    """Libvirt's files under ``folder`` (laid out as /etc/libvirt); unreadable ones as failures."""
    if not (folder / "qemu").is_dir() and not (folder / "storage").is_dir():
        raise InvalidArgument(f"{folder} is not laid out as /etc/libvirt (no qemu/ or storage/ folder)")
    real = folder.resolve()
    run = real.parent.parent / "run" / "libvirt" if real.name == "libvirt" else None
    places = {
        "domain": (folder / "qemu", "qemu"),
        "network": (folder / "qemu" / "networks", "network"),
        "pool": (folder / "storage", "storage"),
    }
    items: list[Item] = []
    bad: list[Outcome] = []
    for kind in KINDS:
        where, run_name = places[kind]
        autostart = {p.name for p in (where / "autostart").glob("*.xml")} if where.is_dir() else set()
        for path in sorted(where.glob("*.xml")) if where.is_dir() else []:
            try:
                xml = path.read_text()
                name = _name_of(xml, str(path))
            except (OSError, UnicodeDecodeError, PyvirtError) as err:
                bad.append(Outcome(kind, path.stem, "failed", f"cannot read {path}: {_reason(err)}"))
                continue
            active = run is not None and (run / run_name / f"{name}.xml").is_file()
            items.append(Item(kind, name, xml, str(path), path.name in autostart, active))
    return items, bad


def _virsh(uri: str, *args: str) -> str:
    proc = subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise OperationFailed(f"virsh -c {uri} {' '.join(args)} failed: {' '.join(detail[-2:])}")
    return proc.stdout


def read_uri(uri: str) -> list[Item]:
    """The definitions a libvirtd at ``uri`` holds, through virsh."""
    if shutil.which("virsh") is None:
        raise OperationFailed(
            "import-libvirt --uri needs virsh (Debian's libvirt-clients package) to talk to libvirtd; "
            "or read libvirt's files directly with --dir /etc/libvirt"
        )
    _virsh(uri, "uri")  # a clear error now if libvirtd does not answer
    verbs = {
        "domain": ("list", "dumpxml", ("--inactive", "--security-info")),
        "network": ("net-list", "net-dumpxml", ("--inactive",)),
        "pool": ("pool-list", "pool-dumpxml", ("--inactive",)),
    }
    items: list[Item] = []
    for kind in KINDS:
        lister, dumper, flags = verbs[kind]
        names = _virsh(uri, lister, "--all", "--name").split()
        active = set(_virsh(uri, lister, "--name").split())
        autostart = set(_virsh(uri, lister, "--all", "--autostart", "--name").split())
        for name in names:
            try:
                xml = _virsh(uri, dumper, *flags, name)
            except OperationFailed as err:
                if "unsupported flags" not in err.message:
                    raise
                xml = _virsh(uri, dumper, name)  # a driver without inactive/secure dumps (test:///)
            items.append(Item(kind, name, xml, f"{uri}: {name}", name in autostart, name in active))
    return items


# --- carrying them over ---------------------------------------------------------------------------


def _reason(err: BaseException) -> str:
    return err.message if isinstance(err, PyvirtError) else str(err)


def _check(item: Item) -> None:
    """pyvirt's parser and validator on the XML, as define would run them (``--dry-run``)."""
    if item.kind == "domain":
        from pyvirt.conf.domain_xml import parse_domain
        from pyvirt.conf.validate import validate_domain

        validate_domain(parse_domain(item.xml))
    elif item.kind == "network":
        from pyvirt.conf.network_xml import parse_network_xml

        parse_network_xml(item.xml)
    else:
        from pyvirt.conf.storage import parse_pool

        parse_pool(item.xml)


def _existing(conn: Connection) -> dict[str, set[str]]:
    return {
        "domain": {str(d["name"]) for d in conn.list_domains()},
        "network": {str(n["name"]) for n in conn.list_networks()},
        "pool": {str(p["name"]) for p in conn.list_pools()},
    }


def _define(conn: Connection, item: Item) -> None:
    if item.kind == "domain":
        handle = conn.define_xml(item.xml)
        if item.autostart:
            handle.set_autostart(True)
    elif item.kind == "network":
        net = conn.define_network(item.xml)
        if item.autostart:
            net.set_autostart(True)
    else:
        pool = conn.define_pool(item.xml)
        if item.autostart:
            pool.set_autostart(True)


_RUNNING = {
    "domain": "running under libvirt: left to it, not started (shut it down there, then pyvirt start {name})",
    "network": "active under libvirt: not started while libvirt holds its bridge (later: net-start {name})",
    "pool": "active under libvirt: not started (pyvirt pool-start {name} when libvirt lets it go)",
}


def carry_over(conn: Connection, items: list[Item], *, dry_run: bool) -> list[Outcome]:
    """Define each item in pyvirt (or, ``dry_run``, check it); one outcome per item."""
    existing = _existing(conn)
    out: list[Outcome] = []
    for kind in KINDS:
        for item in (i for i in items if i.kind == kind):
            if item.name in existing[kind]:
                why = "pyvirt has one of that name already: left as it is"
                out.append(Outcome(kind, item.name, "skipped", why))
                continue
            notes = []
            if item.autostart:
                notes.append("autostart")
            if item.active:
                notes.append(_RUNNING[kind].format(name=item.name))
            try:
                _check(item) if dry_run else _define(conn, item)
            except PyvirtError as err:
                out.append(Outcome(kind, item.name, "failed", f"not imported: {_reason(err)}"))
                continue
            existing[kind].add(item.name)
            out.append(Outcome(kind, item.name, "would-import" if dry_run else "imported", "; ".join(notes)))
    return out


# --- the command ---------------------------------------------------------------------------------


def _run(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.cli.toolargs import tool_parser
    from pyvirt.client.api import Connection

    ns = tool_parser("import-libvirt", {"connect": opts.uri, "json": opts.json}).parse_args(argv)
    if ns.uri and ns.dir:
        raise InvalidArgument("--uri and --dir are mutually exclusive")
    bad: list[Outcome] = []
    if ns.uri:
        items = read_uri(ns.uri)
        source = ns.uri
    else:
        folder = Path(ns.dir or "/etc/libvirt")
        items, bad = read_dir(folder)
        source = str(folder)
    with Connection.open(ns.connect) as conn:
        outcomes = bad + carry_over(conn, items, dry_run=ns.dry_run)
    outcomes.sort(key=lambda o: (KINDS.index(o.kind), o.name))
    if ns.json:
        report = {"source": source, "dry_run": ns.dry_run, "objects": [asdict(o) for o in outcomes]}
        print(json.dumps(report, indent=1))
    else:
        _print(outcomes, source, ns.dry_run)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _print(outcomes: list[Outcome], source: str, dry_run: bool) -> None:
    from pyvirt.cli.output import table

    rows = [[o.kind, o.name, o.status, o.detail or "-"] for o in outcomes]
    sys.stdout.write(table(["Kind", "Name", "Result", "Detail"], rows))
    statuses = ("imported", "would-import", "skipped", "failed")
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in statuses}
    verb = "would be imported" if dry_run else "imported"
    done = counts["would-import"] if dry_run else counts["imported"]
    print(
        f"\n{done} {verb} from {source}, {counts['skipped']} skipped, {counts['failed']} not importable"
        + (" (dry run: nothing was defined)" if dry_run else "")
    )


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt import-libvirt [--uri URI | --dir DIR] [--dry-run] [--json]``."""
    from pyvirt.cli.template import _guarded

    return _guarded(_run, opts, argv)
