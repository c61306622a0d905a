"""A template's machine (:mod:`pyvirt.guest.hardware`): checks, the sidecar round trip, and the
domain XML a launch or clone makes from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import parse_domain
from pyvirt.conf.validate import validate_domain
from pyvirt.errors import InvalidArgument
from pyvirt.guest import clone, template
from pyvirt.guest.hardware import Hardware
from pyvirt.image.api import create_image

OPTS = clone.CloneOptions(original="app", name="vm1")
UUID = "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01"


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"firmware": "uefi"}, "firmware"),
        ({"disk_buses": ("nvme",)}, "disk bus"),
        ({"nic_models": ("x",)}, "NIC"),
    ],
)
def test_unknown_values_are_refused_by_name(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(InvalidArgument, match=word):
        Hardware(**kwargs)  # type: ignore[arg-type]


def test_json_round_trip_and_defaults() -> None:
    hw = Hardware(vcpus=2, memory=2 << 30, firmware="efi", disk_buses=("sata", "scsi"), nic_models=("e1000",))
    assert Hardware.from_json(json.loads(json.dumps(hw.to_json()))) == hw
    assert Hardware.from_json(None) == Hardware() and Hardware().is_default()
    assert hw.machine == "q35" and Hardware().machine == "pc"
    assert hw.describe() == "2 vCPU, 2048 MiB, EFI, disks sata,scsi, NIC e1000"


def test_appliance_domain_xml_follows_the_hardware() -> None:
    buses = ("sata", "scsi")
    hw = Hardware(vcpus=4, memory=3 << 30, firmware="efi", disk_buses=buses, nic_models=("e1000e",))
    nics = [("network", "default", "52:54:00:00:00:07")]
    xml = clone.template_domain_xml(
        OPTS, UUID, ["vm1.qcow2", "vm1-1.qcow2"], "vm1-seed.iso", nics, domain_type="qemu", hardware=hw
    )
    dom = parse_domain(xml)
    validate_domain(dom)
    assert dom.vcpus == 4 and dom.memory_kib == 3 << 20
    assert dom.os.firmware == "efi" and dom.os.machine == "q35"
    boot, data, seed = dom.devices.disks
    assert (boot.target_dev, boot.target_bus) == ("sda", "sata")
    assert (data.target_dev, data.target_bus) == ("sdb", "scsi")
    assert (seed.device, seed.target_dev, seed.target_bus) == ("cdrom", "sdc", "sata")
    assert [c.model for c in dom.devices.controllers if c.type == "scsi"] == ["virtio-scsi"]
    assert dom.devices.interfaces[0].model == "e1000e"
    # What the launch asks for wins over the template's.
    small = clone.CloneOptions(original="app", name="vm1", vcpus=1, memory=256 << 20)
    xml = clone.template_domain_xml(small, UUID, ["vm1.qcow2"], "s.iso", [], domain_type="qemu", hardware=hw)
    dom = parse_domain(xml)
    assert dom.vcpus == 1 and dom.memory_kib == 256 << 10


def test_store_keeps_hardware_and_extra_disks(tmp_path: Path) -> None:
    store = template.TemplateStore(tmp_path)
    hw = Hardware(vcpus=2, disk_buses=("sata", "sata"))
    with store.staging("app") as work:
        disks = [work / "d0.qcow2", work / "d1.qcow2"]
        for disk in disks:
            create_image(str(disk), "qcow2", 1 << 20)
        tmpl = store.install("app", disks[0], os_name="x", source="y", hardware=hw, extra_images=(disks[1],))
    assert tmpl.hardware == hw
    assert tmpl.paths == (str(tmp_path / "app.template.qcow2"), str(tmp_path / "app.template-1.qcow2"))
    assert store.get("app").to_json()["extra_paths"] == [str(tmp_path / "app.template-1.qcow2")]
    # A failed publication takes back the volumes it linked.
    with store.staging("app2") as work:
        create_image(str(work / "a.qcow2"), "qcow2", 1 << 20)
        (tmp_path / "app2.template-1.qcow2").write_bytes(b"")
        create_image(str(work / "b.qcow2"), "qcow2", 1 << 20)
        with pytest.raises(Exception, match="exists already"):
            store.install("app2", work / "a.qcow2", os_name="x", source="y", extra_images=(work / "b.qcow2",))
    assert not (tmp_path / "app2.template.qcow2").exists()
