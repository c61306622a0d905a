"""<reservations> of a SCSI LUN (pyvirt.conf.disk_reservations): parsed, written back, refused where
libvirt refuses it, and the helper object the command line gets (the golden libvirt-reservations case
has both kinds; tests/integration/daemon/test_pr_helper.py runs the managed helper)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from pyvirt.qemu.hotplug import disk_nodes

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='{kind}' device='{device}'><driver name='qemu' type='raw'/><source {src}>{res}</source>
<target dev='sda' bus='scsi'/></disk><controller type='scsi' model='virtio-scsi'/></devices></domain>"""
MANAGED = "<reservations managed='yes'/>"
UNMANAGED = (
    "<reservations managed='no'><source type='unix' path='/run/pr.sock' mode='client'/></reservations>"
)


def disk_xml(res: str, device: str = "lun", kind: str = "block") -> str:
    src = "dev='/dev/sdz'" if kind == "block" else "file='/x.img'"
    return XML.format(res=res, device=device, kind=kind, src=src)


def test_a_managed_helper_is_given_at_start() -> None:
    dom = load_domain_xml(disk_xml(MANAGED))
    assert "<reservations managed='yes'/>" in format_domain(dom)
    with pytest.raises(PyvirtError, match="the helper is run at start only"):
        build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x", pr_helper_socket="/run/d/pr.sock"))
    assert '{"qom-type":"pr-manager-helper","id":"pr-helper0","path":"/run/d/pr.sock"}' in argv
    assert any('"pr-manager":"pr-helper0"' in arg for arg in argv)
    with pytest.raises(PyvirtError, match="with <reservations>"):
        disk_nodes(dom.devices.disks[0], ["pyvirt-5"], [("/dev/fdset/1", "raw")])


def test_an_unmanaged_helper_is_the_hosts() -> None:
    dom = load_domain_xml(disk_xml(UNMANAGED))
    text = format_domain(dom)
    assert "<source type='unix' path='/run/pr.sock' mode='client'/>" in text
    assert load_domain_xml(text).devices.disks[0].reservations == dom.devices.disks[0].reservations
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert '{"qom-type":"pr-manager-helper","id":"pr-helper-pyvirt-1-storage","path":"/run/pr.sock"}' in argv
    assert not any('"id":"pr-helper0"' in arg for arg in argv)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (disk_xml(MANAGED, device="disk"), "allowed only for a 'lun' of type 'block'"),
        (disk_xml(MANAGED, kind="file", device="disk"), "allowed only for a 'lun'"),
        (disk_xml("<reservations/>"), "missing attribute 'managed'"),
        (disk_xml("<reservations managed='no'/>"), "needs <source type='unix'"),
        (disk_xml(UNMANAGED.replace(" mode='client'", "")), "missing attribute 'mode'"),
        (disk_xml(UNMANAGED.replace("/run/pr.sock", "pr.sock")), "must be absolute"),
        (
            disk_xml(
                "<reservations managed='yes'><source type='unix' path='/p' mode='client'/></reservations>"
            ),
            "takes no <source>",
        ),
    ],
)
def test_refused_with_the_reason(xml: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(xml)
