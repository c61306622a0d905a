"""Guest RAM backing (pyvirt.conf.memory_backing): <memoryBacking> and <numatune> read, written back and
turned into libvirt's backends; the host checks made at start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyvirt.conf import memory_backing
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import UnsupportedConfig

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
BACKING = (DATA / "libvirt-memory-backing.xml").read_text()
CELLS = (DATA / "libvirt-numa-shared-cells.xml").read_text()


def test_backing_and_numatune_round_trip() -> None:
    dom = load_domain_xml(BACKING)
    out = format_domain(dom)
    flat = re.sub(r">\s+<", "><", out)
    assert (
        "<memoryBacking><hugepages><page size='4' unit='KiB'/></hugepages><nosharepages/><locked/>"
        "<allocation mode='immediate' threads='2'/></memoryBacking>"
    ) in flat
    assert "<numatune><memory mode='preferred' nodeset='0'/></numatune>" in flat
    assert format_domain(load_domain_xml(out)) == out
    cells = format_domain(load_domain_xml(CELLS))
    assert "memAccess='private' discard='no'" in cells and "<memnode cellid='1' mode='interleave'" in cells


def test_base_pages_are_plain_memory_and_the_rest_is_libvirts() -> None:
    dom = load_domain_xml(BACKING)
    assert memory_backing.page_size(dom, None) is False
    assert memory_backing.needs_main_backend(dom)
    obj = memory_backing.backend(dom, "pc.ram", 131072, None, hugepage_dirs={}, memory_dir=None)
    assert obj == {
        "qom-type": "memory-backend-ram", "id": "pc.ram", "prealloc": True, "prealloc-threads": 2,
        "size": 128 << 20, "host-nodes": [0], "policy": "preferred",
    }  # fmt: skip
    context, backend = memory_backing.with_thread_context(obj)
    assert context == {"qom-type": "thread-context", "id": "tc-pc.ram", "node-affinity": [0]}
    assert backend["prealloc-context"] == "tc-pc.ram"
    assert memory_backing.overcommit(dom) == ["-overcommit", "mem-lock=on"]
    assert memory_backing.machine_options(dom) == {"mem-merge": "off"}


def test_huge_pages_and_files() -> None:
    huge = load_domain_xml(BACKING.replace("<page size='4' unit='KiB'/>", "<page size='2' unit='MiB'/>"))
    assert memory_backing.page_size(huge, None) == 2048
    with pytest.raises(UnsupportedConfig, match="no huge pages of 2048 KiB are mounted"):
        memory_backing.backend(huge, "pc.ram", 131072, None, hugepage_dirs={}, memory_dir=None)
    obj = memory_backing.backend(huge, "pc.ram", 131072, None, hugepage_dirs={2048: "/h/d"}, memory_dir=None)
    assert obj["qom-type"] == "memory-backend-file" and obj["mem-path"] == "/h/d" and obj["prealloc"] is True
    file = load_domain_xml(CELLS.replace("type='memfd'", "type='file'"))
    assert file.cpu is not None
    cell0, cell1 = file.cpu.numa
    obj = memory_backing.backend(file, "ram-node0", 131072, cell0, hugepage_dirs={}, memory_dir="/run/x")
    assert obj["mem-path"] == "/run/x/ram-node0" and obj["discard-data"] is True and obj["share"] is True
    obj = memory_backing.backend(file, "ram-node1", 131072, cell1, hugepage_dirs={}, memory_dir="/run/x")
    assert "discard-data" not in obj and obj["share"] is False and obj["policy"] == "interleave"


def test_the_host_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = load_domain_xml(BACKING.replace("<page size='4' unit='KiB'/>", "<page size='1' unit='GiB'/>"))
    monkeypatch.setattr(memory_backing, "hugetlbfs_mounts", lambda: {})
    with pytest.raises(UnsupportedConfig, match="no hugetlbfs mounted for 1048576 KiB pages"):
        memory_backing.require_host(huge)
    tune = load_domain_xml(BACKING.replace("nodeset='0'", "nodeset='63'").replace("<locked/>", ""))
    with pytest.raises(UnsupportedConfig, match="this host has no NUMA node 63"):
        memory_backing.require_host(tune)
    monkeypatch.setattr(memory_backing, "can_lift_memlock", lambda: False)
    with pytest.raises(UnsupportedConfig, match="memoryBacking/locked: this host does not let pyvirtd lift"):
        memory_backing.require_host(load_domain_xml(BACKING))
    monkeypatch.setattr(memory_backing, "can_lift_memlock", lambda: True)
    assert memory_backing.require_host(load_domain_xml(BACKING)) == {}


def test_bare_hugepages_use_the_default_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """``<hugepages/>`` without a ``<page>``: all the RAM on the host's default huge pages (libvirt's)."""
    monkeypatch.setattr(memory_backing, "default_hugepage_kib", lambda: 2048)
    bare = load_domain_xml(re.sub(r"<hugepages>.*?</hugepages>", "<hugepages/>", BACKING, flags=re.S))
    assert memory_backing.page_size(bare, None) is None and memory_backing.needs_main_backend(bare)
    assert memory_backing.wanted_page_sizes(bare) == {2048}
    obj = memory_backing.backend(bare, "pc.ram", 131072, None, hugepage_dirs={2048: "/h/d"}, memory_dir=None)
    assert obj["qom-type"] == "memory-backend-file" and obj["mem-path"] == "/h/d"
    assert "<hugepages/>" in format_domain(bare)


def test_hugetlbfs_mounts_from_the_mount_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's hugetlbfs mounts by page size, read through pyvirt.mounts: ``pagesize=`` among the
    file system's options, else the host's default size; the first mount of a size is the one used."""
    from pyvirt import mounts

    table = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:40 / /dev/hugepages rw,relatime shared:20 - hugetlbfs hugetlbfs rw,pagesize=2M\n"
        "41 22 0:41 / /mnt/huge\\0401g rw,relatime - hugetlbfs none rw,pagesize=1024M\n"
        "42 22 0:42 / /mnt/second rw,relatime - hugetlbfs none rw,pagesize=2048k\n"
        "43 22 0:43 / /mnt/default rw,relatime - hugetlbfs none rw\n"
    )
    monkeypatch.setattr(mounts, "read_mounts", lambda: mounts.parse_mountinfo(table))
    monkeypatch.setattr(memory_backing, "default_hugepage_kib", lambda: 4096)
    assert memory_backing.hugetlbfs_mounts() == {
        2048: "/dev/hugepages",
        1048576: "/mnt/huge 1g",
        4096: "/mnt/default",
    }
