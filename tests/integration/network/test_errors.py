"""Bad input gets a clear error and changes nothing: no file, device, rule or process is left behind."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from pyvirt.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidState,
    NotFound,
    OperationFailed,
    UnsupportedConfig,
    XMLError,
)
from pyvirt.network.driver import NetworkDriver
from pyvirt.network.netns import NetnsRunner
from pyvirt.paths import Layout

pytestmark = pytest.mark.root


def net(name: str, bridge: str, subnet: str, extra: str = "", dhcp: str = "") -> str:
    br = f"<bridge name='{bridge}'/>" if bridge else ""
    return (
        f"<network><name>{name}</name><forward mode='nat'/>{br}{extra}"
        f"<ip address='{subnet}.1' prefix='24'>{dhcp}</ip></network>"
    )


def snapshot(tools: Any, host: str, layout: Layout) -> tuple[object, ...]:
    devices = sorted(tools.links(host))
    files = sorted(str(p.relative_to(layout.config_dir)) for p in layout.network_config_dir.rglob("*"))
    run = sorted(p.name for p in layout.network_run_dir.iterdir())
    procs = tools.sh("ip", "netns", "pids", host).stdout.split()
    return devices, tools.ruleset(host), files, run, len(procs)


def test_bad_definitions_change_nothing(
    driver: NetworkDriver, host_ns: str, layout: Layout, tools: Any
) -> None:
    driver.define(
        net("good", "pvbr30", "10.90.0", dhcp="<dhcp><range start='10.90.0.2' end='10.90.0.9'/></dhcp>")
    )
    driver.start("good")
    before = snapshot(tools, host_ns, layout)
    bad: list[tuple[str, type[Exception], str]] = [
        (
            net("a", "pvbr31", "10.91.0", dhcp="<dhcp><range start='10.92.0.2' end='10.92.0.9'/></dhcp>"),
            InvalidArgument,
            "outside the network's subnet",
        ),
        (
            net("a", "pvbr31", "10.91.0", dhcp="<dhcp><host mac='52:54:00:01:02:03' ip='10.1.1.1'/></dhcp>"),
            InvalidArgument,
            "outside the network's subnet",
        ),
        (net("bad/name", "pvbr31", "10.91.0"), InvalidArgument, "invalid network name"),
        (net("-a", "pvbr31", "10.91.0"), InvalidArgument, "invalid network name"),
        (
            net("a", "pvbr30", "10.91.0"),
            AlreadyExists,
            "bridge name 'pvbr30' is already used by network 'good'",
        ),
        (
            net("a", "pvbr31", "10.91.0", extra="<virtualport type='openvswitch'/>"),
            UnsupportedConfig,
            "virtualport",
        ),
        (
            "<!DOCTYPE n [<!ENTITY e 'x'>]><network><name>&e;</name></network>",
            XMLError,
            "document type declarations",
        ),
    ]
    for xml, error, message in bad:
        with pytest.raises(error, match=message):
            driver.define(xml)
        with pytest.raises(error, match=message):
            driver.create(xml)
    assert snapshot(tools, host_ns, layout) == before


def test_start_refusals_change_nothing(
    driver: NetworkDriver, host_ns: str, layout: Layout, tools: Any
) -> None:
    driver.define(net("good", "pvbr30", "10.90.0"))
    driver.start("good")
    # overlapping an active network
    driver.define(net("overlap", "pvbr32", "10.90.0").replace("prefix='24'", "prefix='16'"))
    # a device of that name already exists on the host
    tools.in_ns(host_ns, "ip", "link", "add", "pvbr33", "type", "veth", "peer", "name", "pvbr33p")
    driver.define(net("devtaken", "pvbr33", "10.93.0"))
    # a host route covers the subnet
    tools.in_ns(host_ns, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplinkp")
    tools.in_ns(host_ns, "ip", "link", "set", "uplinkp", "up")
    tools.in_ns(host_ns, "ip", "link", "set", "uplink", "up")
    tools.in_ns(host_ns, "ip", "addr", "add", "10.94.0.254/24", "dev", "uplink")
    driver.define(net("routed", "pvbr34", "10.94.0"))
    before = snapshot(tools, host_ns, layout)

    with pytest.raises(InvalidArgument, match=r"overlaps 10\.90\.0\.0/24 of active network 'good'"):
        driver.start("overlap")
    with pytest.raises(AlreadyExists, match="bridge name 'pvbr33' is already in use"):
        driver.start("devtaken")
    with pytest.raises(InvalidArgument, match=r"overlaps host route 10\.94\.0\.0/24 on uplink"):
        driver.start("routed")
    with pytest.raises(InvalidState, match="already active"):
        driver.start("good")
    with pytest.raises(NotFound):
        driver.start("nosuch")
    with pytest.raises(AlreadyExists):
        driver.create(net("good", "pvbr35", "10.95.0"))
    assert snapshot(tools, host_ns, layout) == before
    assert [s.name for s in driver.list() if s.active] == ["good"]
    assert "10.90.0.0/24" in tools.ruleset(host_ns)
    assert "master" not in tools.links(host_ns)["pvbr33"]  # the device is untouched


def test_failure_midway_is_undone(driver: NetworkDriver, host_ns: str, layout: Layout, tools: Any) -> None:
    """dnsmasq cannot bind the DHCP port (a stray socket holds it): bridge and rules are rolled back."""
    driver.define(
        net("n", "pvbr36", "10.96.0", dhcp="<dhcp><range start='10.96.0.2' end='10.96.0.9'/></dhcp>")
    )
    runner = NetnsRunner(host_ns)
    stray = runner.run(socket.socket, socket.AF_INET, socket.SOCK_DGRAM)  # created inside the namespace
    runner.close()
    try:
        stray.bind(("0.0.0.0", 67))
        before = snapshot(tools, host_ns, layout)
        with pytest.raises(OperationFailed, match="dnsmasq failed to start"):
            driver.start("n")
        assert snapshot(tools, host_ns, layout) == before
        assert not driver.info("n").active
    finally:
        stray.close()
