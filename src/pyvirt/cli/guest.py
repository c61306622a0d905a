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
from typing import Any, NoReturn

from pyvirt.errors import InvalidArgument, InvalidState, PyvirtError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidArgument(f"{message} (see {self.prog} --help)")


class _Ordered(argparse.Action):
    """Append (option, value) to the shared ``steps`` list, so options apply in the order given."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        ns.steps.append((self.dest, values))


def _add_disk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-a", "--add", dest="disks", action="append", default=[], metavar="DISK", help="disk image"
    )
    p.add_argument("-d", "--domain", help="a domain's disks")
    p.add_argument("-c", "--connect", metavar="URI", help="connection URI for -d")
    p.add_argument("--format", help="format of the following -a disks (default: detected)")
    p.add_argument("-v", "--verbose", action="store_true", help="libguestfs debug output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def _add_customize_options(p: argparse.ArgumentParser) -> None:
    p.set_defaults(steps=[])
    add = p.add_argument
    add("--hostname", action=_Ordered, metavar="HOSTNAME", help="set the hostname")
    add(
        "--root-password",
        action=_Ordered,
        metavar="SELECTOR",
        help="password:PW | file:FILE | random | disabled",
    )
    add(
        "--ssh-inject",
        action=_Ordered,
        metavar="USER[:SELECTOR]",
        help="USER:file:KEYFILE or USER:string:KEY",
    )
    add("--write", action=_Ordered, metavar="FILE:CONTENT", help="write a file")
    add("--append-line", action=_Ordered, metavar="FILE:LINE", help="append a line to a file")
    add("--delete", action=_Ordered, metavar="PATH", help="delete a file or directory (wildcards allowed)")
    add("--run-command", action=_Ordered, metavar="CMD", help="run a shell command in the guest")
    add("--install", action=_Ordered, metavar="PKG,PKG..", help="install packages (needs --network)")
    add("--network", dest="network", action="store_true", default=None, help="give the appliance network")
    add("--no-network", dest="network", action="store_false", help="no network (default unless --install)")


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
        from pyvirt.guest.domains import domain_is_running, resolve_domain_disks

        running = domain_is_running(ns.domain, ns.connect)
        if running and not allow_running:
            raise InvalidState(
                f"domain {ns.domain} is running: its disks must not be modified while it runs; "
                f"shut it down first (pyvirt shutdown {ns.domain})"
            )
        return [
            Disk(path, fmt, readonly=running) for path, fmt in resolve_domain_disks(ns.domain, ns.connect)
        ], running
    if not ns.disks:
        raise InvalidArgument("no disk given: use -a DISK or -d DOMAIN")
    return [Disk(path, ns.format) for path in ns.disks], False


def _run(func: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return func(argv)
    except PyvirtError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1


def _report(session: Any, as_json: bool, dry_run: bool) -> None:
    for note in session.notes:
        print(note)
    if as_json:
        print(json.dumps({"dry_run": dry_run, "changes": session.changes, "notes": session.notes}, indent=1))
    elif dry_run:
        for change in session.changes:
            print(f"would {change}")


def _sysprep(argv: list[str]) -> int:
    from pyvirt.guest import sysprep as sp

    p = _Parser(
        prog="pyvirt sysprep", description="Reset a guest so that clones of it are distinct machines."
    )
    _add_disk_options(p)
    _add_customize_options(p)
    p.add_argument("--operations", "--operation", "--enable", action="append", default=[], metavar="OPS")
    p.add_argument("--list-operations", action="store_true")
    p.add_argument(
        "-n", "--dry-run", "--dryrun", action="store_true", help="change nothing, say what would change"
    )
    p.add_argument("--json", action="store_true", help="report the changes as JSON")
    ns = p.parse_args(argv)
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


def _customize(argv: list[str]) -> int:
    from pyvirt.guest.customize import customize

    p = _Parser(prog="pyvirt customize", description="Customize a guest disk offline.")
    _add_disk_options(p)
    _add_customize_options(p)
    p.add_argument("--prepare-template", action=_Ordered, nargs=0, help="prepare the guest as a template")
    p.add_argument("-n", "--dry-run", "--dryrun", action="store_true")
    p.add_argument("--json", action="store_true")
    ns = p.parse_args(argv)
    steps = _steps(ns.steps)
    if not steps:
        raise InvalidArgument("nothing to do: give at least one customization (see pyvirt customize --help)")
    disks, _ = _disks(ns, allow_running=False)
    session = customize(
        disks, steps, network=ns.network, dry_run=ns.dry_run, quiet=ns.quiet or ns.json, verbose=ns.verbose
    )
    _report(session, ns.json, ns.dry_run)
    return 0


def _mount(argv: list[str]) -> int:
    from pyvirt.guest.mount import mount, parse_fs_mount

    p = _Parser(prog="pyvirt mount", description="Mount a guest's file systems on a host directory (FUSE).")
    _add_disk_options(p)
    p.add_argument(
        "-i", "--inspector", action="store_true", help="mount the guest's file systems as it would"
    )
    p.add_argument(
        "-m", "--mount", action="append", default=[], metavar="DEV[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]"
    )
    p.add_argument("-r", "--ro", action="store_true", help="read-only")
    p.add_argument("-o", "--option", action="append", default=[], metavar="FUSEOPT", help="FUSE option")
    p.add_argument("--pid-file", metavar="FILE", help="write the server's pid here")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    ns = p.parse_args(argv)
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


def _umount(argv: list[str]) -> int:
    from pyvirt.guest.mount import umount

    p = _Parser(
        prog="pyvirt umount", description="Unmount a guest mount and wait for its disk to be written."
    )
    p.add_argument("--retry", type=int, default=5, metavar="N", help="retries while the mount is busy")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    ns = p.parse_args(argv)
    umount(ns.mountpoint, retries=max(0, ns.retry))
    return 0


def sysprep_main(argv: list[str]) -> int:
    """``pyvirt sysprep -d DOMAIN | -a DISK [--operations OP,...] [--list-operations] ...``."""
    return _run(_sysprep, argv)


def customize_main(argv: list[str]) -> int:
    """``pyvirt customize -d DOMAIN | -a DISK [--hostname H] ... [--prepare-template]``."""
    return _run(_customize, argv)


def mount_main(argv: list[str]) -> int:
    """``pyvirt mount -a DISK | -d DOMAIN (-i | -m DEV[:MOUNTPOINT]) [--ro] MOUNTPOINT``."""
    return _run(_mount, argv)


def umount_main(argv: list[str]) -> int:
    """``pyvirt umount MOUNTPOINT``."""
    return _run(_umount, argv)


_MAINS = {"sysprep": sysprep_main, "customize": customize_main, "mount": mount_main, "umount": umount_main}


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in _MAINS:
        sys.stderr.write(f"usage: python -m pyvirt.cli.guest {{{'|'.join(_MAINS)}}} ...\n")
        sys.exit(1)
    sys.exit(_MAINS[sys.argv[1]](sys.argv[2:]))
