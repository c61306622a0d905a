"""Node devices of a fake sysfs tree (what this host lacks: USB, SCSI, a disk udev typed, SR-IOV, a PCIe
link, mediated devices): libvirt 9.0's names, parents and XML (virNodeDeviceDefFormat's lines), and the
tree virsh draws. tests/integration/daemon/test_nodedevs.py compares the real host's with libvirt's."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from pyvirt.cli.nodedev import CAP_NAMES as CLI_CAP_NAMES
from pyvirt.cli.nodedev import tree
from pyvirt.conf.nodedev_xml import device_info, device_xml
from pyvirt.daemon import nodedevs
from pyvirt.daemon.nodedev_info import caps_wanted, find, listing
from pyvirt.errors import InvalidArgument, NotFound
from pyvirt.qemu.node_devices import CAP_NAMES, NodeDevices, device_name
from tests.support.fakesysfs import FakeKernel

UUID = "4b20d080-1b54-4048-85b3-a6a62d165c01"


class Tree:
    """A sysfs tree: devices under ``sys/devices``, their bus and class links, a udev database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sys = root / "sys"
        self.udev = root / "run/udev/data"
        self.udev.mkdir(parents=True)

    def device(
        self,
        path: str,
        subsystem: str,
        uevent: dict[str, str],
        attrs: dict[str, str] | None = None,
        *,
        bus: bool = True,
    ) -> Path:
        d = self.sys / "devices" / path
        d.mkdir(parents=True, exist_ok=True)
        kind = "bus" if bus else "class"
        (self.sys / kind / subsystem / ("devices" if bus else "")).mkdir(parents=True, exist_ok=True)
        (d / "subsystem").symlink_to(self.sys / kind / subsystem)
        (d / "uevent").write_text("".join(f"{k}={v}\n" for k, v in uevent.items()))
        for name, value in (attrs or {}).items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(value + "\n")
        link = self.sys / kind / subsystem / ("devices" if bus else "") / d.name
        link.symlink_to(d)
        return d


@pytest.fixture
def host(tmp_path: Path) -> NodeDevices:
    t = Tree(tmp_path)
    ids = tmp_path / "pci.ids"
    ids.write_text(
        "# pci.ids\n8086  Intel Corporation\n\t1502  82579LM Gigabit Network Connection\n"
        "\t\t17aa 21f3  ThinkPad T520\n\ta36d  Cannon Lake PCH USB 3.1 xHCI Host Controller\n"
        "C 00  Unclassified device\n"
    )
    # an xHCI controller with a root hub, a mouse receiver and its interface
    t.device(
        "pci0000:00/0000:00:14.0",
        "pci",
        {"DRIVER": "xhci_hcd", "PCI_CLASS": "C0330", "PCI_SLOT_NAME": "0000:00:14.0"},
        {"vendor": "0x8086", "device": "0xa36d", "numa_node": "-1"},
    )
    usb = "pci0000:00/0000:00:14.0/usb1"
    t.device(
        usb,
        "usb",
        {"DEVTYPE": "usb_device", "DRIVER": "usb", "BUSNUM": "001", "DEVNUM": "001"},
        {
            "idVendor": "1d6b",
            "idProduct": "0002",
            "manufacturer": "Linux 6.1.0 xhci-hcd",
            "product": "xHCI Host Controller",
        },
    )
    t.device(
        f"{usb}/1-1",
        "usb",
        {
            "DEVTYPE": "usb_device",
            "DRIVER": "usb",
            "BUSNUM": "001",
            "DEVNUM": "003",
            "MAJOR": "189",
            "MINOR": "2",
            "DEVNAME": "bus/usb/001/003",
        },
        {"idVendor": "046d", "idProduct": "c52b"},
    )
    (t.udev / "c189:2").write_text(
        "E:ID_VENDOR_FROM_DATABASE=Logitech, Inc.\nE:ID_MODEL_FROM_DATABASE=Unifying Receiver\n"
    )
    t.device(
        f"{usb}/1-1/1-1:1.0",
        "usb",
        {"DEVTYPE": "usb_interface", "DRIVER": "usbhid"},
        {
            "bInterfaceNumber": "00",
            "bInterfaceClass": "03",
            "bInterfaceSubClass": "01",
            "bInterfaceProtocol": "02",
        },
    )
    # an SR-IOV NIC in IOMMU group 7 behind a PCIe root port, with one VF
    t.device(
        "pci0000:00/0000:00:1c.0",
        "pci",
        {"DRIVER": "pcieport", "PCI_CLASS": "60400"},
        {"vendor": "0x8086", "device": "0x9d10"},
    )
    config = bytearray(256)
    config[0x06], config[0x0E], config[0x34] = 0x10, 0x01, 0x40
    config[0x40:0x42] = bytes((0x10, 0x00))  # PCI Express, last capability
    struct.pack_into("<H", config, 0x42, 0x0042)  # version 2, root port
    struct.pack_into("<I", config, 0x4C, (3 << 24) | (1 << 4) | 3)  # port 3, 8 GT/s, x1
    struct.pack_into("<H", config, 0x52, (1 << 4) | 1)  # 2.5 GT/s, x1
    (t.sys / "devices/pci0000:00/0000:00:1c.0/config").write_bytes(bytes(config))
    nic = "pci0000:00/0000:00:1c.0/0000:01:00.0"
    pf = t.device(
        nic,
        "pci",
        {"DRIVER": "e1000e", "PCI_CLASS": "20000"},
        {"vendor": "0x8086", "device": "0x1502", "numa_node": "0", "sriov_totalvfs": "7"},
    )
    vf = t.device(
        "pci0000:00/0000:00:1c.0/0000:01:10.0",
        "pci",
        {"PCI_CLASS": "20000"},
        {"vendor": "0x8086", "device": "0x1520"},
    )
    (pf / "virtfn0").symlink_to(vf)
    (vf / "physfn").symlink_to(pf)
    group = t.sys / "kernel/iommu_groups/7/devices"
    group.mkdir(parents=True)
    for d in (pf, vf):
        (group / d.name).symlink_to(d)
        (d / "iommu_group").symlink_to(group.parent)
    net = t.device(
        f"{nic}/net/enp1s0",
        "net",
        {"INTERFACE": "enp1s0", "IFINDEX": "2"},
        {"address": "52:54:00:12:34:56", "operstate": "up", "type": "1", "speed": "1000", "ifindex": "2"},
        bus=False,
    )
    (net / "device").symlink_to(pf)
    (pf / "resource").write_text("0x00000000f7e00000 0x00000000f7e1ffff 0x0000000000040200\n")
    (t.sys / "class/infiniband/mlx5_0").mkdir(parents=True)  # an RDMA device on the same function
    (t.sys / "class/infiniband/mlx5_0/device").symlink_to(pf)
    # an AHCI disk: SCSI host, target, device, the disk (udev typed it) and its partition, a loop disk
    scsi = "pci0000:00/0000:00:1f.2/ata1/host0"
    t.device(scsi, "scsi", {"DEVTYPE": "scsi_host"})
    (t.sys / "class/scsi_host/host0").mkdir(parents=True)
    (t.sys / "class/scsi_host/host0/unique_id").write_text("1\n")
    t.device(f"{scsi}/target0:0:0", "scsi", {"DEVTYPE": "scsi_target"})
    sdev = t.device(
        f"{scsi}/target0:0:0/0:0:0:0",
        "scsi",
        {"DEVTYPE": "scsi_device", "DRIVER": "sd"},
        {"type": "0", "vendor": "ATA     ", "model": "Samsung SSD 860 "},
    )
    disk = t.device(
        f"{scsi}/target0:0:0/0:0:0:0/block/sda",
        "block",
        {"MAJOR": "8", "MINOR": "0", "DEVNAME": "sda", "DEVTYPE": "disk"},
        {"size": "1953525168", "queue/logical_block_size": "512", "removable": "0"},
        bus=False,
    )
    (disk / "device").symlink_to(sdev)
    (t.udev / "b8:0").write_text(
        "S:disk/by-path/pci-0000:00:1f.2-ata-1\nS:disk/by-id/ata-Samsung_SSD_860_S3Z\n"
        "E:ID_TYPE=disk\nE:ID_BUS=ata\nE:ID_SERIAL=Samsung_SSD_860_S3Z\n"
    )
    t.device(
        f"{scsi}/target0:0:0/0:0:0:0/block/sda/sda1",
        "block",
        {"MAJOR": "8", "MINOR": "1", "DEVNAME": "sda1", "DEVTYPE": "partition"},
        bus=False,
    )
    t.device(
        "virtual/block/loop0",
        "block",
        {"MAJOR": "7", "MINOR": "0", "DEVNAME": "loop0", "DEVTYPE": "disk"},
        {"size": "0"},
        bus=False,
    )
    # a GPU with a mediated device type and one mediated device
    gpu = t.device(
        "pci0000:00/0000:00:02.0",
        "pci",
        {"DRIVER": "i915", "PCI_CLASS": "30000"},
        {
            "vendor": "0x8086",
            "device": "0x3e92",
            "mdev_supported_types/i915-GVTg_V5_4/name": "GVTg_V5_4",
            "mdev_supported_types/i915-GVTg_V5_4/device_api": "vfio-pci",
            "mdev_supported_types/i915-GVTg_V5_4/available_instances": "1",
        },
    )
    mdev = t.device(f"pci0000:00/0000:00:02.0/{UUID}", "mdev", {"DRIVER": "vfio_mdev"})
    (mdev / "mdev_type").symlink_to(gpu / "mdev_supported_types/i915-GVTg_V5_4")
    (t.sys / "kernel/iommu_groups/12").mkdir(parents=True)
    (mdev / "iommu_group").symlink_to(t.sys / "kernel/iommu_groups/12")
    # a Fibre Channel HBA's SCSI host, able to make vports
    t.device("pci0000:00/0000:00:03.0/host5", "scsi", {"DEVTYPE": "scsi_host"})
    fc = t.sys / "class/fc_host/host5"
    fc.mkdir(parents=True)
    for name, value in {
        "node_name": "0x20000000c9831b4b",
        "port_name": "0x10000000c9831b4b",
        "fabric_name": "0x2002000573de9a81",
        "max_npiv_vports": "127",
        "npiv_vports_inuse": "2",
        "vport_create": "",
    }.items():
        (fc / name).write_text(value + "\n")
    # the DMI data
    dmi = t.sys / "class/dmi/id"
    dmi.mkdir(parents=True)
    for name, value in {
        "sys_vendor": "LENOVO",
        "product_name": "4242A1G",
        "product_version": "ThinkPad T520",
        "product_uuid": "A1B2C3D4-0000-1111-2222-333344445555",
        "bios_vendor": "LENOVO",
        "bios_version": "8AET69WW (1.49 )",
        "bios_date": "06/14/2018",
    }.items():
        (dmi / name).write_text(value + "\n")
    return NodeDevices(t.sys, t.root / "dev", t.udev, ids, ethtool=False)


def test_names_and_parents(host: NodeDevices) -> None:
    parents = {d.name: d.parent for d in host.devices()}
    mdev = f"mdev_{UUID.replace('-', '_')}_0000_00_02_0"
    assert parents == {
        "computer": None,
        "pci_0000_00_14_0": "computer",
        "usb_usb1": "pci_0000_00_14_0",
        "usb_1_1": "usb_usb1",
        "usb_1_1_1_0": "usb_1_1",
        "pci_0000_00_1c_0": "computer",
        "pci_0000_01_00_0": "pci_0000_00_1c_0",
        "pci_0000_01_10_0": "pci_0000_00_1c_0",
        "net_enp1s0_52_54_00_12_34_56": "pci_0000_01_00_0",
        "scsi_host0": "computer",  # its PCI parent (0000:00:1f.2) is not in this tree
        "scsi_host5": "computer",
        "scsi_target0_0_0": "scsi_host0",
        "scsi_0_0_0_0": "scsi_target0_0_0",
        "block_sda_Samsung_SSD_860_S3Z": "scsi_0_0_0_0",
        "pci_0000_00_02_0": "computer",
        mdev: "pci_0000_00_02_0",
    }  # no partition, no loop disk udev gave no type
    assert device_name("usb", "1-1:1.0") == "usb_1_1_1_0"


def _xml(host: NodeDevices, name: str) -> str:
    device = host.find(name)
    assert device is not None, name
    return device_xml(device)


def test_usb_xml(host: NodeDevices) -> None:
    assert _xml(host, "usb_1_1") == (
        "<device>\n"
        "  <name>usb_1_1</name>\n"
        f"  <path>{host.sys.resolve()}/devices/pci0000:00/0000:00:14.0/usb1/1-1</path>\n"
        "  <devnode type='dev'>/dev/bus/usb/001/003</devnode>\n"
        "  <parent>usb_usb1</parent>\n"
        "  <driver>\n    <name>usb</name>\n  </driver>\n"
        "  <capability type='usb_device'>\n"
        "    <bus>1</bus>\n    <device>3</device>\n"
        "    <product id='0xc52b'>Unifying Receiver</product>\n"
        "    <vendor id='0x046d'>Logitech, Inc.</vendor>\n"
        "  </capability>\n"
        "</device>\n"
    )
    # without udev's names: the device's own strings
    assert "<product id='0x0002'>xHCI Host Controller</product>" in _xml(host, "usb_usb1")
    assert "<vendor id='0x1d6b'>Linux 6.1.0 xhci-hcd</vendor>" in _xml(host, "usb_usb1")
    assert (
        "  <capability type='usb'>\n    <number>0</number>\n    <class>3</class>\n"
        "    <subclass>1</subclass>\n    <protocol>2</protocol>\n  </capability>\n"
    ) in _xml(host, "usb_1_1_1_0")


def test_pci_xml(host: NodeDevices) -> None:
    text = _xml(host, "pci_0000_01_00_0")
    assert "  <driver>\n    <name>e1000e</name>\n  </driver>\n" in text
    cap = text.split("<capability type='pci'>\n")[1]
    members = (
        "      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n",
        "      <address domain='0x0000' bus='0x01' slot='0x10' function='0x0'/>\n",
    )
    # the group's members in the kernel's (directory) order, as libvirt lists them
    order = os.listdir(host.sys / "kernel/iommu_groups/7/devices")
    group = "".join(members[0] if name == "0000:01:00.0" else members[1] for name in order)
    assert cap == (
        "    <class>0x020000</class>\n"
        "    <domain>0</domain>\n    <bus>1</bus>\n    <slot>0</slot>\n    <function>0</function>\n"
        "    <product id='0x1502'>82579LM Gigabit Network Connection</product>\n"
        "    <vendor id='0x8086'>Intel Corporation</vendor>\n"
        "    <capability type='virt_functions' maxCount='7'>\n"
        "      <address domain='0x0000' bus='0x01' slot='0x10' function='0x0'/>\n"
        "    </capability>\n"
        f"    <iommuGroup number='7'>\n{group}    </iommuGroup>\n"
        "    <numa node='0'/>\n"
        "  </capability>\n</device>\n"
    )
    vf = _xml(host, "pci_0000_01_10_0")
    assert "<product id='0x1520'/>" in vf  # not in this pci.ids: the id alone
    assert (
        "    <capability type='phys_function'>\n"
        "      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n    </capability>\n"
    ) in vf
    assert "<driver>" not in vf
    port = _xml(host, "pci_0000_00_1c_0")
    assert port.endswith(
        "    <capability type='pci-bridge'/>\n"
        "    <pci-express>\n"
        "      <link validity='cap' port='3' speed='8' width='1'/>\n"
        "      <link validity='sta' speed='2.5' width='1'/>\n"
        "    </pci-express>\n  </capability>\n</device>\n"
    ), port
    gpu = _xml(host, "pci_0000_00_02_0")
    assert (
        "    <capability type='mdev_types'>\n      <type id='i915-GVTg_V5_4'>\n"
        "        <name>GVTg_V5_4</name>\n        <deviceAPI>vfio-pci</deviceAPI>\n"
        "        <availableInstances>1</availableInstances>\n      </type>\n    </capability>\n"
    ) in gpu


def test_net_storage_scsi_mdev_system_xml(host: NodeDevices) -> None:
    assert _xml(host, "net_enp1s0_52_54_00_12_34_56").split("<capability type='net'>\n")[1] == (
        "    <interface>enp1s0</interface>\n    <address>52:54:00:12:34:56</address>\n"
        "    <link speed='1000' state='up'/>\n    <feature name='rdma'/>\n"
        "    <capability type='80203'/>\n  </capability>\n</device>\n"
    )
    disk = _xml(host, "block_sda_Samsung_SSD_860_S3Z")
    assert (
        "  <devnode type='dev'>/dev/sda</devnode>\n"
        "  <devnode type='link'>/dev/disk/by-id/ata-Samsung_SSD_860_S3Z</devnode>\n"
        "  <devnode type='link'>/dev/disk/by-path/pci-0000:00:1f.2-ata-1</devnode>\n"
        "  <parent>scsi_0_0_0_0</parent>\n"
    ) in disk
    assert disk.split("<capability type='storage'>\n")[1] == (
        "    <block>/dev/sda</block>\n    <bus>ata</bus>\n    <drive_type>disk</drive_type>\n"
        "    <model>Samsung SSD 860</model>\n    <vendor>ATA</vendor>\n"
        "    <serial>Samsung_SSD_860_S3Z</serial>\n    <size>1000204886016</size>\n"
        "    <logical_block_size>512</logical_block_size>\n    <num_blocks>1953525168</num_blocks>\n"
        "  </capability>\n</device>\n"
    )
    assert (
        "<capability type='scsi_host'>\n    <host>0</host>\n    <unique_id>1</unique_id>\n  </capability>"
        in _xml(host, "scsi_host0")
    )
    assert "<capability type='scsi_target'>\n    <target>target0:0:0</target>\n" in _xml(
        host, "scsi_target0_0_0"
    )
    assert (
        "    <host>0</host>\n    <bus>0</bus>\n    <target>0</target>\n    <lun>0</lun>\n"
        "    <type>disk</type>\n"
    ) in _xml(host, "scsi_0_0_0_0")
    mdev = _xml(host, f"mdev_{UUID.replace('-', '_')}_0000_00_02_0")
    assert mdev.split("<capability type='mdev'>\n")[1] == (
        f"    <type id='i915-GVTg_V5_4'/>\n    <uuid>{UUID}</uuid>\n"
        "    <parent_addr>0000:00:02.0</parent_addr>\n"
        "    <iommuGroup number='12'/>\n  </capability>\n</device>\n"
    )
    assert _xml(host, "computer") == (
        "<device>\n  <name>computer</name>\n  <capability type='system'>\n"
        "    <product>4242A1G</product>\n    <hardware>\n      <vendor>LENOVO</vendor>\n"
        "      <version>ThinkPad T520</version>\n      <uuid>a1b2c3d4-0000-1111-2222-333344445555</uuid>\n"
        "    </hardware>\n    <firmware>\n      <vendor>LENOVO</vendor>\n"
        "      <version>8AET69WW (1.49 )</version>\n      <release_date>06/14/2018</release_date>\n"
        "    </firmware>\n  </capability>\n</device>\n"
    )


def test_listing_by_capability(host: NodeDevices) -> None:
    def names(cap: str | None) -> list[str]:
        return [d["name"] for d in listing(host, cap)]

    assert names("usb_device") == ["usb_1_1", "usb_usb1"]
    assert names("usb") == ["usb_1_1_1_0"]
    assert names("scsi_host,scsi_target") == ["scsi_host0", "scsi_host5", "scsi_target0_0_0"]
    assert names("fc_host") == names("vports") == ["scsi_host5"]
    assert names("mdev_types") == ["pci_0000_00_02_0"]  # a nested capability
    assert names("mdev") == [f"mdev_{UUID.replace('-', '_')}_0000_00_02_0"]
    assert names("system") == ["computer"]
    assert names(None)[0] == "block_sda_Samsung_SSD_860_S3Z" and len(names(None)) == 16
    with pytest.raises(InvalidArgument, match="Invalid capability type 'bogus'"):
        caps_wanted("pci,bogus")
    assert set(CAP_NAMES) == CLI_CAP_NAMES
    info = device_info(next(d for d in host.devices() if d.name == "usb_1_1"))
    assert info == {
        "name": "usb_1_1",
        "parent": "usb_usb1",
        "active": True,
        "persistent": False,
        "autostart": False,
    }
    assert device_info(host.computer())["persistent"] is True


def test_tree_as_virsh_draws_it(host: NodeDevices) -> None:
    devices = [(d["name"], d["parent"] or None) for d in listing(host, None)]
    drawn = tree(devices)
    assert drawn.startswith("computer\n  |\n  +- pci_0000_00_02_0\n  |   |\n")
    assert (
        "  +- pci_0000_00_14_0\n  |   |\n  |   +- usb_usb1\n  |       |\n  |       +- usb_1_1\n"
        "  |           |\n  |           +- usb_1_1_1_0\n  |             \n"
    ) in drawn
    assert drawn.endswith(
        "  +- scsi_host0\n  |   |\n  |   +- scsi_target0_0_0\n  |       |\n"
        "  |       +- scsi_0_0_0_0\n  |           |\n"
        "  |           +- block_sda_Samsung_SSD_860_S3Z\n  |             \n"
        "  +- scsi_host5\n    \n"
    )
    assert tree([("lonely", None)]) == "lonely\n\n"


def test_listed_pci_names_are_what_detach_takes(tmp_path: Path, host: NodeDevices) -> None:
    """nodedev-detach/-reattach/-reset resolve the names nodedev-list gives (pyvirt.daemon.nodedevs)."""
    kernel = FakeKernel(tmp_path / "k")
    for name in ("0000:00:14.0", "0000:01:00.0"):
        (kernel.sys / "bus/pci/devices" / name).mkdir(parents=True)
    for device in listing(host, "pci"):
        if device["name"] in ("pci_0000_00_14_0", "pci_0000_01_00_0"):
            sysname = nodedevs.pci_device(kernel, device["name"])
            assert os.path.isdir(kernel.sys / "bus/pci/devices" / sysname)


def test_a_hostdev_written_from_dumpxml(host: NodeDevices) -> None:
    """A <hostdev>'s source written from nodedev-dumpxml's capability (as virt-install --host-device and
    users do) names the same PCI and USB devices the domain parser reads."""
    import xml.etree.ElementTree as ET

    from pyvirt.conf.device_xml import parse_device
    from pyvirt.conf.hostdev import HostdevConfig

    pci = ET.fromstring(_xml(host, "pci_0000_01_10_0")).find("capability")
    assert pci is not None
    a = {t: int(pci.findtext(t) or "") for t in ("domain", "bus", "slot", "function")}
    written = (
        f"<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='{a['domain']:#06x}' "
        f"bus='{a['bus']:#04x}' slot='{a['slot']:#04x}' function='{a['function']:#x}'/></source></hostdev>"
    )
    dev = parse_device(written)
    assert isinstance(dev.obj, HostdevConfig) and dev.obj.source == {
        "domain": 0,
        "bus": 1,
        "slot": 16,
        "function": 0,
    }
    usb = ET.fromstring(_xml(host, "usb_1_1")).find("capability")
    assert usb is not None
    vendor, product = usb.find("vendor"), usb.find("product")
    assert vendor is not None and product is not None
    dev = parse_device(
        f"<hostdev mode='subsystem' type='usb'><source><vendor id='{vendor.get('id')}'/>"
        f"<product id='{product.get('id')}'/><address bus='{usb.findtext('bus')}' "
        f"device='{usb.findtext('device')}'/></source></hostdev>"
    )
    assert isinstance(dev.obj, HostdevConfig)
    assert (dev.obj.vendor, dev.obj.product, dev.obj.source) == (0x046D, 0xC52B, {"bus": 1, "device": 3})


def test_fc_host_and_its_wwn_pair(host: NodeDevices) -> None:
    """An HBA's fc_host and vport_ops capabilities; virsh's WWNN,WWPN form names its SCSI host."""
    assert _xml(host, "scsi_host5").split("<capability type='scsi_host'>\n")[1] == (
        "    <host>5</host>\n"
        "    <capability type='fc_host'>\n      <wwnn>20000000c9831b4b</wwnn>\n"
        "      <wwpn>10000000c9831b4b</wwpn>\n      <fabric_wwn>2002000573de9a81</fabric_wwn>\n"
        "    </capability>\n"
        "    <capability type='vport_ops'>\n      <max_vports>127</max_vports>\n      <vports>2</vports>\n"
        "    </capability>\n  </capability>\n</device>\n"
    )
    assert find(host, "20000000c9831b4b,10000000c9831b4b").name == "scsi_host5"
    with pytest.raises(NotFound, match="no node device with matching wwnn '1' and wwpn '2'"):
        find(host, "1,2")
    with pytest.raises(NotFound, match="no node device with matching name 'scsi_host9'"):
        find(host, "scsi_host9")


def test_drm_and_vdpa(tmp_path: Path) -> None:
    """A GPU's DRM minors (primary, render) and a vDPA device with its vhost-vdpa node; one whose node
    is missing is dropped, as libvirt drops it."""
    t = Tree(tmp_path)
    gpu = "pci0000:00/0000:00:02.0"
    t.device(gpu, "pci", {"DRIVER": "i915", "PCI_CLASS": "30000"}, {"vendor": "0x8086", "device": "0x3e92"})
    for name, minor in (("card0", "0"), ("renderD128", "128")):
        t.device(
            f"{gpu}/drm/{name}",
            "drm",
            {"DEVTYPE": "drm_minor", "MAJOR": "226", "MINOR": minor, "DEVNAME": f"dri/{name}"},
            bus=False,
        )
    vdpa = t.device("pci0000:00/0000:00:05.0/vdpa0", "vdpa", {"DRIVER": "vhost_vdpa"})
    (vdpa / "vhost-vdpa-0").mkdir()
    (t.root / "dev").mkdir()
    (t.root / "dev/vhost-vdpa-0").touch()
    gone = t.device("pci0000:00/0000:00:05.1/vdpa1", "vdpa", {"DRIVER": "vhost_vdpa"})
    (gone / "vhost-vdpa-1").mkdir()
    host = NodeDevices(t.sys, t.root / "dev", t.udev, tmp_path / "none.ids", ethtool=False)
    names = [d["name"] for d in listing(host, "drm,vdpa")]
    assert names == ["drm_card0", "drm_renderD128", "vdpa_vdpa0"]
    card = _xml(host, "drm_card0")
    assert "  <devnode type='dev'>/dev/dri/card0</devnode>\n  <parent>pci_0000_00_02_0</parent>\n" in card
    assert card.endswith("  <capability type='drm'>\n    <type>primary</type>\n  </capability>\n</device>\n")
    assert "<type>render</type>" in _xml(host, "drm_renderD128")
    assert _xml(host, "vdpa_vdpa0").endswith(
        "  <driver>\n    <name>vhost_vdpa</name>\n  </driver>\n"
        "  <capability type='vdpa'>\n    <chardev>/dev/vhost-vdpa-0</chardev>\n  </capability>\n</device>\n"
    )
