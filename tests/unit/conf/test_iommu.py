"""The guest IOMMU (pyvirt.conf.iommu): <iommu model='intel'|'virtio'> parsed, written back, on the argv."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='{accel}'><name>i</name><memory>65536</memory>
<os><type machine='{machine}'>hvm</type></os>
<features><ioapic driver='{ioapic}'/></features><devices>{iommu}</devices></domain>"""
INTEL = "<iommu model='intel'><driver intremap='on' caching_mode='off' eim='on' aw_bits='39'/></iommu>"
VIRTIO = "<iommu model='virtio'><address type='pci' domain='0' bus='0' slot='9' function='0'/></iommu>"


def argv(accel: str = "kvm", machine: str = "q35", ioapic: str = "qemu", iommu: str = INTEL) -> list[str]:
    xml = XML.format(accel=accel, machine=machine, ioapic=ioapic, iommu=iommu)
    dom = load_domain_xml(format_domain(load_domain_xml(xml)))  # through dumpxml and back
    return build_argv(dom, RuntimeContext(accel="kvm" if accel == "kvm" else "tcg", monitor_path="/x"))


def test_intel_and_virtio_iommus_on_the_command_line() -> None:
    out = argv()
    assert "intel-iommu,id=iommu0,intremap=on,caching-mode=off,eim=on,aw-bits=39" in out
    assert (
        out.index("-device")
        == out.index("intel-iommu,id=iommu0,intremap=on,caching-mode=off,eim=on,aw-bits=39") - 1
    )
    assert "virtio-iommu,id=iommu0,bus=pcie.0,addr=0x9" in argv(iommu=VIRTIO)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"machine": "pc"}, "needs a q35 machine"),
        ({"ioapic": "kvm"}, "needs <ioapic driver='qemu'/>"),
        ({"accel": "qemu"}, "eim='on' needs KVM"),
        ({"iommu": INTEL.replace("intremap='on'", "intremap='off'")}, "eim='on' needs interrupt remapping"),
        ({"iommu": "<iommu model='virtio'><driver intremap='on'/></iommu>"}, "of an IOMMU of model 'virtio'"),
        ({"iommu": "<iommu model='amd'/>"}, "'model' = 'amd'"),
        ({"iommu": "<iommu model='intel'><driver aw_bits='52'/></iommu>"}, "'aw_bits' = '52'"),
        ({"iommu": INTEL + INTEL}, "more than one 'devices/iommu'"),
    ],
)
def test_refused_by_name(kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(**kwargs)
