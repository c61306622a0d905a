"""A domain whose disk is ``<disk type='volume'>``: QEMU opens the pool's file, the guest sees the disk, and
the volume (and its backing file) cannot be deleted, resized, wiped or overwritten while the domain runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

DISK = """
<disk type='volume' device='disk'>
  <driver name='qemu' type='qcow2'/>
  <source pool='default' volume='vm.qcow2'/>
  <target dev='vda' bus='virtio'/>
</disk>
"""


def test_volume_disk_resolves_and_is_protected_while_running(daemon: Daemon, tmp_path: Path) -> None:
    guest_artifacts()
    pool = daemon.pool_dir
    daemon.cli("vol-create-as", "default", "base.qcow2", "32M", "--format", "qcow2").ok()
    daemon.cli(
        "vol-create-as", "default", "vm.qcow2", "48M", "--format", "qcow2",
        "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2",
    ).ok()  # fmt: skip
    xml = tmp_path / "vm.xml"
    xml.write_text(domain_xml("vmvol", extra_devices=DISK))
    daemon.cli("define", str(xml)).ok()

    # A missing volume is a clear start error.
    daemon.cli("vol-delete", "vm.qcow2", "--pool", "default").ok()
    failed = daemon.cli("start", "vmvol")
    assert failed.rc == 1 and "no storage vol with matching name 'vm.qcow2'" in failed.err, failed
    daemon.cli(
        "vol-create-as", "default", "vm.qcow2", "48M", "--format", "qcow2",
        "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2",
    ).ok()  # fmt: skip

    daemon.cli("start", "vmvol").ok()
    pid = daemon.qemu_pids()["vmvol"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert str(pool / "vm.qcow2") in cmdline
    blk = daemon.cli("domblklist", "vmvol").ok().out
    assert " vda " in blk and "vm.qcow2" in blk
    console = Console(daemon, "vmvol")
    console.expect("pyvirt-guest: ready")
    assert console.run("cat /sys/block/vda/size") == str((48 << 20) // 512)
    console.close()

    for args, fragment in (
        (("vol-delete", "vm.qcow2", "--pool", "default"), "cannot delete volume 'vm.qcow2'"),
        (("vol-delete", "base.qcow2", "--pool", "default"), "as a backing file of"),
        (("vol-resize", "vm.qcow2", "64M", "--pool", "default"), "cannot resize volume 'vm.qcow2'"),
        (("vol-upload", "vm.qcow2", str(xml), "--pool", "default"), "cannot upload to volume 'vm.qcow2'"),
        (("vol-wipe", "vm.qcow2", "--pool", "default"), "cannot wipe volume 'vm.qcow2'"),
        (("vol-wipe", "base.qcow2", "--pool", "default"), "as a backing file of"),
    ):
        result = daemon.cli(*args)
        assert result.rc == 1, result
        assert fragment in result.err and "in use by running domain 'vmvol'" in result.err, result.err
    assert (pool / "vm.qcow2").exists() and (pool / "base.qcow2").exists()

    # The protection survives a daemon restart (the domain is re-adopted).
    daemon.restart()
    assert daemon.cli("vol-delete", "vm.qcow2", "--pool", "default").rc == 1

    daemon.cli("destroy", "vmvol").ok()
    daemon.cli("vol-resize", "vm.qcow2", "64M", "--pool", "default").ok()
    daemon.cli("vol-delete", "vm.qcow2", "--pool", "default").ok()
    daemon.cli("vol-delete", "base.qcow2", "--pool", "default").ok()
