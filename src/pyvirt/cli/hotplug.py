"""attach-interface, detach-interface and domif-setlink, with virsh's options and messages."""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard
from pyvirt.cli.output import message
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

SCOPE = ["live", "config", "current", "persistent"]
# Interface types virsh 9.0's attach-interface makes no XML for (pyvirt's own addition, 'user', aside):
# an ethernet NIC is plugged with attach-device of its <interface type='ethernet'>.
NO_ATTACH_TYPES = ("ethernet", "server", "client", "mcast", "udp", "internal", "null", "vds")


def check_interface_type(kind: str) -> None:
    if kind in NO_ATTACH_TYPES:
        raise InvalidArgument(f"No support for {kind} in command 'attach-interface'")


def _scope(a: Parsed, active: bool) -> tuple[bool, bool]:
    """virsh's (live, config) from --live/--config/--current/--persistent; neither: the daemon's
    default (the running domain if it runs, else its definition)."""
    for one, other in (("persistent", "current"), ("current", "live"), ("current", "config")):
        if a.flag(one) and a.flag(other):
            raise InvalidArgument(f"Options --{one} and --{other} are mutually exclusive")
    live = a.flag("live") or (a.flag("persistent") and active)
    return live, a.flag("config") or a.flag("persistent")


def attach_interface(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    check_interface_type(a.text("type"))
    live, config = _scope(a, dom.info(cached=True)["id"] is not None)
    rates: dict[str, dict[str, int]] = {}
    if a.opt("inbound") is not None or a.opt("outbound") is not None:
        from pyvirt.cli.tuning import bandwidth_options

        rates = bandwidth_options(a)
    _guard(
        "Failed to attach interface",
        lambda: dom.attach_interface(
            a.text("type"),
            a.text("source"),
            mac=a.opt("mac") or None,
            model=a.opt("model") or None,
            target=a.opt("target") or None,
            inbound=rates.get("inbound"),  # type: ignore[arg-type]
            outbound=rates.get("outbound"),  # type: ignore[arg-type]
            live=live,
            config=config,
        ),
    )
    message("Interface attached successfully")
    return 0


def detach_interface(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    live, config = _scope(a, dom.info(cached=True)["id"] is not None)
    mac = a.opt("mac")
    if not mac:
        interfaces = dom.devices(inactive=config and not live)["interfaces"]
        devices = [i for i in interfaces if i["type"] == a.text("type")]
        if len(devices) != 1:
            raise InvalidArgument(
                "Failed to detach interface\nerror: Domain has several interfaces; use --mac"
            )
        mac = devices[0]["mac"]
    _guard(
        "Failed to detach interface",
        lambda: dom.detach_interface(str(mac), live=live, config=config),
    )
    message("Interface detached successfully")
    return 0


def domif_setlink(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    state = a.text("state")
    if state not in ("up", "down"):
        raise InvalidArgument(f"Failed to update interface link state\nerror: invalid link state '{state}'")
    _guard(
        "Failed to update interface link state",
        lambda: dom.set_link(a.text("interface"), state == "up", config=a.flag("config")),
    )
    message("Device updated successfully")
    return 0
