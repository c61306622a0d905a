"""The mount table read from mountinfo text, and folders removed only once nothing is mounted in them
(pyvirt.mounts), on a fake table: what would be unmounted, in which order, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt import mounts
from pyvirt.errors import OperationFailed
from pyvirt.mounts import Mount, below, parse_mountinfo, remove_tree, unmount_below

W = "/c/debootstrap/.bookworm-1.work"
MOUNTINFO = f"""\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
41 22 0:40 / {W}/root/proc rw,relatime - proc proc rw
42 22 0:41 / {W}/root/sys rw,relatime - sysfs sysfs rw
43 42 0:42 / {W}/root/sys/fs/cgroup rw - cgroup2 cgroup2 rw
44 30 0:5 / {W}/root/dev rw master:2 - devtmpfs udev rw
45 41 0:43 / {W}/root/proc rw - proc proc rw
46 22 0:44 / {W}2/root/proc rw - proc proc rw
47 22 0:45 / /srv/with\\040space\\134x rw shared:9 - fuse.guestmount /dev/fuse rw
"""


def test_mountinfo_fields_are_decoded() -> None:
    table = parse_mountinfo(MOUNTINFO + "garbage line\n")
    assert len(table) == 9
    assert table[0] == Mount(22, 1, "/", "ext4", "/dev/sda1", ("rw",))
    assert table[-1] == Mount(47, 22, "/srv/with space\\x", "fuse.guestmount", "/dev/fuse", ("rw",))
    assert table[5].fstype == "devtmpfs"  # after an optional field (master:2)


def test_a_file_systems_own_options() -> None:
    (v1,) = parse_mountinfo(
        "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    )
    assert v1.options == ("rw", "cpu", "cpuacct") and v1.mountpoint == "/sys/fs/cgroup/cpu,cpuacct"


def test_below_is_deepest_first_and_the_top_of_a_stack_first() -> None:
    found = [(m.mount_id, m.mountpoint.removeprefix(W)) for m in below(parse_mountinfo(MOUNTINFO), W)]
    assert found == [
        (43, "/root/sys/fs/cgroup"),
        (45, "/root/proc"),  # mounted over 41: unmounted before it
        (44, "/root/dev"),
        (42, "/root/sys"),
        (41, "/root/proc"),
    ]  # and not the sibling folder W + "2", whose name starts the same


class FakeTable:
    """A mount table that ``umount`` changes, as the kernel's; ``stuck`` mount points refuse."""

    def __init__(self, text: str, stuck: tuple[str, ...] = ()) -> None:
        self.table = parse_mountinfo(text)
        self.stuck = stuck
        self.calls: list[str] = []

    def read(self) -> list[Mount]:
        return list(self.table)

    def umount(self, mountpoint: str) -> None:
        self.calls.append(mountpoint.removeprefix(W))
        if mountpoint not in self.stuck:
            top = max(i for i, m in enumerate(self.table) if m.mountpoint == mountpoint)
            del self.table[top]


def test_unmount_below_unmounts_each_deepest_first() -> None:
    fake = FakeTable(MOUNTINFO)
    unmount_below(W, read=fake.read, umount=fake.umount)
    assert fake.calls == ["/root/sys/fs/cgroup", "/root/proc", "/root/dev", "/root/sys", "/root/proc"]
    assert below(fake.table, W) == [] and len(fake.table) == 4  # the others are left as they were


def test_a_mount_that_stays_is_an_error_naming_it() -> None:
    fake = FakeTable(MOUNTINFO, stuck=(f"{W}/root/dev",))
    with pytest.raises(
        OperationFailed, match=rf"cannot unmount what is mounted in {W}: {W}/root/dev \(devtmpfs\)"
    ):
        unmount_below(W, read=fake.read, umount=fake.umount)


def test_remove_tree_never_removes_through_a_mount_left(tmp_path: Path) -> None:
    work = tmp_path / "w.work"
    (work / "root/dev").mkdir(parents=True)
    (work / "root/dev/null").write_text("the host's, if this were a bind mount")
    text = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n44 22 0:5 / {work}/root/dev rw - devtmpfs udev rw\n"
    fake = FakeTable(text, stuck=(f"{work}/root/dev",))
    with pytest.raises(OperationFailed, match="cannot unmount"):
        remove_tree(work, read=fake.read, umount=fake.umount)
    assert (work / "root/dev/null").is_file()


def test_remove_tree_after_unmounting(tmp_path: Path) -> None:
    work = tmp_path / "w.work"
    (work / "root/proc").mkdir(parents=True)
    fake = FakeTable(f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n41 22 0:4 / {work}/root/proc rw - proc proc rw\n")
    remove_tree(work, read=fake.read, umount=fake.umount)
    assert fake.calls == [f"{work}/root/proc"] and not work.exists()
    remove_tree(work, read=fake.read, umount=fake.umount)  # gone already: nothing to do


def test_the_real_table_has_the_root_mount() -> None:
    assert any(m.mountpoint == "/" for m in mounts.read_mounts())
