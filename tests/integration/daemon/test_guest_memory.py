"""Guest memory as libvirt's XML asks for it, on a real TCG guest: memory modules (a DIMM, an NVDIMM
and virtio-pmem on files the daemon hands to QEMU's user) in a hotplug space over two NUMA nodes, the RAM
bound to the host's node 0, preallocated and not merged; locked memory; huge pages this host lacks refused by
name at start, not at define."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from pyvirt.conf import memory_backing
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"

BACKING = """<maxMemory slots='4' unit='MiB'>1024</maxMemory>
<memoryBacking><nosharepages/><allocation mode='immediate'/></memoryBacking>
<numatune><memory mode='strict' nodeset='0'/></numatune>
<cpu><numa>
  <cell id='0' cpus='0' memory='192' unit='MiB'/>
  <cell id='1' cpus='1' memory='64' unit='MiB' memAccess='shared'/>
</numa></cpu>
"""
MODULES = """
<memory model='dimm'><target><size unit='MiB'>32</size><node>1</node></target></memory>
<memory model='nvdimm' access='shared'>
  <source><path>{nvdimm}</path></source>
  <target><size unit='MiB'>16</size><node>0</node><label><size unit='KiB'>128</size></label></target>
</memory>
<memory model='virtio-pmem' access='shared'>
  <source><path>{pmem}</path></source><target><size unit='MiB'>16</size></target>
</memory>
"""


def _qmp(d: Daemon, name: str, command: str) -> Any:
    return json.loads(d.cli("qemu-monitor-command", name, json.dumps({"execute": command})).ok().out)[
        "return"
    ]


def _define(d: Daemon, tmp: Path, name: str, top: str, devices: str = "") -> None:
    xml = domain_xml(name, vcpus=2, extra_devices=devices)
    xml = xml.replace("<vcpu>", top + "<vcpu>", 1)
    path = tmp / f"{name}.xml"
    path.write_text(xml)
    d.cli("define", str(path)).ok()


def test_modules_numa_and_backing_on_a_real_guest(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    nvdimm, pmem = tmp_path / "guest.nvdimm", tmp_path / "guest.pmem"
    pmem.touch()  # the NVDIMM's file is left for the daemon to create
    _define(d, tmp_path, "mem1", BACKING, MODULES.format(nvdimm=nvdimm, pmem=pmem))
    inactive = d.cli("dumpxml", "--inactive", "mem1").ok().out
    assert "<maxMemory slots='4' unit='KiB'>1048576</maxMemory>" in inactive
    assert "<memory unit='KiB'>327680</memory>" in inactive  # the cells and the modules, as libvirt's
    d.cli("start", "mem1").ok()
    console = Console(d, "mem1")
    console.expect(READY)

    devices = {dev["data"]["id"]: dev for dev in _qmp(d, "mem1", "query-memory-devices")}
    assert devices["dimm0"]["type"] == "dimm" and devices["dimm0"]["data"]["size"] == 32 << 20
    assert devices["dimm0"]["data"]["node"] == 1
    assert devices["nvdimm1"]["type"] == "nvdimm" and devices["nvdimm1"]["data"]["slot"] == 1
    assert devices["virtiopmem0"]["type"] == "virtio-pmem"
    memdevs = {m["id"]: m for m in _qmp(d, "mem1", "query-memdev")}
    assert memdevs["ram-node0"]["policy"] == "bind" and memdevs["ram-node0"]["host-nodes"] == [0]
    assert memdevs["ram-node0"]["prealloc"] is True and memdevs["ram-node0"]["merge"] is False
    assert memdevs["ram-node1"]["share"] is True and memdevs["ram-node0"]["share"] is False
    # QEMU's file backends: the NVDIMM's file made by the daemon and sized by QEMU, owned by its user.
    pid = d.qemu_pids()["mem1"]
    assert nvdimm.stat().st_size == 16 << 20 and pmem.stat().st_size == 16 << 20
    assert nvdimm.stat().st_uid == Path(f"/proc/{pid}").stat().st_uid
    # The guest has the two NUMA nodes, each with its vCPU.
    assert console.run("ls -d /sys/devices/system/node/node*").split() == [
        "/sys/devices/system/node/node0",
        "/sys/devices/system/node/node1",
    ]
    assert console.run("cat /sys/devices/system/node/node1/cpulist") == "1"
    d.cli("destroy", "mem1").ok()
    assert nvdimm.stat().st_uid == os.getuid()  # given back


def test_locked_memory_is_locked_or_refused_by_name(daemon: Daemon, tmp_path: Path) -> None:
    """<locked/>: QEMU's locked-memory limit lifted before it runs and all its memory locked; a host
    that does not let the daemon lift the limit (a container without CAP_SYS_RESOURCE, as this one may
    be) has the start refused by name."""
    d = daemon
    _define(d, tmp_path, "mem3", "<memoryBacking><locked/></memoryBacking>")
    if not memory_backing.can_lift_memlock():
        result = d.cli("start", "mem3")
        assert result.rc == 1 and "memoryBacking/locked: this host does not let pyvirtd lift" in result.err
        assert d.cli("domstate", "mem3").ok().out.strip() == "shut off"
        return
    d.cli("start", "mem3").ok()
    Console(d, "mem3").expect(READY)
    pid = d.qemu_pids()["mem3"]
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(r"Max locked memory\s+unlimited\s+unlimited", limits), limits
    locked = re.search(r"VmLck:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert locked is not None and int(locked.group(1)) >= 128 * 1024
    d.cli("destroy", "mem3").ok()


def test_huge_pages_this_host_lacks_are_refused_at_start(daemon: Daemon, tmp_path: Path) -> None:
    mounted = any(line.split()[2] == "hugetlbfs" for line in Path("/proc/mounts").read_text().splitlines())
    if mounted:
        pytest.skip("this host has hugetlbfs mounted: the refusal is for hosts without it")
    d = daemon
    top = "<memoryBacking><hugepages><page size='2' unit='MiB'/></hugepages></memoryBacking>"
    _define(d, tmp_path, "mem2", top)  # accepted at define: the host is checked at start
    result = d.cli("start", "mem2")
    assert result.rc == 1 and "this host has no hugetlbfs mounted for 2048 KiB pages" in result.err, result
    assert d.cli("domstate", "mem2").ok().out.strip() == "shut off"
