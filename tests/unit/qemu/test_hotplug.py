"""Hot-plug arguments, conf → QMP: where a plugged device goes (a free PCIe root port on q35, QEMU's
choice on pc), the device_add of each hot-pluggable disk bus, the block nodes of a backing chain."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain import ControllerConfig, DiskConfig, Domain, PCIAddress
from pyvirt.errors import InvalidArgument, OperationFailed, UnsupportedConfig
from pyvirt.qemu.hotplug import disk_device, disk_nodes, pci_placement, pci_slot


def q35() -> Domain:
    dom = Domain(name="q")
    dom.os.machine = "q35"
    for index in (1, 2, 3, 4):  # spare root ports, as pyvirt install and virt-install write them
        dom.devices.controllers.append(ControllerConfig(type="pci", index=index, model="pcie-root-port"))
    return dom


def test_pci_slot_takes_the_first_free_root_port() -> None:
    dom = q35()
    addr = pci_slot(dom)
    assert addr is not None and addr.attrs["bus"] == "0x01"
    assert pci_placement(addr, dom) == {"bus": "pci.1", "addr": "0x0"}
    dom.devices.disks.append(DiskConfig(source="/a", target_dev="vdb", address=addr))
    second = pci_slot(dom)
    assert second is not None and second.attrs["bus"] == "0x02"
    for index in (2, 3, 4):
        dom.devices.disks.append(
            DiskConfig(
                source="/a",
                target_dev=f"vd{'cdef'[index - 2]}",
                address=PCIAddress("pci", {"bus": str(index)}),
            )
        )
    with pytest.raises(OperationFailed, match="no free PCIe root port"):
        pci_slot(dom)
    pc = Domain(name="p")
    pc.os.machine = "pc"
    pc.devices.disks.append(DiskConfig(source="/a", target_dev="vda"))  # placed by QEMU: it picks
    assert pci_slot(pc) is None and pci_placement(None, pc) == {}


def test_pci_slot_on_pc_is_the_first_free_slot_as_libvirt_gives_it() -> None:
    from pyvirt.conf.domain_xml import load_domain_xml

    disk = "<disk type='file'><source file='/a'/><target dev='vda' bus='virtio'/></disk>"
    pc = load_domain_xml(
        "<domain type='qemu'><name>p</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>"
        f"<devices>{disk}<graphics type='vnc'/></devices></domain>"
    )  # video's slot 2 kept, the disk at 3, the balloon at 4
    addr = pci_slot(pc)
    assert addr is not None and pci_placement(addr, pc) == {"bus": "pci.0", "addr": "0x5"}
    root = ControllerConfig(type="pci", index=0, model="pci-root", extra={"target.hotplug": "off"})
    pc.devices.controllers.append(root)
    with pytest.raises(InvalidArgument, match="no free hot-pluggable PCI slot"):
        pci_slot(pc)  # no ACPI hot-plug on pc's root bus, and no bridge


def test_disk_device_per_bus() -> None:
    dom = Domain(name="d")
    dom.os.machine = "pc"
    dom.devices.controllers.append(ControllerConfig(type="scsi", model="virtio-scsi"))
    dom.devices.disks += [
        DiskConfig(
            source="/a", target_dev="vdc", serial="S", cache="writethrough", iothread=1, shareable=True
        ),
        DiskConfig(source="/b", target_dev="sdb", target_bus="scsi", device="cdrom"),
        DiskConfig(source="/c", target_dev="sde", target_bus="sata"),
    ]
    assert disk_device(dom, 0, "n-format") == {
        "id": "virtio-disk2", "drive": "n-format", "serial": "S", "share-rw": True,
        "driver": "virtio-blk-pci", "iothread": "iothread1", "write-cache": "off",
    }  # fmt: skip
    assert disk_device(dom, 1, None) == {
        "id": "scsi0-0-0-1", "driver": "scsi-cd", "bus": "scsi0.0", "channel": 0, "scsi-id": 0, "lun": 1,
    }  # fmt: skip
    with pytest.raises(UnsupportedConfig, match="disk bus 'sata' cannot be hotplugged"):
        disk_device(dom, 2, None)


def test_disk_nodes_name_each_backing_layer() -> None:
    disk = DiskConfig(source="/top.qcow2", target_dev="vdb", driver_type="qcow2")
    nodes = disk_nodes(disk, ["pyvirt-7", "pyvirt-8"], [("/dev/fdset/3", "qcow2"), ("/dev/fdset/4", "raw")])
    assert [n["node-name"] for n in nodes] == [
        "pyvirt-8-storage", "pyvirt-8-format", "pyvirt-7-storage", "pyvirt-7-format",
    ]  # fmt: skip
    assert nodes[1] == {
        "node-name": "pyvirt-8-format",
        "read-only": True,
        "driver": "raw",
        "file": "pyvirt-8-storage",
    }
    assert nodes[2]["filename"] == "/dev/fdset/3" and nodes[0]["read-only"] is True
    assert nodes[3]["backing"] == "pyvirt-8-format" and nodes[3]["read-only"] is False
    alone = disk_nodes(disk, ["pyvirt-9"], [("/dev/fdset/5", "qcow2")])
    assert alone[1]["backing"] is None  # QEMU is not to look for a backing file by name


def test_a_plugged_disk_gets_its_tuning_as_typed_device_add_arguments() -> None:
    """The tuning QEMU's command line gets as text (conf.disk_tuning) goes to device_add as JSON of
    the property's type; tuning the bus's device lacks is refused by name."""
    dom = Domain(name="p")
    tuning = {"wwn": "0x5000c50015ea71ad", "vendor": "A,B", "target.rotation_rate": "1"}
    tuning["driver.error_policy"] = "report"
    dom.devices.disks.append(DiskConfig(source="/a", target_dev="sdb", target_bus="scsi", tuning=tuning))
    args = disk_device(dom, 0, "n")
    assert args["wwn"] == 0x5000C50015EA71AD and args["vendor"] == "A,B" and args["rotation_rate"] == 1
    assert (args["werror"], args["rerror"]) == ("report", "report")
    dom.devices.disks[0] = DiskConfig(
        source="/a", target_dev="vdb", tuning={"driver.ioeventfd": "off", "driver.queues": "2"}
    )
    args = disk_device(dom, 0, "n")
    assert args["ioeventfd"] is False and args["num-queues"] == 2
    dom.devices.disks[0] = DiskConfig(source="/a", target_dev="vdb", tuning={"wwn": "5000c50015ea71ad"})
    with pytest.raises(UnsupportedConfig, match="wwn of disk 'vdb'"):
        disk_device(dom, 0, "n")
