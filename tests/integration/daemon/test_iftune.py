"""domiftune on a real TCG guest in a test-made network namespace: a NIC's <bandwidth> becomes an HTB
class on its tap at start, live changes reach the kernel (read back with tc), --config changes the
definition only, outbound goes through the tap's IFB device (a redirect filter on the tap, an HTB
class on the IFB that holds the guest's own traffic back: its counters), the IFB goes when outbound is
cleared and when the domain stops, and bad input is refused by name."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.network.shaping import ifb_name
from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.root]
MAC = "52:54:00:7a:11:01"
NET_XML = """<network><name>tunenet</name><bridge name='pvtu0' stp='off' delay='0'/>
<ip address='10.94.0.1' netmask='255.255.255.0'><dhcp><range start='10.94.0.10' end='10.94.0.50'/></dhcp>
</ip></network>"""
UNITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3}


@pytest.fixture
def nsdaemon() -> Iterator[tuple[Daemon, str]]:
    ns = f"pvt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    d = Daemon(netns=ns)
    try:
        d.start()
        yield d, ns
    finally:
        d.cleanup()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _tc(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "tc", *args], check=True, capture_output=True, text=True
    ).stdout


def _htb(ns: str, tap: str) -> tuple[int, int] | None:
    """The tap's HTB class rate and ceil in bytes/s (as tc prints them: to 4 digits), or None."""
    found = re.search(
        r"class htb 1:1 .*?rate (\d+)(\w+) ceil (\d+)(\w+)", _tc(ns, "class", "show", "dev", tap)
    )
    if found is None:
        return None
    rate, rate_unit, ceil, ceil_unit = found.groups()
    return int(rate) * UNITS[rate_unit] // 8, int(ceil) * UNITS[ceil_unit] // 8


def _ifb_counters(ns: str, ifb: str) -> tuple[int, int, int]:
    """The IFB's HTB class: bytes and packets sent, and how often it was over its rate."""
    found = re.search(
        r"class htb 1:1 .*?\n\s*Sent (\d+) bytes (\d+) pkt \(dropped \d+, overlimits (\d+)",
        _tc(ns, "-s", "class", "show", "dev", ifb),
    )
    assert found is not None, f"{ifb} has no HTB class"
    sent, packets, overlimits = found.groups()
    return int(sent), int(packets), int(overlimits)


def _links(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-br", "link"], check=True, capture_output=True, text=True).stdout


def _values(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^([\w.]+)\s*: (\d+)$", text, re.M)}


def test_domiftune_on_the_tap(nsdaemon: tuple[Daemon, str], tmp_path: Path) -> None:
    d, ns = nsdaemon
    (tmp_path / "net.xml").write_text(NET_XML)
    d.cli("net-define", str(tmp_path / "net.xml")).ok()
    d.cli("net-start", "tunenet").ok()
    disk = copy_disk(guest_artifacts(), tmp_path / "if1.qcow2")
    xml = domain_xml("if1", disk=disk, nic_network="tunenet", mac=MAC)
    xml = xml.replace(
        "</interface>",
        "<bandwidth><inbound average='1000' peak='2000' burst='64'/></bandwidth></interface>",
        1,
    )
    (tmp_path / "if1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "if1.xml")).ok()
    assert "<inbound average='1000' peak='2000' burst='64'/>" in d.cli("dumpxml", "if1").ok().out
    offline = _values(d.cli("domiftune", "if1", MAC).ok().out)
    assert offline == {"inbound.average": 1000, "inbound.peak": 2000, "inbound.burst": 64, "inbound.floor": 0,
                       "outbound.average": 0, "outbound.peak": 0, "outbound.burst": 0}  # fmt: skip
    d.cli("start", "if1").ok()
    tap = re.search(r"<target dev='([^']+)'/>", d.cli("dumpxml", "if1").ok().out)
    assert tap is not None
    tap_name = tap.group(1)
    assert _htb(ns, tap_name) == pytest.approx((1000 * 1024, 2000 * 1024), rel=1e-3)  # set at start

    # Live, by tap name: the kernel's class follows.
    d.cli("domiftune", "if1", tap_name, "--inbound", "500,,32", "--live").ok()
    assert _htb(ns, tap_name) == pytest.approx((500 * 1024, 500 * 1024), rel=1e-3)
    live = _values(d.cli("domiftune", "if1", MAC).ok().out)
    assert (live["inbound.average"], live["inbound.peak"], live["inbound.burst"]) == (500, 0, 32), live
    assert "<inbound average='500' burst='32'/>" in d.cli("dumpxml", "if1").ok().out
    assert (
        "<inbound average='1000' peak='2000' burst='64'/>" in d.cli("dumpxml", "if1", "--inactive").ok().out
    )

    # Outbound: the tap's ingress redirected to its IFB, whose HTB class has average, peak and burst.
    console = Console(d, "if1")
    console.expect(r"eth0 lease 10\.94\.0\.\d+\s", 120)
    ifb = ifb_name(tap_name)
    d.cli("domiftune", "if1", MAC, "--outbound", "8,16,4", "--current").ok()
    redirect = _tc(ns, "filter", "show", "dev", tap_name, "ingress")
    assert f"mirred (Egress Redirect to device {ifb})" in redirect, redirect
    assert _htb(ns, ifb) == pytest.approx((8 * 1024, 16 * 1024), rel=1e-3)
    live = _values(d.cli("domiftune", "if1", MAC).ok().out)
    assert (live["outbound.average"], live["outbound.peak"], live["outbound.burst"]) == (8, 16, 4), live
    assert _htb(ns, tap_name) == pytest.approx((500 * 1024, 500 * 1024), rel=1e-3)  # inbound kept
    # The guest's pings (1.4 KiB each, sent as soon as the last is answered or a second has passed)
    # all pass the IFB's class, which had to hold them back to 8 KiB/s, ~6 a second (its overlimits
    # count): however many the guest sent and the class dropped or delayed, each answered ping passed it.
    before = _ifb_counters(ns, ifb)
    out = console.run("ping -A -q -c 20 -s 1400 -w 60 10.94.0.1", timeout=180)
    counts = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    assert counts is not None and int(counts.group(2)) > 0, out
    sent, packets, overlimits = (a - b for a, b in zip(_ifb_counters(ns, ifb), before, strict=True))
    answered = int(counts.group(2))
    assert packets >= answered and sent >= answered * 1400 and overlimits > 0, (
        out,
        sent,
        packets,
        overlimits,
    )
    # Cleared: no IFB, no redirect; set again, the IFB goes with the domain's stop (below).
    d.cli("domiftune", "if1", MAC, "--outbound", "0", "--live").ok()
    assert ifb not in _links(ns)
    assert "mirred" not in _tc(ns, "filter", "show", "dev", tap_name, "ingress")
    d.cli("domiftune", "if1", MAC, "--outbound", "100", "--live").ok()
    assert _htb(ns, ifb) == pytest.approx((100 * 1024, 100 * 1024), rel=1e-3)

    # --config: the definition only; average 0 clears a direction.
    d.cli("domiftune", "if1", MAC, "--inbound", "0", "--config").ok()
    assert "<bandwidth>" not in d.cli("dumpxml", "if1", "--inactive").ok().out
    assert _values(d.cli("domiftune", "if1", MAC, "--config").ok().out)["inbound.average"] == 0
    assert _htb(ns, tap_name) == pytest.approx((500 * 1024, 500 * 1024), rel=1e-3)
    d.cli("domiftune", "if1", MAC, "--inbound", "0", "--live").ok()
    assert _htb(ns, tap_name) is None

    for args, word in (
        (["--inbound", "100,50"], "peak"),
        (["--inbound", "100,200,10,5"], "floor"),
        (["--inbound", "fast"], "inbound"),
        (["--outbound", "1,2,3,4"], "outbound"),
    ):
        bad = d.cli("domiftune", "if1", MAC, *args)
        assert bad.rc == 1 and word in bad.err, (args, bad.err)
    missing = d.cli("domiftune", "if1", "52:54:00:00:00:99")
    assert missing.rc == 1 and "52:54:00:00:00:99" in missing.err

    # attach-interface --inbound: the hot-plugged NIC's tap is shaped, its <bandwidth> kept.
    second = "52:54:00:7a:11:02"
    d.cli(
        "attach-interface", "if1", "network", "tunenet", "--mac", second, "--inbound", "800,1600",
        "--outbound", "200,400", "--live",
    ).ok()  # fmt: skip
    new_tap = re.search(
        rf"<mac address='{second}'/>\s*<source [^>]*/>\s*<target dev='([^']+)'/>",
        d.cli("dumpxml", "if1").ok().out,
    )
    assert new_tap is not None
    assert _htb(ns, new_tap.group(1)) == pytest.approx((800 * 1024, 1600 * 1024), rel=1e-3)
    assert _values(d.cli("domiftune", "if1", second).ok().out)["inbound.peak"] == 1600
    second_ifb = ifb_name(new_tap.group(1))
    assert _htb(ns, second_ifb) == pytest.approx((200 * 1024, 400 * 1024), rel=1e-3)
    refused = d.cli("attach-interface", "if1", "network", "tunenet", "--inbound", "10,5", "--live")
    assert refused.rc == 1 and "peak" in refused.err
    console.close()
    d.cli("destroy", "if1").ok()
    deadline = time.monotonic() + 30  # the taps and their IFBs go on the network driver's thread
    while (ifb in _links(ns) or second_ifb in _links(ns)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ifb not in _links(ns) and second_ifb not in _links(ns), _links(ns)

    # A user NIC has no tap: its <bandwidth> is refused at start.
    user = domain_xml("if2", disk=copy_disk(guest_artifacts(), tmp_path / "if2.qcow2"), nic_user=True)
    user = user.replace("</interface>", "<bandwidth><outbound average='10'/></bandwidth></interface>", 1)
    (tmp_path / "if2.xml").write_text(user)
    d.cli("define", str(tmp_path / "if2.xml")).ok()
    started = d.cli("start", "if2")
    assert started.rc == 1 and "bandwidth" in started.err
