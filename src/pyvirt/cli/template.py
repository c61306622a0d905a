"""``pyvirt template build|import|list|delete`` and ``pyvirt clone``.

Each takes the arguments after its verb and returns the exit status; errors are one line on stderr
(``error: ...``) and status 1. Sizes are virsh's scaled integers (``10G``, ``512M``, ``1000KB``); a bare
``--memory`` number is MiB, as in virt-install.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pyvirt.errors import InvalidArgument, PyvirtError

if TYPE_CHECKING:
    from pyvirt.client.api import Connection


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidArgument(f"{message} (see {self.prog} --help)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--connect", metavar="URI", help="connection URI (a local one)")
    p.add_argument(
        "--pool", default="default", help="the pool holding templates and clones (default: default)"
    )


def _connect(ns: argparse.Namespace) -> Connection:
    from pyvirt.client.api import Connection

    return Connection.open(ns.connect)


def _size(text: str, what: str) -> int:
    from pyvirt.conf.units import parse_scaled

    return parse_scaled(text, what=what)


def _memory(text: str) -> int:
    return int(text) << 20 if text.strip().isdigit() else _size(text, "--memory")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _human(n: int) -> str:
    from pyvirt.image.sizes import size_to_str

    return size_to_str(n)


def _template(argv: list[str]) -> int:
    from pyvirt.guest import template as t

    p = _Parser(prog="pyvirt template", description="Read-only golden images to clone VMs from.")
    sub = p.add_subparsers(dest="verb", metavar="{build,import,list,delete}", parser_class=_Parser)
    b = sub.add_parser("build", help="build a template from a distribution's packages")
    b.add_argument("--os", required=True, metavar="OS", help="the OS to build: debian-12")
    b.add_argument("--size", default="10G", help="the disk's virtual size (default: 10G)")
    b.add_argument("--cache-dir", type=Path, help="where debootstrap trees are cached")
    b.add_argument("-q", "--quiet", action="store_true")
    b.add_argument("-v", "--verbose", action="store_true", help="libguestfs debug output")
    b.add_argument("--json", action="store_true")
    b.add_argument("name", metavar="NAME")
    i = sub.add_parser("import", help="make an existing image file a template")
    i.add_argument("--os", dest="os_name", metavar="OS", help="what the image holds, for template list")
    i.add_argument("-q", "--quiet", action="store_true")
    i.add_argument("--json", action="store_true")
    i.add_argument("file", metavar="FILE")
    i.add_argument("name", metavar="NAME")
    ls = sub.add_parser("list", help="list the templates")
    ls.add_argument("--json", action="store_true")
    d = sub.add_parser("delete", help="delete a template no clone depends on")
    d.add_argument("name", metavar="NAME")
    for parser in (b, i, ls, d):
        _common(parser)
    ns = p.parse_args(argv)
    if ns.verb is None:
        p.print_help()
        return 0
    with _connect(ns) as conn:
        if ns.verb == "build":
            tmpl = t.build(
                conn,
                ns.name,
                ns.os,
                size=_size(ns.size, "--size"),
                pool=ns.pool,
                cache_dir=ns.cache_dir,
                quiet=ns.quiet or ns.json,
                verbose=ns.verbose,
            )
            _done(tmpl, ns.json, f"Template {tmpl.name} built: {tmpl.path}")
        elif ns.verb == "import":
            tmpl = t.import_image(
                conn, ns.file, ns.name, pool=ns.pool, os_name=ns.os_name, say=None if ns.quiet else _say
            )
            _done(tmpl, ns.json, f"Template {tmpl.name} imported: {tmpl.path}")
        elif ns.verb == "list":
            templates = t.list_templates(conn, pool=ns.pool)
            if ns.json:
                print(json.dumps([x.to_json() for x in templates], indent=1))
            else:
                from pyvirt.cli.output import table

                rows = [[x.name, x.os, _human(x.virtual_size), x.created, x.volume] for x in templates]
                sys.stdout.write(table(["Name", "OS", "Size", "Created", "Volume"], rows))
        else:
            t.delete(conn, ns.name, pool=ns.pool)
            print(f"Template {ns.name} deleted")
    return 0


def _done(tmpl: object, as_json: bool, text: str) -> None:
    from pyvirt.guest.template import Template

    assert isinstance(tmpl, Template)
    print(json.dumps(tmpl.to_json(), indent=1) if as_json else text)


def _clone(argv: list[str]) -> int:
    from pyvirt.guest.clone import DEFAULT_USER, CloneOptions, clone

    p = _Parser(
        prog="pyvirt clone",
        description="A new VM from a template (linked: qcow2 overlays) or a shut-off domain (full copies).",
    )
    _common(p)
    p.add_argument("--original", required=True, metavar="TEMPLATE|DOMAIN")
    p.add_argument("--name", required=True, metavar="NEW")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--linked", dest="linked", action="store_true", default=None, help="qcow2 overlays")
    kind.add_argument("--full", dest="linked", action="store_false", help="full copies of the disks")
    p.add_argument("--vcpus", type=int, metavar="N")
    p.add_argument("--memory", metavar="SIZE", help="e.g. 2G, 512M (a bare number is MiB; default 1G)")
    p.add_argument(
        "--disk-size", metavar="SIZE", help="grow the first disk to SIZE (the guest grows its root)"
    )
    p.add_argument(
        "--network", metavar="NET", help="a network's name, 'user' (QEMU user networking) or 'none'"
    )
    p.add_argument("--hostname", metavar="H", help="the guest's hostname (default: the new name)")
    p.add_argument("--ssh-key", action="append", default=[], metavar="FILE", help="public key(s) for --user")
    p.add_argument(
        "--user", default=DEFAULT_USER, help=f"the user cloud-init creates (default: {DEFAULT_USER})"
    )
    p.add_argument("--user-data", metavar="FILE", help="cloud-init user-data merged with pyvirt's")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(argv)
    keys: list[str] = []
    for path in ns.ssh_key:
        keys.extend(line.strip() for line in _read(path, "--ssh-key").splitlines() if line.strip())
    opts = CloneOptions(
        original=ns.original,
        name=ns.name,
        linked=ns.linked,
        vcpus=ns.vcpus,
        memory=_memory(ns.memory) if ns.memory else None,
        disk_size=_size(ns.disk_size, "--disk-size") if ns.disk_size else None,
        network=ns.network,
        hostname=ns.hostname,
        ssh_keys=tuple(keys),
        user=ns.user,
        user_data=_read(ns.user_data, "--user-data") if ns.user_data else None,
        pool=ns.pool,
    )
    with _connect(ns) as conn:
        result = clone(conn, opts, say=None if ns.quiet or ns.json else _say)
    if ns.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        how = "linked" if result.linked else "full"
        origin = f"{result.kind} {result.original}"
        print(f"Domain {result.name} cloned from {origin} ({how}, {result.seconds:.2f} s)")
    return 0


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as err:
        raise InvalidArgument(f"{option}: cannot read {path}: {err.strerror}") from err


def _guarded(func: object, argv: list[str]) -> int:
    assert callable(func)
    try:
        return int(func(argv))
    except PyvirtError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1


def main(argv: list[str]) -> int:
    """``pyvirt template build|import|list|delete ...``."""
    return _guarded(_template, argv)


def clone_main(argv: list[str]) -> int:
    """``pyvirt clone --original TEMPLATE|DOMAIN --name NEW ...``."""
    return _guarded(_clone, argv)
