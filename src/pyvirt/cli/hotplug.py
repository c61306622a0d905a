"""attach-interface, detach-interface and domif-setlink, with virsh's options and messages."""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard
from pyvirt.cli.output import emit, message
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def _exclusive(a: Parsed) -> None:
    for one, other in (("persistent", "current"), ("current", "live"), ("current", "config")):
        if a.flag(one) and a.flag(other):
            raise InvalidArgument(f"Options --{one} and --{other} are mutually exclusive")


def _scope(a: Parsed, active: bool) -> tuple[bool, bool]:
    """virsh's (live, config) from --live/--config/--current/--persistent; neither: the daemon's
    default (the running domain if it runs, else its definition)."""
    _exclusive(a)
    live = a.flag("live") or (a.flag("persistent") and active)
    return live, a.flag("config") or a.flag("persistent")


def attach_interface(opts: GlobalOptions, a: Parsed) -> int:
    """virsh's attach-interface: its ``<interface>`` (:mod:`pyvirt.cli.interface_xml`) printed, or
    plugged by attach-device (the scope checked first, as virsh does)."""
    from pyvirt.cli.interface_xml import interface_xml

    _exclusive(a)
    xml = interface_xml(a)
    if a.flag("print_xml"):
        emit(xml + "\n")
        return 0
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    live, config = _scope(a, dom.info(cached=True)["id"] is not None)
    _guard("Failed to attach interface", lambda: dom.attach_device(xml, live=live, config=config))
    message("Interface attached successfully")
    return 0


def detach_interface(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    live, config = _scope(a, dom.info(cached=True)["id"] is not None)
    mac = a.opt("mac")
    interfaces = dom.devices(inactive=config and not live)["interfaces"]
    devices = [i for i in interfaces if i["type"] == a.text("type")]
    if mac:  # virsh's words for a MAC several NICs share (libvirt takes such NICs)
        if len([i for i in devices if str(i["mac"]).lower() == mac.lower()]) > 1:
            raise InvalidArgument(
                f"Domain has multiple interfaces matching MAC address {mac}. You must use detach-device "
                "and specify the device pci address to remove it.\nerror: Failed to detach interface"
            )
    elif len(devices) != 1:
        raise InvalidArgument(
            f"Domain has {len(devices)} interfaces. Please specify which one to detach using --mac"
            "\nerror: Failed to detach interface"
        )
    else:
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
