"""<acpi index> of disks, interfaces and video devices (pyvirt.conf.acpi_index)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>a</name><memory>65536</memory><os><type>hvm</type></os>
<devices>{devices}</devices></domain>"""
DISK = "<disk type='file'><source file='/i.img'/><target dev='{dev}' bus='{bus}'/>{acpi}</disk>"


def argv(devices: str) -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(devices=devices))))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_the_index_reaches_each_pci_device() -> None:
    devices = (
        DISK.format(dev="vda", bus="virtio", acpi="<acpi index='1'/>")
        + "<interface type='user'><model type='virtio'/><acpi index='2'/></interface>"
        + "<video><model type='vga'/><acpi index='3'/></video>"
    )
    dom = load_domain_xml(XML.format(devices=devices))
    assert [dom.devices.disks[0].acpi_index, dom.devices.interfaces[0].acpi_index] == [1, 2]
    assert format_domain(dom).count("<acpi index=") == 3
    out = argv(devices)
    found = {arg.split(",", 1)[0] for arg in out for i in (1, 2, 3) if f"acpi-index={i}" in arg.split(",")}
    assert found == {"virtio-blk-pci", "virtio-net-pci", "VGA"}


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        (
            DISK.format(dev="hda", bus="ide", acpi="<acpi index='1'/>"),
            "<acpi index> of disk 'hda', not a PCI",
        ),
        (
            DISK.format(dev="vda", bus="virtio", acpi="<acpi index='7'/>")
            + DISK.format(dev="vdb", bus="virtio", acpi="<acpi index='7'/>"),
            "acpi index '7' is used by more than one device",
        ),
        (DISK.format(dev="vda", bus="virtio", acpi="<acpi index='16384'/>"), "16384"),
        (DISK.format(dev="vda", bus="virtio", acpi="<acpi/>"), "missing attribute 'index'"),
    ],
)
def test_refused_by_name(devices: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(devices)
