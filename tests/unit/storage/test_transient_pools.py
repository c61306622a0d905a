"""The driver behind ``pool-create``: transient pools, and a live definition over a persistent one,
across daemon restarts and destroys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.storage import parse_pool
from pyvirt.errors import AlreadyExists, InvalidState, NotFound, OperationFailed
from pyvirt.paths import Layout
from tests.unit.storage.drivers import make_driver, pool_xml

UUID = "0c2f4e1a-6b1d-4f5e-9a51-3d3c1e0f8a11"


def states(layout: Layout) -> list[str]:
    return sorted(p.name for p in (layout.run_dir / "storage").glob("*.xml"))


def test_transient_pool_lives_until_destroyed_and_survives_a_daemon_restart(
    layout: Layout, tmp_path: Path
) -> None:
    driver = make_driver(layout)
    status = driver.create_xml(pool_xml("t", tmp_path / "t"), build=True)
    assert (status.active, status.persistent, status.autostart) == (True, False, False)
    assert (tmp_path / "t").is_dir()
    assert not (layout.storage_config_dir / "t.xml").exists() and states(layout) == ["t.xml"]

    restarted = make_driver(layout)
    again = restarted.status("t")
    assert (again.active, again.persistent, again.uuid) == (True, False, status.uuid)
    with pytest.raises(InvalidState, match="pool has no config file"):
        restarted.set_autostart("t", True)
    with pytest.raises(InvalidState, match="still active"):
        restarted.undefine("t")

    last = restarted.destroy("t")
    assert (last.name, last.active, last.persistent) == ("t", False, False)
    with pytest.raises(NotFound):
        restarted.status("t")
    assert states(layout) == [] and (tmp_path / "t").is_dir()
    assert make_driver(layout).list_pools() == []


def test_create_refusals_leave_nothing_behind(layout: Layout, tmp_path: Path) -> None:
    driver = make_driver(layout)
    with pytest.raises(OperationFailed, match="cannot open directory"):
        driver.create_xml(pool_xml("t", tmp_path / "missing"))
    assert driver.list_pools() == [] and states(layout) == []
    assert not (tmp_path / "missing").exists()

    (tmp_path / "a").mkdir()
    uuid = driver.create_xml(pool_xml("a", tmp_path / "a")).uuid
    with pytest.raises(AlreadyExists, match=f"pool 'a' already exists with uuid {uuid}"):
        driver.create_xml(pool_xml("a", tmp_path / "a"))
    with pytest.raises(InvalidState, match="pool is already active as 'a'"):
        driver.create_xml(pool_xml("a", tmp_path / "a", uuid))
    with pytest.raises(AlreadyExists, match=f"pool 'a' is already defined with uuid {uuid}"):
        driver.create_xml(pool_xml("b", tmp_path / "b", uuid))
    with pytest.raises(AlreadyExists, match="Storage source conflict with pool: 'a'"):
        driver.create_xml(pool_xml("b", tmp_path / "a/"))
    assert [p.name for p in driver.list_pools()] == ["a"] and states(layout) == ["a.xml"]


def test_create_over_an_inactive_persistent_pool_runs_the_new_definition(
    layout: Layout, tmp_path: Path
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    driver = make_driver(layout)
    driver.define_xml(pool_xml("p", tmp_path / "old", UUID))
    status = driver.create_xml(pool_xml("p", tmp_path / "new", UUID))
    assert (status.active, status.persistent, status.path) == (True, True, str(tmp_path / "new"))
    assert parse_pool(driver.dumpxml("p", inactive=True)).target_path == str(tmp_path / "old")
    assert parse_pool(driver.dumpxml("p")).target_path == str(tmp_path / "new")

    restarted = make_driver(layout)  # the live definition comes back from the run-state file
    assert restarted.status("p").path == str(tmp_path / "new")
    assert parse_pool(restarted.dumpxml("p", inactive=True)).target_path == str(tmp_path / "old")

    restarted.destroy("p")
    after = restarted.status("p")
    assert (after.active, after.persistent, after.path) == (False, True, str(tmp_path / "old"))
    assert parse_pool((layout.storage_config_dir / "p.xml").read_text()).target_path == str(tmp_path / "old")


def test_an_ordinary_active_pool_has_no_separate_live_definition_after_a_restart(
    layout: Layout, tmp_path: Path
) -> None:
    driver = make_driver(layout)
    driver.define_xml(pool_xml("p", tmp_path / "p", UUID))
    driver.build("p")
    driver.start("p")
    restarted = make_driver(layout)
    obj = restarted.lookup("p")
    assert obj.active and obj.persistent and obj.next_config is None


def test_defining_a_transient_pool_makes_it_persistent(layout: Layout, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    driver = make_driver(layout)
    xml = driver.dumpxml(driver.create_xml(pool_xml("t", tmp_path / "t")).name, inactive=True)
    status = driver.define_xml(xml)
    assert (status.active, status.persistent) == (True, True)
    assert (layout.storage_config_dir / "t.xml").exists()
    driver.set_autostart("t", True)
    driver.destroy("t")
    assert driver.status("t").persistent and not driver.status("t").active


def test_run_state_of_an_unknown_or_broken_pool_is_dropped(layout: Layout, tmp_path: Path) -> None:
    state_dir = layout.run_dir / "storage"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gone.xml").write_text(pool_xml("gone", tmp_path / "nowhere"))
    (state_dir / "junk.xml").write_text("<pool")
    (state_dir / "other.xml").write_text(pool_xml("named-else", tmp_path))
    assert make_driver(layout).list_pools() == []
    assert states(layout) == []
