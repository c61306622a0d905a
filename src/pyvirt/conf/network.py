"""The virtual network model: dataclasses mirroring libvirt's ``<network>`` XML, with parse, format, validate.

Parsing is strict: an element or attribute the driver cannot honour is refused by name
(:class:`UnsupportedConfig`), a DTD or entity declaration is refused outright (:class:`XMLError`).
Parse, post-parse defaults (:func:`apply_defaults`) and validation (:func:`validate_network`) are separate
passes, as in libvirt. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import random
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NoReturn
from xml.parsers import expat

from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

FORWARD_MODES = ("nat", "route", "open", "bridge")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:-]*$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,15}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$"
)
LEASE_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}
MAC_PREFIX = "52:54:00"

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


# ---------------------------------------------------------------------------------------------- parsing


def _refuse_dtd(*_args: object) -> NoReturn:
    raise XMLError("network XML must not contain a DTD or entity declarations")


def _parse_tree(text: str) -> ET.Element:
    scan = expat.ParserCreate()
    scan.StartDoctypeDeclHandler = _refuse_dtd
    scan.EntityDeclHandler = _refuse_dtd
    scan.ExternalEntityRefHandler = _refuse_dtd
    try:
        scan.Parse(text, True)
        return ET.fromstring(text)
    except (ET.ParseError, expat.ExpatError) as err:
        raise XMLError(f"network XML is not well-formed: {err}") from err


class _Elem:
    """An element being read: refuses attributes and children nobody asked for, by name."""

    def __init__(self, el: ET.Element, path: str) -> None:
        self.el = el
        self.path = path
        self.seen_attrs: set[str] = set()

    def attr(self, name: str) -> str | None:
        self.seen_attrs.add(name)
        return self.el.get(name)

    def req(self, name: str) -> str:
        value = self.attr(name)
        if value is None:
            raise XMLError(f"{self.path}: missing attribute '{name}'")
        return value

    def yesno(self, name: str, yes: str = "yes", no: str = "no") -> bool | None:
        value = self.attr(name)
        if value is None:
            return None
        if value == yes:
            return True
        if value == no:
            return False
        raise XMLError(f"{self.path}: attribute '{name}' must be '{yes}' or '{no}', not '{value}'")

    def uint(self, name: str, *, required: bool = False) -> int | None:
        value = self.req(name) if required else self.attr(name)
        if value is None:
            return None
        if not value.isdigit():
            raise XMLError(f"{self.path}: attribute '{name}' must be an unsigned integer, not '{value}'")
        return int(value)

    def check_attrs(self) -> None:
        extra = sorted(set(self.el.attrib) - self.seen_attrs)
        if extra:
            names = ", ".join(f"'{a}'" for a in extra)
            raise UnsupportedConfig(f"{self.path}: unsupported attribute(s) {names}")

    def children(self, allowed: Iterable[str], *, once: Iterable[str] = ()) -> list[ET.Element]:
        allowed_set = set(allowed)
        counts: dict[str, int] = {}
        for child in self.el:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            if child.tag not in allowed_set:
                raise UnsupportedConfig(f"{self.path}: unsupported element <{child.tag}>")
            counts[child.tag] = counts.get(child.tag, 0) + 1
        for tag in once:
            if counts.get(tag, 0) > 1:
                raise XMLError(f"{self.path}: element <{tag}> may appear only once")
        return [c for c in self.el if isinstance(c.tag, str)]

    def text(self) -> str:
        return (self.el.text or "").strip()

    def no_children(self) -> None:
        self.children(())


def _lease(el: ET.Element, path: str) -> Lease:
    e = _Elem(el, path + "/lease")
    expiry = e.uint("expiry", required=True)
    assert expiry is not None
    unit = e.attr("unit") or "minutes"
    if unit not in LEASE_UNITS:
        raise XMLError(f"{e.path}: unit must be one of {', '.join(LEASE_UNITS)}, not '{unit}'")
    e.check_attrs()
    e.no_children()
    return Lease(expiry, unit)


def _parse_ip(el: ET.Element) -> IPConfig:
    e = _Elem(el, "network/ip")
    address = e.req("address")
    netmask = e.attr("netmask")
    prefix_text = e.attr("prefix")
    family_text = e.attr("family")
    if e.attr("localPtr") is not None:
        raise UnsupportedConfig("network/ip: unsupported attribute 'localPtr'")
    e.check_attrs()
    try:
        addr = ipaddress.ip_address(address)
    except ValueError as err:
        raise XMLError(f"network/ip: invalid address '{address}'") from err
    family: Family = "ipv6" if addr.version == 6 else "ipv4"
    if family_text is not None:
        if family_text not in ("ipv4", "ipv6"):
            raise XMLError(f"network/ip: family must be 'ipv4' or 'ipv6', not '{family_text}'")
        if family_text != family:
            raise XMLError(f"network/ip: address '{address}' is not an {family_text} address")
    if netmask is not None and prefix_text is not None:
        raise XMLError("network/ip: give either netmask or prefix, not both")
    if netmask is not None:
        if family == "ipv6":
            raise XMLError("network/ip: netmask is only for IPv4; use prefix for IPv6")
        try:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
        except ValueError as err:
            raise XMLError(f"network/ip: invalid netmask '{netmask}'") from err
    elif prefix_text is not None:
        if not prefix_text.isdigit():
            raise XMLError(f"network/ip: invalid prefix '{prefix_text}'")
        prefix = int(prefix_text)
    elif family == "ipv4":
        # libvirt's classful default when neither is given
        first = int(str(addr).split(".")[0])
        prefix = 8 if first < 128 else 16 if first < 192 else 24
    else:
        prefix = 64
    ip = IPConfig(
        address=str(addr),
        prefix=prefix,
        family=family,
        netmask_given=netmask is not None,
        family_given=family_text is not None,
    )
    for child in e.children(("dhcp", "tftp"), once=("dhcp",)):
        if child.tag == "tftp":
            raise UnsupportedConfig("network/ip: unsupported element <tftp>")
        d = _Elem(child, "network/ip/dhcp")
        d.check_attrs()
        ip.dhcp = True
        for sub in d.children(("range", "host", "bootp")):
            if sub.tag == "bootp":
                raise UnsupportedConfig("network/ip/dhcp: unsupported element <bootp>")
            if sub.tag == "range":
                r = _Elem(sub, "network/ip/dhcp/range")
                rng = DHCPRange(start=r.req("start"), end=r.req("end"))
                r.check_attrs()
                for le in r.children(("lease",), once=("lease",)):
                    rng.lease = _lease(le, r.path)
                ip.ranges.append(rng)
            else:
                h = _Elem(sub, "network/ip/dhcp/host")
                mac = h.attr("mac")
                host = DHCPHost(
                    ip=h.req("ip"),
                    mac=mac.lower() if mac else None,
                    id=h.attr("id"),
                    name=h.attr("name"),
                )
                h.check_attrs()
                for le in h.children(("lease",), once=("lease",)):
                    host.lease = _lease(le, h.path)
                ip.hosts.append(host)
    return ip


def _parse_dns(el: ET.Element) -> DNSConfig:
    e = _Elem(el, "network/dns")
    dns = DNSConfig(enable=e.yesno("enable"), forward_plain_names=e.yesno("forwardPlainNames"))
    e.check_attrs()
    for child in e.children(("forwarder", "host", "txt", "srv")):
        if child.tag in ("txt", "srv"):
            raise UnsupportedConfig(f"network/dns: unsupported element <{child.tag}>")
        if child.tag == "forwarder":
            f = _Elem(child, "network/dns/forwarder")
            dns.forwarders.append(DNSForwarder(addr=f.attr("addr"), domain=f.attr("domain")))
            f.check_attrs()
            f.no_children()
        else:
            h = _Elem(child, "network/dns/host")
            host = DNSHost(ip=h.req("ip"))
            h.check_attrs()
            for hn in h.children(("hostname",)):
                hne = _Elem(hn, "network/dns/host/hostname")
                hne.check_attrs()
                hne.no_children()
                host.hostnames.append(hne.text())
            dns.hosts.append(host)
    return dns


def _parse_forward(el: ET.Element) -> ForwardConfig:
    e = _Elem(el, "network/forward")
    mode = e.attr("mode") or "nat"
    fwd = ForwardConfig(mode=mode, dev=e.attr("dev"))
    e.check_attrs()
    if mode not in FORWARD_MODES:
        raise UnsupportedConfig(
            f"network/forward: unsupported mode '{mode}' (supported: {', '.join(FORWARD_MODES)})"
        )
    for child in e.children(("nat", "interface"), once=("nat",)):
        if child.tag == "interface":
            i = _Elem(child, "network/forward/interface")
            dev = i.req("dev")
            i.check_attrs()
            i.no_children()
            if fwd.dev is None:
                fwd.dev = dev
            elif dev != fwd.dev:
                raise UnsupportedConfig("network/forward: only one forward interface is supported")
            continue
        n = _Elem(child, "network/forward/nat")
        if n.attr("ipv6") is not None:
            raise UnsupportedConfig("network/forward/nat: unsupported attribute 'ipv6'")
        n.check_attrs()
        for sub in n.children(("address", "port"), once=("address", "port")):
            s = _Elem(sub, f"network/forward/nat/{sub.tag}")
            if sub.tag == "address":
                fwd.nat_address_start = s.req("start")
                fwd.nat_address_end = s.req("end")
            else:
                fwd.nat_port_start = s.uint("start", required=True)
                fwd.nat_port_end = s.uint("end", required=True)
            s.check_attrs()
            s.no_children()
    return fwd


_NETWORK_CHILDREN = (
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "forward",
    "bridge",
    "mtu",
    "mac",
    "domain",
    "dns",
    "ip",
)


def parse_network_xml(text: str) -> Network:
    """Parse libvirt network XML into a :class:`Network` (no defaults applied, not validated)."""
    root = _parse_tree(text)
    if root.tag != "network":
        raise XMLError(f"expected a <network> document, got <{root.tag}>")
    e = _Elem(root, "network")
    e.attr("connections")  # a count libvirt writes into live XML; ignored
    for unsupported in ("ipv6", "trustGuestRxFilters"):
        if e.attr(unsupported) is not None:
            raise UnsupportedConfig(f"network: unsupported attribute '{unsupported}'")
    e.check_attrs()
    children = e.children(
        _NETWORK_CHILDREN,
        once=[t for t in _NETWORK_CHILDREN if t != "ip"],
    )
    name_el = root.find("name")
    if name_el is None or not (name_el.text or "").strip():
        raise XMLError("network: missing <name>")
    net = Network(name=(name_el.text or "").strip())
    for child in children:
        c = _Elem(child, f"network/{child.tag}")
        tag = child.tag
        if tag == "name":
            c.check_attrs()
            c.no_children()
        elif tag == "uuid":
            c.check_attrs()
            c.no_children()
            try:
                net.uuid = str(uuidlib.UUID(c.text()))
                net.uuid_given = True
            except ValueError as err:
                raise XMLError(f"network/uuid: invalid UUID '{c.text()}'") from err
        elif tag in ("title", "description"):
            c.check_attrs()
            c.no_children()
            setattr(net, tag, child.text or "")
        elif tag == "metadata":
            c.check_attrs()
            net.metadata = "".join(ET.tostring(m, encoding="unicode") for m in child).strip()
        elif tag == "forward":
            net.forward = _parse_forward(child)
        elif tag == "bridge":
            for unsupported in ("zone", "macTableManager"):
                if c.attr(unsupported) is not None:
                    raise UnsupportedConfig(f"network/bridge: unsupported attribute '{unsupported}'")
            stp = c.yesno("stp", "on", "off")
            delay = c.uint("delay")
            net.bridge = BridgeConfig(
                name=c.attr("name"),
                stp=True if stp is None else stp,
                delay=delay or 0,
            )
            c.check_attrs()
            c.no_children()
        elif tag == "mtu":
            net.mtu = c.uint("size", required=True)
            c.check_attrs()
            c.no_children()
        elif tag == "mac":
            net.mac = c.req("address").lower()
            c.check_attrs()
            c.no_children()
        elif tag == "domain":
            if c.attr("register") is not None:
                raise UnsupportedConfig("network/domain: unsupported attribute 'register'")
            net.domain_name = c.req("name")
            net.domain_local_only = c.yesno("localOnly")
            c.check_attrs()
            c.no_children()
        elif tag == "dns":
            net.dns = _parse_dns(child)
        elif tag == "ip":
            net.ips.append(_parse_ip(child))
    return net


# ------------------------------------------------------------------------------------------- formatting


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def _tag(name: str, attrs: Iterable[tuple[str, str | int | None]], *, close: bool = True) -> str:
    parts = [name] + [f"{k}='{_esc(str(v))}'" for k, v in attrs if v is not None]
    return "<" + " ".join(parts) + ("/>" if close else ">")


def _onoff(value: bool | None, yes: str = "yes", no: str = "no") -> str | None:
    return None if value is None else yes if value else no


def format_network_xml(net: Network) -> str:
    """Format a :class:`Network` as libvirt network XML (element order as libvirt writes it)."""
    out = ["<network>", f"  <name>{_esc(net.name)}</name>", f"  <uuid>{net.uuid}</uuid>"]
    if net.title is not None:
        out.append(f"  <title>{_esc(net.title)}</title>")
    if net.description is not None:
        out.append(f"  <description>{_esc(net.description)}</description>")
    if net.metadata:
        out.append(f"  <metadata>{net.metadata}</metadata>")
    fwd = net.forward
    if fwd is not None:
        nat_parts = []
        if fwd.nat_address_start is not None:
            nat_parts.append(
                "      " + _tag("address", [("start", fwd.nat_address_start), ("end", fwd.nat_address_end)])
            )
        if fwd.nat_port_start is not None:
            nat_parts.append(
                "      " + _tag("port", [("start", fwd.nat_port_start), ("end", fwd.nat_port_end)])
            )
        if nat_parts:
            out.append("  " + _tag("forward", [("mode", fwd.mode), ("dev", fwd.dev)], close=False))
            out += ["    <nat>", *nat_parts, "    </nat>", "  </forward>"]
        else:
            out.append("  " + _tag("forward", [("mode", fwd.mode), ("dev", fwd.dev)]))
    br = net.bridge
    if net.managed:
        out.append(
            "  "
            + _tag("bridge", [("name", br.name), ("stp", _onoff(br.stp, "on", "off")), ("delay", br.delay)])
        )
    else:
        out.append("  " + _tag("bridge", [("name", br.name)]))
    if net.mtu is not None:
        out.append("  " + _tag("mtu", [("size", net.mtu)]))
    if net.mac is not None:
        out.append("  " + _tag("mac", [("address", net.mac)]))
    if net.domain_name is not None:
        out.append(
            "  " + _tag("domain", [("name", net.domain_name), ("localOnly", _onoff(net.domain_local_only))])
        )
    if net.dns is not None:
        out += _format_dns(net.dns)
    for ip in net.ips:
        out += _format_ip(ip)
    out.append("</network>")
    return "\n".join(out) + "\n"


def _format_dns(dns: DNSConfig) -> list[str]:
    attrs = [("enable", _onoff(dns.enable)), ("forwardPlainNames", _onoff(dns.forward_plain_names))]
    if not dns.forwarders and not dns.hosts:
        return ["  " + _tag("dns", attrs)]
    out = ["  " + _tag("dns", attrs, close=False)]
    for f in dns.forwarders:
        out.append("    " + _tag("forwarder", [("addr", f.addr), ("domain", f.domain)]))
    for h in dns.hosts:
        out.append("    " + _tag("host", [("ip", h.ip)], close=False))
        out += [f"      <hostname>{_esc(n)}</hostname>" for n in h.hostnames]
        out.append("    </host>")
    out.append("  </dns>")
    return out


def _format_lease_parent(
    indent: str, tag: str, attrs: list[tuple[str, str | int | None]], lease: Lease | None
) -> list[str]:
    if lease is None:
        return [indent + _tag(tag, attrs)]
    return [
        indent + _tag(tag, attrs, close=False),
        indent + "  " + _tag("lease", [("expiry", lease.expiry), ("unit", lease.unit)]),
        f"{indent}</{tag}>",
    ]


def _format_ip(ip: IPConfig) -> list[str]:
    attrs: list[tuple[str, str | int | None]] = [
        ("family", ip.family if ip.family_given or ip.family == "ipv6" else None),
        ("address", ip.address),
    ]
    attrs.append(("netmask", ip.netmask) if ip.netmask_given else ("prefix", ip.prefix))
    if not (ip.dhcp or ip.ranges or ip.hosts):
        return ["  " + _tag("ip", attrs)]
    out = ["  " + _tag("ip", attrs, close=False), "    <dhcp>"]
    for r in ip.ranges:
        out += _format_lease_parent("      ", "range", [("start", r.start), ("end", r.end)], r.lease)
    for h in ip.hosts:
        out += _format_lease_parent(
            "      ", "host", [("mac", h.mac), ("id", h.id), ("name", h.name), ("ip", h.ip)], h.lease
        )
    out += ["    </dhcp>", "  </ip>"]
    return out


# ----------------------------------------------------------------------------------- defaults, validation


def validate_name(name: str) -> None:
    """Network names follow the domain rules: ``[A-Za-z0-9_.+:-]``, starting with a letter or digit."""
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid network name '{name}': use letters, digits and '_.+:-', starting with a letter or digit"
        )
    if len(name) > 200:
        raise InvalidArgument(f"invalid network name '{name[:40]}...': longer than 200 characters")


def generate_mac(rng: random.Random | None = None) -> str:
    """A random unicast MAC address with QEMU/KVM's 52:54:00 prefix."""
    r = rng or random.SystemRandom()
    return MAC_PREFIX + "".join(f":{r.randrange(256):02x}" for _ in range(3))


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
        net.mac = generate_mac(rng)


def subnets_overlap(
    a: ipaddress.IPv4Network | ipaddress.IPv6Network, b: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _valid_mac(mac: str) -> bool:
    return bool(MAC_RE.match(mac)) and int(mac[:2], 16) & 1 == 0


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
            if not _valid_mac(h.mac):
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
    validate_name(net.name)
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
    if net.mac is not None and not _valid_mac(net.mac):
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
