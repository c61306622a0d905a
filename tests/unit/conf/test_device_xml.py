"""One device's XML: read by the domain parser's own readers (refusing what they refuse), written back as
dumpxml writes it."""

from __future__ import annotations

import pytest

from pyvirt.conf.device_xml import format_device, parse_device
from pyvirt.conf.domain import ControllerConfig, DiskConfig, InterfaceConfig
from pyvirt.errors import UnsupportedConfig, XMLError

DISK = """<disk type='file' device='disk'>
  <driver name='qemu' type='qcow2' cache='none'/>
  <source file='/srv/a.qcow2'/>
  <target dev='vdb' bus='virtio'/>
  <serial>S1</serial>
  <alias name='ua-a'/>
</disk>
"""


def test_a_disk_round_trips() -> None:
    dev = parse_device(DISK)
    assert dev.kind == "disk" and isinstance(dev.obj, DiskConfig)
    assert dev.obj.source == "/srv/a.qcow2" and dev.obj.alias == "ua-a"
    assert format_device(dev) == DISK


def test_other_devices_and_controller_index() -> None:
    nic = parse_device("<interface type='user'><mac address='52:54:00:01:02:03'/></interface>")
    assert isinstance(nic.obj, InterfaceConfig) and nic.obj.mac == "52:54:00:01:02:03"
    ctl = parse_device("<controller type='scsi' model='virtio-scsi'/>")
    assert isinstance(ctl.obj, ControllerConfig) and not ctl.index_given
    assert parse_device("<controller type='scsi' index='2'/>").index_given
    rng = parse_device("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>")
    assert rng.kind == "rng" and "<backend model='random'>/dev/urandom</backend>" in format_device(rng)
    hostdev = parse_device(
        "<hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc52b'/></source>"
        "</hostdev>"
    )
    assert hostdev.kind == "hostdev" and "<vendor id='0x046d'/>" in format_device(hostdev)


@pytest.mark.parametrize(
    ("xml", "error", "message"),
    [
        ("<shmem name='ivshmem'/>", UnsupportedConfig, "device 'shmem' is not supported"),
        ("<hostdev mode='subsystem' type='pci'/>", XMLError, "needs a <source>"),
        ("<domain type='kvm'/>", UnsupportedConfig, "expected one device element"),
        (
            "<disk type='file'><target dev='vdb'/><transient shareBacking='maybe'/></disk>",
            UnsupportedConfig,
            "shareBacking",
        ),
        ("<disk type='file'><source file='/a'/></disk>", XMLError, "missing element 'target'"),
        ("<disk", XMLError, "malformed"),
    ],
)
def test_refusals(xml: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_device(xml)
