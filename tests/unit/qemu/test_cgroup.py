"""Where a domain's cgroup goes."""

from __future__ import annotations

from pathlib import Path

from pyvirt.qemu import cgroup


def test_parent_is_pyvirt_slice_for_the_system_daemon_and_its_own_slice_otherwise() -> None:
    assert cgroup.parent_for("", None) == "pyvirt.slice"
    one, two = cgroup.parent_for("/tmp/a/run/pyvirt", None), cgroup.parent_for("/tmp/b/run/pyvirt", None)
    assert one.startswith("pyvirt.slice/pyvirt-") and one.endswith(".slice") and one != two
    assert cgroup.parent_for("", "/machine/web") == "machine/web"  # <resource><partition>
    assert cgroup.scope_name("web01") == "pyvirt-web01.scope"


def test_accounting_controllers_are_enabled_below_our_slices(tmp_path: Path) -> None:
    slice_ = tmp_path / "pyvirt.slice"
    slice_.mkdir()
    (slice_ / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (slice_ / "cgroup.subtree_control").write_text("pids\n")
    cgroup._enable_controllers(slice_)
    assert (slice_ / "cgroup.subtree_control").read_text() == "+cpu +memory +io"


def test_a_daemons_slice_goes_with_its_last_group(tmp_path: Path) -> None:
    """A daemon over another root (a test's, say) leaves no slice behind; the shared slice and a
    <partition> stay. (Directories stand for the cgroup file system: rmdir refuses a non-empty one as
    cgroupfs refuses a group with children.)"""
    parent = cgroup.parent_for("/tmp/a/run/pyvirt", None)
    web = cgroup.create(tmp_path, parent, "web")
    db = cgroup.create(tmp_path, parent, "db")
    cgroup.remove(web)
    assert db.parent.is_dir()  # db's group is still there
    cgroup.remove(db)
    assert not (tmp_path / parent).exists() and (tmp_path / "pyvirt.slice").is_dir()
    part = cgroup.create(tmp_path, "machine/pyvirt-web", "web")
    cgroup.remove(part)
    assert (tmp_path / "machine/pyvirt-web").is_dir()
    # A slice removed by another domain's stop between the two steps of a create is made again.
    again = cgroup.create(tmp_path, parent, "web")
    assert again.is_dir()
