"""A domain with a <hostdev> (pyvirt.conf.hostdev, pyvirt.daemon.hostdevs) on this host, which has no
VFIO, no USB bus and no mediated devices: it is defined and written back; its start is refused by name
before any QEMU runs (no such host device, no VFIO), leaves no run files and hands no file over (the
disk keeps its owner and mode), and the domain stays shut off. The way a start gives a device to QEMU
where the host has one is tested against a fake sysfs tree (tests/unit/daemon/test_hostdevs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml

PCI_DEVICES = Path("/sys/bus/pci/devices")


def refused_start(daemon: Daemon, tmp_path: Path, name: str, hostdev: str, reason: str) -> None:
    disk = tmp_path / f"{name}.raw"
    disk.write_bytes(b"\0" * 65536)
    os.chmod(disk, 0o640)
    before = os.stat(disk)
    disk_xml = (
        f"<disk type='file' device='disk'><source file='{disk}'/><target dev='vdb' bus='virtio'/></disk>"
    )
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, extra_devices=disk_xml + hostdev))
    daemon.cli("define", str(path)).ok()
    assert "<hostdev mode='subsystem'" in daemon.cli("dumpxml", name).ok().out
    result = daemon.cli("start", name)
    assert result.rc == 1 and reason in result.err, result.err
    assert daemon.cli("domstate", name).ok().out.strip() == "shut off"
    assert sorted(p.name for p in daemon.run_dir.glob(f"{name}.*")) == []
    after = os.stat(disk)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    daemon.cli("undefine", name).ok()


@pytest.mark.parametrize(
    ("hostdev", "reason"),
    [
        (
            "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
            "<address domain='0x0000' bus='0xfe' slot='0x1f' function='0x7'/></source></hostdev>",
            "host PCI device 0000:fe:1f.7 does not exist",
        ),
        (
            "<controller type='usb' model='qemu-xhci'/>"
            "<hostdev mode='subsystem' type='usb'><source><address bus='250' device='99'/></source>"
            "</hostdev>",
            "host USB device /dev/bus/usb/250/099 does not exist",
        ),
        (
            "<controller type='usb' model='qemu-xhci'/>"
            "<hostdev mode='subsystem' type='usb'><source><vendor id='0xfffe'/><product id='0x0001'/>"
            "</source></hostdev>",
            "Did not find USB device fffe:0001",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'><source>"
            "<address uuid='00000000-85a0-42b4-af5c-2046b460b1dc'/></source><boot order='1'/></hostdev>",
            "mediated device 00000000-85a0-42b4-af5c-2046b460b1dc does not exist",
        ),
    ],
)
def test_hostdev_start_refused_by_name(
    module_daemon: Daemon, tmp_path: Path, hostdev: str, reason: str
) -> None:
    if "mdev" in hostdev:  # what pyvirt would run, as virsh domxml-to-native shows it
        path = tmp_path / "native.xml"
        path.write_text(domain_xml("hdn", extra_devices=hostdev))
        argv = module_daemon.cli("domxml-to-native", "qemu-argv", str(path)).ok().out
        # (in pc's first free slot, where libvirt's define places it)
        assert (
            "-device vfio-pci,bus=pci.0,addr=0x2,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/00000000-" in argv
        )
        assert "display=off,bootindex=1" in argv, argv
    refused_start(module_daemon, tmp_path, "hd1", hostdev, reason)


def test_a_real_pci_device_of_this_host_is_refused_without_vfio_and_left_as_it_was(
    module_daemon: Daemon, tmp_path: Path
) -> None:
    """This host's own PCI device (one no driver holds, so that nothing could be taken from the host):
    without VFIO (or an IOMMU) the start is refused by name, and the device is not touched."""
    if Path("/dev/vfio/vfio").exists():
        pytest.skip("this host has VFIO: the refusal this test proves does not happen here")
    free = (
        [p for p in sorted(PCI_DEVICES.glob("*")) if not (p / "driver").exists()]
        if PCI_DEVICES.is_dir()
        else []
    )
    if not free:
        pytest.skip("this host has no PCI device without a driver to name")
    device = free[0]
    name = device.name
    domain, bus, rest = name.split(":")
    slot, function = rest.split(".")
    override = (device / "driver_override").read_text() if (device / "driver_override").exists() else None
    hostdev = (
        f"<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{domain}' "
        f"bus='0x{bus}' slot='0x{slot}' function='0x{function}'/></source></hostdev>"
    )
    refused_start(module_daemon, tmp_path, "hd2", hostdev, f"host PCI device {name}: no VFIO on this host")
    assert not (device / "driver").exists()
    if override is not None:
        assert (device / "driver_override").read_text() == override


def test_nodedev_verbs_refuse_what_they_cannot_act_on(module_daemon: Daemon) -> None:
    """nodedev-detach/-reattach/-reset name a device as libvirt does; none here is named that (the
    moves themselves are tested against a fake tree: tests/unit/daemon/test_nodedevs.py)."""
    result = module_daemon.cli("nodedev-detach", "pci_0000_fe_1f_7", "--driver", "kvm")
    assert result.rc == 1 and "unknown driver name 'kvm'" in result.err, result.err
    for verb in ("nodedev-detach", "nodedev-reattach", "nodedev-reset"):
        result = module_daemon.cli(verb, "--device", "pci_0000_fe_1f_7")
        assert result.rc == 1, result
        assert "no node device with matching name 'pci_0000_fe_1f_7'" in result.err, result.err
