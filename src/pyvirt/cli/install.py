"""``pyvirt install``: virt-install 4.1's command line, sent to the daemon's ``domain.install`` action.

The CLI splits each option's ``KEY=VALUE,...`` (:mod:`pyvirt.install.syntax`) and reads the files
cloud-init's suboptions name (their contents travel, so a remote daemon gets them); the daemon reads
the meanings, refuses what it does not carry out, and does the work. ``--print-xml [N]`` and
``--dry-run`` make nothing. After the start, ``--autoconsole text`` (the default) attaches the serial
console; ``--wait [MINUTES]`` or ``--noautoconsole`` without a console follow the install until the
installed system runs (or, with ``--noreboot``, until the install phase ends).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.errors import InvalidArgument, PyvirtError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from pyvirt.cli.main import GlobalOptions

# Each suboption option's first key: the name a bare first value stands for.
FIRST_KEYS = {
    "memory": "memory",
    "vcpus": "vcpus",
    "cpu": "model",
    "os_variant": "name",
    "disk": "path",
    "location": "location",
    "boot": "",
    "network": "type",
    "graphics": "type",
    "video": "model",
    "console": "type",
    "serial": "type",
    "channel": "type",
    "rng": "type",
    "watchdog": "model",
    "controller": "type",
    "tpm": "type",
    "cloud_init": "",
    "check": "",
}
_SINGLE = ("memory", "vcpus", "cpu", "os_variant", "location", "boot", "cloud_init", "check")
_FILES = (
    "user-data",
    "meta-data",
    "network-config",
    "root-password-file",
    "root-ssh-key",
    "clouduser-ssh-key",
)
_OPTIONAL_VALUE = {"--print-xml": "all", "--wait": "-1"}


def _optional_values(argv: list[str]) -> list[str]:
    """virt-install's ``--print-xml [N]`` and ``--wait [MINUTES]``: the value only when it is a number."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _OPTIONAL_VALUE:
            following = argv[i + 1] if i + 1 < len(argv) else ""
            if following.lstrip("-").isdigit():
                out.append(f"{arg}={following}")
                i += 2
                continue
            out.append(f"{arg}={_OPTIONAL_VALUE[arg]}")
        else:
            out.append(arg)
        i += 1
    return out


def _read(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as err:
        raise InvalidArgument(f"{what}: cannot read {path}: {err.strerror}") from err


def request(ns: argparse.Namespace) -> dict[str, Any]:
    """The ``domain.install`` request of a parsed command line."""
    from pyvirt.install.syntax import split

    body: dict[str, Any] = {}
    for key, first in FIRST_KEYS.items():
        value = getattr(ns, key, None)
        if value is None or value == []:
            continue
        option = key.replace("_", "-")
        if key in _SINGLE:
            body[key] = split(option, value, first)
        else:
            body[key] = [split(option, item, first) for item in value]
    if "boot" in body:
        # --boot hd,cdrom: each device word is a flag; the order given is the boot order
        body["boot"] = dict(body["boot"])
    for key in ("name", "machine", "arch", "virt_type", "cdrom", "extra_args"):
        if getattr(ns, key, None):
            body[key] = getattr(ns, key)
    if ns.initrd_inject:
        body["initrd_inject"] = list(ns.initrd_inject)
    for flag, field in (("import_", "import_install"), ("noreboot", "noreboot"), ("transient", "transient")):
        if getattr(ns, flag, False):
            body[field] = True
    if ns.autostart:
        body["autostart"] = True
    if "cloud_init" in body:
        ci = body["cloud_init"]
        for key in _FILES:
            if key in ci:
                ci[key] = _read(ci[key], f"--cloud-init {key}")
    if ns.print_xml is not None or ns.dry_run:
        body["dry_run"] = True
    return body


def _install(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.cli.toolargs import tool_parser
    from pyvirt.client.api import Connection

    ns = tool_parser(
        "install", {"connect": opts.uri}, dest={"import": "import_", "osinfo": "os_variant"}
    ).parse_args(_optional_values(argv))
    body = request(ns)
    step: int | None = None
    if ns.print_xml not in (None, "all"):
        if not ns.print_xml.isdigit() or int(ns.print_xml) < 1:
            raise InvalidArgument(f"--print-xml {ns.print_xml}: a step number (1, 2) or nothing")
        step = int(ns.print_xml)
    autoconsole = "none" if ns.noautoconsole else (ns.autoconsole or "text")
    if autoconsole not in ("text", "graphical", "none"):
        raise InvalidArgument(f"--autoconsole {autoconsole}: text, graphical or none")
    if autoconsole == "graphical":
        raise InvalidArgument("--autoconsole graphical: pyvirt has no graphical viewer; use text or none")
    wait_minutes: float | None = None
    if ns.wait is not None:
        try:
            wait_minutes = float(ns.wait)
        except ValueError:
            raise InvalidArgument(f"--wait {ns.wait}: minutes (a number; -1 waits for ever)") from None
    conn = Connection.open(ns.connect)
    try:
        result = conn.install(**body)
        if ns.print_xml is not None:
            documents = result["xml"]
            if step is not None:
                if step > len(documents):
                    raise InvalidArgument(f"--print-xml {step}: this install has {len(documents)} step(s)")
                documents = [documents[step - 1]]
            sys.stdout.write("".join(documents))
            return 0
        if opts.json or ns.json:
            print(json.dumps(result, indent=1))
            return 0
        quiet = bool(ns.quiet)

        def say(message: str) -> None:
            if not quiet:
                print(message, file=sys.stderr, flush=True)

        for note in result["notes"]:
            say(f"note: {note}")
        if result["dry_run"]:
            say("Dry run completed successfully")
            return 0
        if "root_password" in result:
            print(f"Generated password for first root login: {result['root_password']}")
        say(f"Domain '{result['name']}' ({result['os']}) is being installed")
        if autoconsole == "text" and result["started"]:
            from pyvirt.cli.console import attach

            attach(conn, result["name"])
        elif wait_minutes is not None:
            _wait(
                conn, result["name"], wait_minutes, phases=len(result["xml"]), noreboot=ns.noreboot, say=say
            )
        return 0
    finally:
        conn.close()


def _wait(
    conn: Any, name: str, minutes: float, *, phases: int, noreboot: bool, say: Callable[[str], None]
) -> None:
    """Follow the install: the install phase ends (the domain stops), then the daemon starts the
    installed system; with ``noreboot`` or a one-phase install, the first stop ends the wait."""
    deadline = None if minutes < 0 else time.monotonic() + minutes * 60
    dom = conn.domain(name)
    seen_stop = False
    while deadline is None or time.monotonic() < deadline:
        state = dom.info()["state"]
        if state == "shut off":
            if phases == 1 or noreboot:
                say(f"Domain '{name}' has shut off: the install is complete")
                return
            seen_stop = True
        elif state == "running" and seen_stop:
            say(f"Domain '{name}': the install is complete, the installed system is running")
            return
        time.sleep(0.5)
    say(f"Domain '{name}': the install is still in progress after {minutes:g} minutes")


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt install OPTIONS``."""
    from pyvirt.cli.main import GlobalOptions

    try:
        return _install(opts or GlobalOptions(), argv)
    except PyvirtError as err:
        sys.stderr.write(f"error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1
