"""Guest taps: plug into a network's bridge or a host bridge, link state, and QEMU opening the tap by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from pyvirt.network.driver import NetworkDriver

pytestmark = pytest.mark.root

NAT = """<network><name>tapnet</name><forward mode='nat'/><bridge name='pvbr40'/><mtu size='1400'/>
<ip address='10.60.0.1' prefix='24'/></network>"""
BRIDGED = "<network><name>hostbr</name><forward mode='bridge'/><bridge name='br0'/></network>"


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_plug_unplug_and_link_state(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    driver.define(NAT)
    with pytest.raises(InvalidState, match="not active"):
        driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:01")
    with pytest.raises(NotFound):
        driver.plug_tap(network="nosuch", bridge=None, mac="52:54:00:60:00:01")
    driver.start("tapnet")
    with pytest.raises(InvalidArgument, match="MAC"):
        driver.plug_tap(network="tapnet", bridge=None, mac="01:00:5e:00:00:01")

    first = driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:01")
    second = driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:02")
    assert (first, second) == ("vnet0", "vnet1")
    links = tools.links(host_ns)
    assert links["vnet0"]["master"] == "pvbr40"
    assert links["vnet0"]["address"] == "fe:54:00:60:00:01"
    assert links["vnet0"]["mtu"] == 1400
    assert "UP" in links["vnet0"]["flags"]
    with pytest.raises(AlreadyExists):
        driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:03", tap="vnet1")
    with pytest.raises(InvalidArgument, match="invalid tap name"):  # a kernel numbering pattern
        driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:03", tap="mine%d")
    named = driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:03", tap="guest-a")
    assert tools.links(host_ns)[named]["master"] == "pvbr40"

    driver.set_link("vnet1", False)
    assert "UP" not in tools.links(host_ns)["vnet1"]["flags"]
    driver.set_link("vnet1", True)
    assert "UP" in tools.links(host_ns)["vnet1"]["flags"]

    driver.unplug_tap("vnet0")
    assert "vnet0" not in tools.links(host_ns)
    assert driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:04") == "vnet0"  # reused
    with pytest.raises(InvalidArgument, match="not a tap"):
        driver.unplug_tap("pvbr40")
    driver.unplug_tap("vnet9")  # already gone: nothing to do
    for tap in ("vnet0", "vnet1", named):
        driver.unplug_tap(tap)
    driver.destroy("tapnet")


def test_bridge_mode_uses_existing_host_bridge(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    driver.define(BRIDGED)
    with pytest.raises(NotFound, match="host bridge 'br0' does not exist"):
        driver.start("hostbr")
    tools.in_ns(host_ns, "ip", "link", "add", "br0", "type", "bridge")
    driver.start("hostbr")
    assert driver.info("hostbr").active
    assert "pyvirt" not in tools.ruleset(host_ns)
    assert tools.sh("ip", "netns", "pids", host_ns).stdout.split() == []  # no dnsmasq
    tap = driver.plug_tap(network="hostbr", bridge=None, mac="52:54:00:61:00:01")
    assert tools.links(host_ns)[tap]["master"] == "br0"
    direct = driver.plug_tap(network=None, bridge="br0", mac="52:54:00:61:00:02")
    assert tools.links(host_ns)[direct]["master"] == "br0"
    driver.destroy("hostbr")
    assert "br0" in tools.links(host_ns)  # not ours: left in place
    with pytest.raises(NotFound):
        driver.plug_tap(network=None, bridge="nobridge", mac="52:54:00:61:00:03")


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed")
def test_qemu_opens_plugged_tap_by_name(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    driver.create(NAT)
    tap = driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:10")
    # nobody has the tap open yet (the kernel's link watcher settles the operstate a moment later)
    assert wait_for(lambda: "NO-CARRIER" in tools.links(host_ns)[tap]["flags"])
    qemu = subprocess.Popen(
        [
            "ip", "netns", "exec", host_ns,
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "none", "-nodefaults", "-display", "none",
            "-monitor", "none", "-serial", "none", "-S",
            "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        opened = wait_for(lambda: "NO-CARRIER" not in tools.links(host_ns)[tap]["flags"])
        assert qemu.poll() is None, qemu.communicate()[1]
        assert opened, "QEMU did not attach to the tap"
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
    assert wait_for(lambda: "NO-CARRIER" in tools.links(host_ns)[tap]["flags"])
    assert tools.links(host_ns)[tap]["master"] == "pvbr40"  # persistent tap outlives QEMU
    driver.unplug_tap(tap)
    driver.destroy("tapnet")


def test_open_tap_fd(driver: NetworkDriver, host_ns: str, tools: Any) -> None:
    driver.create(NAT)
    tap = driver.plug_tap(network="tapnet", bridge=None, mac="52:54:00:60:00:11")
    fd = driver.open_tap(tap)
    try:
        assert wait_for(lambda: "NO-CARRIER" not in tools.links(host_ns)[tap]["flags"])
    finally:
        os.close(fd)
    driver.unplug_tap(tap)
    driver.destroy("tapnet")
