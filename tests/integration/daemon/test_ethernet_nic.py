"""``<interface type='ethernet'>`` end to end, in a network namespace this test makes (the daemon runs
inside it): a tap the daemon makes, with its host-side address, route and MAC, the guest pinging that
address, the script and downscript run with the tap's name; and the user's own tap (``managed='no'``)
handed to QEMU and left behind when the domain stops; an ethernet interface plugged into the running
guest and unplugged again (attach-interface refuses the type, as virsh 9.0 does)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon, netns_daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]
READY = r"pyvirt-guest: ready"
SCRIPT = '#!/bin/sh\necho "$1 {word}" >> {marker}\n'


@pytest.fixture
def nsdaemon() -> Iterator[Daemon]:
    with netns_daemon("pvte") as d:
        yield d


def in_ns(d: Daemon, *argv: str) -> subprocess.CompletedProcess[str]:
    assert d.netns
    return subprocess.run(["ip", "netns", "exec", d.netns, *argv], capture_output=True, text=True)


def test_ethernet_taps_managed_and_unmanaged(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    marker = tmp_path / "marker"
    for name, word in (("up.sh", "up"), ("down.sh", "down")):
        (tmp_path / name).write_text(SCRIPT.format(word=word, marker=marker))
        (tmp_path / name).chmod(0o755)
    assert in_ns(d, "ip", "tuntap", "add", "dev", "usertap0", "mode", "tap").returncode == 0
    nics = f"""
<interface type='ethernet'><mac address='52:54:00:e0:00:01'/><target dev='pvt-eth0'/>
  <ip address='10.88.0.1' prefix='24'/><route address='10.99.0.0' prefix='24' gateway='10.88.0.2'/>
  <script path='{tmp_path}/up.sh'/><downscript path='{tmp_path}/down.sh'/><model type='virtio'/>
</interface>
<interface type='ethernet'><mac address='52:54:00:e0:00:02'/><target dev='usertap0' managed='no'/>
  <model type='virtio'/></interface>
"""
    path = tmp_path / "eth1.xml"
    path.write_text(domain_xml("eth1", extra_devices=nics))
    d.cli("define", str(path)).ok()
    dumped = d.cli("dumpxml", "eth1").ok().out
    assert (
        "<target dev='usertap0' managed='no'/>" in dumped and f"<script path='{tmp_path}/up.sh'/>" in dumped
    )
    d.cli("start", "eth1").ok()
    console = Console(d, "eth1")
    try:
        console.expect(READY)
        assert marker.read_text() == "pvt-eth0 up\n"  # the script ran with the tap's name
        host = in_ns(d, "ip", "-o", "addr", "show", "dev", "pvt-eth0").stdout
        assert "10.88.0.1/24" in host
        assert "fe:54:00:e0:00:01" in in_ns(d, "ip", "link", "show", "dev", "pvt-eth0").stdout
        assert "10.99.0.0/24 via 10.88.0.2 dev pvt-eth0" in in_ns(d, "ip", "route").stdout
        console.run("ip addr add 10.88.0.2/24 dev eth0 && ip link set eth0 up")
        replies = console.run("ping -c 3 -W 10 10.88.0.1", timeout=120)  # the host end of its tap
        assert re.search(r"\b[1-3] packets received", replies), replies
        # the user's tap is QEMU's too: its carrier is up while QEMU holds it
        assert "NO-CARRIER" not in in_ns(d, "ip", "link", "show", "dev", "usertap0").stdout
        _hotplug(d, console, tmp_path)
    finally:
        console.close()
        d.cli("destroy", "eth1").ok()
    assert marker.read_text() == "pvt-eth0 up\npvt-eth0 down\n"
    # the daemon's tap: gone (the network driver's thread removes it after destroy answers, before any
    # later tap request of the daemon)
    deadline = time.monotonic() + 30
    while in_ns(d, "ip", "link", "show", "dev", "pvt-eth0").returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert in_ns(d, "ip", "link", "show", "dev", "pvt-eth0").returncode != 0
    assert in_ns(d, "ip", "link", "show", "dev", "usertap0").returncode == 0  # the user's: left


def _gone(d: Daemon, tap: str) -> bool:
    """Whether ``tap`` is gone (the network driver's thread removes it after the reply)."""
    deadline = time.monotonic() + 30
    while in_ns(d, "ip", "link", "show", "dev", tap).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    return in_ns(d, "ip", "link", "show", "dev", tap).returncode != 0


def _hotplug(d: Daemon, console: Console, tmp_path: Path) -> None:
    """attach-device of an ethernet interface to the running guest: its tap made with its address, its
    script run, the guest reaching the host through it; detach-device: its downscript run, the tap gone."""
    marker = tmp_path / "hotplug-marker"
    for name, word in (("hup.sh", "up"), ("hdown.sh", "down")):
        (tmp_path / name).write_text(SCRIPT.format(word=word, marker=marker))
        (tmp_path / name).chmod(0o755)
    nic = tmp_path / "hot-nic.xml"
    nic.write_text(
        "<interface type='ethernet'><mac address='52:54:00:e0:00:03'/><target dev='pvt-eth9'/>"
        f"<ip address='10.89.0.1' prefix='24'/><script path='{tmp_path}/hup.sh'/>"
        f"<downscript path='{tmp_path}/hdown.sh'/><model type='virtio'/></interface>"
    )
    # virsh 9.0's attach-interface has no ethernet type: refused in its words, nothing made.
    result = d.cli("attach-interface", "eth1", "ethernet", "pvt-eth9", "--target", "pvt-eth9")
    assert result.rc == 1 and "No support for ethernet in command 'attach-interface'" in result.err
    assert not marker.exists() and in_ns(d, "ip", "link", "show", "dev", "pvt-eth9").returncode != 0
    d.cli("attach-device", "eth1", str(nic)).ok()
    assert marker.read_text() == "pvt-eth9 up\n"
    assert "10.89.0.1/24" in in_ns(d, "ip", "-o", "addr", "show", "dev", "pvt-eth9").stdout
    assert "<target dev='pvt-eth9'/>" in d.cli("dumpxml", "eth1").ok().out
    find = "for i in /sys/class/net/*; do grep -q 52:54:00:e0:00:03 $i/address && echo ${i##*/}; done"
    console.run(f'for i in $(seq 120); do [ -n "$({find})" ] && break; sleep 0.5; done', 90)
    dev = console.run(find)
    assert dev.startswith("eth"), dev
    console.run(f"ip addr add 10.89.0.2/24 dev {dev} && ip link set {dev} up")
    replies = console.run("ping -c 3 -W 10 10.89.0.1", timeout=120)
    assert re.search(r"\b[1-3] packets received", replies), replies
    d.cli("detach-device", "eth1", str(nic)).ok()
    assert marker.read_text() == "pvt-eth9 up\npvt-eth9 down\n"
    assert _gone(d, "pvt-eth9")
    assert "pvt-eth9" not in d.cli("dumpxml", "eth1").ok().out


def test_failing_script_and_missing_user_tap_refuse_the_start(nsdaemon: Daemon, tmp_path: Path) -> None:
    d = nsdaemon
    (tmp_path / "fail.sh").write_text("#!/bin/sh\necho 'no way' >&2\nexit 3\n")
    (tmp_path / "fail.sh").chmod(0o755)
    cases = {
        "eth2": (f"<script path='{tmp_path}/fail.sh'/>", "exited with status 3: no way"),
        "eth3": ("<target dev='nosuchtap' managed='no'/>", "no device 'nosuchtap'"),
    }
    for name, (extra, message) in cases.items():
        path = tmp_path / f"{name}.xml"
        path.write_text(domain_xml(name, extra_devices=f"<interface type='ethernet'>{extra}</interface>"))
        d.cli("define", str(path)).ok()
        result = d.cli("start", name)
        assert result.rc == 1 and message in result.err, result.err
        assert d.state(name) == "shut off"
    assert "vnet" not in in_ns(d, "ip", "link").stdout  # the failed start's tap was removed
