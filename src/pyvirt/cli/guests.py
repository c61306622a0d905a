"""``pyvirt-guests``: running guests shut down cleanly with the host, and started again at boot.

libvirt-guests' job, run by ``pyvirt-guests.service`` (``contrib/systemd``) with ``stop`` when the host
shuts down and ``start`` when it boots::

    pyvirt-guests stop [--on-shutdown shutdown|suspend] [--timeout SECONDS] [--bypass-cache]
                       [-c URI] [--state-file PATH]
    pyvirt-guests start [--bypass-cache] [-c URI] [--state-file PATH]

``stop`` writes the names of the running persistent domains to the state file (first, so that a host
that dies half-way still restarts them). With ``--on-shutdown suspend`` (libvirt-guests' ON_SHUTDOWN)
each persistent guest is saved where the next start resumes it (a managed save: its memory, its
processes, paused or running as it was); a guest that cannot be saved, and a transient one (nothing
could start it again), is shut down instead. With ``shutdown`` (the default) each gets an ACPI
shutdown, and ``stop`` waits up to ``--timeout`` seconds (default 300) for all of them to be shut off;
a guest that ignored the request is then destroyed, so the host does not wait on it. ``start`` starts
every domain the state file names that is defined and not running (resuming a saved one), then removes
the file. ``--bypass-cache`` keeps the save files out of the host's page cache. Exit status 1 when any
guest could not be handled.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pyvirt.api import types
from pyvirt.client.api import Connection
from pyvirt.errors import PyvirtError
from pyvirt.paths import default_mode, layout_for
from pyvirt.store import atomic_write

ACTIVE = ("running", "paused", "in shutdown", "pmsuspended")
DEFAULT_TIMEOUT = 300
ON_SHUTDOWN = ("shutdown", "suspend")
POLL = 1.0


def default_state_file() -> Path:
    return layout_for(default_mode()).state_dir / "pyvirt-guests"


def build_parser() -> argparse.ArgumentParser:
    from pyvirt.cli.toolargs import ToolParser

    parser = ToolParser(
        prog="pyvirt-guests",
        description="Shut running guests down with the host and start them again at boot.",
    )
    parser.add_argument("-c", "--connect", metavar="URI", help="the daemon (default: the default URI)")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="where the running guests are recorded (default: STATE_DIR/pyvirt-guests)",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    stop = sub.add_parser("stop", help="record the running guests, shut them down, wait for them")
    stop.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for the guests to shut down, then destroy them (default {DEFAULT_TIMEOUT})",
    )
    stop.add_argument(
        "--on-shutdown",
        choices=ON_SHUTDOWN,
        default="shutdown",
        help="shutdown: ACPI power button; suspend: a managed save the next start resumes (default shutdown)",
    )
    start = sub.add_parser("start", help="start the guests recorded by the last stop")
    for command in (stop, start):
        command.add_argument(
            "--bypass-cache",
            nargs="?",
            const="1",
            default="0",
            choices=("0", "1"),
            metavar="0|1",
            help="save or restore without the host's page cache (alone or =1; =0: with it, the default)",
        )
    return parser


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def stop(
    conn: Connection,
    state_file: Path,
    timeout: int,
    *,
    on_shutdown: str = "shutdown",
    bypass_cache: bool = False,
) -> int:
    domains = [d for d in conn.list_domains() if d["state"] in ACTIVE]
    recorded = [d["name"] for d in domains if d["persistent"]]
    atomic_write(state_file, "".join(f"{name}\n" for name in recorded).encode(), 0o600)
    if not domains:
        say("No running guests.")
        return 0
    if on_shutdown == "suspend":
        domains = [d for d in domains if not _saved(conn, d, bypass_cache)]
    failed = False
    waiting = set()
    for dom in domains:
        name = dom["name"]
        try:
            if dom["state"] == "paused":
                conn.domain(name).resume()  # a paused guest cannot act on the power button
            conn.domain(name).shutdown()
        except PyvirtError as err:
            say(f"Failed to shut down {name}: {err}")
            failed = True
            continue
        say(f"Shutting down {name}")
        waiting.add(name)
    deadline = time.monotonic() + timeout
    while waiting:
        states = {d["name"]: d["state"] for d in conn.list_domains()}
        for name in sorted(waiting):
            if states.get(name, "shut off") not in ACTIVE:
                say(f"Domain {name} has been shut down")
                waiting.discard(name)
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    for name in sorted(waiting):
        say(f"Timeout expired while shutting down {name}: destroying it")
        try:
            conn.domain(name).destroy()
        except PyvirtError as err:
            say(f"Failed to destroy {name}: {err}")
            failed = True
    return 1 if failed else 0


def _saved(conn: Connection, dom: types.DomainSummary, bypass_cache: bool) -> bool:
    """Save a persistent guest where its next start resumes it; False: it is to be shut down."""
    name = dom["name"]
    if not dom["persistent"]:
        say(f"Domain {name} is transient and cannot be saved: shutting it down")
        return False
    say(f"Saving {name}")
    try:
        conn.domain(name).managed_save(bypass_cache=bypass_cache)
    except PyvirtError as err:
        say(f"Failed to save {name}: {err}: shutting it down")
        return False
    say(f"Domain {name} has been saved")
    return True


def start(conn: Connection, state_file: Path, *, bypass_cache: bool = False) -> int:
    try:
        names = [line.strip() for line in state_file.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        say("No guests to start.")
        return 0
    known = {d["name"]: d for d in conn.list_domains()}
    failed = False
    for name in names:
        dom = known.get(name)
        if dom is None:
            say(f"Domain {name} is no longer defined: not started")
            continue
        if dom["state"] in ACTIVE:
            say(f"Domain {name} is already running")
            continue
        try:
            conn.domain(name).start(bypass_cache=bypass_cache)
        except PyvirtError as err:
            say(f"Failed to start {name}: {err}")
            failed = True
            continue
        say(f"Domain {name} {'restored' if dom['managed_save'] else 'started'}")
    os.unlink(state_file)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        state_file = args.state_file or default_state_file()
        bypass = args.bypass_cache == "1"
        with Connection.open(args.connect) as conn:
            if args.action == "stop":
                if args.timeout < 0:
                    raise ValueError("--timeout must not be negative")
                return stop(conn, state_file, args.timeout, on_shutdown=args.on_shutdown, bypass_cache=bypass)
            return start(conn, state_file, bypass_cache=bypass)
    except (PyvirtError, OSError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
