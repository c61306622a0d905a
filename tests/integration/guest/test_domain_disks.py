"""The guest tools' ``-d DOMAIN`` through the daemon's API, on a domain whose disk is a pool volume.

A real pyvirtd in a scratch root and real libguestfs (TCG where KVM is unusable). customize finds the
volume disk (before, the tools read the daemon's private XML and skipped ``<disk type='volume'>``, so
they found nothing on a clone); a domain started (paused: its QEMU holds the disk, the guest runs no
code) is refused by sysprep and customize, and mounted read-only by mount. Two launches.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.guest.disks import overlay, snapshot_disk
from tests.support.daemon import Daemon

pytestmark = pytest.mark.slow

DOMAIN = """<domain type='qemu'>
  <name>web</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/><source pool='default' volume='web.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


@pytest.fixture(scope="module")
def daemon(base_disks: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon()
    d.start()
    try:
        overlay(base_disks[0], d.pool_dir / "web.qcow2")
        xml = tmp_path_factory.mktemp("web") / "web.xml"
        xml.write_text(DOMAIN)
        d.cli("define", str(xml)).ok()
        yield d
    finally:
        d.cleanup()


def test_customize_finds_the_volume_disk(daemon: Daemon) -> None:
    daemon.cli("customize", "-q", "-d", "web", "--write", "/etc/motd:through the API").ok()
    tree = snapshot_disk(daemon.pool_dir / "web.qcow2", root=2)
    assert tree["/etc/motd"][2] == "through the API"


def test_running_domain_refused_then_mounted_read_only(daemon: Daemon, tmp_path: Path) -> None:
    disk = daemon.pool_dir / "web.qcow2"
    daemon.cli("start", "--paused", "web").ok()
    try:
        for tool in ("sysprep", "customize"):
            refused = daemon.cli(tool, "-d", "web", "--hostname", "other")
            assert refused.rc == 1, refused
            assert refused.err.startswith("error: domain web is running") and refused.err.count("\n") == 1
        before = disk.read_bytes()
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        mounted = daemon.cli("mount", "-d", "web", "-i", str(mnt))
        assert mounted.rc == 0, mounted.err
        assert "running: mounting read-only" in mounted.err
        try:
            assert (mnt / "etc/motd").read_text() == "through the API"
            with pytest.raises(OSError) as info:
                (mnt / "root/refused.txt").write_text("no")
            assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        finally:
            daemon.cli("umount", str(mnt)).ok()
        assert not os.path.ismount(mnt)
        assert disk.read_bytes() == before
    finally:
        daemon.cli("destroy", "web").ok()


def test_unknown_domain_and_both_kinds_of_disk(daemon: Daemon, tmp_path: Path) -> None:
    missing = daemon.cli("sysprep", "-d", "nosuch")
    assert missing.rc == 1 and "nosuch" in missing.err and missing.err.startswith("error: ")
    both = daemon.cli("sysprep", "-d", "web", "-a", str(tmp_path / "x.qcow2"))
    assert both.rc == 1 and "either -a DISK or -d DOMAIN" in both.err
