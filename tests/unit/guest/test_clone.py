"""Clone definitions without a daemon: the domain XML of a template clone and of a domain clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.defaults import HOTPLUG_ROOT_PORTS
from pyvirt.conf.domain_xml import format_domain, parse_domain
from pyvirt.conf.mac import random_mac
from pyvirt.errors import AlreadyExists
from pyvirt.guest import clone
from pyvirt.guest.hardware import Hardware
from pyvirt.image.api import create_image, image_info, open_image

OPTS = clone.CloneOptions(original="deb12", name="web01", vcpus=2, memory=512 << 20)


def test_random_macs_are_local_qemu_ones() -> None:
    macs = {random_mac() for _ in range(50)}
    assert len(macs) == 50
    assert all(m.startswith("52:54:00:") and len(m) == 17 for m in macs)


def test_template_domain_xml() -> None:
    xml = clone.template_domain_xml(
        OPTS, "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01", ["web01.qcow2"], "web01-seed.iso",
        [("user", "", "52:54:00:00:00:01")], domain_type="qemu",
    )  # fmt: skip
    dom = parse_domain(xml)
    assert (dom.name, dom.type, dom.uuid) == ("web01", "qemu", "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01")
    assert dom.vcpus == 2 and dom.memory_kib == 512 * 1024
    assert dom.os.boot == ["hd"]
    disk, cdrom = dom.devices.disks
    assert (disk.type, disk.source_pool, disk.source_volume, disk.driver_type, disk.target_dev) == (
        "volume", "default", "web01.qcow2", "qcow2", "vda",
    )  # fmt: skip
    assert (cdrom.device, cdrom.source_volume, cdrom.target_bus, cdrom.readonly) == (
        "cdrom", "web01-seed.iso", "sata", True,
    )  # fmt: skip
    (nic,) = dom.devices.interfaces
    assert (nic.type, nic.mac) == ("user", "52:54:00:00:00:01")
    assert [c.target_name for c in dom.devices.channels] == ["org.qemu.guest_agent.0"]
    assert dom.devices.serials and dom.devices.rngs
    assert not [c for c in dom.devices.controllers if c.type == "pci"]  # pc: hot-plug goes on pci.0


def test_template_domain_xml_q35_has_hotplug_ports() -> None:
    """A UEFI template's clone is q35: it gets virt-install's empty root ports, since the daemon adds
    none (as libvirt) and a device hot-plugged on q35 needs a free one."""
    xml = clone.template_domain_xml(
        OPTS, "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01", ["web01.qcow2"], "web01-seed.iso", [],
        domain_type="qemu", hardware=Hardware(firmware="efi"),
    )  # fmt: skip
    dom = parse_domain(xml)
    assert dom.os.machine == "q35"
    models = [c.model for c in dom.devices.controllers if c.type == "pci"]
    assert models == ["pcie-root"] + ["pcie-root-port"] * HOTPLUG_ROOT_PORTS


ORIGINAL = """<domain type='qemu'>
  <name>orig</name>
  <uuid>11111111-2222-4333-8444-555555555555</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='/images/orig.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/><source pool='default' volume='orig-data.raw'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/><source pool='default' volume='orig-seed.iso'/>
      <target dev='sda' bus='sata'/><readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/><source file='/isos/tools.iso'/>
      <target dev='sdb' bus='sata'/><readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/><source network='default'/><model type='e1000'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
  </devices>
</domain>"""


def test_domain_clone_xml_new_identity_disks_seed_macs() -> None:
    base = parse_domain(ORIGINAL)
    nics = [("network", "default", "52:54:00:01:02:03")]
    xml = clone.domain_clone_xml(
        base,
        OPTS,
        "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01",
        ["web01.qcow2", "web01-1.qcow2"],
        "web01-seed.iso",
        nics,
    )
    dom = parse_domain(xml)
    assert (dom.name, dom.uuid, dom.vcpus, dom.memory_kib) == (
        "web01", "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01", 2, 512 * 1024,
    )  # fmt: skip
    disks = [
        (d.device, d.type, d.source_volume or d.source, d.driver_type, d.target_dev)
        for d in dom.devices.disks
    ]
    assert disks == [
        ("disk", "volume", "web01.qcow2", "qcow2", "vda"),
        ("disk", "volume", "web01-1.qcow2", "qcow2", "vdb"),
        ("cdrom", "file", "/isos/tools.iso", "raw", "sdb"),  # kept, shared as virt-clone does
        ("cdrom", "volume", "web01-seed.iso", "raw", "sda"),  # the old seed replaced by the new
    ]
    (nic,) = dom.devices.interfaces
    assert (nic.mac, nic.source_network, nic.model) == ("52:54:00:01:02:03", "default", "e1000")
    assert "52:54:00:aa:bb:cc" not in xml and "11111111-2222" not in xml
    # The original is untouched.
    assert format_domain(base) == format_domain(parse_domain(ORIGINAL))


def test_domain_clone_xml_network_override_and_none() -> None:
    base = parse_domain(ORIGINAL)
    xml = clone.domain_clone_xml(base, OPTS, "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01", ["a", "b"], "s", [])
    assert parse_domain(xml).devices.interfaces == []
    xml = clone.domain_clone_xml(
        base,
        OPTS,
        "6f1e8c1a-0d5e-4c1e-9d38-6f6b7f2a9a01",
        ["a", "b"],
        "s",
        [("user", "", "52:54:00:00:00:09")],
    )
    (nic,) = parse_domain(xml).devices.interfaces
    assert (nic.type, nic.source_network) == ("user", None)


def test_full_copy_flattens_and_grows(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    create_image(str(base), "qcow2", 4 << 20)
    with open_image(str(base), readonly=False) as img:
        img.write(0, b"B" * 65536)
    top = tmp_path / "top.qcow2"
    create_image(str(top), "qcow2", None, backing=str(base), backing_fmt="qcow2")
    with open_image(str(top), readonly=False) as img:
        img.write(65536, b"T" * 65536)
    dest = tmp_path / "copy.qcow2"
    clone.full_copy(str(top), "qcow2", dest, 8 << 20)
    info = image_info(str(dest))
    assert info["virtual-size"] == 8 << 20 and "backing-filename" not in info
    with open_image(str(dest)) as img:
        assert img.read(0, 131072) == b"B" * 65536 + b"T" * 65536
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.qcow2", "copy.qcow2", "top.qcow2"]
    with pytest.raises(AlreadyExists):
        clone.full_copy(str(top), "qcow2", dest, 8 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.qcow2", "copy.qcow2", "top.qcow2"]
