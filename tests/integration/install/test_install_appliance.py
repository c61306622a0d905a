"""``pyvirt install --import --disk X.ova`` on a real daemon: a VMware OVA (OVF + streamOptimized VMDK)
made by the test is mapped and its disk converted into the default pool, and the test guest boots from
it under TCG on the OVF's SATA disk with the OVF's CPUs and memory; a VirtualBox OVF folder (VDI, SHA1
manifest) with command-line options that win over the OVF's; a damaged appliance leaves nothing.
(The XML against virt-install's for the options the OVF stands for: test_install_oracle.py.)
"""

from __future__ import annotations

import json
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.image.api import image_info
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

COMMON = (
    "--os-variant",
    "debian11",
    "--import",
    "--graphics",
    "none",
    "--virt-type",
    "qemu",
    "--noautoconsole",
)


@pytest.fixture(scope="module")
def d(module_daemon: Daemon) -> Daemon:
    return module_daemon


def test_vmware_ova_installs_and_boots(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    vmdk = tmp_path / "web-disk1.vmdk"
    appliance_disk(sata_raw, vmdk, "vmdk")
    spec = Spec(name="web", vcpus=2, memory_mib=160, disk_file=vmdk.name, disk_capacity=256 << 20,
                nic="E1000", extra_items=SOUND_AND_CD)  # fmt: skip
    ova = make_ova(tmp_path / "web.ova", "web.ovf", vmware_ovf(spec), {vmdk.name: vmdk})
    # no --name: the OVF's; no --memory/--vcpus: the OVF's; --network none wins over its NIC
    result = d.cli("install", "--json", "--disk", str(ova), "--network", "none", *COMMON).ok()
    info = json.loads(result.out)
    disk = d.pool_dir / "web.qcow2"
    assert info["name"] == "web" and info["started"] and info["created"] == [str(disk)]
    assert any("Sound card (sound card)" in note for note in info["notes"]), info["notes"]
    converted = image_info(str(disk))
    assert converted["format"] == "qcow2" and converted["virtual-size"] == 256 << 20
    assert "web.qcow2" in d.cli("vol-list", "default").ok().out
    dom = ET.fromstring(d.cli("dumpxml", "--inactive", "web").ok().out)
    assert dom.find("devices/disk/target").attrib == {"dev": "sda", "bus": "sata"}
    assert (
        dom.find("os/type").get("machine").startswith("pc-i440fx-") and dom.find("devices/interface") is None
    )
    console = Console(d, "web")
    try:
        console.expect("nocloud none", 300)  # booted from the converted disk (syslinux, then its root)
        console.send("\n")
        console.expect("guest# ", 60)
        blocks = console.run("ls /sys/block").split()
        assert "sda" in blocks and "vda" not in blocks, blocks  # the root disk is on SATA, as the OVF said
        assert console.run("grep -c ^processor /proc/cpuinfo") == "2"
    finally:
        console.close()
    dominfo = d.connect().domain("web").info()
    assert dominfo["vcpus"] == 2 and dominfo["max_memory_kib"] == 160 << 10
    d.cli("destroy", "web").ok()
    d.cli("undefine", "--remove-all-storage", "web").ok()
    assert not disk.exists()


def test_virtualbox_ovf_folder_with_options_that_win(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    vdi = tmp_path / "box-disk001.vdi"
    appliance_disk(sata_raw, vdi, "vdi")
    ovf = tmp_path / "box.ovf"
    ovf.write_text(virtualbox_ovf(Spec(name="box", vcpus=2, memory_mib=512, disk_file=vdi.name,
                                       disk_capacity=sata_raw.stat().st_size)))  # fmt: skip
    (tmp_path / "box.mf").write_text(manifest({ovf.name: ovf, vdi.name: vdi}, "SHA1", vbox=True))
    d.cli(
        "install", "--name", "vb", "--memory", "128", "--vcpus", "1",
        "--disk", f"{ovf},format=raw,cache=none", "--network", "none", *COMMON,
    ).ok()  # fmt: skip
    dom = ET.fromstring(d.cli("dumpxml", "--inactive", "vb").ok().out)
    assert dom.findtext("vcpu") == "1" and dom.findtext("memory") == str(128 << 10)
    driver = dom.find("devices/disk/driver")
    assert driver.get("type") == "raw" and driver.get("cache") == "none"
    assert dom.find("devices/disk/source").get("file") == str(d.pool_dir / "vb.raw")
    assert (d.pool_dir / "vb.raw").read_bytes()[:512] == sata_raw.read_bytes()[:512]  # the MBR came across
    d.cli("destroy", "vb").ok()
    d.cli("undefine", "--remove-all-storage", "vb").ok()


def test_a_damaged_appliance_leaves_nothing(d: Daemon, sata_raw: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in d.pool_dir.iterdir())
    vmdk = tmp_path / "d1.vmdk"
    appliance_disk(sata_raw, vmdk, "vmdk")
    ova = make_ova(tmp_path / "x.ova", "x.ovf", vmware_ovf(Spec(disk_file="d1.vmdk")), {"d1.vmdk": vmdk})
    with tarfile.open(ova) as tar:
        member = tar.getmember("d1.vmdk")
        offset = member.offset_data + member.size // 2
    with open(ova, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = d.cli("install", "--name", "bad", "--disk", str(ova), "--network", "none", *COMMON)
    assert result.rc == 1 and "does not match the manifest's SHA256 digest" in result.err, result.err
    assert sorted(p.name for p in d.pool_dir.iterdir()) == before
    assert "bad" not in d.cli("list", "--all", "--name").ok().out.split()
