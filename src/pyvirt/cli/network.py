"""Network verbs (``net-*``, ``domifaddr``), with virsh 9.0's output and messages."""

from __future__ import annotations

from pyvirt.cli.args import filter_by_flags
from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.output import emit, emit_json, fields, message, table
from pyvirt.client.transport import quote
from pyvirt.errors import NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection


def _path(name: str) -> str:
    return f"/v1/networks/{quote(name, safe='')}"


def _get(conn: Connection, name: str) -> dict[str, Any]:
    try:
        return dict(conn.call("GET", _path(name)))
    except NotFound as err:
        raise PyvirtError(f"failed to get network '{name}'\nerror: {err}") from err


def cmd_net_list(opts: GlobalOptions, a: Parsed) -> int:
    nets = filter_by_flags(sorted(opts.connect().call("GET", "/v1/networks"), key=lambda n: n["name"]), a)
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
    info = _get(opts.connect(), a.text("network"))
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
    status = _guard(
        f"Failed to {what} network from {path}",
        lambda: conn.call("POST", "/v1/networks", {"xml": _read_file(path), "start": start}),
    )
    message(f"Network {status['name']} {'created' if start else 'defined'} from {path}")
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
    method: str,
    action: str,
    body: dict[str, Any] | None = None,
) -> int:
    conn = opts.connect()
    name = _get(conn, a.text("network"))["name"]
    if verb == "net-autostart" and a.flag("disable"):
        body = {"enabled": False}
        failure, success = (
            "Failed to unmark network {name} as autostarted",
            "Network {name} unmarked as autostarted",
        )
    path = _path(name) + (f"/{action}" if action else "")
    _guard(failure.format(name=name), lambda: conn.call(method, path, body if method == "POST" else None))
    message(success.format(name=name))
    return 0


def cmd_net_start(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-start",
        "Failed to start network {name}",
        "Network {name} started",
        "POST",
        "start",
        {},
    )


def cmd_net_destroy(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-destroy",
        "Failed to destroy network {name}",
        "Network {name} destroyed",
        "POST",
        "destroy",
        {},
    )


def cmd_net_undefine(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-undefine",
        "Failed to undefine network {name}",
        "Network {name} has been undefined",
        "DELETE",
        "",
    )


def cmd_net_autostart(opts: GlobalOptions, a: Parsed) -> int:
    return _net_action(
        opts,
        a,
        "net-autostart",
        "Failed to mark network {name} as autostarted",
        "Network {name} marked as autostarted",
        "POST",
        "autostart",
        {"enabled": True},
    )


def cmd_net_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    name = _get(conn, a.text("network"))["name"]
    emit(conn.call("GET", _path(name) + ("/xml?inactive=1" if a.flag("inactive") else "/xml"))["xml"])
    return 0


def cmd_net_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    conn = opts.connect()
    name = _get(conn, a.text("network"))["name"]
    original = conn.call("GET", _path(name) + "/xml?inactive=1")["xml"]
    return edit_xml(original, f"Network {name}", lambda xml: conn.call("POST", "/v1/networks", {"xml": xml}))


def cmd_net_uuid(opts: GlobalOptions, a: Parsed) -> int:
    emit(_get(opts.connect(), a.text("network"))["uuid"] + "\n\n")
    return 0


def cmd_net_name(opts: GlobalOptions, a: Parsed) -> int:
    emit(_get(opts.connect(), a.text("network"))["name"] + "\n\n")
    return 0


def cmd_net_dhcp_leases(opts: GlobalOptions, a: Parsed) -> int:
    import time

    conn = opts.connect()
    name = _get(conn, a.text("network"))["name"]
    mac = a.opt("mac")
    leases = conn.call("GET", _path(name) + "/leases" + (f"?mac={quote(mac)}" if mac else ""))
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
    addrs = conn.call("GET", f"/v1/domains/{quote(dom.key, safe='')}/ifaddr")
    if a.opt("interface"):
        addrs = [x for x in addrs if x["name"] == a.opt("interface") or x["mac"] == a.opt("interface")]
    if opts.json or a.flag("json"):
        emit_json(addrs)
        return 0
    out = f" {'Name':<10} {'MAC address':<17}    {'Protocol':<12} Address\n" + "-" * 79 + "\n"
    for row in addrs:
        out += f" {row['name'] or '-':<10} {row['mac']:<17}    {row['protocol']:<12} {row['address']}\n"
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
