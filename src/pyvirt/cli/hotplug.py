"""attach-interface, detach-interface and domif-setlink, with virsh's options and messages."""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard
from pyvirt.cli.output import message
from pyvirt.client.transport import quote

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

SCOPE = ["live", "config", "current", "persistent"]


def attach_interface(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    body = {
        "type": a.text("type"),
        "source": a.text("source"),
        "live": a.flag("live"),
        "config": a.flag("config") or a.flag("persistent"),
    }
    for key in ("mac", "model"):
        if a.opt(key):
            body[key] = a.opt(key)
    path = f"/v1/domains/{quote(dom.key, safe='')}/interfaces"
    _guard("Failed to attach interface", lambda: conn.call("POST", path, body))
    message("Interface attached successfully")
    return 0


def detach_interface(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    mac = a.opt("mac")
    if not mac:
        devices = [i for i in dom.devices()["interfaces"] if i["type"] == a.text("type")]
        if len(devices) != 1:
            from pyvirt.errors import InvalidArgument

            raise InvalidArgument(
                "Failed to detach interface\nerror: Domain has several interfaces; use --mac"
            )
        mac = devices[0]["mac"]
    query = "&".join(f"{k}=1" for k in ("live", "config") if a.flag(k))
    path = f"/v1/domains/{quote(dom.key, safe='')}/interfaces/{quote(str(mac), safe='')}"
    _guard("Failed to detach interface", lambda: conn.call("DELETE", path + (f"?{query}" if query else "")))
    message("Interface detached successfully")
    return 0


def domif_setlink(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    device = quote(a.text("interface"), safe="")
    path = f"/v1/domains/{quote(dom.key, safe='')}/interfaces/{device}/link"
    _guard(
        "Failed to update interface link state", lambda: conn.call("POST", path, {"state": a.text("state")})
    )
    message("Device updated successfully")
    return 0
