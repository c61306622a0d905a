"""pyvirt mount / umount through FUSE: read and write a disk, bad input (a running domain: test_domain_disks).

The tools run as subprocesses (``python -m pyvirt.cli.guest``), as a user runs them: mount must
return once the mount is ready and leave its server in the background.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.guest.disks import overlay, snapshot_disk

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
    # The write reached the disk, its file system left clean, once umount returned.
    assert snapshot_disk(disk, root=2)["/root/hello.txt"][2] == "written through FUSE\n"


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


def test_mount_as_asked_read_only_with_pid_file_and_retried_umount(
    base_disks: Any, tmp_path: Path, env: Any
) -> None:
    """mount -m DEV (no inspection) -r --format --pid-file, and umount --retry while the mount is busy."""
    disk = overlay(base_disks[0], tmp_path / "deb.qcow2")
    mnt, pid_file = tmp_path / "mnt", tmp_path / "mount.pid"
    mnt.mkdir()
    # --format: the disk read as raw is a qcow2 header, with no /dev/sda2 in it.
    result = _tool(env, "mount", "-a", str(disk), "--format", "raw", "-m", "/dev/sda2", str(mnt))
    assert result.returncode == 1 and "/dev/sda2" in result.stderr, result.stderr
    assert not os.path.ismount(mnt)

    result = _tool(
        env, "mount", "-a", str(disk), "--format", "qcow2", "-m", "/dev/sda2", "-r", "--pid-file",
        str(pid_file), str(mnt),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    holder = None
    try:
        assert (mnt / "etc/hostname").read_text() == "debtemplate\n"
        assert not (mnt / "boot/grub/grub.cfg").exists()  # only sda2: /boot (from fstab) is not mounted
        with pytest.raises(OSError) as refused:
            (mnt / "root/hello.txt").write_text("no\n")
        assert refused.value.errno == 30  # EROFS
        pid = int(pid_file.read_text())
        assert _alive(pid)  # the FUSE server, in the background
        # A process inside the mount keeps it busy: no retry fails at once; with retries, umount waits
        # until the process has left.
        holder = subprocess.Popen(["sleep", "2"], cwd=mnt)
        busy = _tool(env, "umount", "--retry", "0", str(mnt))
        assert busy.returncode == 1 and "busy" in busy.stderr, busy.stderr
        result = _tool(env, "umount", "--retry", "6", str(mnt))
        assert result.returncode == 0, result.stderr
    finally:
        if holder is not None:
            holder.wait()
        if os.path.ismount(mnt):
            _tool(env, "umount", str(mnt))
    assert not os.path.ismount(mnt)
    assert not _alive(pid)  # umount returned once the server had written back and exited


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie no parent reaps, as in a container without an init, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
