"""A domain with a <hostdev> (pyvirt.conf.hostdev) is defined and written back; its start is refused by
name before any QEMU runs (no such host device here, no VFIO), and it stays shut off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml


@pytest.mark.parametrize(
    ("hostdev", "reason"),
    [
        (
            "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
            "<address domain='0x0000' bus='0xfe' slot='0x1f' function='0x7'/></source></hostdev>",
            "host PCI device 0000:fe:1f.7 does not exist",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><address bus='250' device='99'/></source>"
            "</hostdev>",
            "host USB device /dev/bus/usb/250/099 does not exist",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'><source>"
            "<address uuid='00000000-85a0-42b4-af5c-2046b460b1dc'/></source><boot order='1'/></hostdev>",
            "mediated device 00000000-85a0-42b4-af5c-2046b460b1dc does not exist",
        ),
    ],
)
def test_hostdev_start_refused_by_name(daemon: Daemon, tmp_path: Path, hostdev: str, reason: str) -> None:
    path = tmp_path / "hd1.xml"
    extra = hostdev if "usb" not in hostdev else "<controller type='usb' model='qemu-xhci'/>" + hostdev
    path.write_text(domain_xml("hd1", extra_devices=extra))
    daemon.cli("define", str(path)).ok()
    assert "<hostdev mode='subsystem'" in daemon.cli("dumpxml", "hd1").ok().out
    if "mdev" in hostdev:  # what pyvirt would run, as virsh domxml-to-native shows it
        argv = daemon.cli("domxml-to-native", "qemu-argv", str(path)).ok().out
        assert "-device vfio-pci,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/00000000-" in argv, argv
        assert "display=off,bootindex=1" in argv, argv
    result = daemon.cli("start", "hd1")
    assert result.rc == 1 and reason in result.err, result.err
    assert daemon.cli("domstate", "hd1").ok().out.strip() == "shut off"
