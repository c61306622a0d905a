"""``pyvirt template build|import|list|delete`` and ``pyvirt clone``.

Each takes the arguments after its verb and returns the exit status; errors are one line on stderr
(``error: ...``) and status 1. Sizes are virsh's scaled integers (``10G``, ``512M``, ``1000KB``); a bare
``--memory`` number is MiB, as in virt-install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.errors import InvalidArgument, InvalidState, NotFound, PyvirtError

if TYPE_CHECKING:
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection
    from pyvirt.guest.template import Template, TemplateStore


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
        store = _store(conn, ns.pool)
        if ns.verb == "build":
            tmpl = t.build(
                store,
                ns.name,
                ns.os,
                size=_size(ns.size, "--size"),
                cache_dir=ns.cache_dir,
                quiet=ns.quiet or ns.json,
                verbose=ns.verbose,
            )
            _done(tmpl, ns.json, f"Template {tmpl.name} built: {tmpl.path}")
        elif ns.verb == "import":
            tmpl = t.import_image(
                store, ns.file, ns.name, os_name=ns.os, say=None if ns.quiet or ns.json else _say, warn=_say
            )
            _done(tmpl, ns.json, f"Template {tmpl.name} imported: {tmpl.path}")
        elif ns.verb == "list":
            templates = store.list()
            linked = _linked_domains(conn, templates)
            if ns.json:
                print(json.dumps([{**x.to_json(), "domains": linked[x.name]} for x in templates], indent=1))
            else:
                from pyvirt.cli.output import table

                rows = [
                    [x.name, x.os, _human(x.virtual_size), x.created, x.volume, ",".join(linked[x.name])]
                    for x in templates
                ]
                for row in rows:
                    row[-1] = row[-1] or "-"
                sys.stdout.write(table(["Name", "OS", "Size", "Created", "Volume", "Domains"], rows))
        else:
            _delete(conn, store, ns.name, ns.pool)
            print(f"Template {ns.name} deleted")
    return 0


def _store(conn: Connection, pool: str) -> TemplateStore:
    """The templates of ``pool``: made and read in the pool's folder, so on the daemon's host."""
    from pyvirt.guest.template import TemplateStore

    if not conn.uri.is_local:
        raise InvalidArgument("templates are built and read on the pool's host: use a local connection")
    info = conn.pool(pool).info(cached=True)
    if info.get("type") != "dir":
        raise InvalidArgument(f"pool {pool} is a {info.get('type')} pool: templates live in dir pools")
    if not info.get("active"):
        raise InvalidState(f"pool {pool} is not active: start it first (pyvirt pool-start {pool})")
    return TemplateStore(str(info["path"]))


def _disk_paths(conn: Connection, name: str) -> list[str]:
    """File paths of domain ``name``'s disks, volumes resolved through their pools (as the daemon says)."""
    from pyvirt.conf.domain_xml import parse_domain

    paths = []
    for disk in parse_domain(conn.domain(name).xml(inactive=True)).devices.disks:
        if disk.type == "volume" and disk.source_pool and disk.source_volume:
            with contextlib.suppress(NotFound):
                paths.append(conn.pool(disk.source_pool).volume(disk.source_volume).path())
        elif disk.source:
            paths.append(disk.source)
    return paths


def _linked_domains(conn: Connection, templates: list[Template]) -> dict[str, list[str]]:
    """The domains whose disks are overlays on each template (linked clones), by template name."""
    from pyvirt.storage.volumes import backing_chain

    owner = {os.path.realpath(path): x.name for x in templates for path in x.paths}
    found: dict[str, list[str]] = {x.name: [] for x in templates}
    if not templates:
        return found
    for dom in conn.list_domains():
        name = str(dom["name"])
        with contextlib.suppress(NotFound):
            for disk in _disk_paths(conn, name):
                for real in backing_chain(disk)[1:]:
                    if real in owner and name not in found[owner[real]]:
                        found[owner[real]].append(name)
    return found


def _dependents(conn: Connection, path: str) -> list[str]:
    """What still needs the template at ``path``: volumes of active pools and domain disks whose
    backing chain has it."""
    from pyvirt.storage.volumes import backing_chain

    target = os.path.realpath(path)
    found: list[str] = []
    seen: set[str] = {target}
    for pool in conn.list_pools():
        if not pool.get("active"):
            continue
        for vol in conn.pool(str(pool["name"])).list_volumes():
            real = os.path.realpath(str(vol["path"]))
            if real not in seen and target in backing_chain(str(vol["path"])):
                seen.add(real)
                found.append(f"volume {pool['name']}/{vol['name']}")
    for dom in conn.list_domains():
        name = str(dom["name"])
        with contextlib.suppress(NotFound):
            disks = _disk_paths(conn, name)
            found.extend(f"domain {name} (disk {disk})" for disk in disks if target in backing_chain(disk))
    return found


def _delete(conn: Connection, store: TemplateStore, name: str, pool: str) -> None:
    """Delete template ``name``; refused while a volume or a domain's disk is backed by it."""
    tmpl = store.get(name)
    users = [user for path in tmpl.paths for user in _dependents(conn, path)]
    if users:
        raise InvalidState(
            f"template {name} is in use: {', '.join(users)} depend on it; delete those clones first "
            "(pyvirt undefine --remove-all-storage DOMAIN) or make them independent (pyvirt clone --full)"
        )
    for path in reversed(tmpl.paths):
        conn.pool(pool).volume(os.path.basename(path)).delete()
    store.remove_sidecar(name)


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
