"""``<interface type='ethernet'>``: a tap on the host that no bridge or network owns, as libvirt 9.0 runs it.

- managed (the default): the daemon creates the tap (``<target dev>``, else ``vnetN``), gives its host
  side the guest's MAC with ``fe`` first, brings it up, puts the ``<ip address prefix [peer]>`` addresses
  and ``<route address prefix gateway>`` routes on it, and deletes it when the domain stops;
- ``<target dev='tapX' managed='no'/>``: an existing tap, left as it is (and left behind);
- ``<script path>``: run with the tap's name once it is ready (libvirt's
  ``virNetDevRunEthernetScript``), ``<downscript path>`` likewise when the domain stops.

The daemon opens the tap and hands QEMU the descriptor (``-netdev tap,fd=N``), as libvirt does, so an
unprivileged QEMU reaches a tap it does not own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import InterfaceConfig


@dataclass
class HostIP:
    address: str
    prefix: int | None = None
    peer: str | None = None


@dataclass
class HostRoute:
    address: str
    prefix: int | None
    gateway: str


@dataclass
class EthernetConfig:
    managed: bool = True
    script: str | None = None
    downscript: str | None = None
    ips: list[HostIP] = field(default_factory=list)
    routes: list[HostRoute] = field(default_factory=list)


def parse(e: Elem, nic: InterfaceConfig) -> None:
    """The ethernet-only children of ``<interface>`` ``e``."""
    eth = nic.ethernet = nic.ethernet or EthernetConfig()
    for tag in ("script", "downscript"):
        if (node := e.child(tag)) is not None:
            path = node.require("path")
            if not path.startswith("/"):
                raise XMLError(f"path '{path}' of '{node.path}' must be absolute")
            setattr(eth, tag, path)
            node.done()
    for node in e.children("ip"):
        address = _ip(node.require("address"), node.path)
        family = node.choice("family", ("ipv4", "ipv6"))
        if family is not None and family != ("ipv4" if ":" not in address else "ipv6"):
            raise XMLError(f"family '{family}' of '{node.path}' does not match address '{address}'")
        peer = node.attr("peer")
        eth.ips.append(
            HostIP(address, node.integer("prefix", minimum=0, maximum=128), peer and _ip(peer, node.path))
        )
        node.done()
    for node in e.children("route"):
        node.choice("family", ("ipv4", "ipv6"))
        route = HostRoute(
            _ip(node.require("address"), node.path),
            node.integer("prefix", minimum=0, maximum=128),
            _ip(node.require("gateway"), node.path),
        )
        eth.routes.append(route)
        node.done()


def parse_target(node: Elem, nic: InterfaceConfig) -> None:
    """``managed`` of ``<target>``."""
    nic.ethernet = nic.ethernet or EthernetConfig()
    nic.ethernet.managed = node.choice("managed", ("yes", "no")) != "no"


def _ip(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as err:
        raise XMLError(f"invalid IP address '{text}' in '{where}'") from err


def write(nic: InterfaceConfig) -> list[XNode]:
    eth = nic.ethernet
    if eth is None:
        return []
    out: list[XNode] = []
    out += [x("ip", {"address": ip.address, "prefix": ip.prefix, "peer": ip.peer}) for ip in eth.ips]
    out += [x("route", {"address": r.address, "prefix": r.prefix, "gateway": r.gateway}) for r in eth.routes]
    out.append(x("script", {"path": eth.script}) if eth.script else None)  # type: ignore[arg-type]
    out.append(x("downscript", {"path": eth.downscript}) if eth.downscript else None)  # type: ignore[arg-type]
    return [node for node in out if node is not None]


def check(nic: InterfaceConfig) -> None:
    eth = nic.ethernet
    if eth is None:
        return
    if not eth.managed:
        if not nic.target_dev:
            raise XMLError("an ethernet interface with managed='no' needs <target dev> (the existing tap)")
        if eth.ips or eth.routes:
            raise UnsupportedConfig(
                "unsupported configuration: <ip>/<route> of an ethernet interface with managed='no': "
                "the tap is the user's, pyvirt leaves it as it is"
            )
