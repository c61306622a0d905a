"""Network verbs (``net-*``, ``domifaddr``), with virsh 9.0's output and messages."""

from __future__ import annotations

from pyvirt.cli.args import filter_by_flags
from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.output import emit, emit_json, fields, message, table
from pyvirt.errors import NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection, Network


def _get(conn: Connection, name: str) -> Network:
    try:
        return conn.network(name)
    except NotFound as err:
        raise PyvirtError(f"failed to get network '{name}'\nerror: {err}") from err


def cmd_net_list(opts: GlobalOptions, a: Parsed) -> int:
    every: list[Any] = sorted(opts.connect().list_networks(), key=lambda n: n["name"])
    nets = filter_by_flags(every, a)
    if opts.json or a.flag("json"):
        emit_json(nets)
        return 0
    if a.flag("name") or a.flag("uuid"):
        emit("".join(f"{n['uuid' if a.flag('uuid') else 'name']}\n" for n in nets) + "\n")
        return 0
    rows = [
        [
            n["name"],
            "active" if n["active"] else "inactive",
            "yes" if n["autostart"] else "no",
            "yes" if n["persistent"] else "no",
        ]
        for n in nets
    ]
    emit(table(["Name", "State", "Autostart", "Persistent"], rows) + "\n")
    return 0


def cmd_net_info(opts: GlobalOptions, a: Parsed) -> int:
    info = _get(opts.connect(), a.text("network")).info(cached=True)
    if opts.json or a.flag("json"):
        emit_json(info)
        return 0
    pairs: list[tuple[str, Any]] = [
        ("Name:", info["name"]),
        ("UUID:", info["uuid"]),
        ("Active:", "yes" if info["active"] else "no"),
        ("Persistent:", "yes" if info["persistent"] else "no"),
        ("Autostart:", "yes" if info["autostart"] else "no"),
    ]
    if info.get("bridge"):
        pairs.append(("Bridge:", info["bridge"]))
    emit(fields(pairs) + "\n")
    return 0


def _define(opts: GlobalOptions, a: Parsed, start: bool) -> int:
    path = a.text("file")
    conn = opts.connect()
    what = "create" if start else "define"
    define = conn.create_network if start else conn.define_network
    net = _guard(f"Failed to {what} network from {path}", lambda: define(_read_file(path)))
    message(f"Network {net.name} {'created' if start else 'defined'} from {path}")
    return 0


def cmd_net_define(opts: GlobalOptions, a: Parsed) -> int:
    return _define(opts, a, False)


def cmd_net_create(opts: GlobalOptions, a: Parsed) -> int:
    return _define(opts, a, True)


def _net_action(
    opts: GlobalOptions,
    a: Parsed,
    verb: str,
    failure: str,
    success: str,
    call: Callable[[Network, bool], object],
) -> int:
    """A verb on one network; ``call(network, disable)`` does it (``disable``: net-autostart's flag)."""
    net = _get(opts.connect(), a.text("network"))
    name = net.name
    disable = verb == "net-autostart" and a.flag("disable")
    if disable:
        failure, success = (
            "Failed to unmark network {name} as autostarted",
            "Network {name} unmarked as autostarted",
        )
    _guard(failure.format(name=name), lambda: call(net, disable))
    message(success.format(name=name))
    return 0


def cmd_net_start(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-start",
        "Failed to start network {name}",
        "Network {name} started",
        lambda net, _: net.start(),
    )


def cmd_net_destroy(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-destroy",
        "Failed to destroy network {name}",
        "Network {name} destroyed",
        lambda net, _: net.destroy(),
    )


def cmd_net_undefine(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-undefine",
        "Failed to undefine network {name}",
        "Network {name} has been undefined",
        lambda net, _: net.undefine(),
    )


def cmd_net_autostart(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-autostart",
        "Failed to mark network {name} as autostarted",
        "Network {name} marked as autostarted",
        lambda net, disable: net.set_autostart(not disable),
    )


def cmd_net_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    emit(_get(conn, a.text("network")).xml(inactive=a.flag("inactive")))
    return 0


def cmd_net_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    conn = opts.connect()
    net = _get(conn, a.text("network"))
    return edit_xml(net.xml(inactive=True), f"Network {net.name}", conn.define_network)


def cmd_net_uuid(opts: GlobalOptions, a: Parsed) -> int:
    emit(_get(opts.connect(), a.text("network")).info(cached=True)["uuid"] + "\n\n")
    return 0


def cmd_net_name(opts: GlobalOptions, a: Parsed) -> int:
    emit(_get(opts.connect(), a.text("network")).name + "\n\n")
    return 0


def cmd_net_dhcp_leases(opts: GlobalOptions, a: Parsed) -> int:
    import time

    conn = opts.connect()
    leases = _get(conn, a.text("network")).leases(a.opt("mac") or None)
    if opts.json or a.flag("json"):
        emit_json(leases)
        return 0
    rows = []
    for lease in sorted(leases, key=lambda item: (item["mac"] or "", item["ip"])):
        expiry = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease["expiry"])) if lease["expiry"] else "-"
        )
        rows.append(
            [
                expiry,
                lease["mac"] or "-",
                lease["protocol"],
                f"{lease['ip']}/{lease['prefix']}",
                lease["hostname"] or "-",
                lease["clientid"] or "-",
            ]
        )
    emit(
        table(["Expiry Time", "MAC address", "Protocol", "IP address", "Hostname", "Client ID or DUID"], rows)
        + "\n"
    )
    return 0


def cmd_domifaddr(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    addrs = _guard(
        "Failed to query for interfaces addresses", lambda: dom.interface_addresses(a.opt("source") or None)
    )
    if a.opt("interface"):
        addrs = [x for x in addrs if x["name"] == a.opt("interface") or x["mac"] == a.opt("interface")]
    if opts.json or a.flag("json"):
        emit_json(addrs)
        return 0
    out = f" {'Name':<10} {'MAC address':<17}    {'Protocol':<12} Address\n" + "-" * 79 + "\n"
    previous = None
    for row in addrs:
        # virsh names an interface on its first address only, unless --full
        same = not a.flag("full") and (row["name"], row["mac"]) == previous
        previous = (row["name"], row["mac"])
        name, mac = ("-", "-") if same else (row["name"] or "-", row["mac"])
        out += f" {name:<10} {mac:<17}    {row['protocol']:<12} {row['address']}\n"
    emit(out + "\n")
    return 0


def cmd_attach_interface(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.hotplug import attach_interface

    return attach_interface(opts, a)


def cmd_detach_interface(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.hotplug import detach_interface

    return detach_interface(opts, a)


def cmd_domif_setlink(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.hotplug import domif_setlink

    return domif_setlink(opts, a)
