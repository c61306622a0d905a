"""Domain statistics on a real guest: domstats' counters move when the guest reads its disk and sends
packets, and domblkstat, domifstat, dommemstat, cpu-stats and dominfo agree with them. The daemon runs
in a network namespace this test makes: the guest's network never reaches the machine's."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon, netns_daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.root]

NET_XML = """<network>
  <name>statnet</name>
  <bridge name='pvst0' stp='off' delay='0'/>
  <ip address='10.93.0.1' netmask='255.255.255.0'>
    <dhcp><range start='10.93.0.100' end='10.93.0.200'/></dhcp>
  </ip>
</network>
"""


@pytest.fixture
def nsdaemon() -> Iterator[Daemon]:
    with netns_daemon("pvt") as d:
        yield d


def parse_domstats(text: str) -> dict[str, dict[str, str]]:
    """``Domain: 'x'`` blocks of ``  key=value`` lines, by domain name."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Domain: "):
            current = out.setdefault(line[len("Domain: '") : -1], {})
        elif line.startswith("  "):
            key, _, value = line.strip().partition("=")
            current[key] = value
        else:
            assert line == "", f"unexpected domstats line {line!r}"
    return out


def pairs(text: str, prefix: str) -> dict[str, int]:
    """``PREFIX name value`` lines (domblkstat, domifstat) as name → value."""
    out = {}
    for line in text.splitlines():
        if line:
            head, name, value = line.rsplit(" ", 2)
            assert head == prefix, line
            out[name] = int(value)
    return out


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text, read by Prometheus' own parser: (name, labels) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def raw_get(sock_path: Path, path: str) -> bytes:
    """One plain HTTP/1.1 GET on the daemon's socket: the raw reply."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sock_path))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: pyvirt\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def stats_xml(name: str, tmp_path: Path, *, network: str | None) -> Path:
    disk = copy_disk(guest_artifacts(), tmp_path / f"{name}.qcow2")
    xml = domain_xml(name, disk=disk, nic_network=network, balloon=True, vcpus=2)
    xml = xml.replace("<vcpu>2</vcpu>", "<vcpu current='1'>2</vcpu>")
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    return path


def test_counters_move_with_the_guest(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    (tmp_path / "net.xml").write_text(NET_XML)
    d.cli("net-define", str(tmp_path / "net.xml")).ok()
    d.cli("net-start", "statnet").ok()
    d.cli("define", str(stats_xml("st1", tmp_path, network="statnet"))).ok()
    d.cli("define", str(stats_xml("st2", tmp_path, network=None))).ok()

    # Shut off: the definition's numbers, no counters.
    off = parse_domstats(d.cli("domstats", "st2").ok().out)["st2"]
    assert off["state.state"] == "5" and off["balloon.current"] == "131072", off
    assert off["vcpu.current"] == "1" and off["vcpu.maximum"] == "2", off
    assert off["block.0.name"] == "vda" and "block.0.rd.bytes" not in off and "cpu.time" not in off, off

    d.cli("start", "st1").ok()
    console = Console(d, "st1")
    console.expect("pyvirt-guest: ready")
    console.expect(r"eth0 lease 10\.93\.0\.\d+", 120)

    both = parse_domstats(d.cli("domstats", "st1", "st2").ok().out)
    assert list(both) == ["st1", "st2"]
    before = both["st1"]
    assert before["state.state"] == "1" and before["state.reason"] == "1", before  # running (booted)
    assert int(before["cpu.time"]) > 0 and before["vcpu.current"] == "1" and "vcpu.0.time" in before
    assert before["balloon.current"] == "131072" and before["balloon.maximum"] == "131072"
    assert before["net.count"] == "1" and re.fullmatch(r"vnet\d+", before["net.0.name"]), before
    tap = before["net.0.name"]
    assert before["block.count"] == "1" and before["block.0.path"].endswith("st1.qcow2")
    assert int(before["block.0.capacity"]) == 64 * 2**20, before

    # The filters pick domains by state.
    assert list(parse_domstats(d.cli("domstats", "--list-inactive", "--state").ok().out)) == ["st2"]
    running = parse_domstats(d.cli("domstats", "--list-running", "--raw", "--vcpu").ok().out)
    assert list(running) == ["st1"] and set(running["st1"]) >= {"vcpu.current", "vcpu.0.state"}
    assert not any(k.startswith("state.") for k in running["st1"])

    console.run("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=65536 count=64")
    assert "3 packets received" in console.run("ping -c 3 -W 3 10.93.0.1")
    after = parse_domstats(d.cli("domstats", "--block", "--interface", "st1").ok().out)["st1"]
    assert int(after["block.0.rd.bytes"]) >= int(before["block.0.rd.bytes"]) + 4 * 2**20, (before, after)
    assert int(after["block.0.rd.reqs"]) > int(before["block.0.rd.reqs"])
    # The guest's side of its tap: what it sent is tx, what it was answered is rx.
    assert int(after["net.0.tx.pkts"]) >= int(before["net.0.tx.pkts"]) + 3, (before, after)
    assert int(after["net.0.rx.pkts"]) >= int(before["net.0.rx.pkts"]) + 3, (before, after)

    blk = pairs(d.cli("domblkstat", "st1", "vda").ok().out, "vda")
    assert list(blk)[:4] == ["rd_req", "rd_bytes", "wr_req", "wr_bytes"]
    assert blk["rd_bytes"] >= int(after["block.0.rd.bytes"])
    human = d.cli("domblkstat", "st1", "--device", "vda", "--human").ok().out
    assert human.startswith("Device: vda\n") and re.search(r"^ number of bytes read:\s+\d+$", human, re.M)
    nic = pairs(d.cli("domifstat", "st1", tap).ok().out, tap)
    assert nic["tx_packets"] >= int(after["net.0.tx.pkts"]) and nic["rx_bytes"] >= int(
        after["net.0.rx.bytes"]
    )
    mac = re.search(r"52:54:00(:[0-9a-f]{2}){3}", d.cli("domiflist", "st1").ok().out)
    assert mac is not None
    assert d.cli("domif-getlink", "st1", mac.group(0)).ok().out == f"{mac.group(0)} up\n"

    mem = {
        k: int(v)
        for k, v in (line.split() for line in d.cli("dommemstat", "st1").ok().out.splitlines() if line)
    }
    assert mem["actual"] == 131072 and mem["rss"] > 0, mem
    # --period: how often the guest reports, on the running balloon and/or in the definition.
    assert d.cli("dommemstat", "st1", "--period", "4", "--live").ok().out == "\n"
    assert "<stats period='4'/>" in d.cli("dumpxml", "st1").ok().out
    assert "<stats period" not in d.cli("dumpxml", "--inactive", "st1").ok().out
    d.cli("dommemstat", "st1", "--period", "5", "--config").ok()
    assert "<stats period='5'/>" in d.cli("dumpxml", "--inactive", "st1").ok().out
    d.cli("dommemstat", "st1", "--period", "6", "--current").ok()  # running: the live balloon
    assert "<stats period='6'/>" in d.cli("dumpxml", "st1").ok().out
    lone = d.cli("dommemstat", "st1", "--live")
    assert lone.rc == 1 and "give --period" in lone.err
    assert d.cli("domif-getlink", "st1", mac.group(0), "--config").ok().out == f"{mac.group(0)} up\n"
    cpu = d.cli("cpu-stats", "st1", "--total").ok().out
    assert re.match(r"Total:\n\tcpu_time\s+\d+\.\d{9} seconds\n\tuser_time", cpu), cpu
    assert d.cli("domcontrol", "st1").ok().out == "ok\n\n"

    # /metrics: Prometheus' own parser reads it, and its counters are domstats' (taken between two).
    first = parse_domstats(d.cli("domstats", "st1").ok().out)["st1"]
    text = d.connect().metrics()
    last = parse_domstats(d.cli("domstats", "st1").ok().out)["st1"]
    samples = metric_samples(text)

    def between(metric: str, field: str, scale: float = 1, **labels: str) -> None:
        value = samples[(metric, tuple(sorted({"domain": "st1", **labels}.items())))]
        slack = 1e-9 * value  # float rounding of the seconds
        assert int(first[field]) * scale - slack <= value <= int(last[field]) * scale + slack, (metric, value)

    between("pyvirt_domain_block_read_bytes_total", "block.0.rd.bytes", device="vda")
    between("pyvirt_domain_block_write_requests_total", "block.0.wr.reqs", device="vda")
    between("pyvirt_domain_interface_transmit_packets_total", "net.0.tx.pkts", interface=tap)
    between("pyvirt_domain_interface_receive_bytes_total", "net.0.rx.bytes", interface=tap)
    between("pyvirt_domain_vcpu_seconds_total", "vcpu.0.time", 1e-9, vcpu="0")
    between("pyvirt_domain_memory_balloon_bytes", "balloon.current", 1024)
    assert samples[("pyvirt_domain_state", (("domain", "st1"),))] == 1
    assert samples[("pyvirt_domain_state", (("domain", "st2"),))] == 5
    assert samples[("pyvirt_host_domains", (("state", "running"),))] == 1
    assert samples[("pyvirt_host_domains", (("state", "shut off"),))] == 1
    assert samples[("pyvirt_network_dhcp_leases", (("network", "statnet"),))] >= 1
    assert samples[("pyvirt_pool_active", (("pool", "default"),))] in (0, 1)
    assert samples[("pyvirt_host_memory_bytes", (("kind", "total"),))] > 0
    assert samples[("pyvirt_api_requests_total", (("action", "domain.stats"), ("code", "200")))] >= 3
    head, _, body = raw_get(d.socket, "/metrics").partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"text/plain; version=0.0.4" in head, head
    assert b'pyvirt_domain_state{domain="st1"} 1.0' in body

    # Bad input: clear errors.
    unknown = d.cli("domstats", "st1", "nosuch")
    assert unknown.rc == 1 and "failed to get domain 'nosuch'" in unknown.err, unknown.err
    refused = d.cli("domstats", "--perf", "st1")
    assert refused.rc == 1 and "--perf" in refused.err
    no_nic = d.cli("domifstat", "st1", "vnet999")
    assert no_nic.rc == 1 and "'vnet999' is not a known interface" in no_nic.err
    not_running = d.cli("dommemstat", "st2")
    assert not_running.rc == 1 and "domain is not running" in not_running.err
    console.close()
