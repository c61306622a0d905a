"""pyvirt.install.appliance without a daemon: an OVA's machine mapped onto the install request and
planned (CPUs, memory, firmware, machine, buses, NICs, the converted disks' paths), command-line
options winning, the disks converted, and refusals named."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.guest import ovf
from pyvirt.image.api import convert, create_image, image_info
from pyvirt.install import appliance
from pyvirt.install.build import Host, Pool, plan
from tests.support.ova import SOUND_AND_CD, Spec, make_ova, virtualbox_ovf, vmware_ovf
from tests.unit.install.test_build import LINUX


def _host(tmp: Path, networks: tuple[str, ...] = ("default",)) -> Host:
    pool = tmp / "pool"
    pool.mkdir(exist_ok=True)
    return Host(
        kvm=False, emulator="/usr/bin/qemu-system-x86_64", pc_machine="pc-i440fx-7.2",
        networks=list(networks), pools={"default": Pool("default", str(pool))}, default_pool_path=str(pool),
        domains=["appliance"], boot_dir=str(tmp / "boot"), uefi=True,
    )  # fmt: skip


def _ova(tmp: Path, spec: Spec, vbox: bool = False) -> Path:
    create_image(str(tmp / "src.qcow2"), "qcow2", 8 << 20)
    vmdk = tmp / spec.disk_file
    convert(
        str(tmp / "src.qcow2"), str(vmdk), "vmdk", src_fmt="qcow2", options={"subformat": "streamOptimized"}
    )
    text = virtualbox_ovf(spec) if vbox else vmware_ovf(spec)
    return make_ova(tmp / "app.ova", "app.ovf", text, {spec.disk_file: vmdk})


def _planned(tmp: Path, body: dict[str, Any], ova: Path, host: Host) -> tuple[appliance.Imported, ET.Element]:
    host.formats[str(ova)] = "appliance"
    imported = appliance.rewrite(body, host, ovf.read_appliance(ova))
    return imported, ET.fromstring(plan(imported.body, LINUX, host).final)


def test_the_ovf_machine_becomes_the_defaults(tmp_path: Path) -> None:
    spec = Spec(vcpus=2, memory_mib=160, controller="ide", nic="E1000", extra_items=SOUND_AND_CD,
                disk_capacity=64 << 20)  # fmt: skip
    ova = _ova(tmp_path, spec)
    host = _host(tmp_path)
    body = {"import_install": True, "disk": [{"path": str(ova)}], "os_variant": {"name": "debian11"}}
    imported, dom = _planned(tmp_path, body, ova, host)
    assert dom.findtext("name") == "appliance-2"  # the OVF's name, made unique
    assert dom.findtext("vcpu") == "2" and dom.findtext("memory") == str(160 << 10)
    assert dom.find("os").get("firmware") is None
    assert dom.find("os/type").get("machine") == "pc-i440fx-7.2"  # BIOS: the pc machine, as templates
    (disk,) = dom.findall("devices/disk")
    path = str(tmp_path / "pool/appliance-2.qcow2")
    assert disk.find("source").get("file") == path and disk.find("driver").get("type") == "qcow2"
    assert disk.find("target").attrib == {"dev": "hda", "bus": "ide"}
    (nic,) = dom.findall("devices/interface")
    assert nic.find("source").get("network") == "default" and nic.find("model").get("type") == "e1000"
    assert [(d.path, d.format, d.capacity, d.pool) for d in imported.disks] == [
        (path, "qcow2", 64 << 20, "default")
    ]
    notes = "\n".join(imported.notes)
    assert "Sound card (sound card)" in notes and "'VM Network' is not one of this host's" in notes
    assert not Path(path).exists()  # planning makes nothing
    assert appliance.convert(imported) == [Path(path)]
    info = image_info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 << 20


def test_command_line_options_win(tmp_path: Path) -> None:
    ova = _ova(tmp_path, Spec(vcpus=4, memory_mib=512, firmware="efi", controller="ide", nic="E1000"))
    host = _host(tmp_path, ("default", "lan"))
    body = {
        "name": "web", "import_install": True, "memory": {"memory": "256"}, "vcpus": {"vcpus": "1"},
        "disk": [{"path": str(ova), "bus": "virtio", "format": "raw", "cache": "none", "boot.order": "1"}],
        "network": [{"network": "lan"}],
    }  # fmt: skip
    imported, dom = _planned(tmp_path, body, ova, host)
    assert dom.findtext("vcpu") == "1" and dom.findtext("memory") == str(256 << 10)
    assert dom.find("os").get("firmware") == "efi" and dom.find("os/type").get("machine") == "q35"
    (disk,) = dom.findall("devices/disk")
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert disk.find("driver").attrib == {"name": "qemu", "type": "raw", "cache": "none"}
    assert disk.find("source").get("file").endswith("/pool/web.raw") and disk.find("boot").get("order") == "1"
    (nic,) = dom.findall("devices/interface")
    assert nic.find("source").get("network") == "lan" and nic.find("model").get("type") == "virtio"
    assert imported.disks[0].format == "raw"


def test_efi_ide_becomes_sata_and_no_default_network_is_user(tmp_path: Path) -> None:
    ova = _ova(tmp_path, Spec(firmware="efi", controller="ide", nic="E1000"), vbox=True)
    host = _host(tmp_path, ())
    body = {"name": "vb", "import_install": True, "disk": [{"path": str(ova)}]}
    imported, dom = _planned(tmp_path, body, ova, host)
    assert dom.find("devices/disk/target").get("bus") == "sata"
    assert dom.find("devices/interface").get("type") == "user"
    assert "IDE becomes SATA" in "\n".join(imported.notes)


def test_refusals(tmp_path: Path) -> None:
    ova = _ova(tmp_path, Spec())
    host = _host(tmp_path)
    app = ovf.read_appliance(ova)
    with pytest.raises(InvalidArgument, match="installed with --import"):
        appliance.rewrite({"disk": [{"path": str(ova)}], "cdrom": "/x.iso"}, host, app)
    for key, value in (("size", "4"), ("vol", "default/x"), ("backing_store", "/b"), ("target", "vdb"),
                       ("sparse", "no"), ("device", "cdrom"), ("format", "vmdk")):  # fmt: skip
        with pytest.raises(UnsupportedConfig, match=f"{key}="):
            appliance.rewrite({"import_install": True, "disk": [{"path": str(ova), key: value}]}, host, app)
    with pytest.raises(InvalidArgument, match="pool=nope"):
        appliance.rewrite({"import_install": True, "disk": [{"path": str(ova), "pool": "nope"}]}, host, app)
    no_uefi = _host(tmp_path)
    no_uefi.uefi = False
    efi = ovf.read_appliance(make_ova(tmp_path / "efi.ova", "e.ovf", vmware_ovf(Spec(firmware="efi")),
                                      {"disk1.vmdk": tmp_path / "disk1.vmdk"}))  # fmt: skip
    with pytest.raises(UnsupportedConfig, match="EFI firmware"):
        appliance.rewrite({"import_install": True, "disk": [{"path": efi.path}]}, no_uefi, efi)
