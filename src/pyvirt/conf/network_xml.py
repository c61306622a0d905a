"""libvirt's ``<network>`` XML in and out, on the one XML framework (:mod:`pyvirt.conf.xmlutil`).

Parsing is strict: a DTD or entity declaration is refused before anything is expanded
(:class:`XMLError`), and every element or attribute the driver cannot honour is refused by name and path
(:class:`UnsupportedConfig`) by :meth:`Elem.done`. The one attribute accepted without effect is the
root's ``connections``, a count libvirt writes into live XML (as storage XML's read-only sizes), so that
dumped XML can be fed back. Parsing applies no defaults and does not validate:
:mod:`pyvirt.conf.network_validate` does both.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib

from pyvirt.conf.network import (
    FORWARD_MODES,
    LEASE_UNITS,
    BridgeConfig,
    DHCPHost,
    DHCPRange,
    DNSConfig,
    DNSForwarder,
    DNSHost,
    Family,
    ForwardConfig,
    IPConfig,
    Lease,
    Network,
)
from pyvirt.conf.validate import check_metadata
from pyvirt.conf.xmlutil import Elem, XNode, parse_document, serialize, unsupported, x, yes_no
from pyvirt.errors import XMLError

# ---------------------------------------------------------------------------------------------- parsing


def _required_int(e: Elem, name: str) -> int:
    e.require(name)
    value = e.integer(name, minimum=0)
    assert value is not None
    return value


def _text_of(e: Elem) -> str:
    """The element's text as written (title and description keep their spaces)."""
    e.text(required=False)
    return e.node.text


def _lease(parent: Elem) -> Lease | None:
    e = parent.child("lease")
    if e is None:
        return None
    expiry = _required_int(e, "expiry")
    unit = e.attr("unit") or "minutes"
    if unit not in LEASE_UNITS:
        raise XMLError(f"{e.path}: unit must be one of {', '.join(LEASE_UNITS)}, not '{unit}'")
    e.done()
    return Lease(expiry, unit)


def _prefix(e: Elem, addr: ipaddress.IPv4Address | ipaddress.IPv6Address, family: Family) -> int:
    netmask = e.attr("netmask")
    prefix_text = e.attr("prefix")
    if netmask is not None and prefix_text is not None:
        raise XMLError(f"{e.path}: give either netmask or prefix, not both")
    if netmask is not None:
        if family == "ipv6":
            raise XMLError(f"{e.path}: netmask is only for IPv4; use prefix for IPv6")
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
        except ValueError as err:
            raise XMLError(f"{e.path}: invalid netmask '{netmask}'") from err
    if prefix_text is not None:
        if not prefix_text.isdigit():
            raise XMLError(f"{e.path}: invalid prefix '{prefix_text}'")
        return int(prefix_text)
    if family == "ipv4":
        first = int(str(addr).split(".")[0])  # libvirt's classful default when neither is given
        return 8 if first < 128 else 16 if first < 192 else 24
    return 64


def _ip(e: Elem) -> IPConfig:
    address = e.require("address")
    try:
        addr = ipaddress.ip_address(address)
    except ValueError as err:
        raise XMLError(f"{e.path}: invalid address '{address}'") from err
    family: Family = "ipv6" if addr.version == 6 else "ipv4"
    family_text = e.attr("family")
    if family_text is not None:
        if family_text not in ("ipv4", "ipv6"):
            raise XMLError(f"{e.path}: family must be 'ipv4' or 'ipv6', not '{family_text}'")
        if family_text != family:
            raise XMLError(f"{e.path}: address '{address}' is not an {family_text} address")
    ip = IPConfig(
        address=str(addr),
        prefix=_prefix(e, addr, family),
        family=family,
        netmask_given=e.node.attrib.get("netmask") is not None,
        family_given=family_text is not None,
    )
    dhcp = e.child("dhcp")
    if dhcp is not None:
        ip.dhcp = True
        for r in dhcp.children("range"):
            ip.ranges.append(DHCPRange(start=r.require("start"), end=r.require("end"), lease=_lease(r)))
            r.done()
        for h in dhcp.children("host"):
            mac = h.attr("mac")
            ip.hosts.append(
                DHCPHost(
                    ip=h.require("ip"),
                    mac=mac.lower() if mac else None,
                    id=h.attr("id"),
                    name=h.attr("name"),
                    lease=_lease(h),
                )
            )
            h.done()
        dhcp.done()
    e.done()
    return ip


def _dns(e: Elem) -> DNSConfig:
    dns = DNSConfig(enable=e.flag("enable"), forward_plain_names=e.flag("forwardPlainNames"))
    for f in e.children("forwarder"):
        dns.forwarders.append(DNSForwarder(addr=f.attr("addr"), domain=f.attr("domain")))
        f.done()
    for h in e.children("host"):
        host = DNSHost(ip=h.require("ip"))
        for hostname in h.children("hostname"):
            host.hostnames.append(hostname.text(required=False))
            hostname.done()
        h.done()
        dns.hosts.append(host)
    e.done()
    return dns


def _forward(e: Elem) -> ForwardConfig:
    mode = e.attr("mode") or "nat"
    if mode not in FORWARD_MODES:
        raise unsupported(f"forward mode '{mode}' is not supported (supported: {', '.join(FORWARD_MODES)})")
    fwd = ForwardConfig(mode=mode, dev=e.attr("dev"))
    for i in e.children("interface"):
        dev = i.require("dev")
        i.done()
        if fwd.dev is None:
            fwd.dev = dev
        elif dev != fwd.dev:
            raise unsupported("only one forward interface is supported")
    nat = e.child("nat")
    if nat is not None:
        if (address := nat.child("address")) is not None:
            fwd.nat_address_start = address.require("start")
            fwd.nat_address_end = address.require("end")
            address.done()
        if (port := nat.child("port")) is not None:
            fwd.nat_port_start = _required_int(port, "start")
            fwd.nat_port_end = _required_int(port, "end")
            port.done()
        nat.done()
    e.done()
    return fwd


def _bridge(e: Elem, forward: ForwardConfig | None) -> BridgeConfig:
    if forward is not None and forward.mode == "bridge":
        for name in ("stp", "delay"):  # the host's bridge is not ours to configure
            if (value := e.node.attrib.get(name)) is not None:
                raise unsupported(
                    f"attribute '{name}' = '{value}' of '{e.path}' has no effect with forward mode 'bridge'"
                )
    stp = e.flag("stp", "on", "off")
    bridge = BridgeConfig(
        name=e.attr("name"),
        stp=True if stp is None else stp,
        delay=e.integer("delay", minimum=0) or 0,
    )
    e.done()
    return bridge


def _uuid(e: Elem) -> str:
    text = e.text()
    try:
        return str(uuidlib.UUID(text))
    except ValueError as err:
        raise XMLError(f"{e.path}: invalid UUID '{text}'") from err


def parse_network_xml(text: str) -> Network:
    """Parse libvirt network XML into a :class:`Network` (no defaults applied, not validated)."""
    node = parse_document(text, raw_paths=frozenset({"metadata"}))
    if node.tag != "network":
        raise XMLError(f"expected a <network> document, got <{node.tag}>")
    root = Elem(node)
    root.skip("connections")  # libvirt's live count of guests on the network: output only
    name = root.child("name")
    if name is None or not name.text(required=False):
        raise XMLError("network: missing <name>")
    net = Network(name=name.text())
    name.done()
    if (uuid := root.child("uuid")) is not None:
        net.uuid, net.uuid_given = _uuid(uuid), True
        uuid.done()
    if (title := root.child("title")) is not None:
        net.title = _text_of(title)
        title.done()
    if (description := root.child("description")) is not None:
        net.description = _text_of(description)
        description.done()
    if (metadata := root.child("metadata")) is not None:
        net.metadata = metadata.node.raw_inner or None
        metadata.skip(*(child.tag for child in metadata.node.children))
        metadata.text(required=False)
        metadata.done()
    if (forward := root.child("forward")) is not None:
        net.forward = _forward(forward)
    if (bridge := root.child("bridge")) is not None:
        net.bridge = _bridge(bridge, net.forward)
    if (mtu := root.child("mtu")) is not None:
        net.mtu = _required_int(mtu, "size")
        mtu.done()
    if (mac := root.child("mac")) is not None:
        net.mac = mac.require("address").lower()
        mac.done()
    if (domain := root.child("domain")) is not None:
        net.domain_name = domain.require("name")
        net.domain_local_only = domain.flag("localOnly")
        domain.done()
    if (dns := root.child("dns")) is not None:
        net.dns = _dns(dns)
    net.ips = [_ip(ip) for ip in root.children("ip")]
    root.done()
    return net


# ------------------------------------------------------------------------------------------- formatting


def _with_lease(tag: str, attrs: dict[str, str | int | None], lease: Lease | None) -> XNode:
    node = x(tag, attrs)
    if lease is not None:
        node.add(x("lease", {"expiry": lease.expiry, "unit": lease.unit}))
    return node


def _ip_node(ip: IPConfig) -> XNode:
    family = ip.family if ip.family_given or ip.family == "ipv6" else None
    mask: dict[str, str | int | None] = {"netmask": ip.netmask} if ip.netmask_given else {"prefix": ip.prefix}
    node = x("ip", {"family": family, "address": ip.address, **mask})
    if ip.dhcp or ip.ranges or ip.hosts:
        dhcp = x("dhcp")
        for r in ip.ranges:
            dhcp.add(_with_lease("range", {"start": r.start, "end": r.end}, r.lease))
        for h in ip.hosts:
            dhcp.add(_with_lease("host", {"mac": h.mac, "id": h.id, "name": h.name, "ip": h.ip}, h.lease))
        node.add(dhcp)
    return node


def _dns_node(dns: DNSConfig) -> XNode:
    node = x("dns", {"enable": yes_no(dns.enable), "forwardPlainNames": yes_no(dns.forward_plain_names)})
    for f in dns.forwarders:
        node.add(x("forwarder", {"addr": f.addr, "domain": f.domain}))
    for h in dns.hosts:
        node.add(x("host", {"ip": h.ip}).add(*(x("hostname", text=n) for n in h.hostnames)))
    return node


def _forward_node(fwd: ForwardConfig) -> XNode:
    node = x("forward", {"mode": fwd.mode, "dev": fwd.dev})
    nat = x("nat")
    if fwd.nat_address_start is not None:
        nat.add(x("address", {"start": fwd.nat_address_start, "end": fwd.nat_address_end}))
    if fwd.nat_port_start is not None:
        nat.add(x("port", {"start": fwd.nat_port_start, "end": fwd.nat_port_end}))
    return node.add(nat) if nat.children else node


def format_network_xml(net: Network) -> str:
    """Format a :class:`Network` as libvirt network XML (element order as libvirt writes it)."""
    root = x("network").add(x("name", text=net.name), x("uuid", text=net.uuid))
    if net.title is not None:
        root.add(x("title", text=net.title))
    if net.description is not None:
        root.add(x("description", text=net.description))
    if net.metadata:
        check_metadata(net.metadata, "network")  # raw text goes out verbatim: never let it break the document
        root.add(XNode("metadata", raw=net.metadata))
    if net.forward is not None:
        root.add(_forward_node(net.forward))
    br = net.bridge
    if net.managed:
        stp = "on" if br.stp else "off"
        root.add(x("bridge", {"name": br.name, "stp": stp, "delay": br.delay}))
    else:
        root.add(x("bridge", {"name": br.name}))
    if net.mtu is not None:
        root.add(x("mtu", {"size": net.mtu}))
    if net.mac is not None:
        root.add(x("mac", {"address": net.mac}))
    if net.domain_name is not None:
        root.add(x("domain", {"name": net.domain_name, "localOnly": yes_no(net.domain_local_only)}))
    if net.dns is not None:
        root.add(_dns_node(net.dns))
    root.add(*(_ip_node(ip) for ip in net.ips))
    return serialize(root)
