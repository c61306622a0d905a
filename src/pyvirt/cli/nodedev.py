"""Host devices for passthrough, with virsh 9.0's verbs and output: nodedev-list, nodedev-info and
nodedev-dumpxml to find a device (pyvirt.daemon.nodedev_info), nodedev-detach, nodedev-reattach and
nodedev-reset of a PCI device (the daemon does the work: pyvirt.daemon.nodedevs)."""

from __future__ import annotations

from pyvirt.cli.output import emit, fields, message

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

    T = TypeVar("T")

#: virsh's --cap names (libvirt 9.0's node device capabilities; pyvirt.qemu.node_devices.CAP_NAMES).
CAP_NAMES = frozenset(
    (
        *("system", "pci", "usb_device", "usb", "net", "scsi_host", "scsi_target", "scsi", "storage"),
        *("fc_host", "vports", "scsi_generic", "drm", "mdev_types", "mdev", "ccw", "css", "vdpa"),
        *("ap_card", "ap_queue", "ap_matrix", "vpd"),
    )
)


def cmd_nodedev_detach(opts: GlobalOptions, a: Parsed) -> int:
    device = a.text("device")
    opts.connect().nodedev_detach(device, a.opt("driver"))
    message(f"Device {device} detached")
    return 0


def cmd_nodedev_reattach(opts: GlobalOptions, a: Parsed) -> int:
    device = a.text("device")
    opts.connect().nodedev_reattach(device)
    message(f"Device {device} re-attached")
    return 0


def cmd_nodedev_reset(opts: GlobalOptions, a: Parsed) -> int:
    device = a.text("device")
    opts.connect().nodedev_reset(device)
    message(f"Device {device} reset")
    return 0


def _found(call: Callable[[], T], device: str) -> T:
    """virsh's two lines for a device the host does not have."""
    from pyvirt.errors import NotFound, PyvirtError

    try:
        return call()
    except NotFound as err:
        raise PyvirtError(f"Could not find matching device '{device}'\nerror: {err}") from err


def cmd_nodedev_list(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.errors import InvalidArgument

    cap = a.opt("cap") or None
    if a.get("all") and a.get("inactive"):
        raise InvalidArgument("Option --all is incompatible with --inactive")
    if a.get("tree") and (cap or a.get("inactive")):
        raise InvalidArgument("Option --tree is incompatible with --cap and --inactive")
    if cap is not None and not all(name in CAP_NAMES for name in cap.split(",")):
        raise InvalidArgument("Invalid capability type")
    # Every device pyvirt knows is one the host has (active); --inactive lists the defined, stopped
    # ones (mediated devices libvirt keeps through mdevctl), which pyvirt has none of.
    devices = [] if a.get("inactive") else opts.connect().nodedev_list(cap)
    if a.get("tree"):
        emit(tree([(d["name"], d["parent"] or None) for d in devices]))
    else:
        emit("".join(f"{d['name']}\n" for d in devices))
    emit("\n")
    return 0


def tree(devices: list[tuple[str, str | None]]) -> str:
    """virsh's ``--tree`` drawing of (name, parent) pairs, children in the list's order."""
    lines: list[str] = []
    children: dict[str | None, list[str]] = {}
    for name, parent in devices:
        children.setdefault(parent, []).append(name)

    def draw(name: str, indent: str, root: bool, last: bool) -> None:
        lines.append(f"{indent}{'' if root else '+- '}{name}")
        if not root:
            indent += "  " if last else "| "
        kids = children.get(name, [])
        if kids:
            lines.append(f"{indent}  |")
        for i, kid in enumerate(kids):
            draw(kid, indent + "  ", False, i == len(kids) - 1)
        if not kids and last:
            lines.append(indent)

    for name in children.get(None, []):
        draw(name, "", True, True)
    return "".join(line + "\n" for line in lines)


def cmd_nodedev_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.errors import InvalidArgument

    for flag in ("xpath", "wrap"):
        if a.get(flag):
            raise InvalidArgument(f"--{flag}: pyvirt prints the whole document (use an XML tool to select)")
    device = a.text("device")
    conn = opts.connect()
    emit(_found(lambda: conn.nodedev_dumpxml(device), device) + "\n")
    return 0


def cmd_nodedev_info(opts: GlobalOptions, a: Parsed) -> int:
    device = a.text("device")
    conn = opts.connect()
    info = _found(lambda: conn.nodedev_info(device), device)

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    pairs = [
        ("Name:", info["name"]),
        ("Parent:", info["parent"]),
        ("Active:", yes(info["active"])),
        ("Persistent:", yes(info["persistent"])),
        ("Autostart:", yes(info["autostart"])),
    ]
    emit(fields(pairs) + "\n")
    return 0
