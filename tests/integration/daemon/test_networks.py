"""Guests on virtual networks, end to end: the daemon runs inside a network namespace this test
makes, so bridges, taps, nftables rules and dnsmasq never appear in the machine's own namespace."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon, netns_daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]

NET_XML = """<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='off' delay='0'/>
  <ip address='10.{n}.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.{n}.0.100' end='10.{n}.0.200'/>
      <host mac='52:54:00:aa:00:{n:02x}' name='fixed' ip='10.{n}.0.50'/>
    </dhcp>
  </ip>
</network>
"""


@pytest.fixture
def nsdaemon() -> Iterator[Daemon]:
    with netns_daemon("pvt") as d:
        yield d


def in_ns(d: Daemon, *argv: str) -> str:
    assert d.netns
    return subprocess.run(["ip", "netns", "exec", d.netns, *argv], capture_output=True, text=True).stdout


def net_define(d: Daemon, tmp_path: Path, name: str, n: int) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(NET_XML.format(name=name, bridge=f"pvt{n}", n=n))
    assert d.cli("net-define", str(path)).ok().out == f"Network {name} defined from {path}\n\n"
    assert d.cli("net-start", name).ok().out == f"Network {name} started\n\n"


def guest(d: Daemon, tmp_path: Path, name: str, net: str, mac: str | None = None) -> Console:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, nic_network=net, mac=mac))
    d.cli("define", str(path)).ok()
    d.cli("start", name).ok()
    return Console(d, name)


def test_guests_get_leases_and_reach_each_other(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    net_define(d, tmp_path, "lan", 77)
    assert "pvt77" in in_ns(d, "ip", "-br", "link")
    assert "pvt77" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    table = d.cli("net-list").ok().out
    assert re.search(r"^ lan\s+active\s+no\s+yes\s*$", table, re.M), table

    c1 = guest(d, tmp_path, "n1", "lan")
    c2 = guest(d, tmp_path, "n2", "lan", mac="52:54:00:aa:00:4d")
    lease1 = c1.expect(r"eth0 lease (10\.77\.0\.\d+)\s", 120).group(1).decode()
    lease2 = c2.expect(r"eth0 lease (10\.77\.0\.\d+)\s", 120).group(1).decode()
    assert lease2 == "10.77.0.50"  # the static host entry for its MAC
    assert lease1 != lease2

    iflist = d.cli("domiflist", "n1").ok().out
    assert re.search(r"^ vnet\d+\s+network\s+lan\s+virtio\s+52:54:00:", iflist, re.M), iflist
    addr = d.cli("domifaddr", "n1").ok().out
    assert f"{lease1}/24" in addr and "ipv4" in addr
    leases = d.cli("net-dhcp-leases", "lan").ok().out
    assert lease1 in leases and lease2 in leases

    assert "0% packet loss" in c1.run("ping -c 2 -W 3 10.77.0.1")
    assert "0% packet loss" in c1.run(f"ping -c 2 -W 3 {lease2}")

    # The daemon restarts: networks, leases and guests are kept.
    d.restart()
    assert re.search(r"^ lan\s+active", d.cli("net-list").ok().out, re.M)
    assert lease1 in d.cli("net-dhcp-leases", "lan").ok().out
    c1.close()
    c1 = Console(d, "n1")  # the console stream lived in the old daemon; the guest did not notice
    assert "0% packet loss" in c1.run(f"ping -c 1 -W 3 {lease2}")

    # Taps go away with the domain.
    tap = re.search(r"(vnet\d+)", iflist)
    assert tap
    d.cli("destroy", "n1").ok()
    # The tap is removed on the network driver's thread, just after destroy answers.
    deadline = time.monotonic() + 10
    while tap.group(1) in in_ns(d, "ip", "-br", "link") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tap.group(1) not in in_ns(d, "ip", "-br", "link")

    d.cli("destroy", "n2").ok()
    assert d.cli("net-destroy", "lan").ok().out == "Network lan destroyed\n\n"
    assert "pvt77" not in in_ns(d, "ip", "-br", "link")
    assert "pyvirt" not in in_ns(d, "nft", "list", "tables")
    c1.close()
    c2.close()


def test_hotplug_nic_and_link_state(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    net_define(d, tmp_path, "hp", 78)
    path = tmp_path / "h1.xml"
    path.write_text(domain_xml("h1"))
    d.cli("define", str(path)).ok()
    d.cli("start", "h1").ok()
    console = Console(d, "h1")
    console.expect("pyvirt-guest: ready")
    nic = ("--mac", "52:54:00:00:78:01", "--model", "virtio")  # libvirt's default model is rtl8139
    result = d.cli("attach-interface", "h1", "network", "hp", *nic)
    assert result.ok().out == "Interface attached successfully\n\n"
    iflist = d.cli("domiflist", "h1").ok().out
    assert "52:54:00:00:78:01" in iflist
    # ACPI PCI hot-plug: the guest kernel finds the new virtio NIC by itself.
    console.run("for i in $(seq 60); do [ -e /sys/class/net/eth0 ] && break; sleep 1; done", 90)
    console.send("ip link set eth0 up; udhcpc -i eth0 -n -q -t 5 2>&1 | tail -1\n")
    console.expect(r"10\.78\.0\.\d+\s", 60)
    tap = re.search(r"(vnet\d+)", iflist)
    assert tap
    d.cli("domif-setlink", "h1", tap.group(1), "down").ok()
    assert "LOWER_UP" not in console.run("ip link show eth0")
    d.cli("domif-setlink", "h1", tap.group(1), "up").ok()
    result = d.cli("detach-interface", "h1", "network", "--mac", "52:54:00:00:78:01")
    assert result.ok().out == "Interface detached successfully\n\n"
    assert "52:54:00:00:78:01" not in d.cli("domiflist", "h1").ok().out
    assert tap.group(1) not in in_ns(d, "ip", "-br", "link")
    console.run("for i in $(seq 30); do [ -e /sys/class/net/eth0 ] || break; sleep 1; done", 60)
    assert "can't find device 'eth0'" in console.run("ip link show eth0 2>&1")
    d.cli("destroy", "h1").ok()
    console.close()


def test_network_bad_input_changes_nothing(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    net_define(d, tmp_path, "a", 79)
    overlapping = tmp_path / "b.xml"
    overlapping.write_text(NET_XML.format(name="b", bridge="pvt80", n=79))
    d.cli("net-define", str(overlapping)).ok()
    result = d.cli("net-start", "b")
    assert result.rc == 1 and result.err.startswith("error: Failed to start network b"), result.err
    assert "pvt80" not in in_ns(d, "ip", "-br", "link")
    taken = tmp_path / "c.xml"
    taken.write_text(NET_XML.format(name="c", bridge="pvt79", n=81))
    result = d.cli("net-define", str(taken))
    assert result.rc == 1 and "pvt79" in result.err
    bad_range = tmp_path / "d.xml"
    bad_range.write_text(NET_XML.format(name="d", bridge="pvt82", n=82).replace("10.82.0.200", "10.99.0.200"))
    result = d.cli("net-define", str(bad_range))
    assert result.rc == 1 and "range" in result.err
    assert not (d.root / "etc/pyvirt/qemu/networks/d.xml").exists()
    # A domain on a network that is not running does not start.
    path = tmp_path / "x.xml"
    path.write_text(domain_xml("x1", nic_network="b"))
    d.cli("define", str(path)).ok()
    result = d.cli("start", "x1")
    assert result.rc == 1 and "b" in result.err
    assert d.state("x1") == "shut off"
    assert not d.qemu_pids()


def named_tap_guest(d: Daemon, tmp_path: Path, name: str, net: str, tap: str) -> None:
    xml = domain_xml(name, nic_network=net)
    path = tmp_path / f"{name}.xml"
    path.write_text(xml.replace('<model type="virtio"', f'<target dev="{tap}" /><model type="virtio"', 1))
    assert f'<target dev="{tap}"' in path.read_text()
    d.cli("define", str(path)).ok()


def test_user_given_tap_name_is_used(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    net_define(d, tmp_path, "named", 81)
    named_tap_guest(d, tmp_path, "t1", "named", "guest-t1")
    named_tap_guest(d, tmp_path, "t2", "named", "guest-t1")
    d.cli("start", "t1").ok()
    assert re.search(r"^ guest-t1\s+network\s+named\s+virtio\s", d.cli("domiflist", "t1").ok().out, re.M)
    assert "master pvt81" in in_ns(d, "ip", "link", "show", "guest-t1")
    # a second guest asking for the same tap is refused at start
    result = d.cli("start", "t2")
    assert result.rc == 1 and "network device 'guest-t1' already exists" in result.err, result.err
    assert "shut off" in d.cli("domstate", "t2").ok().out
    d.cli("destroy", "t1").ok()
    deadline = time.monotonic() + 10
    while "guest-t1" in in_ns(d, "ip", "-br", "link") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "guest-t1" not in in_ns(d, "ip", "-br", "link")


def test_net_create_makes_a_transient_network(nsdaemon: Daemon, tmp_path: Path) -> None:
    """net-create FILE: the network runs (its bridge exists) without a definition, and is gone once
    destroyed, as virsh's transient networks are."""
    d = nsdaemon
    path = tmp_path / "tr.xml"
    path.write_text(NET_XML.format(name="tr", bridge="pvt83", n=83))
    assert d.cli("net-create", str(path)).ok().out == f"Network tr created from {path}\n\n"
    assert "pvt83" in in_ns(d, "ip", "-br", "link")
    info = d.cli("net-info", "tr").ok().out
    assert re.search(r"^Active:\s+yes$", info, re.M) and re.search(r"^Persistent:\s+no$", info, re.M), info
    d.cli("net-destroy", "tr").ok()
    assert "pvt83" not in in_ns(d, "ip", "-br", "link")
    result = d.cli("net-info", "tr")
    assert result.rc == 1 and "tr" in result.err
