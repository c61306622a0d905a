"""A NAT network on the real kernel, inside test namespaces: start, DHCP, leases, readopt, destroy."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from pyvirt.errors import InvalidState, NotFound
from pyvirt.network import dnsmasq
from pyvirt.network.driver import NetworkDriver
from pyvirt.paths import Layout

pytestmark = pytest.mark.root

NAT = """<network>
  <name>nat1</name>
  <forward mode='nat'/>
  <bridge name='pvbr10' stp='off'/>
  <domain name='lab.test'/>
  <dns><host ip='10.77.0.99'><hostname>printer</hostname></host></dns>
  <ip address='10.77.0.1' prefix='24'>
    <dhcp>
      <range start='10.77.0.100' end='10.77.0.150'/>
      <host mac='52:54:00:00:77:05' name='fixed' ip='10.77.0.5'/>
    </dhcp>
  </ip>
</network>
"""


def test_nat_network_full_cycle(driver: NetworkDriver, layout: Layout, host_ns: str, tools: Any) -> None:
    in_ns, links, ruleset = tools.in_ns, tools.links, tools.ruleset
    status = driver.define(NAT)
    assert (status.name, status.active, status.persistent, status.bridge) == ("nat1", False, True, "pvbr10")
    assert (layout.network_config_dir / "nat1.xml").exists()
    driver.start("nat1")
    assert driver.info("nat1").active

    br = links(host_ns)["pvbr10"]
    assert "UP" in br["flags"]  # type: ignore[operator]
    assert [(a["local"], a["prefixlen"]) for a in br["addr_info"]] == [("10.77.0.1", 24)]  # type: ignore[attr-defined]
    assert in_ns(host_ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    rules = ruleset(host_ns)
    assert "table inet pyvirt" in rules and "table ip pyvirt_nat" in rules
    assert '"pvbr10" : jump' in rules
    assert "ip daddr 10.77.0.0/24 ct state established,related accept" in rules
    assert "ip saddr 10.77.0.0/24 jump" in rules and "masquerade" in rules

    files = dnsmasq.DnsmasqFiles.under(layout.network_run_dir, "nat1")
    pid = int(files.pid.read_text())
    assert dnsmasq.pid_alive(pid, files)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{host_ns}").st_ino

    # a client on the bridge gets a lease from the range, and it shows in leases()
    c1 = tools.add_client(host_ns, "pvbr10", "52:54:00:00:77:01", "c1")
    addr = tools.dhcp(c1, hostname="guest1")
    ip, prefix = addr.split("/")
    assert prefix == "24" and 100 <= int(ip.rsplit(".", 1)[1]) <= 150
    leases = driver.leases("nat1")
    assert [(x.mac, x.ip, x.prefix, x.hostname, x.protocol) for x in leases] == [
        ("52:54:00:00:77:01", ip, 24, "guest1", "ipv4")
    ]
    assert driver.leases("nat1", mac="52:54:00:00:77:99") == []
    assert in_ns(c1, "busybox", "ping", "-c1", "-W2", "10.77.0.1", check=False).returncode == 0

    # DNS from dnsmasq: a <dns><host> and the DHCP client's own name in the network's domain
    lookup = in_ns(c1, "busybox", "nslookup", "printer", "10.77.0.1", check=False).stdout
    assert "10.77.0.99" in lookup
    lookup = in_ns(c1, "busybox", "nslookup", "guest1.lab.test", "10.77.0.1", check=False).stdout
    assert ip in lookup

    # the static host gets its fixed address
    c2 = tools.add_client(host_ns, "pvbr10", "52:54:00:00:77:05", "c2")
    assert tools.dhcp(c2) == "10.77.0.5/24"
    assert {x.ip for x in driver.leases("nat1")} == {ip, "10.77.0.5"}

    driver.destroy("nat1")
    assert "pvbr10" not in links(host_ns)
    assert "pyvirt" not in ruleset(host_ns)
    deadline = time.monotonic() + 5
    while dnsmasq.pid_alive(pid, files) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not dnsmasq.pid_alive(pid, files)
    assert sorted(p.name for p in layout.network_run_dir.iterdir()) == []
    status = driver.info("nat1")
    assert (status.active, status.persistent) == (False, True)
    with pytest.raises(InvalidState):
        driver.leases("nat1")
    with pytest.raises(InvalidState):
        driver.destroy("nat1")


def test_readopt_and_destroy_from_new_driver(
    driver: NetworkDriver, layout: Layout, host_ns: str, tools: Any
) -> None:
    links, ruleset = tools.links, tools.ruleset
    driver.define(NAT)
    driver.start("nat1")
    files = dnsmasq.DnsmasqFiles.under(layout.network_run_dir, "nat1")
    pid = int(files.pid.read_text())
    driver.close()

    second = NetworkDriver(layout, netns=host_ns)
    try:
        second.readopt()
        assert second.info("nat1").active
        assert dnsmasq.pid_alive(pid, files)  # kept, not restarted
        assert "<bridge name='pvbr10'" in second.dumpxml("nat1")

        # dnsmasq killed behind our back: readopt restarts it
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not dnsmasq.process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        second.readopt()
        new_pid = int(files.pid.read_text())
        assert new_pid != pid and dnsmasq.pid_alive(new_pid, files)

        second.destroy("nat1")
        assert "pvbr10" not in links(host_ns)
        assert "pyvirt" not in ruleset(host_ns)
    finally:
        second.close()


def test_readopt_drops_network_whose_bridge_vanished(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    in_ns, ruleset = tools.in_ns, tools.ruleset
    driver.define(NAT)
    driver.start("nat1")
    in_ns(host_ns, "ip", "link", "del", "pvbr10")
    driver.readopt()
    assert not driver.info("nat1").active
    assert "pyvirt" not in ruleset(host_ns)


def test_transient_network_and_autostart(driver: NetworkDriver, layout: Layout, host_ns: str) -> None:
    status = driver.create(NAT.replace("nat1", "tmp1"))
    assert (status.active, status.persistent) == (True, False)
    assert not (layout.network_config_dir / "tmp1.xml").exists()
    with pytest.raises(InvalidState):
        driver.set_autostart("tmp1", True)
    driver.destroy("tmp1")
    with pytest.raises(NotFound):
        driver.info("tmp1")

    driver.define(NAT)
    driver.set_autostart("nat1", True)
    link = layout.network_autostart_dir / "nat1.xml"
    assert os.readlink(link) == "../nat1.xml"
    assert driver.info("nat1").autostart
    driver.autostart_all()
    assert driver.info("nat1").active
    driver.destroy("nat1")
    driver.set_autostart("nat1", False)
    assert not link.exists()
    driver.undefine("nat1")
    assert driver.list() == []


def test_ensure_default_once(driver: NetworkDriver, layout: Layout, host_ns: str, tools: Any) -> None:
    in_ns = tools.in_ns
    driver.ensure_default()
    status = driver.info("default")
    assert (status.persistent, status.autostart, status.bridge) == (True, True, "pvbr0")
    xml = driver.dumpxml("default")
    assert "<forward mode='nat'/>" in xml
    assert "<range start='192.168.122.2' end='192.168.122.254'/>" in xml
    driver.autostart_all()
    assert driver.info("default").active
    assert "192.168.122.1/24" in in_ns(host_ns, "ip", "-o", "addr", "show", "pvbr0").stdout
    driver.destroy("default")
    driver.undefine("default")
    driver.ensure_default()  # it existed once: not brought back
    assert driver.list() == []
