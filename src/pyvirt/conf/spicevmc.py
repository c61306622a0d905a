"""SPICE's own channels: the agent channel (``<channel type='spicevmc'>``, the guest's vdagent talking
to the SPICE client) and USB redirection (``<redirdev bus='usb' type='spicevmc'/>``, a client's USB
device passed to the guest), as virt-install adds them to every SPICE guest.

Both are QEMU ``spicevmc`` character devices (``name=vdagent``, ``name=usbredir``) that exist only with
a SPICE display, so a domain without one has them refused by name. A redirdev of another type
(``unix``, ``tcp``...: a usbredir server or client on a socket) has its character device in
``RedirdevConfig.source`` and needs no SPICE.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf.domain import CharDevConfig, PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig


@dataclass
class RedirdevConfig:
    bus: str = "usb"
    type: str = "spicevmc"
    source: CharDevConfig | None = None  # a type other than spicevmc: its character device
    address: PCIAddress | None = None  # a USB address: bus, port
    alias: str | None = None


def parse_redirdev(e: Elem, char_types: tuple[str, ...]) -> RedirdevConfig:
    dev = RedirdevConfig(
        bus=e.choice("bus", ("usb",), required=True) or "usb",
        type=e.choice("type", ("spicevmc", *char_types), required=True) or "spicevmc",
    )
    if dev.type != "spicevmc":
        dev.source = CharDevConfig(kind="redirdev", type=dev.type)
    return dev


def write_redirdev(dev: RedirdevConfig, extra: tuple[XNode | None, ...]) -> XNode:
    return x("redirdev", {"bus": dev.bus, "type": dev.type}).add(*extra)


def chardev_spec(kind: str, chardev_id: str) -> str:
    """``-chardev`` of a spicevmc device: the agent (channel) or USB redirection (redirdev)."""
    return f"spicevmc,id={chardev_id},name={'vdagent' if kind == 'channel' else 'usbredir'}"


def require_spice(has_spice: bool, what: str) -> None:
    if not has_spice:
        raise UnsupportedConfig(f"unsupported configuration: {what} of type 'spicevmc' needs a SPICE display")
