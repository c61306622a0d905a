"""Appliances on a real daemon: an OVA in VMware's format (OVF + streamOptimized VMDK made by
``pyvirt img convert``) and a VirtualBox-style OVF folder (VDI disk, SHA1 manifest) become templates
keeping the OVF's CPUs, memory and disk bus, and the VMs launched from them boot from their disk on
SATA with their seed's hostname. Bad packages (a missing disk file, a damaged disk) leave nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support import bootable
from tests.support.daemon import Console, Daemon
from tests.support.ova import (
    SOUND_AND_CD,
    Spec,
    appliance_disk,
    make_ova,
    manifest,
    virtualbox_ovf,
    vmware_ovf,
)

pytestmark = [pytest.mark.slow, bootable.needs_tools]


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    return module_daemon


def _pool_files(d: Daemon) -> list[str]:
    return sorted(p.name for p in d.pool_dir.iterdir())


def _boot_and_check(d: Daemon, template: str, name: str) -> None:
    d.cli("launch", template, name, "--network", "none").ok()
    console = Console(d, name)
    try:
        console.expect(f"nocloud hostname {name} keys 0", 180)
        console.send("\n")
        console.expect("guest# ", 60)
        assert console.run("hostname") == name
        blocks = console.run("ls /sys/block").split()
        assert "sda" in blocks and "vda" not in blocks, blocks  # the root disk is on SATA, as the OVF said
    finally:
        console.close()
    d.cli("destroy", name).ok()


def test_vmware_ova_imports_and_boots(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    vmdk = tmp_path / "appliance-disk1.vmdk"
    appliance_disk(sata_raw, vmdk, "vmdk")
    if shutil.which("qemu-img"):  # the reference tool agrees on what was made
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vmdk)],
                                         capture_output=True, text=True, check=True).stdout)  # fmt: skip
        assert (
            info["format"] == "vmdk" and info["format-specific"]["data"]["create-type"] == "streamOptimized"
        )
    spec = Spec(vcpus=2, memory_mib=160, disk_file=vmdk.name, disk_capacity=256 << 20, nic="VmxNet3",
                extra_items=SOUND_AND_CD)  # fmt: skip
    ova = make_ova(tmp_path / "appliance.ova", "appliance.ovf", vmware_ovf(spec), {vmdk.name: vmdk})
    result = d.cli("template", "import", str(ova), "vmw").ok()
    assert "2 vCPU, 160 MiB, BIOS, disks sata, NIC virtio" in result.err
    assert "Not carried over: Sound card (sound card)" in result.err
    assert "Not carried over: Network adapter 1: the VmxNet3 adapter becomes virtio" in result.err
    listing = d.cli("template", "list", "--json").ok().out
    (tmpl,) = [t for t in json.loads(listing) if t["name"] == "vmw"]
    assert tmpl["os"] == "debian11_64Guest" and tmpl["virtual_size"] == 256 << 20
    assert tmpl["hardware"]["disk_buses"] == ["sata"] and tmpl["hardware"]["memory"] == 160 << 20
    _boot_and_check(d, "vmw", "vm-vmware")
    info = d.connect().domain("vm-vmware").info()
    assert info["vcpus"] == 2 and info["max_memory_kib"] == 160 << 10


def test_virtualbox_ovf_folder_imports_and_boots(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    vdi = tmp_path / "appliance-disk001.vdi"
    appliance_disk(sata_raw, vdi, "vdi")
    ovf = tmp_path / "appliance.ovf"
    ovf.write_text(
        virtualbox_ovf(
            Spec(memory_mib=128, disk_file=vdi.name, disk_capacity=sata_raw.stat().st_size, nic="E1000")
        )
    )
    (tmp_path / "appliance.mf").write_text(manifest({ovf.name: ovf, vdi.name: vdi}, "SHA1", vbox=True))
    result = d.cli("template", "import", "--os", "debian-12", str(ovf), "vbox").ok()
    assert "1 vCPU, 128 MiB, BIOS, disks sata, NIC e1000" in result.err
    _boot_and_check(d, "vbox", "vm-vbox")
    assert "<model type='e1000'/>" not in d.connect().domain("vm-vbox").xml()  # --network none: no NIC


def test_bad_appliances_leave_nothing(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    before = _pool_files(d)
    vmdk = tmp_path / "d1.vmdk"
    appliance_disk(sata_raw, vmdk, "vmdk")
    two_disks = vmware_ovf(Spec(disk_file="d1.vmdk", extra_disk_ref="d2.vmdk"))
    missing = make_ova(tmp_path / "m.ova", "m.ovf", two_disks, {"d1.vmdk": vmdk})
    bad = d.cli("template", "import", str(missing), "m")
    assert (
        bad.rc == 1 and "references the file d2.vmdk (disk vmdisk2), which the OVA does not hold" in bad.err
    )
    # A disk that is not the one the manifest describes: refused before it is converted.
    ova = make_ova(tmp_path / "x.ova", "x.ovf", vmware_ovf(Spec(disk_file="d1.vmdk")), {"d1.vmdk": vmdk})
    with tarfile.open(ova) as tar:
        member = tar.getmember("d1.vmdk")
        offset = member.offset_data + member.size // 2
    with open(ova, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    damaged = d.cli("template", "import", str(ova), "x")
    assert damaged.rc == 1 and "does not match the manifest's SHA256 digest" in damaged.err, damaged.err
    assert _pool_files(d) == before
    assert "m " not in d.cli("template", "list").ok().out
