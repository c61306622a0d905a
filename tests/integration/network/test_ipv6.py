"""IPv6 on a network: address on the bridge, routed (not masqueraded) rules, a DHCPv6 lease from dnsmasq."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pyvirt.network.driver import NetworkDriver

pytestmark = pytest.mark.root

DUAL = """<network><name>dual</name><forward mode='nat'/><bridge name='pvbr50' stp='off'/>
<ip address='10.50.0.1' prefix='24'><dhcp><range start='10.50.0.2' end='10.50.0.9'/></dhcp></ip>
<ip family='ipv6' address='fd00:50::1' prefix='64'>
<dhcp><range start='fd00:50::100' end='fd00:50::1ff'/></dhcp></ip></network>"""


def test_dual_stack_network(driver: NetworkDriver, host_ns: str, tools: Any, tmp_path: Path) -> None:
    driver.create(DUAL)
    addrs = tools.in_ns(host_ns, "ip", "-o", "addr", "show", "pvbr50").stdout
    assert "fd00:50::1/64" in addrs and "10.50.0.1/24" in addrs
    assert tools.in_ns(host_ns, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
    rules = tools.ruleset(host_ns)
    assert "ip6 saddr fd00:50::/64 accept" in rules and "ip6 daddr fd00:50::/64 accept" in rules

    if shutil.which("dhclient") is None:
        pytest.skip("dhclient not installed: DHCPv6 lease not tested")
    client = tools.make("c6")
    tools.sh(
        "ip", "-n", host_ns, "link", "add", "v6peer", "type", "veth", "peer", "name", "eth0", "netns", client
    )
    tools.sh("ip", "-n", host_ns, "link", "set", "v6peer", "master", "pvbr50", "up")
    tools.in_ns(client, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
    tools.sh("ip", "-n", client, "link", "set", "eth0", "address", "52:54:00:50:00:02", "up")
    proc = tools.in_ns(
        client,
        "dhclient", "-6", "-1", "-v",
        "-lf", str(tmp_path / "leases6"), "-pf", str(tmp_path / "dhclient6.pid"), "-sf", "/bin/true",
        "eth0",
        check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    leases = [x for x in driver.leases("dual") if x.protocol == "ipv6"]
    assert len(leases) == 1 and leases[0].prefix == 64
    assert leases[0].ip.startswith("fd00:50::1")
    tools.in_ns(client, "dhclient", "-6", "-x", "-pf", str(tmp_path / "dhclient6.pid"), check=False)
    driver.destroy("dual")
