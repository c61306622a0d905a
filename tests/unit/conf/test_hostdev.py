"""<hostdev> (pyvirt.conf.hostdev): PCI, USB and mediated host devices parsed, written back, on the
command line as vfio-pci and usb-host, refused by name."""

from __future__ import annotations

import itertools
import re

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>h</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>{devices}</devices></domain>"""


def hostdev_devices(xml: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [b for a, b in itertools.pairwise(argv) if a == "-device" and b.startswith(("vfio", "usb-host"))]


@pytest.mark.parametrize(
    ("hostdev", "device"),
    [
        (
            "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
            "<address domain='0' bus='6' slot='0x12' function='1'/></source>"
            "<rom file='/usr/share/x.rom'/></hostdev>",
            "vfio-pci,host=0000:06:12.1,id=hostdev0,romfile=/usr/share/x.rom",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/>"
            "<address bus='1' device='12'/></source></hostdev>",
            "usb-host,bus=usb.0,hostdevice=/dev/bus/usb/001/012,id=hostdev0",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source guestReset='off'><address bus='1' device='12'/>"
            "</source><boot order='2'/></hostdev>",
            "usb-host,bus=usb.0,hostdevice=/dev/bus/usb/001/012,id=hostdev0,guest-reset=off,"
            "guest-resets-all=off,bootindex=2",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on' ramfb='on'><source>"
            "<address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source><boot order='1'/></hostdev>",
            "vfio-pci-nohotplug,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/53764d0e-85a0-42b4-af5c-2046b460b1dc,"
            "display=on,ramfb=on,bootindex=1",
        ),
    ],
)
def test_hostdevs_on_the_command_line_and_back(hostdev: str, device: str) -> None:
    xml = XML.format(devices=hostdev)
    assert [re.sub(r"bus=pci\.0,addr=0x[0-9a-f]+,", "", d) for d in hostdev_devices(xml)] == [device]
    again = format_domain(load_domain_xml(xml))
    assert hostdev_devices(again) == hostdev_devices(xml)


@pytest.mark.parametrize(
    ("hostdev", "reason"),
    [
        ("<hostdev mode='capabilities' type='storage'/>", "'mode' = 'capabilities'"),
        (
            "<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' name='iqn.x/1'/></hostdev>",
            "needs exactly one <host>",
        ),
        (
            "<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' name='iqn.x/1'><host name='h'/>"
            "<auth username='u'><secret type='ceph' usage='x'/></auth></source></hostdev>",
            "invalid secret type 'ceph'",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><address bus='1' device='2'/></source>"
            "<address type='drive' controller='0' bus='0' target='0' unit='1'/></hostdev>",
            "cannot have a drive address",
        ),
        (
            "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/></source></hostdev>",
            "/dev/sg",
        ),
        ("<hostdev mode='subsystem' type='mdev' model='vfio-ccw'><source/></hostdev>", "'vfio-ccw'"),
        ("<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source/></hostdev>", "<address uuid/>"),
        ("<hostdev mode='subsystem' type='usb'><source guestReset='x'/></hostdev>", "'guestReset' = 'x'"),
        (
            "<hostdev mode='subsystem' type='usb'><source><address bus='1' device='2'/></source>"
            "<boot order='1'/></hostdev><interface type='user'><boot order='1'/></interface>",
            "boot order 1 is used by more than one device",
        ),
        ("<hostdev mode='subsystem' type='pci'/>", "needs a <source>"),
        (
            "<hostdev mode='subsystem' type='pci'><source><address bus='1' slot='40' function='0'/>"
            "</source></hostdev>",
            "out of range",
        ),
        ("<hostdev mode='subsystem' type='pci'><driver name='kvm'/><source/></hostdev>", "'name' = 'kvm'"),
        ("<hostdev mode='subsystem' type='usb'><source/></hostdev>", "an <address> or a <vendor>"),
    ],
)
def test_refused_by_name(hostdev: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(devices=hostdev))


def test_a_usb_device_named_by_vendor_is_looked_up_at_start() -> None:
    xml = XML.format(
        devices="<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/>"
        "</source></hostdev>"
    )
    with pytest.raises(PyvirtError, match="looked up at start"):
        hostdev_devices(xml)


def test_iscsi_luns_without_an_address_get_free_units_written_back() -> None:
    """As libvirt's define: after the SCSI disk's unit and an explicit one (octal 03 = 3), in order;
    each scsi-generic at its own unit (scsi-id on the implicit lsilogic), none twice."""
    lun = (
        "<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' name='iqn.x:t/{n}'>"
        "<host name='h'/></source>{a}</hostdev>"
    )
    explicit = "<address type='drive' controller='0' bus='0' target='0' unit='03'/>"
    disk = "<disk type='file'><source file='/i'/><target dev='sda' bus='scsi'/></disk>"
    xml = XML.format(
        devices=disk + lun.format(n=1, a="") + lun.format(n=2, a=explicit) + lun.format(n=3, a="")
    )
    dom = load_domain_xml(xml)
    units = [dev.address.attrs["unit"] if dev.address else None for dev in dom.devices.hostdevs]
    assert units == ["1", "03", "2"]
    text = format_domain(dom)
    for unit in ("1", "03", "2"):
        assert f"<address type='drive' controller='0' bus='0' target='0' unit='{unit}'/>" in text
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    generic = [b for a, b in itertools.pairwise(argv) if a == "-device" and b.startswith("scsi-generic")]
    assert [g.split("scsi-id=")[1] for g in generic] == ["1", "3", "2"]
