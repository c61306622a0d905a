"""``pyvirt sysprep | customize | mount | umount``: virt-sysprep, virt-customize, guestmount, guestunmount.

Each ``*_main(argv)`` takes the arguments after the verb and returns the exit status; errors are one
line on stderr (``error: ...``) and status 1. Customization options keep their command-line order,
as in virt-customize. ``python -m pyvirt.cli.guest VERB ...`` runs one directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pyvirt.errors import InvalidArgument, InvalidState, PyvirtError

if TYPE_CHECKING:
    from pyvirt.cli.main import GlobalOptions


def _steps(pairs: Sequence[tuple[str, str]]) -> list[Any]:
    from pyvirt.guest import customize as c
    from pyvirt.guest.passwords import parse_password_selector

    steps: list[Any] = []
    for option, value in pairs:
        if option == "hostname":
            steps.append(c.Hostname(c.validate_hostname(value)))
        elif option == "root_password":
            steps.append(c.UserPassword("root", parse_password_selector(value)))
        elif option == "ssh_inject":
            steps.append(c.parse_ssh_inject(value))
        elif option == "write":
            steps.append(c.Write(*c.split_pair("--write", value, "FILE:CONTENT")))
        elif option == "append_line":
            steps.append(c.AppendLine(*c.split_pair("--append-line", value, "FILE:LINE")))
        elif option == "delete":
            steps.append(c.Delete(value))
        elif option == "run_command":
            steps.append(c.RunCommand(value))
        elif option == "install":
            packages = tuple(p for p in value.split(",") if p)
            if not packages:
                raise InvalidArgument("--install needs at least one package name")
            steps.append(c.Install(packages))
        elif option == "prepare_template":
            steps.append(c.PrepareTemplate())
    return steps


def _disks(ns: argparse.Namespace, *, allow_running: bool) -> tuple[list[Any], bool]:
    """The disks to work on and whether they belong to a running domain (then opened read-only)."""
    from pyvirt.guest.appliance import Disk

    if ns.domain and ns.disks:
        raise InvalidArgument("give either -a DISK or -d DOMAIN, not both")
    if ns.domain:
        return _domain_disks(ns.domain, ns.connect, allow_running=allow_running)
    if not ns.disks:
        raise InvalidArgument("no disk given: use -a DISK or -d DOMAIN")
    return [Disk(path, ns.format) for path in ns.disks], False


def _domain_disks(name: str, uri: str | None, *, allow_running: bool) -> tuple[list[Any], bool]:
    """Domain ``name``'s disks and whether it runs, asked of the daemon: file, block and volume disks
    (a volume's path and format from its pool), CD-ROMs and floppies left out."""
    from pyvirt.client.api import Connection
    from pyvirt.conf.domain_xml import parse_domain
    from pyvirt.guest.appliance import Disk
    from pyvirt.uri import default_uri, parse_uri

    target = parse_uri(uri or default_uri())
    if not target.is_local:
        raise InvalidArgument(
            f"-d {name}: the guest tools open a domain's disks on this host, and {target.canonical()} "
            "is another one: run the tool there, or give its disks with -a"
        )
    with Connection.open(uri) as conn:
        handle = conn.domain(name)
        running = handle.info(cached=True).get("id") is not None
        if running and not allow_running:
            raise InvalidState(
                f"domain {name} is running: its disks must not be modified while it runs; "
                f"shut it down first (pyvirt shutdown {name})"
            )
        dom = parse_domain(handle.xml(inactive=not running), live=running)
        disks = []
        for disk in dom.devices.disks:
            if disk.device not in ("disk", "lun"):
                continue
            if disk.type == "volume" and disk.source_pool and disk.source_volume:
                info = conn.pool(disk.source_pool).volume(disk.source_volume).info(cached=True)
                fmt = disk.driver_type or info.get("format")
                disks.append(Disk(str(info["path"]), fmt, readonly=running))
            elif disk.source:
                disks.append(Disk(disk.source, disk.driver_type, readonly=running))
    if not disks:
        raise InvalidArgument(f"domain {name} has no disks")
    return disks, running


def _parser(tool: str, opts: GlobalOptions, **defaults: object) -> argparse.ArgumentParser:
    """The tool's parser (options declared in :mod:`pyvirt.cli.commands`), the global options as
    defaults: ``-c`` for ``-d``, ``--json``, and ``-r`` (mount read-only)."""
    from pyvirt.cli.toolargs import tool_parser

    defaults.update(connect=opts.uri, json=opts.json, ro=opts.readonly)
    return tool_parser(tool, defaults, dest={"add": "disks"})


def _run(func: Callable[[GlobalOptions, list[str]], int], opts: GlobalOptions | None, argv: list[str]) -> int:
    """Run a tool with the global options (none given: the defaults); errors are one line."""
    from pyvirt.cli.main import GlobalOptions

    try:
        return func(opts or GlobalOptions(), argv)
    except PyvirtError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1


def _report(session: Any, as_json: bool, dry_run: bool) -> None:
    if as_json:  # the notes go inside: stdout is one JSON document
        print(json.dumps({"dry_run": dry_run, "changes": session.changes, "notes": session.notes}, indent=1))
        return
    for note in session.notes:
        print(note)
    if dry_run:
        for change in session.changes:
            print(f"would {change}")


def _sysprep(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest import sysprep as sp

    ns = _parser("sysprep", opts).parse_args(argv)
    if ns.list_operations:
        sys.stdout.write(sp.list_operations())
        return 0
    operations: set[str] | None = None
    for spec in ns.operations:
        operations = sp.parse_operations(spec, operations)
    steps = _steps(ns.steps)
    disks, _ = _disks(ns, allow_running=False)
    session = sp.sysprep(
        disks,
        operations=operations,
        steps=steps,
        dry_run=ns.dry_run,
        network=ns.network,
        quiet=ns.quiet or ns.json,
        verbose=ns.verbose,
    )
    _report(session, ns.json, ns.dry_run)
    return 0


def _customize(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest.customize import customize

    ns = _parser("customize", opts).parse_args(argv)
    steps = _steps(ns.steps)
    if not steps:
        raise InvalidArgument("nothing to do: give at least one customization (see pyvirt customize --help)")
    disks, _ = _disks(ns, allow_running=False)
    session = customize(
        disks, steps, network=ns.network, dry_run=ns.dry_run, quiet=ns.quiet or ns.json, verbose=ns.verbose
    )
    _report(session, ns.json, ns.dry_run)
    return 0


def _mount(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest.mount import mount, parse_fs_mount

    ns = _parser("mount", opts).parse_args(argv)
    disks, running = _disks(ns, allow_running=True)
    if running and not ns.quiet:
        sys.stderr.write(f"pyvirt mount: domain {ns.domain} is running: mounting read-only\n")
    mount(
        disks,
        ns.mountpoint,
        inspect_os=ns.inspector,
        mounts=[parse_fs_mount(m) for m in ns.mount],
        readonly=ns.ro or running,
        fuse_options=",".join(ns.option),
        pid_file=ns.pid_file,
    )
    return 0


def _umount(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.guest.mount import umount

    ns = _parser("umount", opts, retry=5).parse_args(argv)
    umount(ns.mountpoint, retries=max(0, ns.retry))
    return 0


def sysprep_main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt sysprep -d DOMAIN | -a DISK [--operations OP,...] [--list-operations] ...``."""
    return _run(_sysprep, opts, argv)


def customize_main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt customize -d DOMAIN | -a DISK [--hostname H] ... [--prepare-template]``."""
    return _run(_customize, opts, argv)


def mount_main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt mount -a DISK | -d DOMAIN (-i | -m DEV[:MOUNTPOINT]) [--ro] MOUNTPOINT``."""
    return _run(_mount, opts, argv)


def umount_main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt umount MOUNTPOINT``."""
    return _run(_umount, opts, argv)


_MAINS = {"sysprep": sysprep_main, "customize": customize_main, "mount": mount_main, "umount": umount_main}


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in _MAINS:
        sys.stderr.write(f"usage: python -m pyvirt.cli.guest {{{'|'.join(_MAINS)}}} ...\n")
        sys.exit(1)
    sys.exit(_MAINS[sys.argv[1]](sys.argv[2:]))
