"""attach-disk's ``<disk>`` element, made from its options as virsh makes it, and read back by pyvirt's
device parser (so each option reaches the domain's disk) or refused naming the option."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pyvirt.cli.args import parse
from pyvirt.cli.commands import find
from pyvirt.cli.devices import disk_xml
from pyvirt.conf.device_xml import parse_device
from pyvirt.conf.domain import DiskConfig
from pyvirt.errors import InvalidArgument


def attach_disk(*argv: str) -> DiskConfig:
    cmd = find("attach-disk")
    assert cmd is not None
    xml = disk_xml(parse(cmd, ["dom", *argv]))
    disk = parse_device(xml).obj
    assert isinstance(disk, DiskConfig)
    return disk


def test_attach_disk_options_reach_the_disk(tmp_path: object) -> None:
    """attach-disk puts every option into the disk element."""
    disk = attach_disk(
        "/srv/a.qcow2", "vdb", "--targetbus", "virtio", "--driver", "qemu", "--subdriver", "qcow2",
        "--cache", "none", "--io", "native", "--iothread", "2", "--serial", "S1", "--alias", "ua-data",
        "--mode", "readonly", "--address", "pci:0000.00.0a.0", "--multifunction", "--wwn", "5000c50015ea71ad",
    )  # fmt: skip
    assert (disk.type, disk.device, disk.source, disk.target_dev, disk.target_bus) == (
        "file", "disk", "/srv/a.qcow2", "vdb", "virtio",
    )  # fmt: skip
    assert (disk.driver_name, disk.driver_type, disk.cache, disk.io, disk.iothread) == (
        "qemu", "qcow2", "none", "native", 2,
    )  # fmt: skip
    assert disk.readonly and not disk.shareable and disk.serial == "S1" and disk.alias == "ua-data"
    assert disk.tuning["wwn"] == "5000c50015ea71ad"
    assert disk.address is not None and disk.address.attrs == {
        "domain": "0x0000", "bus": "0x00", "slot": "0x0a", "function": "0x0", "multifunction": "on",
    }  # fmt: skip


def test_attach_disk_type_sourcetype_mode_and_drive_addresses() -> None:
    """attach-disk --type, --sourcetype, --mode and drive/usb --address."""
    cdrom = attach_disk(
        "/srv/x.iso", "sdc", "--type", "cdrom", "--targetbus", "scsi", "--address", "scsi:0.0.3"
    )
    assert cdrom.device == "cdrom" and cdrom.address is not None
    assert cdrom.address.attrs == {"controller": "0", "bus": "0", "unit": "3"}
    block = attach_disk("/dev/sdz", "vdc", "--sourcetype", "block", "--mode", "shareable")
    assert block.type == "block" and block.source == "/dev/sdz" and block.shareable
    # Without --sourcetype, a block device is type='block' by stat (as virsh), anything else 'file'.
    assert attach_disk("/dev/null", "vdd").type == "file"
    devices = [p for p in Path("/dev").glob("loop*") if stat.S_ISBLK(p.stat().st_mode)]
    if devices:
        assert attach_disk(str(devices[0]), "vdd").type == "block"
    usb = attach_disk("/srv/u.raw", "sdd", "--targetbus", "usb", "--address", "usb:0.2")
    assert usb.address is not None and usb.address.attrs == {"bus": "0", "port": "2"}


def test_attach_disk_network_source() -> None:
    """attach-disk of an NBD export: --source-protocol and the --source-host-* options."""
    tcp = attach_disk(
        "exp",
        "vdb",
        "--source-protocol",
        "nbd",
        "--source-host-name",
        "127.0.0.1:10810",
        "--subdriver",
        "raw",
    )
    assert tcp.type == "network" and tcp.source_name == "exp"
    assert tcp.source_host == ("tcp", "127.0.0.1", "10810")
    unix = attach_disk(
        "exp", "vdb", "--sourcetype", "network", "--source-protocol", "nbd",
        "--source-host-transport", "unix", "--source-host-socket", "/run/nbd.sock",
    )  # fmt: skip
    assert unix.source_host == ("unix", "/run/nbd.sock", None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--rawio",), "--rawio"),
        (("--mode", "exclusive"), "No support for exclusive"),
        (("--sourcetype", "dir"), "Unknown source type"),
        (("--sourcetype", "network"), "--source-protocol"),
        (("--address", "pci:zz"), "Invalid address"),
        (("--multifunction",), "--multifunction needs a PCI --address"),
    ],
)
def test_attach_disk_refusals_name_the_option(argv: tuple[str, ...], message: str) -> None:
    """attach-disk refuses what pyvirt does not do (--rawio) and bad values, naming them."""
    with pytest.raises(InvalidArgument, match=message):
        attach_disk("/srv/a.raw", "vdb", *argv)
