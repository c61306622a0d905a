"""``<interface type='ethernet'>`` (pyvirt.conf.net_ethernet): parsed, written back, checked, and its
``-netdev`` on the descriptor the daemon opens."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>e</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>{nic}</devices></domain>"""
NIC = """<interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='tap7'/>
<ip address='10.0.0.1' prefix='24'/><ip address='fd00::1' prefix='64' peer='fd00::2'/>
<route address='10.1.0.0' prefix='16' gateway='10.0.0.2'/>
<script path='/etc/qemu-ifup'/><downscript path='/etc/qemu-ifdown'/><model type='e1000'/></interface>"""


def test_round_trip_and_argv() -> None:
    dom = load_domain_xml(XML.format(nic=NIC))
    eth = dom.devices.interfaces[0].ethernet
    assert eth is not None and eth.managed and eth.script == "/etc/qemu-ifup"
    assert [(ip.address, ip.prefix, ip.peer) for ip in eth.ips] == [
        ("10.0.0.1", 24, None),
        ("fd00::1", 64, "fd00::2"),
    ]
    text = format_domain(dom)
    assert "<route address='10.1.0.0' prefix='16' gateway='10.0.0.2'/>" in text
    assert load_domain_xml(text).devices.interfaces[0].ethernet == eth
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x", tap_fds={0: 33}))
    assert '{"type":"tap","fd":"33","id":"hostnet0"}' in argv
    unmanaged = NIC.replace("<target dev='tap7'/>", "<target dev='tap7' managed='no'/>")
    unmanaged = unmanaged.split("<ip ")[0] + "<model type='virtio'/></interface>"
    text = format_domain(load_domain_xml(XML.format(nic=unmanaged)))
    assert "<target dev='tap7' managed='no'/>" in text


@pytest.mark.parametrize(
    ("nic", "message"),
    [
        (
            "<interface type='ethernet'><target dev='t' managed='no'/><ip address='10.0.0.1'/></interface>",
            "managed='no'",
        ),
        ("<interface type='ethernet'><target dev='x' managed='maybe'/></interface>", "maybe"),
        ("<interface type='ethernet'><ip address='10.0.0.300'/></interface>", "invalid IP address"),
        ("<interface type='ethernet'><ip address='10.0.0.1' family='ipv6'/></interface>", "does not match"),
        ("<interface type='ethernet'><script path='ifup'/></interface>", "must be absolute"),
        ("<interface type='ethernet'><route address='10.0.0.0' prefix='8'/></interface>", "gateway"),
    ],
)
def test_refused_by_name(nic: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(XML.format(nic=nic))


def test_unmanaged_needs_its_tap() -> None:
    nic = "<interface type='ethernet'><target dev='vnet3' managed='no'/></interface>"
    dom = load_domain_xml(XML.format(nic=nic))  # a vnetN name is the user's too when unmanaged
    assert dom.devices.interfaces[0].target_dev == "vnet3"
    assert "<target dev='vnet3' managed='no'/>" in format_domain(dom)
    with pytest.raises(PyvirtError, match="dev"):
        load_domain_xml(XML.format(nic="<interface type='ethernet'><target managed='no'/></interface>"))
