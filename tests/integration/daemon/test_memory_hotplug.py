"""Memory hot-plug (pyvirt.daemon.memory_hotplug) on a real guest under TCG: attach-device --live of a
<memory model='dimm'> into the hotplug space of <maxMemory slots>; the guest's kernel sees the new
memory (its MemTotal grows once the blocks are online), the live XML has the module and the larger
<memory>; a module past the slots is refused by name, and one of another model is refused live;
detach-device --live gives it back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow

DIMM = "<memory model='dimm'><target><size unit='MiB'>128</size><node>0</node></target></memory>"
VIRTIO_MEM = (
    "<memory model='virtio-mem'><target><size unit='MiB'>128</size><node>0</node><block unit='MiB'>2</block>"
    "<requested unit='MiB'>{requested}</requested></target></memory>"
)


def mem_total_kib(console: Console) -> int:
    return int(console.run("grep MemTotal /proc/meminfo").split()[1])


def test_a_dimm_plugged_into_a_running_guest(daemon: Daemon, tmp_path: Path) -> None:
    text = domain_xml("mh1", memory_mib=384, extra_devices=VIRTIO_MEM.format(requested=2)).replace(
        '<memory unit="MiB">384</memory>',
        '<memory unit="MiB">384</memory><maxMemory slots="1" unit="MiB">1024</maxMemory>'
        '<cpu><numa><cell id="0" cpus="0" memory="256" unit="MiB" /></numa></cpu>',
    )
    path = tmp_path / "mh1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    daemon.cli("start", "mh1").ok()
    console = Console(daemon, "mh1")
    console.expect("pyvirt-guest: ready")
    before = mem_total_kib(console)
    dimm = tmp_path / "dimm.xml"
    dimm.write_text(DIMM)
    out = daemon.cli("attach-device", "mh1", str(dimm), "--live").ok().out
    assert "Device attached successfully" in out
    live = daemon.cli("dumpxml", "mh1").ok().out
    assert "<memory unit='KiB'>524288</memory>" in live, live
    assert re.search(r"<memory model='dimm'>.*<alias name='dimm0'/>", live, re.S), live
    # Linux leaves hot-added memory offline unless told otherwise: bring each block online, movable
    # (so that the guest can give it back).
    console.run(
        "for s in /sys/devices/system/memory/memory*/state; do "
        "grep -q offline $s && echo online_movable > $s; done; true"
    )
    assert mem_total_kib(console) - before == 128 * 1024
    # the single slot is taken now
    result = daemon.cli("attach-device", "mh1", str(dimm), "--live")
    assert result.rc == 1 and "exceeds slots count '1'" in result.err, result.err
    mem = tmp_path / "vmem.xml"
    mem.write_text(
        "<memory model='virtio-mem'><target><size unit='MiB'>128</size><node>0</node>"
        "<block unit='MiB'>2</block><requested unit='MiB'>64</requested></target></memory>"
    )
    result = daemon.cli("attach-device", "mh1", str(mem), "--live")
    assert result.rc == 1 and "<memory model='virtio-mem'> cannot be plugged" in result.err, result.err
    # update-device --live of the virtio-mem module's <requested>: QEMU's requested-size (this guest
    # has no virtio-mem driver to plug the blocks).
    vmem = tmp_path / "vmem64.xml"
    vmem.write_text(VIRTIO_MEM.format(requested=64))
    daemon.cli("update-device", "mh1", str(vmem), "--live").ok()
    qmp = '{"execute":"qom-get","arguments":{"path":"/machine/peripheral/virtiomem0",'
    qmp += '"property":"requested-size"}}'
    assert '"return":67108864' in daemon.cli("qemu-monitor-command", "mh1", qmp).ok().out.replace(" ", "")
    assert "<requested unit='KiB'>65536</requested>" in daemon.cli("dumpxml", "mh1").ok().out
    vmem.write_text(VIRTIO_MEM.format(requested=3))
    result = daemon.cli("update-device", "mh1", str(vmem), "--live")
    assert result.rc == 1 and "must be a multiple of its block size" in result.err, result.err
    # detach-device --live: the guest gives the module back, and the domain's memory shrinks again.
    out = daemon.cli("detach-device", "mh1", str(dimm), "--live").ok().out
    assert "Device detached successfully" in out
    assert mem_total_kib(console) == before
    live = daemon.cli("dumpxml", "mh1").ok().out
    assert "<memory unit='KiB'>393216</memory>" in live and "<memory model='dimm'>" not in live, live
    console.close()
    daemon.cli("destroy", "mh1").ok()
    # --config: the definition gets the module and the larger <memory> for the next start
    daemon.cli("attach-device", "mh1", str(dimm), "--config").ok()
    defined = daemon.cli("dumpxml", "mh1", "--inactive").ok().out
    assert "<memory unit='KiB'>524288</memory>" in defined and "<memory model='dimm'>" in defined
