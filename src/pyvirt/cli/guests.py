"""``pyvirt-guests``: running guests shut down cleanly with the host, and started again at boot.

libvirt-guests' job, run by ``pyvirt-guests.service`` (``contrib/systemd``) with ``stop`` when the host
shuts down and ``start`` when it boots::

    pyvirt-guests stop [--timeout SECONDS] [-c URI] [--state-file PATH]
    pyvirt-guests start [-c URI] [--state-file PATH]

``stop`` writes the names of the running persistent domains to the state file (first, so that a host
that dies half-way still restarts them), sends each an ACPI shutdown, and waits up to ``--timeout``
seconds (default 300) for all of them to be shut off; a guest that ignored the request is then
destroyed, so the host does not wait on it. A transient domain cannot be started again: it is shut
down like the others but not recorded. ``start`` starts every domain the state file names that is
defined and not running, then removes the file. Exit status 1 when any guest could not be handled.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pyvirt.client.api import Connection
from pyvirt.errors import PyvirtError
from pyvirt.paths import default_mode, layout_for
from pyvirt.store import atomic_write

ACTIVE = ("running", "paused", "in shutdown", "pmsuspended")
DEFAULT_TIMEOUT = 300
POLL = 1.0


def default_state_file() -> Path:
    return layout_for(default_mode()).state_dir / "pyvirt-guests"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    sub.add_parser("start", help="start the guests recorded by the last stop")
    return parser


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def stop(conn: Connection, state_file: Path, timeout: int) -> int:
    domains = [d for d in conn.list_domains() if d["state"] in ACTIVE]
    recorded = [d["name"] for d in domains if d["persistent"]]
    atomic_write(state_file, "".join(f"{name}\n" for name in recorded).encode(), 0o600)
    if not domains:
        say("No running guests.")
        return 0
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


def start(conn: Connection, state_file: Path) -> int:
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
            conn.domain(name).start()
        except PyvirtError as err:
            say(f"Failed to start {name}: {err}")
            failed = True
            continue
        say(f"Domain {name} started")
    os.unlink(state_file)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state_file = args.state_file or default_state_file()
    try:
        with Connection.open(args.connect) as conn:
            if args.action == "stop":
                if args.timeout < 0:
                    raise ValueError("--timeout must not be negative")
                return stop(conn, state_file, args.timeout)
            return start(conn, state_file)
    except (PyvirtError, OSError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
