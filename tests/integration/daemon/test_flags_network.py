"""The network flags of the domain verbs on a real pyvirtd (in a test-made network namespace) and a real
TCG guest: ``attach-interface --target`` names the tap (live, and in the definition for the next start)
``domifaddr --source`` reads the DHCP leases or the host's ARP table (the guest agent refused), and
``domhostname --source lease`` the name the guest's DHCP client gave."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.daemon.test_networks import in_ns, net_define, nsdaemon
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]
__all__ = ["nsdaemon"]  # the fixture, shared with test_networks


def test_domifaddr_source_and_attach_interface_target(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    net_define(d, tmp_path, "fl", 79)
    path = tmp_path / "g1.xml"
    path.write_text(domain_xml("g1", nic_network="fl"))
    d.cli("define", str(path)).ok()

    result = d.cli("domifaddr", "g1")
    assert result.rc == 1 and "domain is not running" in result.err
    d.cli("start", "g1").ok()
    console = Console(d, "g1")
    lease = console.expect(r"eth0 lease (10\.79\.0\.\d+)\s", 120).group(1).decode()

    # --source lease (the default): the network's DHCP lease, with the network's prefix.
    for args in ((), ("--source", "lease")):
        out = d.cli("domifaddr", "g1", *args).ok().out
        assert re.search(rf"^ vnet\d+\s+52:54:00:\S+\s+ipv4\s+{re.escape(lease)}/24$", out, re.M), out
    # --source arp: the host's neighbour table, filled once the guest talks to the host (prefix 0).
    assert "0% packet loss" in console.run("ping -c 2 -W 3 10.79.0.1")
    out = d.cli("domifaddr", "g1", "--source", "arp").ok().out
    assert re.search(rf"^ vnet\d+\s+52:54:00:\S+\s+ipv4\s+{re.escape(lease)}/0$", out, re.M), out
    mac = re.search(r"(52:54:00:\S+)", out)
    assert mac
    leases = d.cli("net-dhcp-leases", "fl", "--mac", mac.group(1)).ok().out
    assert lease in leases
    # --json: the same lease and address as data, not a table.
    [entry] = json.loads(d.cli("net-dhcp-leases", "fl", "--mac", mac.group(1), "--json").ok().out)
    assert (entry["ip"], entry["prefix"], entry["mac"]) == (lease, 24, mac.group(1))
    [addr] = json.loads(d.cli("domifaddr", "g1", "--json").ok().out)
    assert (addr["address"], addr["mac"], addr["protocol"]) == (f"{lease}/24", mac.group(1), "ipv4")
    assert lease not in d.cli("net-dhcp-leases", "fl", "--mac", "52:54:00:ff:ff:ff").ok().out
    result = d.cli("domifaddr", "g1", "--source", "agent")
    assert result.rc == 1 and "QEMU guest agent is not configured" in result.err
    result = d.cli("domifaddr", "g1", "--source", "dhcp")
    assert result.rc == 1 and "Unknown data source 'dhcp'" in result.err
    # domhostname --source lease: the name the guest's DHCP client gave (udhcpc -x hostname:...).
    assert d.cli("domhostname", "g1", "--source", "lease").ok().out == "pyvirt-guest\n\n"
    result = d.cli("domhostname", "g1", "--source", "dhcp")
    assert result.rc == 1 and "Unknown data source 'dhcp'" in result.err
    result = d.cli("domhostname", "g1")  # the agent, the default source: this domain has none
    assert result.rc == 1 and "failed to get hostname" in result.err and "not configured" in result.err

    # attach-interface --target: the tap's name, in the running domain and (--config) its definition.
    result = d.cli("attach-interface", "g1", "network", "fl", "--target", "vnet42")
    assert result.rc == 1 and "--target vnet42" in result.err and "reserved" in result.err
    d.cli(
        "attach-interface", "g1", "network", "fl", "--target", "fltap1", "--model", "e1000", "--persistent"
    ).ok()
    assert "<model type='e1000'/>" in d.cli("dumpxml", "--inactive", "g1").ok().out
    # the guest sees an Intel NIC (PCI vendor 8086, hot-plugged) beside its virtio one (1af4)
    console.run(
        "for i in $(seq 60); do grep -q 0x8086 /sys/class/net/*/device/vendor && break; sleep 1; done", 90
    )
    assert "0x8086" in console.run("cat /sys/class/net/*/device/vendor")
    assert re.search(r"^fltap1\s", in_ns(d, "ip", "-br", "link"), re.M)
    assert re.search(r"^ fltap1\s+network\s+fl\s", d.cli("domiflist", "g1").ok().out, re.M)
    assert "<target dev='fltap1'/>" in d.cli("dumpxml", "--inactive", "g1").ok().out
    result = d.cli("attach-interface", "g1", "network", "fl", "--target", "fltap1")
    assert result.rc == 1 and "already has an interface of that name" in result.err

    # The definition's name is used at the next start (the first NIC's tap stays generated).
    d.cli("destroy", "g1").ok()
    deadline = time.monotonic() + 10  # taps go on the network driver's thread, just after destroy answers
    while re.search(r"^fltap1\s", in_ns(d, "ip", "-br", "link"), re.M) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not re.search(r"^fltap1\s", in_ns(d, "ip", "-br", "link"), re.M)
    d.cli("start", "g1").ok()
    iflist = d.cli("domiflist", "g1").ok().out
    assert re.search(r"^ vnet\d+\s+network\s+fl\s", iflist, re.M), iflist
    assert re.search(r"^ fltap1\s+network\s+fl\s", iflist, re.M), iflist
    assert re.search(r"^fltap1\s", in_ns(d, "ip", "-br", "link"), re.M)
    d.cli("destroy", "g1").ok()
    console.close()
