"""Host PCI devices for passthrough, with virsh 9.0's verbs and output: nodedev-detach,
nodedev-reattach, nodedev-reset (the daemon does the work: pyvirt.daemon.nodedevs)."""

from __future__ import annotations

from pyvirt.cli.output import message

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


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
