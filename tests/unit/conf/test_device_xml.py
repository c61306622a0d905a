"""One device's XML: read by the domain parser's own readers (refusing what they refuse), written back as
dumpxml writes it; the spare PCIe root ports of a q35 machine."""

from __future__ import annotations

import pytest

from pyvirt.conf.defaults import HOTPLUG_PORTS, hotplug_ports
from pyvirt.conf.device_xml import format_device, parse_device
from pyvirt.conf.domain import ControllerConfig, DiskConfig, Domain, InterfaceConfig, PCIAddress
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


@pytest.mark.parametrize(
    ("xml", "error", "message"),
    [
        ("<hostdev mode='subsystem'/>", UnsupportedConfig, "device 'hostdev' is not supported"),
        ("<domain type='kvm'/>", UnsupportedConfig, "expected one device element"),
        ("<disk type='file'><target dev='vdb'/><transient/></disk>", UnsupportedConfig, "'transient'"),
        ("<disk type='file'><source file='/a'/></disk>", XMLError, "missing element 'target'"),
        ("<disk", XMLError, "malformed"),
    ],
)
def test_refusals(xml: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_device(xml)


def test_q35_gets_spare_root_ports_once() -> None:
    dom = Domain(name="q")
    dom.os.machine = "pc-q35-7.2"
    ports = hotplug_ports(dom)
    assert len(ports) == HOTPLUG_PORTS
    assert [p.index for p in ports] == [1, 2, 3, 4]
    assert [p.address.attrs["function"] if p.address else None for p in ports] == ["0x0", "0x1", "0x2", "0x3"]
    assert ports[0].address is not None and ports[0].address.attrs["multifunction"] == "on"
    dom.devices.controllers.extend(ports)
    assert hotplug_ports(dom) == []  # idempotent: enough free ports now
    # A port a device sits on, or one with hotplug off, is not spare: one more is added.
    dom.devices.disks.append(
        DiskConfig(source="/a", target_dev="vda", address=PCIAddress("pci", {"bus": "0x01", "slot": "0"}))
    )
    ports[1].extra["target.hotplug"] = "off"
    more = hotplug_ports(dom)
    assert [p.index for p in more] == [5, 6]
    assert all(p.address is not None and p.address.attrs["slot"] == "0x1d" for p in more)  # 0x1e is taken
    pc = Domain(name="p")
    pc.os.machine = "pc"
    assert hotplug_ports(pc) == []
