"""Templates without a daemon: names, the debootstrap cache key, the store's files, the disk layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import AlreadyExists, InvalidArgument, NotFound
from pyvirt.guest import debootstrap, template
from pyvirt.image.api import create_image, image_info


def test_release_names_the_known_ones_when_unknown() -> None:
    assert debootstrap.release("debian-12").suite == "bookworm"
    with pytest.raises(InvalidArgument, match=r"unknown --os 'bogus-1'.*debian-12"):
        debootstrap.release("bogus-1")


@pytest.mark.parametrize(
    ("name", "suite"), [("debian-11", "bullseye"), ("debian-12", "bookworm"), ("debian-13", "trixie")]
)
def test_every_debian_release_is_offered(name: str, suite: str) -> None:
    rel = debootstrap.release(name)
    assert rel.suite == suite and rel.mirror == "http://deb.debian.org/debian"
    assert debootstrap.tree_path(Path("/c"), rel, ("x",)).name.startswith(f"{suite}-")


def test_package_version_from_the_trees_dpkg_status(tmp_path: Path) -> None:
    status = tmp_path / "var/lib/dpkg/status"
    assert debootstrap.package_version(tmp_path, "cloud-init") == ""  # no dpkg database at all
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: cloud-guest-utils\nStatus: install ok installed\nVersion: 0.31-2\n\n"
        "Package: cloud-init\nStatus: install ok installed\nPriority: optional\n"
        "Version: 20.4.1-2+deb11u1\nDescription: x\n\n"
        "Package: systemd\nVersion: 1:252.30-1~deb12u2\n"
    )
    assert debootstrap.package_version(tmp_path, "cloud-init") == "20.4.1"
    assert debootstrap.package_version(tmp_path, "cloud-guest-utils") == "0.31"
    assert debootstrap.package_version(tmp_path, "systemd") == "252.30"  # epoch and revision off
    assert debootstrap.package_version(tmp_path, "sudo") == ""


def test_cache_key_depends_on_packages_not_their_order() -> None:
    rel = debootstrap.release("debian-12")
    key = debootstrap.cache_key(rel, ("a", "b"))
    assert key == debootstrap.cache_key(rel, ("b", "a"))
    assert key != debootstrap.cache_key(rel, ("a", "b", "c"))
    assert key != debootstrap.cache_key(rel, ("a", "b"), variant="buildd")


def test_cached_tree_needs_its_stamp(tmp_path: Path) -> None:
    rel = debootstrap.release("debian-12")
    tree = debootstrap.tree_path(tmp_path, rel, ("x",))
    tree.mkdir(parents=True)
    assert debootstrap.cached_tree(tmp_path, rel, ("x",)) is None
    (tree / debootstrap.STAMP).write_text("{}")
    assert debootstrap.cached_tree(tmp_path, rel, ("x",)) == tree


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x.qcow2", "a b", "x" * 201, "x.json"])
def test_bad_template_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid template name"):
        template.check_name(name)


def _qcow2(path: Path, size: int = 1 << 20) -> Path:
    create_image(str(path), "qcow2", size)
    return path


def test_store_install_list_get_remove(tmp_path: Path) -> None:
    store = template.TemplateStore(tmp_path)
    assert store.list() == []
    with store.staging("t1") as work:
        assert work.parent == tmp_path and work.name.startswith(".")
        tmpl = store.install("t1", _qcow2(work / "disk.qcow2"), os_name="debian-12", source="test")
    assert not work.exists()
    assert tmpl.volume == "t1.template.qcow2" and tmpl.virtual_size == 1 << 20
    assert os.stat(tmpl.path).st_mode & 0o777 == 0o444
    meta = json.loads((tmp_path / ".t1.template.json").read_text())
    assert meta["os"] == "debian-12" and meta["source"] == "test" and "cloud_init" not in meta
    assert [t.name for t in store.list()] == ["t1"]
    assert store.get("t1") == tmpl
    # Only the volume and the hidden sidecar remain in the pool folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t1.template.json", "t1.template.qcow2"]
    with store.staging("t2") as work:
        t2 = store.install(
            "t2", _qcow2(work / "d.qcow2"), os_name="debian-11", source="s", cloud_init="20.4.1"
        )
    assert t2.cloud_init == "20.4.1" and store.get("t2").cloud_init == "20.4.1" and tmpl.cloud_init == ""
    store.remove_sidecar("t2")
    os.unlink(t2.path)
    with store.staging("t1") as work, pytest.raises(AlreadyExists):
        store.install("t1", _qcow2(work / "disk.qcow2"), os_name="x", source="y")
    assert [t.name for t in store.list()] == ["t1"]
    os.unlink(tmpl.path)
    assert store.list() == []  # a sidecar without its volume is no template
    store.remove_sidecar("t1")
    with pytest.raises(NotFound, match="template t1 not found"):
        store.get("t1")


def test_staging_is_removed_on_failure(tmp_path: Path) -> None:
    store = template.TemplateStore(tmp_path)
    with pytest.raises(RuntimeError), store.staging("t") as work:
        (work / "disk.raw").write_bytes(b"x")
        raise RuntimeError("failed part-way")
    assert list(tmp_path.iterdir()) == []


def test_install_refuses_an_overlay(tmp_path: Path) -> None:
    store = template.TemplateStore(tmp_path)
    base = _qcow2(tmp_path / "base.qcow2")
    with store.staging("t") as work:
        overlay = work / "o.qcow2"
        create_image(str(overlay), "qcow2", None, backing=str(base), backing_fmt="qcow2")
        with pytest.raises(Exception, match="standalone qcow2"):
            store.install("t", overlay, os_name="x", source="y")
    assert store.list() == []


def test_grub_defaults_set_or_appended() -> None:
    text = "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n#GRUB_TERMINAL=console\n"
    out = template._set_grub_default(text, "GRUB_TIMEOUT", "1")
    assert out == "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n#GRUB_TERMINAL=console\n"
    assert template._set_grub_default("A=1\n", "GRUB_TIMEOUT", "1") == "A=1\nGRUB_TIMEOUT=1\n"


@pytest.mark.skipif(
    not (shutil.which("sfdisk") and shutil.which("mkfs.ext4") and shutil.which("debugfs")),
    reason="needs sfdisk, mkfs.ext4 and debugfs",
)
def test_make_disk_partition_and_filesystem(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text("ID=debian\n")
    raw = tmp_path / "disk.raw"
    uuid = "0b0e0c8e-1111-4222-8333-444455556666"
    template.make_disk(raw, tree, 64 << 20, uuid)
    assert raw.stat().st_size == 64 << 20
    layout = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True).stdout)
    (part,) = layout["partitiontable"]["partitions"]
    assert layout["partitiontable"]["label"] == "dos"
    assert part["start"] == 2048 and part["bootable"] and part["type"] == "83"
    assert (part["start"] + part["size"]) * 512 == 64 << 20
    part_img = tmp_path / "part.img"
    with open(raw, "rb") as src, open(part_img, "wb") as dst:
        src.seek(1 << 20)
        shutil.copyfileobj(src, dst)
    out = subprocess.run(
        ["debugfs", "-R", "cat /etc/os-release", str(part_img)], capture_output=True, text=True
    ).stdout
    assert out == "ID=debian\n"
    blkid = subprocess.run(["blkid", "-p", "-o", "export", str(part_img)], capture_output=True, text=True)
    assert f"UUID={uuid}" in blkid.stdout and "LABEL=root" in blkid.stdout


def test_make_disk_too_small_says_so(tmp_path: Path) -> None:
    if not (shutil.which("sfdisk") and shutil.which("mkfs.ext4")):
        pytest.skip("needs sfdisk and mkfs.ext4")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(4 << 20))
    with pytest.raises(Exception, match="is --size big enough"):
        template.make_disk(tmp_path / "d.raw", tree, 3 << 20, "0b0e0c8e-1111-4222-8333-444455556666")


def test_image_info_of_installed_template(tmp_path: Path) -> None:
    store = template.TemplateStore(tmp_path)
    with store.staging("t") as work:
        tmpl = store.install("t", _qcow2(work / "d.qcow2", 3 << 20), os_name="x", source="y")
    assert image_info(tmpl.path)["virtual-size"] == 3 << 20
