"""Disks plugged into and out of real TCG guests through a real pyvirtd: attach-disk (the guest sees the
disk and writes a file system on it), detach-disk (gone from the guest and the live XML, the file's
owner given back), --config for the next boot, change-media on a SCSI cdrom the guest reads, a q35
machine's spare PCIe root ports, pc's ACPI hotplug, and the refusals that leave everything as it was."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
ROOT_PORTS = 4

CDROM = """
<controller type='scsi' index='0' model='virtio-scsi'/>
<disk type='file' device='cdrom'>
  <driver name='qemu' type='raw'/>
  <target dev='sdc' bus='scsi'/>
  <readonly/>
</disk>
"""


def _define(d: Daemon, tmp: Path, name: str, *, q35: bool, extra: str = "") -> None:
    if q35:  # spare root ports for hot-plugged devices, as pyvirt install and virt-install write them
        extra += "".join(
            f"<controller type='pci' index='{i}' model='pcie-root-port'/>" for i in range(1, ROOT_PORTS + 1)
        )
    xml = domain_xml(name, extra_devices=extra)
    if q35:
        xml = re.sub(r"machine=(['\"])pc\1", "machine='q35'", xml)
    path = tmp / f"{name}.xml"
    path.write_text(xml)
    d.cli("define", str(path)).ok()


def _qom_type(d: Daemon, name: str, device: str) -> str:
    """QEMU's type of the device with id ``device`` in domain ``name``."""
    path = f"/machine/peripheral/{device}"
    qom = json.dumps({"execute": "qom-get", "arguments": {"path": path, "property": "type"}})
    return str(json.loads(d.cli("qemu-monitor-command", name, qom).ok().out)["return"])


def _iso(tmp: Path, text: str) -> Path:
    tool = shutil.which("genisoimage") or shutil.which("xorriso") or shutil.which("mkisofs")
    if tool is None:
        pytest.skip("no ISO 9660 maker (genisoimage, from scripts/setup.sh) on this machine")
    tree = tmp / "iso-tree"
    tree.mkdir()
    (tree / "hello.txt").write_text(text)
    iso = tmp / "media.iso"
    argv = [tool, "-as", "mkisofs"] if tool.endswith("xorriso") else [tool]
    subprocess.run([*argv, "-quiet", "-o", str(iso), str(tree)], check=True)
    return iso


def test_attach_write_detach_and_change_media_on_q35(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    _define(d, tmp_path, "hp1", q35=True, extra=CDROM)
    data = tmp_path / "data.raw"
    with open(data, "wb") as fh:
        fh.truncate(32 * 1024 * 1024)
    owner = os.stat(data).st_uid, os.stat(data).st_gid, os.stat(data).st_mode
    iso = _iso(tmp_path, "pyvirt media\n")

    # Bad input on a shut-off domain: a missing file; nothing changes.
    before = d.cli("dumpxml", "--inactive", "hp1").ok().out
    result = d.cli("attach-disk", "hp1", str(tmp_path / "missing.raw"), "vdb", "--config")
    assert result.rc == 1 and "Failed to attach disk" in result.err and "missing.raw" in result.err
    assert d.cli("dumpxml", "--inactive", "hp1").ok().out == before

    d.cli("start", "hp1").ok()
    console = Console(d, "hp1")
    console.expect(READY)
    # q35: the machine has the spare PCIe root ports of its XML, and no more (libvirt adds none).
    live = d.cli("dumpxml", "hp1").ok().out
    assert len(re.findall(r"model='pcie-root-port'", live)) == ROOT_PORTS

    # attach-disk --persistent: plugged now (the guest sees vdb) and kept for the next boot.
    xml = d.cli("attach-disk", "hp1", str(data), "vdb", "--print-xml").ok().out
    assert f'<source file="{data}"' in xml or f"<source file='{data}'" in xml
    assert "vdb" not in d.cli("domblklist", "hp1").ok().out  # --print-xml attached nothing
    result = d.cli(
        "attach-disk", "hp1", str(data), "vdb", "--targetbus", "virtio", "--serial", "DATA1", "--persistent"
    )
    assert result.ok().out.strip() == "Disk attached successfully"
    dev = console.virtio_disk("DATA1")
    live = d.cli("dumpxml", "hp1").ok().out
    assert re.search(
        r"<target dev='vdb' bus='virtio'/>\s*<serial>DATA1</serial>\s*<alias name='virtio-disk1'/>", live
    )
    assert "vdb" in d.cli("dumpxml", "--inactive", "hp1").ok().out
    if os.geteuid() == 0 and owner[0] == 0:  # handed to the QEMU user while plugged
        assert os.stat(data).st_uid != 0
    console.run(
        f"mke2fs -q /dev/{dev} && mkdir -p /mnt/d && mount /dev/{dev} /mnt/d && echo written > /mnt/d/f"
    )
    assert console.run("cat /mnt/d/f") == "written"
    console.run("umount /mnt/d && sync")

    # Refused, leaving the live and persistent definitions as they were.
    live, config = d.cli("dumpxml", "hp1").ok().out, d.cli("dumpxml", "--inactive", "hp1").ok().out
    result = d.cli("attach-disk", "hp1", str(data), "vdb", "--persistent")
    assert result.rc == 1 and "target vdb already exists" in result.err
    other = tmp_path / "other.raw"
    other.write_bytes(b"\0" * 1024 * 1024)
    result = d.cli("attach-disk", "hp1", str(other), "vdc", "--persistent", "--targetbus", "sata")
    assert result.rc == 1 and "cannot be hotplugged" in result.err
    result = d.cli("attach-disk", "hp1", str(tmp_path / "missing.raw"), "vdc", "--persistent")
    assert result.rc == 1 and "missing.raw" in result.err
    result = d.cli("attach-disk", "hp1", str(data), "vdc")
    assert result.rc == 1 and "in use by disk 'vdb'" in result.err
    result = d.cli("detach-disk", "hp1", "vdz")
    assert result.rc == 1 and "No disk found whose source path or target is vdz" in result.err
    missing = tmp_path / "missing-disk.xml"
    missing.write_text("<disk type='file'><source file='/nonexistent'/><target dev='vdy'/></disk>")
    result = d.cli("detach-device", "hp1", str(missing))
    assert result.rc == 1 and "Failed to detach device" in result.err and "vdy" in result.err
    assert d.cli("dumpxml", "hp1").ok().out == live
    assert d.cli("dumpxml", "--inactive", "hp1").ok().out == config

    # detach-disk --live: gone from the guest and the live XML (kept in the definition); the file's
    # owner is given back, and the file system the guest made is whole.
    assert d.cli("detach-disk", "hp1", "vdb", "--live").ok().out.strip() == "Disk detached successfully"
    console.virtio_disk("DATA1", present=False)
    assert "vdb" not in d.cli("dumpxml", "hp1").ok().out
    assert "vdb" in d.cli("dumpxml", "--inactive", "hp1").ok().out
    stat = os.stat(data)
    assert (stat.st_uid, stat.st_gid, stat.st_mode) == owner
    if shutil.which("e2fsck"):
        subprocess.run(["e2fsck", "-fn", str(data)], check=True, capture_output=True)

    # change-media on the (empty) SCSI cdrom: inserted, read by the guest, ejected.
    result = d.cli("change-media", "hp1", "sdc", "--eject")
    assert result.rc == 1 and "doesn't have media" in result.err
    result = d.cli("change-media", "hp1", "sdc", str(iso), "--insert")
    assert result.ok().out.strip() == "Successfully inserted media."
    assert str(iso) in d.cli("domblklist", "hp1").ok().out
    console.run(
        "mkdir -p /mnt/cd; for i in $(seq 60); do mount -t iso9660 /dev/sr0 /mnt/cd && break; sleep 0.5; done"
    )
    assert console.run("cat /mnt/cd/hello.txt") == "pyvirt media"
    result = d.cli("change-media", "hp1", "sdc", "--eject")  # mounted: the guest holds the tray shut
    assert result.rc == 1 and "locked" in result.err
    assert str(iso) in d.cli("domblklist", "hp1").ok().out
    result = d.cli("change-media", "hp1", "sdc", "--eject", "--force")  # opened all the same
    assert result.ok().out.strip() == "Successfully ejected media."
    console.run("umount /mnt/cd")
    assert "No medium" in console.run("dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>&1")
    assert str(iso) not in d.cli("domblklist", "hp1").ok().out

    # --config: the next boot has vdb (with the file system the guest wrote).
    d.cli("destroy", "hp1").ok()
    d.cli("start", "hp1").ok()
    console = Console(d, "hp1")
    console.expect(READY)
    dev = console.virtio_disk("DATA1")
    console.run(f"mkdir -p /mnt/d && mount /dev/{dev} /mnt/d")
    assert console.run("cat /mnt/d/f") == "written"
    d.cli("destroy", "hp1").ok()


def test_pc_acpi_hotplug_and_a_disk_another_domain_uses(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    shared = tmp_path / "shared.raw"
    shared.write_bytes(b"\0" * 4 * 1024 * 1024)
    disk = f"<disk type='file' device='disk'><source file='{shared}'/><target dev='vdb'/></disk>"
    _define(d, tmp_path, "hp2", q35=False, extra=disk)
    _define(d, tmp_path, "hp3", q35=False)
    d.cli("start", "hp2").ok()
    d.cli("start", "hp3").ok()
    console = Console(d, "hp3")
    console.expect(READY)

    # hp2 uses shared.raw: refused for hp3 (libvirt's disk locking), unless both share it.
    result = d.cli("attach-disk", "hp3", str(shared), "vdb", "--persistent")
    assert result.rc == 1 and "resource busy" in result.err and "'hp2'" in result.err
    assert "vdb" not in d.cli("dumpxml", "hp3").ok().out
    assert "vdb" not in d.cli("dumpxml", "--inactive", "hp3").ok().out

    # pc: a disk plugged into pci.0 through ACPI hotplug, seen by the guest, and unplugged again.
    mine = tmp_path / "mine.raw"
    mine.write_bytes(b"\0" * 4 * 1024 * 1024)
    d.cli("attach-disk", "hp3", str(mine), "vdb", "--serial", "PYVIRT-HP", "--current").ok()
    console.virtio_disk("PYVIRT-HP")
    assert "vdb" not in d.cli("dumpxml", "--inactive", "hp3").ok().out  # --current: live only
    d.cli("detach-disk", "hp3", str(mine), "--current").ok()  # by its source path, as virsh
    console.virtio_disk("PYVIRT-HP", present=False)

    # A qcow2 overlay: QEMU cannot open its backing file by name (Landlock), so the daemon hands over
    # each layer; the guest reads the base's data through the overlay.
    base = tmp_path / "base.raw"
    base.write_bytes(b"pyvirt-backing-marker\n".ljust(1024 * 1024, b"\0"))
    top = tmp_path / "top.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(top)], check=True
    )
    d.cli("attach-disk", "hp3", str(top), "vdc", "--subdriver", "qcow2", "--serial", "LAYERED").ok()
    dev = console.virtio_disk("LAYERED")
    assert console.run(f"head -c 21 /dev/{dev}") == "pyvirt-backing-marker"
    d.cli("detach-disk", "hp3", "vdc").ok()
    console.virtio_disk("LAYERED", present=False)
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "check", "-q", str(top)], check=True)

    # A SCSI disk on a machine with no SCSI controller: libvirt's way, the controller is plugged first,
    # of libvirt 9.0's default model (lsilogic: QEMU's lsi53c895a; the test guest has no driver for it).
    d.cli("attach-disk", "hp3", str(mine), "sdb", "--targetbus", "scsi").ok()
    assert "<controller type='scsi' index='0' model='lsilogic'" in d.cli("dumpxml", "hp3").ok().out
    assert _qom_type(d, "hp3", "scsi0") == "lsi53c895a"
    assert _qom_type(d, "hp3", "scsi0-0-1") == "scsi-hd"  # libvirt's id on an lsilogic: sdb is SCSI id 1
    d.cli("detach-disk", "hp3", "sdb").ok()
    lsi = tmp_path / "lsi.xml"
    lsi.write_text("<controller type='scsi' index='0' model='lsilogic'/>")
    d.cli("detach-device", "hp3", str(lsi)).ok()
    # A virtio-scsi controller attached by itself, then a disk on it the guest sees; detach-device of
    # the controller is refused while it holds the disk, then unplugs it.
    ctl = tmp_path / "scsi.xml"
    ctl.write_text("<controller type='scsi' index='0' model='virtio-scsi'/>")
    d.cli("attach-device", "hp3", str(ctl)).ok()
    d.cli("attach-disk", "hp3", str(mine), "sdb", "--targetbus", "scsi", "--serial", "SCSIHP").ok()
    live = d.cli("dumpxml", "hp3").ok().out
    assert "<controller type='scsi' index='0' model='virtio-scsi'" in live
    find = "for b in /sys/block/sd*; do grep -q SCSIHP $b/device/vpd_pg80 2>/dev/null && echo ${b##*/}; done"
    console.run(f'for i in $(seq 120); do [ -n "$({find})" ] && break; sleep 0.5; done', 90)
    assert console.run(find).startswith("sd")
    result = d.cli("detach-device", "hp3", str(ctl))
    assert result.rc == 1 and "still has disk sdb" in result.err
    d.cli("detach-disk", "hp3", "sdb").ok()
    d.cli("detach-device", "hp3", str(ctl)).ok()
    assert "<controller type='scsi'" not in d.cli("dumpxml", "hp3").ok().out
    d.cli("destroy", "hp2").ok()
    d.cli("destroy", "hp3").ok()
