"""virtio's transport options on <driver> (pyvirt.conf.virtio_options): parsed, written, on QEMU's argv."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>v</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>
<disk type='file'><driver name='qemu' type='raw' iommu='on' page_per_vq='off'/><source file='/a.img'/>
<target dev='vda' bus='virtio'/></disk>
<controller type='scsi' index='0' model='virtio-scsi'><driver packed='on'/></controller>
<interface type='user'><mac address='52:54:00:00:00:01'/><model type='{nic}'/><driver ats='on'/></interface>
<input type='tablet' bus='virtio'><driver packed='off'/></input>
<memballoon model='virtio'><driver ats='on'/></memballoon>
<rng model='virtio'><backend model='random'>/dev/urandom</backend><driver iommu='off'/></rng>
</devices></domain>"""


def devices(xml: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]


def test_each_device_carries_its_options_and_they_round_trip() -> None:
    xml = XML.format(nic="virtio")
    found = devices(xml)
    expected = {
        "virtio-blk-pci": ("iommu_platform=on", "page-per-vq=off"),
        "virtio-scsi-pci": ("packed=on",),
        "virtio-net-pci": ("ats=on",),
        "virtio-tablet-pci": ("packed=off",),
        "virtio-balloon-pci": ("ats=on",),
        "virtio-rng-pci": ("iommu_platform=off",),
    }
    for driver, props in expected.items():
        spec = next(d for d in found if d.startswith(driver + ","))
        assert all(f",{p}" in spec for p in props), spec
    again = format_domain(load_domain_xml(format_domain(load_domain_xml(xml))))
    assert "<driver name='qemu' type='raw' iommu='on' page_per_vq='off'/>" in again
    assert devices(again) == found


def test_refused_on_a_device_that_is_not_virtio_and_for_bad_values() -> None:
    with pytest.raises(PyvirtError, match=r"virtio options \(ats\) of an interface: it is not a virtio"):
        devices(XML.format(nic="e1000"))
    with pytest.raises(PyvirtError, match="attribute 'packed' = 'yes'"):
        load_domain_xml(XML.format(nic="virtio").replace("packed='on'", "packed='yes'"))
    with pytest.raises(PyvirtError, match="attribute 'queues'"):
        load_domain_xml(XML.format(nic="virtio").replace("<driver packed='off'/>", "<driver queues='2'/>"))
