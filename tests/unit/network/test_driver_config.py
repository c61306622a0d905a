"""The driver's persistent side (no kernel changes): define, redefine, autostart links, undefine, default.

These only read the machine's device and route lists (to avoid auto-picking a bridge name in use);
they create nothing on the host.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from pyvirt.network.driver import NetworkDriver
from pyvirt.paths import Layout, system_layout

XML = "<network><name>lab</name><forward mode='route'/><ip address='10.251.0.1' prefix='24'/></network>"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = system_layout(tmp_path)
    lay.ensure()
    return lay


@pytest.fixture
def driver(layout: Layout) -> NetworkDriver:
    return NetworkDriver(layout)


def test_define_fills_defaults_and_keeps_them_on_redefine(driver: NetworkDriver, layout: Layout) -> None:
    status = driver.define(XML)
    assert (status.persistent, status.active, status.autostart) == (True, False, False)
    assert status.bridge is not None and status.bridge.startswith("pvbr")
    first = driver.dumpxml("lab")
    assert "<mac address='52:54:00:" in first
    assert (layout.network_config_dir / "lab.xml").read_text() == first
    assert not list(layout.network_config_dir.glob(".*.tmp"))

    driver.define(XML.replace("10.251.0.1", "10.252.0.1"))
    second = driver.dumpxml("lab")
    assert "10.252.0.1" in second
    for line in ("<uuid>", "<bridge ", "<mac "):
        assert [x for x in first.splitlines() if line in x] == [x for x in second.splitlines() if line in x]


def test_uuid_and_bridge_clashes(driver: NetworkDriver) -> None:
    driver.define(
        XML.replace("<name>lab</name>", "<name>lab</name><uuid>11111111-2222-3333-4444-555555555555</uuid>")
    )
    with pytest.raises(AlreadyExists, match="already exists with UUID"):
        driver.define(
            XML.replace(
                "<name>lab</name>", "<name>lab</name><uuid>11111111-2222-3333-4444-666666666666</uuid>"
            )
        )
    with pytest.raises(AlreadyExists, match="already has UUID"):
        driver.define(
            XML.replace(
                "<name>lab</name>", "<name>other</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
            )
        )
    bridge = driver.info("lab").bridge
    with pytest.raises(AlreadyExists, match=f"bridge name '{bridge}' is already used by network 'lab'"):
        driver.define(f"<network><name>b</name><bridge name='{bridge}'/></network>")
    auto = driver.define("<network><name>c</name></network>")
    assert auto.bridge != bridge
    assert [s.name for s in driver.list()] == ["c", "lab"]


def test_autostart_undefine_and_errors(driver: NetworkDriver, layout: Layout) -> None:
    driver.define(XML)
    driver.set_autostart("lab", True)
    driver.set_autostart("lab", True)
    link = layout.network_autostart_dir / "lab.xml"
    assert os.readlink(link) == "../lab.xml" and link.resolve() == (layout.network_config_dir / "lab.xml")
    assert driver.info("lab").autostart
    with pytest.raises(InvalidState, match="not active"):
        driver.destroy("lab")
    with pytest.raises(InvalidState, match="not active"):
        driver.leases("lab")
    driver.undefine("lab")
    assert not link.exists() and not (layout.network_config_dir / "lab.xml").exists()
    with pytest.raises(NotFound, match="network 'lab' not found"):
        driver.info("lab")
    with pytest.raises(InvalidArgument, match="invalid network name"):
        driver.info("../etc")


def test_ensure_default_only_in_system_mode_and_once(driver: NetworkDriver, tmp_path: Path) -> None:
    driver.ensure_default()
    xml = driver.dumpxml("default")
    assert "<forward mode='nat'/>" in xml and "<bridge name='pvbr0'" in xml
    assert driver.info("default").autostart
    driver.undefine("default")
    driver.ensure_default()
    assert driver.list() == []

    session = system_layout(tmp_path / "s")
    session = Layout(**{**session.__dict__, "mode": "session"})
    session.ensure()
    NetworkDriver(session).ensure_default()
    assert not list(session.network_config_dir.glob("*.xml"))
