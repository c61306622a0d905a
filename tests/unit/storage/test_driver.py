"""The directory-pool driver on scratch folders: persistence, the default pool, volumes, in-use refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.conf.storage import BackingStore, PoolDef, VolumeDef, parse_pool
from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, OperationFailed
from pyvirt.image import image_info
from pyvirt.paths import Layout
from pyvirt.storage import stream, volumes
from tests.unit.storage.drivers import make_driver, pool_xml


def test_default_pool_once_in_the_hosts_life(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    status = driver.status("default")
    assert status.active and status.autostart and status.path == str(layout.images_dir)
    assert (layout.storage_config_dir / "default.xml").exists()
    assert os.readlink(layout.storage_autostart_dir / "default.xml") == "../default.xml"
    driver.destroy("default")
    driver.undefine("default")
    again = make_driver(layout)
    again.ensure_default()
    with pytest.raises(NotFound):
        again.status("default")


def test_state_survives_a_restart_but_not_a_reboot(layout: Layout, tmp_path: Path) -> None:
    driver = make_driver(layout)
    for name in ("a", "b"):
        driver.define_xml(pool_xml(name, tmp_path / name))
        driver.build(name)
    driver.start("a")
    driver.set_autostart("b", True)
    restarted = make_driver(layout)
    assert [(s.name, s.active, s.autostart) for s in restarted.list_pools()] == [
        ("a", True, False),
        ("b", False, True),
    ]
    for state in (layout.run_dir / "storage").glob("*.xml"):
        state.unlink()  # a reboot empties the run folder
    rebooted = make_driver(layout)
    rebooted.autostart_all()
    assert [(s.name, s.active) for s in rebooted.list_pools()] == [("a", False), ("b", True)]


def test_pool_lifecycle_errors(layout: Layout, tmp_path: Path) -> None:
    driver = make_driver(layout)
    driver.define_xml(pool_xml("p", tmp_path / "p"))
    with pytest.raises(OperationFailed, match="cannot open directory"):
        driver.start("p")
    driver.build("p")
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o711
    driver.start("p")
    with pytest.raises(InvalidState, match="already active"):
        driver.start("p")
    with pytest.raises(InvalidState, match="still active"):
        driver.undefine("p")
    with pytest.raises(AlreadyExists, match="already exists with uuid"):
        driver.define_xml(pool_xml("p", tmp_path / "p"))
    with pytest.raises(AlreadyExists, match="Storage source conflict with pool: 'p'"):
        driver.define_xml(pool_xml("q", tmp_path / "p"))
    uuid = driver.status("p").uuid
    assert driver.lookup(uuid).config.name == "p"
    # Redefining with the same UUID is allowed and persisted.
    redefined = parse_pool(driver.dumpxml("p", inactive=True))
    driver.define(PoolDef(name="p", uuid=uuid, target_path=redefined.target_path))
    driver.destroy("p")
    with pytest.raises(InvalidState, match="not active"):
        driver.destroy("p")
    driver.undefine("p")
    assert list(layout.storage_config_dir.glob("p.xml")) == []


def test_volumes_create_list_clone_resize_delete(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="raw.img", capacity=1 << 20))
    info = driver.volume("default", "raw.img")
    assert info.format == "raw" and info.capacity == 1 << 20 and info.allocation >= 1 << 20
    assert info.permissions.mode == 0o600
    driver.create_volume("default", VolumeDef(name="sparse.img", capacity=1 << 20, allocation=0))
    assert driver.volume("default", "sparse.img").allocation == 0
    driver.create_volume("default", VolumeDef(name="base.qcow2", capacity=4 << 20, format="qcow2"))
    driver.create_volume(
        "default",
        VolumeDef(name="top.qcow2", capacity=8 << 20, format="qcow2", backing=BackingStore("base.qcow2")),
    )
    top = driver.volume("default", "top.qcow2")
    assert top.backing is not None and top.backing.format == "qcow2"
    assert top.backing.path == str(layout.images_dir / "base.qcow2")
    names = [v["name"] for v in driver.list_volumes("default")]
    assert names == ["base.qcow2", "raw.img", "sparse.img", "top.qcow2"]

    driver.clone_volume("default", "top.qcow2", "copy.qcow2")
    copy = image_info(str(layout.images_dir / "copy.qcow2"))
    assert copy["virtual-size"] == 8 << 20 and copy["backing-filename"] == top.backing.path

    driver.resize_volume(
        "default", "copy.qcow2", 16 << 20, delta=False, shrink=False, allocate=False, in_use={}
    )
    assert driver.volume("default", "copy.qcow2").capacity == 16 << 20
    with pytest.raises(InvalidArgument, match="unless shrink flag"):
        driver.resize_volume("default", "raw.img", 1024, delta=False, shrink=False, allocate=False, in_use={})
    driver.resize_volume("default", "raw.img", 4096, delta=True, shrink=True, allocate=False, in_use={})
    assert driver.volume("default", "raw.img").capacity == (1 << 20) - 4096

    with pytest.raises(AlreadyExists, match="exists already"):
        driver.create_volume("default", VolumeDef(name="raw.img", capacity=1))
    driver.delete_volume("default", "copy.qcow2", in_use={})
    with pytest.raises(NotFound):
        driver.volume("default", "copy.qcow2")
    assert not [p for p in layout.images_dir.iterdir() if p.name.startswith(".")]


def test_in_use_refusals_cover_backing_files(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="base.qcow2", capacity=1 << 20, format="qcow2"))
    driver.create_volume(
        "default",
        VolumeDef(
            name="top.qcow2", capacity=1 << 20, format="qcow2", backing=BackingStore("base.qcow2", "qcow2")
        ),
    )
    in_use = {str(layout.images_dir / "top.qcow2"): "vm1"}
    with pytest.raises(InvalidState, match="in use by running domain 'vm1'"):
        driver.delete_volume("default", "top.qcow2", in_use=in_use)
    with pytest.raises(InvalidState, match="as a backing file of"):
        driver.delete_volume("default", "base.qcow2", in_use=in_use)
    with pytest.raises(InvalidState, match="cannot resize"):
        driver.resize_volume(
            "default", "top.qcow2", 2 << 20, delta=False, shrink=False, allocate=False, in_use=in_use
        )
    with pytest.raises(InvalidState, match="upload to"):
        driver.open_volume("default", "base.qcow2", write=True, in_use=in_use)
    assert (layout.images_dir / "base.qcow2").exists()


def test_busy_volume_refuses_a_second_operation(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="v", capacity=4096))
    path = str(layout.images_dir / "v")
    with driver.busy(path, "being uploaded to"):
        with pytest.raises(InvalidState, match="busy"):
            driver.delete_volume("default", "v", in_use={})
        with pytest.raises(InvalidState, match="busy"):
            driver.check_not_busy([path])
    driver.delete_volume("default", "v", in_use={})


def test_shared_marks_coexist_and_exclude_exclusive_ones(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="t", capacity=4096))
    path = str(layout.images_dir / "t")
    with driver.busy(path, "being cloned to a", shared=True):
        with (
            driver.busy(path, "being cloned to b", shared=True),
            pytest.raises(InvalidState, match=r"busy \(being cloned to a\)"),
        ):
            driver.delete_volume("default", "t", in_use={})
        with pytest.raises(InvalidState, match="busy"):
            driver.check_not_busy([path])
    with (
        driver.busy(path, "being resized"),
        pytest.raises(InvalidState, match="being resized"),
        driver.busy(path, "being cloned to c", shared=True),
    ):
        pass
    driver.check_not_busy([path])
    driver.delete_volume("default", "t", in_use={})


def test_volume_operations_need_an_active_pool(layout: Layout, tmp_path: Path) -> None:
    driver = make_driver(layout)
    driver.define_xml(pool_xml("off", tmp_path / "off"))
    with pytest.raises(InvalidState, match="storage pool 'off' is not active"):
        driver.create_volume("off", VolumeDef(name="x", capacity=1))
    assert not (tmp_path / "off").exists()
    with pytest.raises(NotFound, match="no storage pool with matching name 'nope'"):
        driver.list_volumes("nope")


def test_failed_create_leaves_nothing(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    with pytest.raises(NotFound):
        driver.create_volume(
            "default", VolumeDef(name="t.qcow2", capacity=1, format="qcow2", backing=BackingStore("missing"))
        )
    with pytest.raises(OperationFailed, match="Not enough space"):
        driver.create_volume("default", VolumeDef(name="huge.img", capacity=1 << 62))
    assert list(layout.images_dir.iterdir()) == []


def test_path_lookup(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="v.img", capacity=4096))
    assert driver.pool_of_path(str(layout.images_dir / "v.img")) == ("default", "v.img")
    with pytest.raises(NotFound, match="matching path"):
        driver.pool_of_path("/nowhere/v.img")


def test_stream_extents_and_zeroes(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as fh:
        fh.truncate(8 << 20)
        fh.seek(4 << 20)
        fh.write(b"x" * 4096)
    fd = os.open(path, os.O_RDWR)
    try:
        pieces = list(stream.extents(fd, 0, 8 << 20, sparse=True))
        assert sum(n for _d, _o, n in pieces) == 8 << 20
        assert sum(n for d, _o, n in pieces if d) < 1 << 20
        assert list(stream.extents(fd, 0, 8 << 20, sparse=False)) == [(True, 0, 8 << 20)]
        stream.write_zeroes(fd, (4 << 20), 4096, file_size=8 << 20)
        stream.write_zeroes(fd, (8 << 20) - 10, 20, file_size=8 << 20)
        assert os.pread(fd, 4096, 4 << 20) == bytes(4096)
        assert os.fstat(fd).st_size == (8 << 20) + 10
    finally:
        os.close(fd)


def test_unreadable_image_is_shown_as_raw(tmp_path: Path) -> None:
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + b"\xff" * 100)
    info = volumes.describe(str(tmp_path), "bad.qcow2")
    assert info.format == "raw" and info.capacity == 104
