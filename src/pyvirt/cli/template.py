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
from typing import TYPE_CHECKING

from pyvirt.errors import InvalidArgument, PyvirtError

if TYPE_CHECKING:
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection


def _parser(command: str, opts: GlobalOptions, **defaults: object) -> argparse.ArgumentParser:
    """The command's parser (options declared in :mod:`pyvirt.cli.commands`), the global options
    as defaults (``-c``, ``--json``)."""
    from pyvirt.cli.toolargs import tool_parser

    defaults.update(connect=opts.uri, json=opts.json, pool="default")
    return tool_parser(command, defaults, dest={"COMMAND": "verb", "full": "linked"})


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


def _template(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest import template as t

    ns = _parser("template", opts, size="10G").parse_args(argv)
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
                conn, ns.file, ns.name, pool=ns.pool, os_name=ns.os, say=None if ns.quiet else _say
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


def _clone(global_opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest.clone import DEFAULT_USER

    ns = _parser("clone", global_opts, user=DEFAULT_USER).parse_args(argv)
    keys: list[str] = []
    for path in ns.ssh_key:
        keys.extend(line.strip() for line in _read(path, "--ssh-key").splitlines() if line.strip())
    with _connect(ns) as conn:
        result = conn.clone(
            ns.original,
            ns.name,
            linked=ns.linked,
            vcpus=ns.vcpus,
            memory=_memory(ns.memory) if ns.memory else None,
            disk_size=_size(ns.disk_size, "--disk-size") if ns.disk_size else None,
            network=ns.network,
            hostname=ns.hostname,
            ssh_keys=keys,
            user=ns.user,
            user_data=_read(ns.user_data, "--user-data") if ns.user_data else None,
            pool=ns.pool,
        )
    if ns.json:
        print(json.dumps(result, indent=1))
        return 0
    if not ns.quiet:
        for step in result["steps"]:
            _say(step)
    how = "linked" if result["linked"] else "full"
    origin = f"{result['kind']} {result['original']}"
    print(f"Domain {result['name']} cloned from {origin} ({how}, {result['seconds']:.2f} s)")
    return 0


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as err:
        raise InvalidArgument(f"{option}: cannot read {path}: {err.strerror}") from err


def _guarded(func: object, opts: GlobalOptions | None, argv: list[str]) -> int:
    """Run a command with the global options (none given: the defaults); errors are one line."""
    from pyvirt.cli.main import GlobalOptions

    assert callable(func)
    try:
        return int(func(opts or GlobalOptions(), argv))
    except PyvirtError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt template build|import|list|delete ...``."""
    return _guarded(_template, opts, argv)


def clone_main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt clone --original TEMPLATE|DOMAIN --name NEW ...``."""
    return _guarded(_clone, opts, argv)
