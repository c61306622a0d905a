"""Network XML: round trips over tests/data/network, strict parsing, defaults and validation errors."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.conf.names import validate_name
from pyvirt.conf.network import Network
from pyvirt.conf.network_validate import apply_defaults, validate_network
from pyvirt.conf.network_xml import format_network_xml, parse_network_xml
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "network"
DOCS = sorted(p.name for p in DATA.glob("*.xml"))


def load(text: str) -> Network:
    net = parse_network_xml(text)
    apply_defaults(net, bridge_taken=lambda _b: False, rng=random.Random(1))
    validate_network(net)
    return net


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip(doc: str) -> None:
    text = (DATA / doc).read_text()
    net = load(text)
    assert format_network_xml(net) == text
    assert parse_network_xml(format_network_xml(net)) == net


def test_model_of_full_document() -> None:
    net = load((DATA / "nat-full.xml").read_text())
    assert net.mode == "nat" and net.managed
    assert net.forward is not None and net.forward.dev == "eth1"
    assert (net.forward.nat_port_start, net.forward.nat_port_end) == (20000, 30000)
    assert net.bridge.stp is False and net.bridge.delay == 2
    assert net.mtu == 9000
    v4, v6 = net.ipv4()[0], net.ipv6()[0]
    assert str(v4.network) == "10.20.0.0/24" and v4.netmask == "255.255.255.0"
    assert v4.ranges[0].lease is not None and v4.ranges[0].lease.seconds == 7200
    assert v4.hosts[0].mac == "52:54:00:00:00:01" and v4.hosts[0].name == "fixed"
    assert v6.hosts[0].id == "0:3:0:1:0:16:3e:11:22:33"
    assert net.dns is not None and net.dns.hosts[0].hostnames == ["printer", "printer.example.test"]


def test_isolated_and_bridge_modes() -> None:
    assert load((DATA / "isolated.xml").read_text()).mode == "isolated"
    bridged = load((DATA / "bridge.xml").read_text())
    assert bridged.mode == "bridge" and not bridged.managed and bridged.mac is None
    assert not bridged.needs_dnsmasq


def test_defaults_pick_free_bridge_and_mac() -> None:
    net = parse_network_xml("<network><name>x</name><ip address='10.1.0.1' prefix='24'/></network>")
    apply_defaults(net, bridge_taken=lambda b: b in {"pvbr0", "pvbr1"})
    assert net.bridge.name == "pvbr2"
    assert net.mac is not None and net.mac.startswith("52:54:00:")
    assert not net.uuid_given


def test_metadata_is_kept_verbatim() -> None:
    net = load(
        "<network><name>m</name><metadata><app:x xmlns:app='urn:a'>1</app:x></metadata>"
        "<ip address='10.1.0.1' prefix='24'/></network>"
    )
    assert net.metadata == "<app:x xmlns:app='urn:a'>1</app:x>"
    assert parse_network_xml(format_network_xml(net)) == net


def test_connections_count_of_live_xml_is_accepted() -> None:
    net = parse_network_xml("<network connections='3'><name>c</name></network>")
    assert "connections" not in format_network_xml(net)


def test_classful_prefix_when_no_mask() -> None:
    net = parse_network_xml("<network><name>x</name><ip address='10.24.10.1'/></network>")
    assert net.ips[0].prefix == 8


@pytest.mark.parametrize(
    ("xml", "what"),
    [
        ("<network><name>a</name><portgroup name='p'/></network>", "element 'portgroup'"),
        ("<network><name>a</name><bridge name='b' zone='z'/></network>", "'zone'"),
        ("<network><name>a</name><bridge name='b' bogus='1'/></network>", "'bogus'"),
        ("<network><name>a</name><forward mode='vepa'/></network>", "vepa"),
        (
            "<network><name>a</name><ip address='10.0.0.1'><tftp root='/x'/></ip></network>",
            "element 'ip/tftp'",
        ),
        ("<network><name>a</name><dns><txt name='a' value='b'/></dns></network>", "element 'dns/txt'"),
        ("<network><name>a</name><bridge stp='maybe'/></network>", "'stp' = 'maybe'"),
        (
            "<network><name>a</name><forward mode='bridge'/><bridge name='br0' stp='off'/></network>",
            "no effect",
        ),
        (
            "<network><name>a</name><ip address='10.0.0.1'><dhcp>"
            "<range start='10.0.0.2' end='10.0.0.3' foo='1'/></dhcp></ip></network>",
            "attribute 'foo' = '1' of 'ip/dhcp/range'",
        ),
        ("<network><name>a</name><forward mode='nat'><pf dev='x'/></forward></network>", "'forward/pf'"),
        ("<network><name>a</name><domain name='t' register='yes'/></network>", "'register'"),
        ("<network><name>a</name><ip address='10.0.0.1' localPtr='yes'/></network>", "'localPtr'"),
        ("<network ipv6='yes'><name>a</name></network>", "'ipv6'"),
    ],
)
def test_unsupported_is_named(xml: str, what: str) -> None:
    with pytest.raises(UnsupportedConfig, match=what):
        parse_network_xml(xml)


@pytest.mark.parametrize(
    "xml",
    [
        '<!DOCTYPE network [<!ENTITY x "y">]><network><name>&x;</name></network>',
        "<!DOCTYPE network SYSTEM 'file:///etc/passwd'><network><name>a</name></network>",
        "<network><name>a</name>",
        "<domain><name>a</name></domain>",
        "<network><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid></network>",
        "<network><name>a</name><uuid>nope</uuid></network>",
        "<network><name>a</name><name>b</name></network>",
        "<network><name>a</name><ip address='10.0.0.1' prefix='24' netmask='255.0.0.0'/></network>",
        "<network><name>a</name><bridge delay='soon'/></network>",
        "<network><name>a</name><mtu/></network>",
    ],
)
def test_malformed_is_xml_error(xml: str) -> None:
    with pytest.raises(XMLError):
        parse_network_xml(xml)


BASE = "<network><name>n</name>{fwd}<bridge name='pvbr9'/>{ip}</network>"


@pytest.mark.parametrize(
    ("fwd", "ip", "message"),
    [
        (
            "",
            "<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip>",
            "outside",
        ),
        (
            "",
            "<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.9' end='10.0.0.2'/></dhcp></ip>",
            "after",
        ),
        (
            "",
            "<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.1' end='10.0.0.9'/></dhcp></ip>",
            "bridge",
        ),
        (
            "",
            "<ip address='10.0.0.1' prefix='24'><dhcp>"
            "<host mac='52:54:00:00:00:01' ip='10.9.0.5'/></dhcp></ip>",
            "outside",
        ),
        (
            "",
            "<ip address='10.0.0.1' prefix='24'><dhcp>"
            "<host mac='01:54:00:00:00:01' ip='10.0.0.5'/></dhcp></ip>",
            "MAC",
        ),
        ("", "<ip address='10.0.0.0' prefix='24'/>", "network or broadcast"),
        ("", "<ip address='10.0.0.1' prefix='24'/><ip address='10.0.0.129' prefix='25'/>", "overlap"),
        ("<forward mode='nat'/>", "", "IPv4"),
        ("<forward mode='bridge'/>", "<ip address='10.0.0.1' prefix='24'/>", "existing host bridge"),
        ("<forward mode='route'><nat><port start='1' end='2'/></nat></forward>", "", "only valid"),
    ],
)
def test_validation_errors(fwd: str, ip: str, message: str) -> None:
    net = parse_network_xml(BASE.format(fwd=fwd, ip=ip))
    with pytest.raises(InvalidArgument, match=message):
        validate_network(net)


@pytest.mark.parametrize("name", ["", "-a", ".a", "a/b", "a b", "é", "a;b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid network name"):
        validate_name(name, "network")


@pytest.mark.parametrize("name", ["default", "a", "net-1.2_x+y:z", "9"])
def test_good_names(name: str) -> None:
    validate_name(name, "network")


def test_bad_bridge_name_and_mtu() -> None:
    net = parse_network_xml("<network><name>n</name><bridge name='a/b'/></network>")
    with pytest.raises(InvalidArgument, match="bridge name"):
        validate_network(net)
    net = parse_network_xml("<network><name>n</name><bridge name='b'/><mtu size='20'/></network>")
    with pytest.raises(InvalidArgument, match="mtu"):
        validate_network(net)
