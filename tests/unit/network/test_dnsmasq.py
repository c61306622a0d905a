"""dnsmasq configuration and hosts files as text; lease file parsing."""

from __future__ import annotations

import random
from pathlib import Path

from pyvirt.conf.network import Network
from pyvirt.conf.network_validate import apply_defaults, validate_network
from pyvirt.conf.network_xml import parse_network_xml
from pyvirt.network.dnsmasq import (
    DnsmasqFiles,
    build_addnhosts,
    build_config,
    build_hostsfile,
    parse_leases,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "network"
FILES = DnsmasqFiles.under(Path("/run/pyvirt/network"), "n")


def load(name: str) -> Network:
    net = parse_network_xml((DATA / name).read_text())
    apply_defaults(net, bridge_taken=lambda _b: False, rng=random.Random(0))
    validate_network(net)
    return net


def test_default_network_config() -> None:
    conf = build_config(load("nat.xml"), FILES).splitlines()
    assert "interface=pvbr0" in conf and "bind-dynamic" in conf and "except-interface=lo" in conf
    assert "dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0" in conf
    assert "dhcp-lease-max=253" in conf
    assert "pid-file=/run/pyvirt/network/n.pid" in conf
    assert "dhcp-leasefile=/run/pyvirt/network/n.leases" in conf
    assert not any(line.startswith("port=") for line in conf)


def test_full_config_and_hosts() -> None:
    net = load("nat-full.xml")
    conf = build_config(net, FILES).splitlines()
    assert "dhcp-range=10.20.0.100,10.20.0.199,255.255.255.0,7200" in conf
    assert "dhcp-range=fd00:20::100,fd00:20::1ff,64" in conf
    assert "enable-ra" in conf
    assert {"domain=example.test", "local=/example.test/", "expand-hosts"} <= set(conf)
    assert {"no-resolv", "server=192.0.2.53", "server=/corp.test/192.0.2.54", "local=//"} <= set(conf)
    assert build_hostsfile(net).splitlines() == [
        "52:54:00:00:00:01,10.20.0.5,fixed",
        "52:54:00:00:00:02,10.20.0.6,infinite",
        "id:0:3:0:1:0:16:3e:11:22:33,[fd00:20::5],six",
    ]
    assert build_addnhosts(net) == "10.20.0.99\tprinter printer.example.test\n"


def test_dns_disabled_and_no_dhcp() -> None:
    net = parse_network_xml(
        "<network><name>n</name><bridge name='b0'/><dns enable='no'/>"
        "<ip address='10.1.0.1' prefix='24'/></network>"
    )
    conf = build_config(net, FILES).splitlines()
    assert "port=0" in conf
    assert not any(line.startswith("dhcp-") for line in conf)
    assert not net.needs_dnsmasq


def test_parse_leases() -> None:
    net = load("nat-full.xml")
    text = (
        "1700000000 52:54:00:AA:BB:CC 10.20.0.150 guest1 01:52:54:00:aa:bb:cc\n"
        "0 52:54:00:00:00:02 10.20.0.6 * *\n"
        "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:0a:cd:21\n"
        "1700000500 2864232 fd00:20::155 guest6 00:03:00:01:52:54:00:11:22:33\n"
    )
    leases = parse_leases(text, net)
    assert [(x.ip, x.prefix, x.protocol) for x in leases] == [
        ("10.20.0.150", 24, "ipv4"),
        ("10.20.0.6", 24, "ipv4"),
        ("fd00:20::155", 64, "ipv6"),
    ]
    assert leases[0].mac == "52:54:00:aa:bb:cc" and leases[0].hostname == "guest1"
    assert leases[1].hostname is None and leases[1].clientid is None and leases[1].expiry == 0
    assert leases[2].iaid == "2864232" and leases[2].mac is None
