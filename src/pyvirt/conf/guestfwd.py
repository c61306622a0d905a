"""Guest forwarding channels: ``<channel><target type='guestfwd' address='10.0.2.1' port='4600'/>``.

The guest reaches the channel's chardev (a ``unix`` or ``tcp`` socket, a file...) by opening a TCP
connection to ``address:port``. As libvirt does, each such channel is QEMU user-mode networking of its
own, without a NIC: ``-netdev {"type":"user","guestfwd":[{"str":"tcp:ADDR:PORT-chardev:ID"}],"id":...}``
beside the channel's ``-chardev``; it takes no virtio-serial port.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import CharDevConfig


def parse_target(node: Elem, dev: CharDevConfig) -> None:
    """The address and port of a guestfwd ``<target>`` (its type already read)."""
    address = node.require("address")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise XMLError(f"guestfwd address '{address}' of '{node.path}' is not an IPv4 address") from None
    port = node.integer("port", minimum=1, maximum=65535)
    if port is None:
        raise XMLError(f"missing attribute 'port' of '{node.path}'")
    dev.target_address = address
    dev.target_port = port


def write_target(dev: CharDevConfig) -> XNode:
    return x("target", {"type": "guestfwd", "address": dev.target_address, "port": dev.target_port})


def netdev(dev: CharDevConfig, chardev_id: str, netdev_id: str) -> str:
    """The ``-netdev`` value that forwards the guest's connections to ``chardev_id``."""
    rule = f"tcp:{dev.target_address}:{dev.target_port}-chardev:{chardev_id}"
    return json.dumps({"type": "user", "guestfwd": [{"str": rule}], "id": netdev_id}, separators=(",", ":"))
