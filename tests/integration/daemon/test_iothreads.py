"""``<iothreads>`` and a disk's ``<driver iothread>``, with a NUMA topology on
shared memfd memory: a real guest whose root disk is
served by an I/O thread (QEMU names it ``IO iothreadN`` with debug-threads=on) and which sees two NUMA
nodes, booted under TCG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow


def thread_names(pid: int) -> list[str]:
    return [(task / "comm").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir()]


def test_disk_on_an_iothread_boots(daemon: Daemon, tmp_path: Path) -> None:
    disk = copy_disk(guest_artifacts(), tmp_path / "io1.qcow2")
    text = domain_xml("io1", disk=disk, vcpus=2, memory_mib=256)
    numa = (
        "<cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/>"
        "<cell id='1' cpus='1' memory='128' unit='MiB'/></numa></cpu>"
    )
    text = text.replace("</os>", "</os>" + numa, 1)
    backing = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
    text = text.replace("<vcpu", backing + "<vcpu", 1)
    text = text.replace(
        "<os>", "<iothreads>2</iothreads><iothreadids><iothread id='7'/></iothreadids><os>", 1
    )
    text = text.replace(
        '<driver name="qemu" type="qcow2"', '<driver name="qemu" type="qcow2" iothread="7"', 1
    )
    assert 'iothread="7"' in text, text
    path = tmp_path / "io1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    out = daemon.cli("dumpxml", "io1").ok().out
    assert "<iothreads>2</iothreads>" in out and "<iothread id='7'/>" in out and "iothread='7'" in out
    daemon.cli("start", "io1").ok()
    names = thread_names(daemon.qemu_pids()["io1"])
    assert "IO iothread7" in names and "IO iothread1" in names, names
    maps = Path(f"/proc/{daemon.qemu_pids()['io1']}/maps").read_text()
    shared = [line for line in maps.splitlines() if line.endswith("/memfd:memory-backend-memfd (deleted)")]
    assert len(shared) == 2 and all(" rw-s " in line for line in shared), maps  # a shared memfd per NUMA cell
    console = Console(daemon, "io1")
    console.expect("pyvirt-guest: ready")
    assert "/dev/vda" in console.run("grep ' / ' /proc/mounts")
    nodes = console.run("ls -d /sys/devices/system/node/node*; cat /sys/devices/system/node/node1/cpulist")
    assert "node0" in nodes and "node1" in nodes and re.search(r"^1\s*$", nodes, re.M), nodes
    console.close()
    daemon.cli("destroy", "io1").ok()
