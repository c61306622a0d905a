"""``<memoryBacking><hugepages/>`` on a real TCG guest: the test reserves 2 MiB huge pages and mounts a
hugetlbfs of its own (both undone afterwards), and the guest's RAM is then in huge pages of that mount:
QEMU maps a file of the domain's directory there, and the pages it holds leave the host's free pool."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]
READY = r"pyvirt-guest: ready"
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
GUEST_MIB = 128  # 64 pages of 2 MiB (the initramfs guest needs that much)
RESERVE = 80


def _meminfo(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
    assert match, field
    return int(match.group(1))


@pytest.fixture
def hugetlbfs() -> Iterator[Path]:
    if _meminfo("Hugepagesize") != 2048:
        pytest.skip("this host's default huge page is not 2 MiB")
    if any(line.split()[2] == "hugetlbfs" for line in Path("/proc/mounts").read_text().splitlines()):
        pytest.skip("hugetlbfs is already mounted here: the daemon would use that mount")
    before = NR_HUGEPAGES.read_text()
    NR_HUGEPAGES.write_text(str(int(before) + RESERVE))
    mount = Path(tempfile.mkdtemp(prefix="pvt-huge-", dir="/tmp"))
    try:
        if _meminfo("HugePages_Free") < GUEST_MIB // 2:
            pytest.skip("the kernel could not reserve the huge pages (fragmented memory)")
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", str(mount)], check=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=False)
    finally:
        mount.rmdir()
        NR_HUGEPAGES.write_text(before)


def test_guest_memory_in_huge_pages(daemon: Daemon, tmp_path: Path, hugetlbfs: Path) -> None:
    d = daemon
    xml = domain_xml("huge1", memory_mib=GUEST_MIB)
    xml = xml.replace("<vcpu>", "<memoryBacking><hugepages/></memoryBacking><vcpu>", 1)
    (tmp_path / "huge1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "huge1.xml")).ok()
    free_before = _meminfo("HugePages_Free") - _meminfo("HugePages_Rsvd")
    d.cli("start", "huge1").ok()
    console = Console(d, "huge1")
    try:
        console.expect(READY)
        pid = d.qemu_pids()["huge1"]
        maps = Path(f"/proc/{pid}/maps").read_text()
        log = (d.root / "var/log/pyvirt/qemu/huge1.log").read_text()
        assert f"{hugetlbfs}/pyvirt-huge1/" in maps, log  # the RAM: a file of the domain's directory
        # the guest's 64 pages are held (allocated, or reserved for QEMU's mapping)
        held = free_before - (_meminfo("HugePages_Free") - _meminfo("HugePages_Rsvd"))
        assert held >= GUEST_MIB // 2, (held, free_before)
    finally:
        console.close()
        d.cli("destroy", "huge1").ok()
    assert not (hugetlbfs / "pyvirt-huge1").exists()  # the domain's directory goes with it
    assert _meminfo("HugePages_Free") - _meminfo("HugePages_Rsvd") == free_before
