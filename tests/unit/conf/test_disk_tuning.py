"""A disk's device tuning (pyvirt.conf.disk_tuning): parsed, written back, on the device, refused by bus."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>d</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices><disk type='file'><driver name='qemu' type='raw' {driver}/><source file='/d.img'/>
<target dev='{dev}' bus='{bus}' {target}/>{children}</disk>
<controller type='usb' model='piix3-uhci'/></devices></domain>"""


def device(bus: str = "ide", dev: str = "hda", driver: str = "", target: str = "", children: str = "") -> str:
    xml = XML.format(bus=bus, dev=dev, driver=driver, target=target, children=children)
    dom = load_domain_xml(format_domain(load_domain_xml(xml)))  # through dumpxml and back
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    return next(argv[i + 1] for i, a in enumerate(argv) if a == "-device" and "drive=" in argv[i + 1])


def test_tuning_reaches_the_device() -> None:
    ide = device(
        driver="error_policy='enospace'",
        target="rotation_rate='7200'",
        children="<wwn>0x5000C50015EA71AD</wwn><geometry cyls='100' heads='16' secs='63'/>",
    )
    assert ide.endswith(",werror=enospc,rotation_rate=7200,cyls=100,heads=16,secs=63,wwn=5764824127192592813")
    virtio = device("virtio", "vda", "error_policy='stop' queues='4' ioeventfd='off'", "",
                    "<blockio logical_block_size='4096'/>")  # fmt: skip
    assert virtio.endswith(",werror=stop,rerror=stop,ioeventfd=off,num-queues=4,logical_block_size=4096")
    scsi = device("scsi", "sda", children="<vendor>ACME</vendor><product>Drive, 1</product>")
    assert scsi.endswith(",vendor=ACME,product=Drive,, 1")
    assert device("usb", "sdb", target="removable='off'").endswith(",removable=off")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"driver": "queues='2'"}, "driver queues of disk 'hda' \\(bus 'ide'\\)"),
        (
            {"bus": "virtio", "dev": "vda", "target": "rotation_rate='1'"},
            "target rotation_rate of disk 'vda'",
        ),
        ({"children": "<vendor>ACME</vendor>"}, "vendor of disk 'hda'"),
        ({"children": "<wwn>12345</wwn>"}, "invalid wwn '12345'"),
        ({"children": "<vendor>ACME CORPORATION</vendor>"}, "at most 8 printable characters"),
        ({"children": "<blockio logical_block_size='1000'/>"}, "must be a power of two"),
        ({"children": "<geometry cyls='1' heads='1'/>"}, "missing attribute 'secs'"),
        ({"driver": "error_policy='retry'"}, "'error_policy' = 'retry'"),
        ({"driver": "copy_on_read='yes'"}, "'copy_on_read' = 'yes'"),
    ],
)
def test_refused_by_name(kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        device(**kwargs)
