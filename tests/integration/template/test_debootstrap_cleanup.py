"""A template build after one killed mid-debootstrap: the next build unmounts what the dead one left
mounted in its work folder (proc, sysfs-like tmpfs mounts nested in each other, a bind-mounted host
folder as debootstrap's /dev), removes the folder without going through a mount point, and leaves a
running build's folder alone. Real mounts (root); debootstrap itself is a stand-in that makes an
empty tree, as only the cleanup before it is under test."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt import mounts
from pyvirt.guest import debootstrap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")

FAKE_DEBOOTSTRAP = """#!/bin/sh
# debootstrap --variant=minbase --include=... SUITE TARGET MIRROR
mkdir -p "$4/var/cache/apt/archives"
"""


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "cache"
    mounts.unmount_below(tmp_path)  # whatever the test left, were the code under test to fail


def dead_build(folder: Path, name: str, host_dev: Path) -> Path:
    """A work folder as a build killed mid-debootstrap leaves it: its lock free, file systems mounted."""
    work = folder / name
    for sub in ("root/proc", "root/sys", "root/dev"):
        (work / sub).mkdir(parents=True)
    (work / debootstrap.LOCK).touch()
    mount("-t", "proc", "proc", str(work / "root/proc"))
    mount("-t", "tmpfs", "sys", str(work / "root/sys"))
    (work / "root/sys/fs/cgroup").mkdir(parents=True)
    mount("-t", "tmpfs", "cgroup", str(work / "root/sys/fs/cgroup"))
    mount("--bind", str(host_dev), str(work / "root/dev"))
    return work


def test_next_build_unmounts_and_removes_a_dead_builds_work_folder(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = cache / "debootstrap"
    host_dev = tmp_path / "host-dev"
    host_dev.mkdir()
    (host_dev / "null").write_text("must survive")
    dead = dead_build(folder, ".bookworm-dead.work", host_dev)
    # an older pyvirt's folder (no lock), an hour old
    old = folder / ".bookworm-old.work"
    (old / "root/proc").mkdir(parents=True)
    mount("-t", "proc", "proc", str(old / "root/proc"))
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    # a build in progress: its lock held
    live = folder / ".bookworm-live.work"
    (live / "root/proc").mkdir(parents=True)
    lock = os.open(live / debootstrap.LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "debootstrap").write_text(FAKE_DEBOOTSTRAP)
    (fake / "debootstrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    try:
        tree = debootstrap.ensure_tree(cache, debootstrap.release("debian-12"), ("pkg",))
    finally:
        os.close(lock)
    assert (tree / debootstrap.STAMP).is_file()
    assert mounts.below(mounts.read_mounts(), folder) == []
    assert not dead.exists() and not old.exists()
    assert (host_dev / "null").read_text() == "must survive"  # not removed through the bind mount
    assert live.is_dir()  # in use: left alone
    assert sorted(p.name for p in folder.iterdir()) == [".bookworm-live.work", tree.name]
