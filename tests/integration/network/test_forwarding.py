"""Forwarding through the host namespace: NAT reaches a third namespace, an isolated network does not.

Topology: client ── veth ── bridge (host ns, the driver's) ── veth ── "outside" namespace 10.200.0.2.
The outside namespace has no route back to the guests' subnets, so only masquerading lets replies return.
Bridges here run without STP: with it the kernel holds a new port for 2 x its 2 s minimum forward delay.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyvirt.network.driver import NetworkDriver

pytestmark = pytest.mark.root

NAT = """<network><name>natnet</name><forward mode='nat'/><bridge name='pvbr20' stp='off'/>
<ip address='10.81.0.1' prefix='24'/></network>"""
ISOLATED = """<network><name>isonet</name><bridge name='pvbr21' stp='off'/>
<ip address='10.82.0.1' prefix='24'/></network>"""
ROUTED = """<network><name>routenet</name><forward mode='route'/><bridge name='pvbr22' stp='off'/>
<ip address='10.83.0.1' prefix='24'/></network>"""


def outside(tools: Any, host: str) -> str:
    out = tools.make("out")
    tools.sh("ip", "-n", host, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", out)
    tools.sh("ip", "-n", host, "addr", "add", "10.200.0.1/24", "dev", "uplink")
    tools.sh("ip", "-n", host, "link", "set", "uplink", "up")
    tools.sh("ip", "-n", out, "addr", "add", "10.200.0.2/24", "dev", "eth0")
    tools.sh("ip", "-n", out, "link", "set", "eth0", "up")
    return str(out)


def static_client(tools: Any, host: str, bridge: str, mac: str, role: str, addr: str, gw: str) -> str:
    client = str(tools.add_client(host, bridge, mac, role))
    tools.sh("ip", "-n", client, "addr", "add", addr, "dev", "eth0")
    tools.sh("ip", "-n", client, "route", "add", "default", "via", gw)
    return client


def ping(tools: Any, ns: str, addr: str, tries: int = 1) -> bool:
    for _ in range(tries):
        if tools.in_ns(ns, "busybox", "ping", "-c1", "-W1", addr, check=False).returncode == 0:
            return True
    return False


def test_nat_forwards_isolated_does_not(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    out = outside(tools, host_ns)
    driver.create(NAT)
    driver.create(ISOLATED)
    nat_client = static_client(
        tools, host_ns, "pvbr20", "52:54:00:00:81:02", "nc", "10.81.0.2/24", "10.81.0.1"
    )
    iso_client = static_client(
        tools, host_ns, "pvbr21", "52:54:00:00:82:02", "ic", "10.82.0.2/24", "10.82.0.1"
    )

    assert ping(tools, nat_client, "10.81.0.1", tries=3)
    assert ping(tools, nat_client, "10.200.0.2"), "NAT network cannot reach the outside namespace"
    assert tools.in_ns(host_ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    assert ping(tools, iso_client, "10.82.0.1", tries=3), "isolated guests still reach their host"
    assert not ping(tools, iso_client, "10.200.0.2"), "isolated network forwarded a packet out"
    # and nothing comes in: give the outside a route to the isolated subnet, it is still refused
    tools.sh("ip", "-n", out, "route", "add", "10.82.0.0/24", "via", "10.200.0.1")
    assert not ping(tools, out, "10.82.0.2")
    # a NAT guest cannot open connections into another network either
    assert not ping(tools, nat_client, "10.82.0.2")

    # destroying one network leaves the other's rules in place
    driver.destroy("natnet")
    rules = tools.ruleset(host_ns)
    assert '"pvbr21"' in rules and '"pvbr20"' not in rules and "pyvirt_nat" not in rules
    assert not ping(tools, iso_client, "10.200.0.2")
    driver.destroy("isonet")
    assert "pyvirt" not in tools.ruleset(host_ns)


def test_routed_network_needs_return_route(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    out = outside(tools, host_ns)
    driver.create(ROUTED)
    client = static_client(tools, host_ns, "pvbr22", "52:54:00:00:83:02", "rc", "10.83.0.2/24", "10.83.0.1")
    assert ping(tools, client, "10.83.0.1", tries=3)
    assert not ping(tools, client, "10.200.0.2")  # no masquerade: replies have no way back
    tools.sh("ip", "-n", out, "route", "add", "10.83.0.0/24", "via", "10.200.0.1")
    assert ping(tools, client, "10.200.0.2")
    assert ping(tools, out, "10.83.0.2")  # routed networks accept new inbound connections
    driver.destroy("routenet")
