"""Where a domain's cgroup goes."""

from __future__ import annotations

from pyvirt.qemu import cgroup


def test_parent_is_pyvirt_slice_for_the_system_daemon_and_its_own_slice_otherwise() -> None:
    assert cgroup.parent_for("", None) == "pyvirt.slice"
    one, two = cgroup.parent_for("/tmp/a/run/pyvirt", None), cgroup.parent_for("/tmp/b/run/pyvirt", None)
    assert one.startswith("pyvirt.slice/pyvirt-") and one.endswith(".slice") and one != two
    assert cgroup.parent_for("", "/machine/web") == "machine/web"  # <resource><partition>
    assert cgroup.scope_name("web01") == "pyvirt-web01.scope"
