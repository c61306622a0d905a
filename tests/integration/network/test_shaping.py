"""A tap's <bandwidth> in the kernel, in a test-made namespace: inbound as HTB on the tap, outbound
redirected by a u32/mirred ingress filter to the tap's own IFB device shaped by HTB, so its average,
peak and burst all hold; frames written into the tap (what a guest sends) are limited by the IFB's
class (its byte counters, not durations); clearing outbound or unplugging the tap removes the IFB."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from pyvirt.network import links, shaping
from pyvirt.network.driver import NetworkDriver
from pyvirt.network.netns import NetnsRunner

pytestmark = pytest.mark.root
UNITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3}
SIZES = {"b": 1, "Kb": 1024, "Mb": 1024**2}
# A broadcast Ethernet frame of 1400 bytes from a guest MAC (IPv4 ethertype, zero payload).
FRAME = bytes.fromhex("ffffffffffff5254007000010800") + bytes(1386)


@pytest.fixture
def runner(host_ns: str) -> Iterator[NetnsRunner]:
    run = NetnsRunner(host_ns)
    yield run
    run.run(links.close_netlink)
    run.close()


def htb_class(tools: Any, ns: str, dev: str) -> dict[str, int] | None:
    """The device's HTB class 1:1: rate, ceil and burst in bytes (per second), and its counters."""
    text = tools.in_ns(ns, "tc", "-s", "class", "show", "dev", dev).stdout
    found = re.search(
        r"class htb 1:1 .*?rate (\d+)(\w+) ceil (\d+)(\w+) burst (\d+)(\w+) .*?\n"
        r"\s*Sent (\d+) bytes \d+ pkt \(dropped (\d+),.*?\n\s*backlog (\d+)b",
        text,
    )
    if found is None:
        return None
    rate, rate_unit, ceil, ceil_unit, burst, burst_unit, sent, dropped, backlog = found.groups()
    return {
        "rate": int(rate) * UNITS[rate_unit] // 8,
        "ceil": int(ceil) * UNITS[ceil_unit] // 8,
        "burst": int(burst) * SIZES[burst_unit],
        "sent": int(sent),
        "dropped": int(dropped),
        "backlog": int(backlog),
    }


def test_outbound_goes_through_the_taps_ifb(
    driver: NetworkDriver, runner: NetnsRunner, host_ns: str, tools: Any
) -> None:
    tools.in_ns(host_ns, "ip", "link", "add", "br0", "type", "bridge")
    tools.in_ns(host_ns, "ip", "link", "set", "br0", "up")
    tap = driver.plug_tap(network=None, bridge="br0", mac="52:54:00:70:00:01", tap="vm-shaped")
    ifb = shaping.ifb_name(tap)
    assert len(ifb) <= 15 and ifb == shaping.ifb_name(tap) != shaping.ifb_name("vm-other")

    bandwidth = {
        "inbound": {"average": 1000, "peak": 2000, "burst": 64},
        "outbound": {"average": 8, "peak": 16, "burst": 4},
    }
    runner.run(shaping.apply, tap, bandwidth)
    inbound = htb_class(tools, host_ns, tap)
    assert inbound is not None
    assert (inbound["rate"], inbound["ceil"], inbound["burst"]) == (1000 * 1024, 2000 * 1024, 64 * 1024)
    ingress = tools.in_ns(host_ns, "tc", "filter", "show", "dev", tap, "ingress").stdout
    redirect = rf"match 00000000/00000000 at 0\s+action order 1: mirred \(Egress Redirect to device {ifb}\)"
    assert re.search(redirect, ingress), ingress
    outbound = htb_class(tools, host_ns, ifb)
    assert outbound is not None
    assert (outbound["rate"], outbound["ceil"], outbound["burst"]) == (8 * 1024, 16 * 1024, 4 * 1024)

    # What the guest sends: 300 frames (410 KiB) written at once into the tap; at 8 KiB/s (16 peak)
    # the IFB's class lets through its burst and holds or drops the rest, however long the writes take.
    fd = runner.run(links.open_tap, tap, vnet_hdr=False)
    try:
        for _ in range(300):
            os.write(fd, FRAME)
    finally:
        os.close(fd)
    shaped = htb_class(tools, host_ns, ifb)
    assert shaped is not None
    assert shaped["dropped"] > 0, shaped
    assert shaped["sent"] + shaped["backlog"] < 300 * len(FRAME) // 4, shaped
    assert shaped["sent"] > 0, shaped

    # A live change makes a new IFB class; clearing outbound removes the IFB and the filter.
    runner.run(shaping.apply, tap, {**bandwidth, "outbound": {"average": 100}})
    changed = htb_class(tools, host_ns, ifb)
    assert changed is not None and (changed["rate"], changed["ceil"]) == (100 * 1024, 100 * 1024)
    runner.run(shaping.apply, tap, {"inbound": bandwidth["inbound"]})
    assert ifb not in tools.links(host_ns)
    assert "mirred" not in tools.in_ns(host_ns, "tc", "filter", "show", "dev", tap, "ingress").stdout
    assert htb_class(tools, host_ns, tap) is not None

    # Unplugging the tap takes its IFB with it (also one a crash left behind with its tap gone).
    runner.run(shaping.apply, tap, bandwidth)
    assert ifb in tools.links(host_ns)
    driver.unplug_tap(tap)
    assert tap not in tools.links(host_ns) and ifb not in tools.links(host_ns)
    tools.in_ns(host_ns, "ip", "link", "add", ifb, "type", "ifb")
    driver.unplug_tap(tap)
    assert ifb not in tools.links(host_ns)
