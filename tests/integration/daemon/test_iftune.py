"""domiftune on a real TCG guest in a test-made network namespace: a NIC's <bandwidth> becomes an HTB
class on its tap at start, live changes reach the kernel (read back with tc), --config changes the
definition only, outbound policing works or is refused naming what the kernel lacks, and bad input is
refused by name."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.root]
MAC = "52:54:00:7a:11:01"
NET_XML = """<network><name>tunenet</name><bridge name='pvtu0' stp='off' delay='0'/>
<ip address='10.94.0.1' netmask='255.255.255.0'/></network>"""
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

    # Outbound: an ingress police filter, or a refusal naming what the kernel lacks (limits kept).
    out = d.cli("domiftune", "if1", MAC, "--outbound", "300,400,16", "--current")
    if out.rc == 0:
        assert "police" in _tc(ns, "filter", "show", "dev", tap_name, "ingress")
        assert _values(d.cli("domiftune", "if1", MAC).ok().out)["outbound.average"] == 300
    else:
        assert "cls_u32" in out.err and "outbound" in out.err, out.err
        assert _htb(ns, tap_name) == pytest.approx((500 * 1024, 500 * 1024), rel=1e-3)
        assert _values(d.cli("domiftune", "if1", MAC).ok().out)["outbound.average"] == 0

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
        "attach-interface", "if1", "network", "tunenet", "--mac", second, "--inbound", "800,1600", "--live"
    ).ok()
    new_tap = re.search(
        rf"<mac address='{second}'/>\s*<source [^>]*/>\s*<target dev='([^']+)'/>",
        d.cli("dumpxml", "if1").ok().out,
    )
    assert new_tap is not None
    assert _htb(ns, new_tap.group(1)) == pytest.approx((800 * 1024, 1600 * 1024), rel=1e-3)
    assert _values(d.cli("domiftune", "if1", second).ok().out)["inbound.peak"] == 1600
    refused = d.cli("attach-interface", "if1", "network", "tunenet", "--inbound", "10,5", "--live")
    assert refused.rc == 1 and "peak" in refused.err
    d.cli("destroy", "if1").ok()

    # A user NIC has no tap: its <bandwidth> is refused at start.
    user = domain_xml("if2", disk=copy_disk(guest_artifacts(), tmp_path / "if2.qcow2"), nic_user=True)
    user = user.replace("</interface>", "<bandwidth><outbound average='10'/></bandwidth></interface>", 1)
    (tmp_path / "if2.xml").write_text(user)
    d.cli("define", str(tmp_path / "if2.xml")).ok()
    started = d.cli("start", "if2")
    assert started.rc == 1 and "bandwidth" in started.err
