"""``pyvirt launch TEMPLATE NAME``: a running VM from a template in one command (``incus launch``).

The daemon does the clone, the cloud-init seed and the start in one action (``domain.launch``); this
module reads the options and files, then prints what was made. ``--wait-ip`` polls the guest's
address (its DHCP lease, else its guest agent: :mod:`pyvirt.client.addresses`) and prints it alone on
stdout, so that ``ip=$(pyvirt launch -q --wait-ip deb12 web01)`` works; ``--console`` attaches to the
serial console afterwards.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from pyvirt.errors import InvalidArgument

if TYPE_CHECKING:
    from pyvirt.cli.main import GlobalOptions

DEFAULT_TIMEOUT = 300


def _launch(opts: GlobalOptions, argv: list[str]) -> int:
    from pyvirt.cli.template import _connect, _memory, _read, _say, _size
    from pyvirt.cli.toolargs import tool_parser

    # No --user: left out of the request, the daemon's default applies (pyvirt.guest.clone, whose
    # import the CLI is spared).
    defaults = {"connect": opts.uri, "json": opts.json, "pool": "default"}
    ns = tool_parser("launch", defaults).parse_args(argv)
    if ns.password is not None and ns.password_file is not None:
        raise InvalidArgument("--password and --password-file are mutually exclusive")
    if ns.timeout is not None and not ns.wait_ip:
        raise InvalidArgument("--timeout is how long --wait-ip waits: give --wait-ip too")
    if ns.timeout is not None and ns.timeout <= 0:
        raise InvalidArgument("--timeout must be a positive number of seconds")
    if ns.console and ns.json:
        raise InvalidArgument("--console and --json are mutually exclusive")
    keys: list[str] = []
    for path in ns.ssh_key:
        keys.extend(line.strip() for line in _read(path, "--ssh-key").splitlines() if line.strip())
    password = ns.password
    if ns.password_file is not None:
        lines = _read(ns.password_file, "--password-file").splitlines()
        password = lines[0] if lines else ""
    if password is not None and not password:
        raise InvalidArgument("the password is empty")
    with _connect(ns) as conn:
        result = conn.launch(
            ns.template,
            ns.name,
            full=ns.full or None,
            vcpus=ns.vcpus,
            memory=_memory(ns.memory) if ns.memory else None,
            disk_size=_size(ns.disk_size, "--disk-size") if ns.disk_size else None,
            network=ns.network,
            hostname=ns.hostname,
            ssh_keys=keys,
            user=ns.user,
            password=password,
            user_data=_read(ns.user_data, "--user-data") if ns.user_data else None,
            pool=ns.pool,
        )
        if not ns.quiet and not ns.json:
            for step in result["steps"]:
                _say(step)
        how = "linked" if result["linked"] else "full"
        address = None
        if ns.wait_ip:
            from pyvirt.client.api import Domain

            if not ns.quiet and not ns.json:
                _say(f"Waiting for the address of {result['name']}")
            address = Domain(conn, result["name"]).wait_address(ns.timeout or DEFAULT_TIMEOUT)
        if ns.json:
            out = dict(result)
            if address is not None:
                out["address"] = address["address"].split("/", 1)[0]
            print(json.dumps(out, indent=1))
            return 0
        if address is not None:
            print(address["address"].split("/", 1)[0], flush=True)
        elif not ns.quiet:
            seconds = result["seconds"]
            print(f"Domain {result['name']} launched from {result['original']} ({how}, {seconds:.2f} s)")
        if ns.console:
            from pyvirt.cli.console import attach

            return attach(conn, result["name"])
    return 0


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """``pyvirt launch TEMPLATE NAME [options]``."""
    from pyvirt.cli.template import _guarded

    try:
        return _guarded(_launch, opts, argv)
    except TimeoutError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
