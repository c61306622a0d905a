"""Post-parse defaults and validation of a :class:`~pyvirt.conf.network.Network`: two passes, as in libvirt.

:func:`apply_defaults` fills what libvirt fills after parsing (a free ``pvbrN`` bridge name, the
bridge's MAC address); :func:`validate_network` checks what a single element cannot (addresses inside
their subnet, DHCP ranges that neither overlap nor hold the bridge, unique hosts, mode-specific rules)
and raises :class:`InvalidArgument` saying what is wrong. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable

from pyvirt.conf.mac import is_unicast_mac, random_mac
from pyvirt.conf.names import validate_name
from pyvirt.conf.network import IPConfig, Network
from pyvirt.errors import InvalidArgument

IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,15}$")
DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$"
)


def apply_defaults(
    net: Network,
    *,
    bridge_taken: Callable[[str], bool],
    bridge_template: str = "pvbr{}",
    rng: random.Random | None = None,
) -> None:
    """Post-parse defaults: a bridge name (the first ``pvbrN`` not taken) and a bridge MAC address."""
    if not net.managed:
        return
    if not net.bridge.name:
        n = 0
        while bridge_taken(bridge_template.format(n)):
            n += 1
        net.bridge.name = bridge_template.format(n)
    if net.mac is None:
        net.mac = random_mac(rng=rng)


def subnets_overlap(
    a: ipaddress.IPv4Network | ipaddress.IPv6Network, b: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _ip_in(text: str, what: str, ip: IPConfig) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as err:
        raise InvalidArgument(f"{what}: invalid address '{text}'") from err
    if addr.version != ip.network.version or addr not in ip.network:
        raise InvalidArgument(f"{what} {text} is outside the network's subnet {ip.network}")
    if (
        ip.family == "ipv4"
        and ip.prefix < 31
        and addr in (ip.network.network_address, ip.network.broadcast_address)
    ):
        raise InvalidArgument(f"{what} {text} is the network or broadcast address of {ip.network}")
    return addr


def _validate_ip(net: Network, ip: IPConfig) -> None:
    where = f"network '{net.name}' ip {ip.address}"
    max_prefix = 32 if ip.family == "ipv4" else 128
    if not 1 <= ip.prefix <= max_prefix:
        raise InvalidArgument(f"{where}: prefix {ip.prefix} out of range 1-{max_prefix}")
    if ip.family == "ipv4" and ip.prefix > 30:
        raise InvalidArgument(f"{where}: prefix /{ip.prefix} leaves no room for guests (use /30 or shorter)")
    iface = ip.interface
    if ip.family == "ipv4" and iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise InvalidArgument(
            f"{where}: the bridge address is the network or broadcast address of {iface.network}"
        )
    if ip.family == "ipv6" and ip.ranges and ip.prefix != 64:
        raise InvalidArgument(f"{where}: DHCPv6 ranges need a /64 prefix")
    seen_ranges: list[tuple[int, int]] = []
    for r in ip.ranges:
        start = _ip_in(r.start, "DHCP range start", ip)
        end = _ip_in(r.end, "DHCP range end", ip)
        if int(start) > int(end):
            raise InvalidArgument(f"{where}: DHCP range {r.start}-{r.end} starts after it ends")
        if int(start) <= int(iface.ip) <= int(end):
            raise InvalidArgument(f"{where}: DHCP range {r.start}-{r.end} contains the bridge address")
        for lo, hi in seen_ranges:
            if int(start) <= hi and lo <= int(end):
                raise InvalidArgument(f"{where}: DHCP range {r.start}-{r.end} overlaps another range")
        seen_ranges.append((int(start), int(end)))
    macs: set[str] = set()
    addrs: set[str] = set()
    for h in ip.hosts:
        addr = _ip_in(h.ip, "DHCP host", ip)
        if addr == iface.ip:
            raise InvalidArgument(f"{where}: DHCP host {h.ip} is the bridge address")
        if ip.family == "ipv4":
            if h.id is not None:
                raise InvalidArgument(f"{where}: DHCP host id= is for IPv6; use mac= for IPv4")
            if h.mac is None and h.name is None:
                raise InvalidArgument(f"{where}: DHCP host {h.ip} needs mac= or name=")
        elif h.mac is not None:
            raise InvalidArgument(f"{where}: DHCPv6 host {h.ip} is matched by id= (DUID) or name=, not mac=")
        elif h.id is None and h.name is None:
            raise InvalidArgument(f"{where}: DHCPv6 host {h.ip} needs id= or name=")
        if h.mac is not None:
            if not is_unicast_mac(h.mac):
                raise InvalidArgument(f"{where}: DHCP host has an invalid unicast MAC '{h.mac}'")
            if h.mac in macs:
                raise InvalidArgument(f"{where}: DHCP host MAC {h.mac} is listed twice")
            macs.add(h.mac)
        if h.name is not None and not DNS_NAME_RE.match(h.name):
            raise InvalidArgument(f"{where}: DHCP host name '{h.name}' is not a valid host name")
        if str(addr) in addrs:
            raise InvalidArgument(f"{where}: DHCP host address {h.ip} is listed twice")
        addrs.add(str(addr))


def validate_network(net: Network) -> None:
    """Check a network after defaults: raise :class:`InvalidArgument` saying what is wrong."""
    validate_name(net.name, "network")
    mode = net.mode
    br = net.bridge
    if br.name is not None and not IFNAME_RE.match(br.name):
        raise InvalidArgument(
            f"network '{net.name}': invalid bridge name '{br.name}' (1-15 characters, no '/')"
        )
    if br.delay < 0 or br.delay > 30:
        raise InvalidArgument(f"network '{net.name}': bridge delay {br.delay} out of range 0-30")
    if net.mtu is not None and not 68 <= net.mtu <= 65535:
        raise InvalidArgument(f"network '{net.name}': mtu {net.mtu} out of range 68-65535")
    if net.mac is not None and not is_unicast_mac(net.mac):
        raise InvalidArgument(f"network '{net.name}': invalid unicast MAC address '{net.mac}'")
    if net.domain_name is not None and not DNS_NAME_RE.match(net.domain_name):
        raise InvalidArgument(f"network '{net.name}': invalid domain name '{net.domain_name}'")
    fwd = net.forward
    if fwd is not None:
        if fwd.dev is not None and not IFNAME_RE.match(fwd.dev):
            raise InvalidArgument(f"network '{net.name}': invalid forward dev '{fwd.dev}'")
        has_nat = fwd.nat_address_start is not None or fwd.nat_port_start is not None
        if has_nat and mode != "nat":
            raise InvalidArgument(f"network '{net.name}': <nat> is only valid with forward mode 'nat'")
        if fwd.nat_address_start is not None:
            try:
                a = ipaddress.IPv4Address(fwd.nat_address_start)
                b = ipaddress.IPv4Address(fwd.nat_address_end or "")
            except ValueError as err:
                raise InvalidArgument(f"network '{net.name}': invalid NAT address range") from err
            if a > b:
                raise InvalidArgument(f"network '{net.name}': NAT address range starts after it ends")
        if fwd.nat_port_start is not None:
            assert fwd.nat_port_end is not None
            if not 1 <= fwd.nat_port_start <= fwd.nat_port_end <= 65535:
                raise InvalidArgument(
                    f"network '{net.name}': NAT port range must be 1-65535 and start <= end"
                )
    if mode == "bridge":
        if not br.name:
            raise InvalidArgument(f"network '{net.name}': forward mode 'bridge' needs <bridge name='...'/>")
        if net.ips or net.dns is not None or net.domain_name is not None or net.mac is not None:
            raise InvalidArgument(
                f"network '{net.name}': forward mode 'bridge' uses an existing host bridge; "
                "<ip>, <dns>, <domain> and <mac> are not allowed"
            )
        if fwd is not None and fwd.dev is not None:
            raise InvalidArgument(f"network '{net.name}': forward mode 'bridge' does not take dev=")
        return
    if mode == "nat" and not net.ipv4():
        raise InvalidArgument(f"network '{net.name}': forward mode 'nat' needs an IPv4 <ip> address")
    for ip in net.ips:
        _validate_ip(net, ip)
    for family in ("ipv4", "ipv6"):
        with_dhcp = [ip for ip in net.ips if ip.family == family and (ip.ranges or ip.hosts)]
        if len(with_dhcp) > 1:
            raise InvalidArgument(f"network '{net.name}': only one {family} <ip> may have a DHCP section")
    nets = [ip.network for ip in net.ips]
    for i, first in enumerate(nets):
        for second in nets[i + 1 :]:
            if subnets_overlap(first, second):
                raise InvalidArgument(f"network '{net.name}': subnets {first} and {second} overlap")
    if net.dns is not None:
        for h in net.dns.hosts:
            try:
                ipaddress.ip_address(h.ip)
            except ValueError as err:
                raise InvalidArgument(
                    f"network '{net.name}': DNS host has an invalid address '{h.ip}'"
                ) from err
            if not h.hostnames:
                raise InvalidArgument(f"network '{net.name}': DNS host {h.ip} needs at least one <hostname>")
            for hn in h.hostnames:
                if not DNS_NAME_RE.match(hn):
                    raise InvalidArgument(f"network '{net.name}': DNS host name '{hn}' is not valid")
        for f in net.dns.forwarders:
            if f.addr is None and f.domain is None:
                raise InvalidArgument(f"network '{net.name}': a DNS forwarder needs addr= or domain=")
            if f.addr is not None:
                try:
                    ipaddress.ip_address(f.addr)
                except ValueError as err:
                    raise InvalidArgument(
                        f"network '{net.name}': DNS forwarder address '{f.addr}' invalid"
                    ) from err
