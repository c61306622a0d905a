"""blkdeviotune sets QEMU's throttling of a running disk (read back through QEMU's own monitor), and
iothreadinfo lists the I/O threads with their CPU affinity; --config of blkdeviotune is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow


def test_throttle_and_iothreads(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    disk = copy_disk(guest_artifacts(), tmp_path / "io1.qcow2")
    xml = domain_xml("io1", disk=disk)
    xml = xml.replace("<os>", "<iothreads>2</iothreads><os>", 1)
    xml = xml.replace('<driver name="qemu" type="qcow2"', '<driver name="qemu" type="qcow2" iothread="2"', 1)
    xml = re.sub(
        r"(<target dev=.vda.[^>]*/>)",
        r"\1<iotune><write_bytes_sec>777000</write_bytes_sec></iotune>",
        xml,
        count=1,
    )
    assert "<iotune>" in xml
    (tmp_path / "io1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "io1.xml")).ok()
    offline = d.cli("iothreadinfo", "io1").ok().out
    assert re.search(r"^ IOThread ID\s+CPU Affinity$", offline, re.M) and re.search(
        r"^ 2\s+\S+$", offline, re.M
    )
    assert "write_bytes_sec: 777000\n" in d.cli("blkdeviotune", "io1", "vda").ok().out  # shut off: the XML's
    d.cli("start", "io1").ok()
    assert _inserted(d)["bps_wr"] == 777000  # <iotune> given to QEMU at start

    first = d.cli("blkdeviotune", "io1", "vda").ok().out
    assert first.startswith("total_bytes_sec: 0\nread_bytes_sec : 0\nwrite_bytes_sec: 777000\n"), first
    d.cli("blkdeviotune", "io1", "vda", "--total-bytes-sec", "1M", "--read-iops-sec", "100").ok()
    d.cli("blkdeviotune", "io1", str(disk), "--write-iops-sec", "50", "--group-name", "g1", "--live").ok()
    values = dict(re.findall(r"^(\w+)\s*: ?(.*)$", d.cli("blkdeviotune", "io1", "vda").ok().out, re.M))
    assert values["total_bytes_sec"] == "1048576" and values["group_name"] == "g1", values
    # The second call gave the iops group anew: its read limit is gone, as with libvirt.
    assert values["write_iops_sec"] == "50" and values["read_iops_sec"] == "0", values
    # QEMU's own word, through its monitor.
    inserted = _inserted(d)
    assert inserted["bps"] == 1048576 and inserted["iops_rd"] == 0 and inserted["iops_wr"] == 50
    # --config: the definition's <iotune> only; QEMU keeps its limits.
    d.cli("blkdeviotune", "io1", "vda", "--total-iops-sec", "10", "--config").ok()
    inactive = d.cli("dumpxml", "io1", "--inactive").ok().out
    assert "<total_iops_sec>10</total_iops_sec>" in inactive and "<write_bytes_sec>777000" in inactive
    assert "<group_name>g1</group_name>" in d.cli("dumpxml", "io1").ok().out  # the live XML follows
    assert _inserted(d).get("iops", 0) == 0
    configured = dict(
        re.findall(r"^(\w+)\s*: ?(.*)$", d.cli("blkdeviotune", "io1", "vda", "--config").ok().out, re.M)
    )
    assert configured["total_iops_sec"] == "10" and configured["group_name"] == "", configured
    both = d.cli("blkdeviotune", "io1", "vda", "--total-iops-sec", "10", "--read-iops-sec", "5")
    assert both.rc == 1 and "total_iops_sec" in both.err
    current = d.cli("blkdeviotune", "io1", "vda", "--size-iops-sec", "4096", "--current")
    assert current.ok().out == "\n"
    unknown = d.cli("blkdeviotune", "io1", "vdz")
    assert unknown.rc == 1 and "vdz" in unknown.err
    # A read limit replaces the total one of its kind (QEMU takes one or the others).
    d.cli("blkdeviotune", "io1", "vda", "--read-bytes-sec", "2000", "--write-bytes-sec", "3000").ok()
    values = dict(re.findall(r"^(\w+)\s*: ?(.*)$", d.cli("blkdeviotune", "io1", "vda").ok().out, re.M))
    assert values["total_bytes_sec"] == "0" and values["read_bytes_sec"] == "2000", values
    assert values["write_iops_sec"] == "50", values  # another kind: kept
    # Every limit, in groups QEMU accepts together, each read back from QEMU's query-block.
    d.cli("blkdeviotune", "io1", "vda", "--total-bytes-sec", "2000", "--total-bytes-sec-max", "4000",
          "--total-bytes-sec-max-length", "2", "--total-iops-sec", "20", "--total-iops-sec-max", "40",
          "--total-iops-sec-max-length", "3").ok()  # fmt: skip
    inserted = _inserted(d)
    assert (inserted["bps_max"], inserted["bps_max_length"]) == (4000, 2), inserted
    assert (inserted["iops_max"], inserted["iops_max_length"]) == (40, 3), inserted
    split = [
        "--read-bytes-sec", "1000", "--read-bytes-sec-max", "2000", "--read-bytes-sec-max-length", "4",
        "--write-bytes-sec", "1001", "--write-bytes-sec-max", "2001", "--write-bytes-sec-max-length", "5",
        "--read-iops-sec", "10", "--read-iops-sec-max", "20", "--read-iops-sec-max-length", "6",
        "--write-iops-sec", "11", "--write-iops-sec-max", "21", "--write-iops-sec-max-length", "7",
    ]  # fmt: skip
    d.cli("blkdeviotune", "io1", "vda", *split).ok()
    inserted = _inserted(d)
    assert (inserted["bps_rd_max"], inserted["bps_rd_max_length"]) == (2000, 4), inserted
    assert (inserted["bps_wr_max"], inserted["bps_wr_max_length"]) == (2001, 5), inserted
    assert (inserted["iops_rd_max"], inserted["iops_rd_max_length"]) == (20, 6), inserted
    assert (inserted["iops_wr_max"], inserted["iops_wr_max_length"]) == (21, 7), inserted
    assert inserted.get("bps_max", 0) == 0 and inserted.get("iops_max", 0) == 0, inserted
    values = dict(re.findall(r"^(\w+)\s*: ?(.*)$", d.cli("blkdeviotune", "io1", "vda").ok().out, re.M))
    assert values["read_bytes_sec_max"] == "2000" and values["write_iops_sec_max_length"] == "7", values
    assert values["total_bytes_sec_max"] == "0" and values["size_iops_sec"] == "4096", values
    bad = d.cli("blkdeviotune", "io1", "vda", "--read-iops-sec", "many")
    assert bad.rc == 1 and "read-iops-sec" in bad.err

    live = d.cli("iothreadinfo", "io1", "--live").ok().out
    assert re.findall(r"^ (\d+)\s+\S+$", live, re.M) == ["1", "2"], live
    assert re.findall(r"^ (\d+)\s", d.cli("iothreadinfo", "io1", "--config").ok().out, re.M) == ["1", "2"]
    d.cli("iothreadinfo", "io1", "--current").ok()


def _inserted(d: Daemon) -> dict[str, Any]:
    """The throttled disk's limits in QEMU's own words, through its monitor."""
    reply = d.cli("qemu-monitor-command", "io1", '{"execute": "query-block"}').ok().out
    return dict(next(b["inserted"] for b in json.loads(reply)["return"] if "inserted" in b))
