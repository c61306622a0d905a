"""<vsock> (pyvirt.conf.vsock): vhost-vsock-pci with its CID, written back, refused by name."""

from __future__ import annotations

import pytest

from pyvirt.conf import vsock
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>v</name><memory>65536</memory><os><type machine='{machine}'>hvm</type></os>
<devices><memballoon model='none'/><controller type='usb' model='none'/>{devices}</devices></domain>"""


def devices(xml: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]


@pytest.mark.parametrize(
    ("machine", "vsock", "device"),
    [
        (
            "pc",
            "<vsock model='virtio'><cid auto='no' address='4'/>"
            "<address type='pci' domain='0' bus='0' slot='7' function='0'/></vsock>",
            "vhost-vsock-pci,id=vsock0,guest-cid=4,bus=pci.0,addr=0x7",
        ),
        ("q35", "<vsock><cid auto='yes' address='42'/></vsock>", "vhost-vsock-pci,id=vsock0,guest-cid=42"),
    ],
)
def test_vsock_on_the_command_line_and_back(machine: str, vsock: str, device: str) -> None:
    xml = XML.format(machine=machine, devices=vsock)
    ours = [d for d in devices(xml) if d.startswith("vhost-vsock-pci")]
    assert len(ours) == 1 and ours[0].startswith(device)
    again = format_domain(load_domain_xml(xml))
    assert "<vsock model='virtio'>" in again and [d for d in devices(again) if "vsock" in d] == ours


@pytest.mark.parametrize(
    ("vsock", "reason"),
    [
        ("<vsock model='virtio'><cid auto='no'/></vsock>", "needs an address"),
        ("<vsock model='virtio'><cid address='2'/></vsock>", "out of range"),
        ("<vsock model='vmci'/>", "'model' = 'vmci'"),
        ("<vsock/><vsock/>", "more than one"),
    ],
)
def test_refused_by_name(vsock: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(machine="pc", devices=vsock))


def test_an_automatic_cid_is_chosen_at_start_only() -> None:
    xml = XML.format(machine="pc", devices="<vsock><cid auto='yes'/></vsock>")
    with pytest.raises(PyvirtError, match="chosen at start"):
        devices(xml)
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x", vsock_cid=5))
    assert any(a.startswith("vhost-vsock-pci,id=vsock0,guest-cid=5") for a in argv)


def test_the_lowest_cid_no_running_domain_holds() -> None:
    held = [
        load_domain_xml(XML.format(machine="pc", devices=f"<vsock><cid address='{c}'/></vsock>"))
        for c in (3, 5)
    ]
    held.append(load_domain_xml(XML.format(machine="pc", devices="")))
    assert vsock.cids_in_use(held) == {3, 5}
    assert vsock.free_cid({3, 5}) == 4 and vsock.free_cid(set()) == 3 and vsock.free_cid({3, 4}) == 5
