"""<memtune> and the cgroup values of <cputune> (shares, global_period, global_quota): parsed, written
back as libvirt writes them, and refused by name when out of range or unknown."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError

XML = """<domain type='qemu'><name>t</name><memory>65536</memory>
<memtune><hard_limit unit='MiB'>512</hard_limit><swap_hard_limit>1048576</swap_hard_limit></memtune>
<cputune><shares>512</shares><global_period>100000</global_period><global_quota>-1</global_quota>
<emulatorpin cpuset='0'/></cputune><os><type>hvm</type></os></domain>"""


def test_round_trip() -> None:
    dom = load_domain_xml(XML)
    assert dom.memtune is not None and dom.cputune is not None
    assert (dom.memtune.hard_limit, dom.memtune.soft_limit, dom.memtune.swap_hard_limit) == (
        524288,
        None,
        1048576,
    )
    assert dom.cputune.cgroup_fields() == {"cpu_shares": 512, "global_period": 100000, "global_quota": -1}
    text = format_domain(dom)
    assert "<memtune>\n    <hard_limit unit='KiB'>524288</hard_limit>\n    <swap_hard_limit" in text
    assert "<shares>512</shares>\n    <global_period>100000</global_period>" in text
    again = load_domain_xml(text)
    assert again.memtune == dom.memtune and again.cputune == dom.cputune


@pytest.mark.parametrize(
    ("old", "new", "word"),
    [
        ("<shares>512</shares>", "<shares>1</shares>", "shares"),
        ("<global_quota>-1</global_quota>", "<global_quota>10</global_quota>", "global_quota"),
        ("<global_period>100000</global_period>", "<period>100000</period>", "period"),
        ("<swap_hard_limit>1048576</swap_hard_limit>", "<min_guarantee>1</min_guarantee>", "min_guarantee"),
        ("unit='MiB'", "unit='parsec'", "parsec"),
        ("unit='MiB'>512", "unit='GiB'>2", "swap_hard_limit"),
    ],
)
def test_refused_by_name(old: str, new: str, word: str) -> None:
    with pytest.raises(PyvirtError, match=word):
        load_domain_xml(XML.replace(old, new))


NIC = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='network'><source network='default'/>
<bandwidth><inbound average='1000' peak='2000' burst='64'/><outbound average='10'/></bandwidth>
</interface></devices></domain>"""


def test_bandwidth_round_trip() -> None:
    nic = load_domain_xml(NIC).devices.interfaces[0]
    assert nic.bandwidth == {
        "inbound": {"average": 1000, "peak": 2000, "burst": 64},
        "outbound": {"average": 10},
    }
    text = format_domain(load_domain_xml(NIC))
    assert "<bandwidth>\n        <inbound average='1000' peak='2000' burst='64'/>\n" in text
    assert load_domain_xml(text).devices.interfaces[0].bandwidth == nic.bandwidth


@pytest.mark.parametrize(
    ("old", "new", "word"),
    [
        ("<outbound average='10'/>", "<outbound average='10' floor='5'/>", "floor"),
        ("<outbound average='10'/>", "<outbound peak='10'/>", "average"),
        ("peak='2000'", "peak='500'", "peak"),
        ("<outbound average='10'/>", "<outbound average='10' mtu='1'/>", "mtu"),
        ("<outbound average='10'/>", "<sideways average='10'/>", "sideways"),
    ],
)
def test_bandwidth_refused_by_name(old: str, new: str, word: str) -> None:
    with pytest.raises(PyvirtError, match=word):
        load_domain_xml(NIC.replace(old, new))


DISK = """<domain type='qemu'><name>d</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/x.img'/><target dev='vda' bus='virtio'/>
<iotune><read_bytes_sec>1000</read_bytes_sec><total_iops_sec>0</total_iops_sec><group_name>g</group_name>
<read_bytes_sec_max_length>3</read_bytes_sec_max_length></iotune></disk></devices></domain>"""


def test_iotune_round_trip() -> None:
    disk = load_domain_xml(DISK).devices.disks[0]
    assert disk.iotune == {"read_bytes_sec": 1000, "group_name": "g", "read_bytes_sec_max_length": 3}
    text = format_domain(load_domain_xml(DISK))
    assert (
        "<target dev='vda' bus='virtio'/>\n      <iotune>\n        <read_bytes_sec>1000</read_bytes_sec>"
        in text
    )
    assert load_domain_xml(text).devices.disks[0].iotune == disk.iotune


@pytest.mark.parametrize(
    ("old", "new", "word"),
    [
        ("<total_iops_sec>0</total_iops_sec>", "<total_bytes_sec>5</total_bytes_sec>", "total_bytes_sec"),
        ("<total_iops_sec>0</total_iops_sec>", "<total_iops_sec>-1</total_iops_sec>", "total_iops_sec"),
        ("<total_iops_sec>0</total_iops_sec>", "<fast>1</fast>", "fast"),
    ],
)
def test_iotune_refused_by_name(old: str, new: str, word: str) -> None:
    with pytest.raises(PyvirtError, match=word):
        load_domain_xml(DISK.replace(old, new))
