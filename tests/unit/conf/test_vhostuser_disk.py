"""<disk type='vhostuser'> (pyvirt.conf.vhostuser_disk): parsed, written back, on QEMU's command line,
and refused where libvirt refuses it."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import unplaced

XML = """<domain type='qemu'><name>v</name><memory>65536</memory>{backing}<os><type>hvm</type></os>
<devices><disk type='vhostuser' device='disk'><driver name='qemu' type='{fmt}'/>
<source type='unix' path='/run/vu.sock'>{reconnect}</source><target dev='{dev}' bus='{bus}'/></disk>
</devices></domain>"""
SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"


def text(
    backing: str = SHARED, fmt: str = "raw", reconnect: str = "", dev: str = "vda", bus: str = "virtio"
) -> str:
    return XML.format(backing=backing, fmt=fmt, reconnect=reconnect, dev=dev, bus=bus)


def test_a_vhost_user_block_device_on_its_socket() -> None:
    dom = load_domain_xml(text(reconnect="<reconnect enabled='yes' timeout='5'/>"))
    written = format_domain(dom)
    assert "<source type='unix' path='/run/vu.sock'>" in written and "timeout='5'" in written
    argv = build_argv(load_domain_xml(written), RuntimeContext(accel="tcg", monitor_path="/x"))
    assert "socket,id=chr-vu-virtio-disk0,path=/run/vu.sock,reconnect=5" in argv
    assert any(
        arg.startswith("vhost-user-blk-pci,chardev=chr-vu-virtio-disk0,id=virtio-disk0")
        for arg in unplaced(argv)
    )
    assert "-blockdev" not in argv


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (text(backing=""), "needs the guest's memory shared"),
        (text(fmt="qcow2"), "must be a virtio disk of format raw"),
        (text(dev="sda", bus="sata"), "must be a virtio disk of format raw"),
        (text().replace("type='unix' path", "type='tcp' path"), "'type' = 'tcp'"),
        (text().replace("/run/vu.sock", "vu.sock"), "must be absolute"),
    ],
)
def test_refused_by_name(xml: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(xml)
