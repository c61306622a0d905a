"""pyvirt mount / umount through FUSE: read and write a disk, bad input (a running domain: test_domain_disks).

The tools run as subprocesses (``python -m pyvirt.cli.guest``), as a user runs them: mount must
return once the mount is ready and leave its server in the background. One launch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.guest.disks import overlay, reading

pytestmark = pytest.mark.slow


def _tool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyvirt.cli.guest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYVIRT_ROOT": str(tmp_path / "root")}


def test_mount_writes(base_disks: Any, tmp_path: Path, env: Any) -> None:
    disk = overlay(base_disks[0], tmp_path / "deb.qcow2")
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    result = _tool(env, "mount", "-a", str(disk), "-i", str(mnt))
    assert result.returncode == 0, result.stderr
    try:
        assert os.path.ismount(mnt)
        assert (mnt / "etc/hostname").read_text() == "debtemplate\n"
        assert (mnt / "boot/grub/grub.cfg").exists()  # /boot, a second partition, mounted from fstab
        (mnt / "root/hello.txt").write_text("written through FUSE\n")
    finally:
        result = _tool(env, "umount", str(mnt))
    assert result.returncode == 0, result.stderr
    assert not os.path.ismount(mnt)
    with reading(disk) as g:  # the write reached the disk once umount returned
        g.mount_ro("/dev/sda2", "/")
        assert g.cat("/root/hello.txt") == "written through FUSE\n"


def test_mount_bad_input(tmp_path: Path, env: Any) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    result = _tool(env, "mount", "-a", str(tmp_path / "missing.qcow2"), "-i", str(mnt))
    assert result.returncode == 1
    assert result.stderr == f"error: disk image {tmp_path / 'missing.qcow2'} does not exist\n"

    text = tmp_path / "notes.txt"
    text.write_text("not a disk\n")
    result = _tool(env, "mount", "-a", str(text), "-i", str(mnt))
    assert result.returncode == 1 and "is not a disk image" in result.stderr

    disk = tmp_path / "x.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    result = _tool(env, "mount", "-a", str(disk), "-i", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "does not exist or is not a directory" in result.stderr
    result = _tool(env, "mount", "-a", str(disk), str(mnt))
    assert result.returncode == 1 and "-i" in result.stderr

    result = _tool(env, "umount", str(mnt))
    assert result.returncode == 1 and "is not a mounted guest file system" in result.stderr
    assert not os.path.ismount(mnt)
