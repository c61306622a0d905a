"""The virtual network model: dataclasses mirroring libvirt's ``<network>`` XML.

Split like the domain model: :mod:`pyvirt.conf.network_xml` parses and formats the XML (strictly, on
:mod:`pyvirt.conf.xmlutil`), :mod:`pyvirt.conf.network_validate` fills post-parse defaults and
validates, as separate passes, as in libvirt. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Literal

FORWARD_MODES = ("nat", "route", "open", "bridge")
LEASE_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}

Family = Literal["ipv4", "ipv6"]


@dataclass
class Lease:
    """A ``<lease expiry= unit=/>`` under a DHCP range or host; expiry 0 means infinite."""

    expiry: int
    unit: str = "minutes"

    @property
    def seconds(self) -> int:
        return self.expiry * LEASE_UNITS[self.unit]


@dataclass
class DHCPRange:
    start: str
    end: str
    lease: Lease | None = None


@dataclass
class DHCPHost:
    """A static host: by MAC (IPv4) or DUID ``id`` (IPv6), or by name alone."""

    ip: str
    mac: str | None = None
    id: str | None = None
    name: str | None = None
    lease: Lease | None = None


@dataclass
class IPConfig:
    """One ``<ip>``: the bridge's address in the subnet, and optionally a DHCP server."""

    address: str
    prefix: int
    family: Family = "ipv4"
    netmask_given: bool = False  # the input used netmask= rather than prefix=; kept for round trips
    family_given: bool = False
    dhcp: bool = False  # a <dhcp> element was present
    ranges: list[DHCPRange] = field(default_factory=list)
    hosts: list[DHCPHost] = field(default_factory=list)

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefix}")

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return self.interface.network

    @property
    def netmask(self) -> str:
        return str(self.network.netmask)


@dataclass
class DNSHost:
    ip: str
    hostnames: list[str] = field(default_factory=list)


@dataclass
class DNSForwarder:
    addr: str | None = None
    domain: str | None = None


@dataclass
class DNSConfig:
    enable: bool | None = None
    forward_plain_names: bool | None = None
    forwarders: list[DNSForwarder] = field(default_factory=list)
    hosts: list[DNSHost] = field(default_factory=list)


@dataclass
class ForwardConfig:
    mode: str = "nat"  # nat | route | open | bridge
    dev: str | None = None  # restrict forwarding to this host interface
    nat_address_start: str | None = None
    nat_address_end: str | None = None
    nat_port_start: int | None = None
    nat_port_end: int | None = None


@dataclass
class BridgeConfig:
    name: str | None = None  # filled by post-parse defaults (pvbrN) unless mode='bridge'
    stp: bool = True
    delay: int = 0


@dataclass
class Network:
    """One ``<network>``."""

    name: str
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    title: str | None = None
    description: str | None = None
    metadata: str | None = None  # inner XML of <metadata>, kept verbatim
    uuid_given: bool = field(default=False, compare=False, repr=False)  # the XML had a <uuid>
    forward: ForwardConfig | None = None  # None: isolated
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    mtu: int | None = None
    mac: str | None = None
    domain_name: str | None = None
    domain_local_only: bool | None = None
    dns: DNSConfig | None = None
    ips: list[IPConfig] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """``nat``, ``route``, ``open``, ``bridge`` or ``isolated``."""
        return self.forward.mode if self.forward is not None else "isolated"

    @property
    def managed(self) -> bool:
        """True when pyvirt owns the bridge (every mode but ``bridge``)."""
        return self.mode != "bridge"

    def ipv4(self) -> list[IPConfig]:
        return [ip for ip in self.ips if ip.family == "ipv4"]

    def ipv6(self) -> list[IPConfig]:
        return [ip for ip in self.ips if ip.family == "ipv6"]

    def dhcp_ips(self) -> list[IPConfig]:
        return [ip for ip in self.ips if ip.ranges or ip.hosts]

    @property
    def needs_dnsmasq(self) -> bool:
        if not self.managed or not self.ips:
            return False
        dns_enabled = self.dns is None or self.dns.enable is not False
        return dns_enabled or bool(self.dhcp_ips())
