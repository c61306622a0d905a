"""The daemon's clone action on a real storage driver, with a scripted domain registry: what is made, the
busy marks held while it runs, and nothing left when the definition fails at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyvirt.conf.domain_xml import parse_domain
from pyvirt.daemon.clones import CloneAPI
from pyvirt.daemon.events import EventBus
from pyvirt.errors import AlreadyExists, InvalidState, OperationFailed
from pyvirt.guest.clone import CloneOptions
from pyvirt.guest.template import TemplateStore
from pyvirt.image.api import create_image
from pyvirt.paths import Layout, system_layout
from pyvirt.storage.driver import StorageDriver


class Registry:
    """The registry's surface the clone uses; ``define`` records the XML, or fails when told to."""

    def __init__(self, storage: StorageDriver, template: str) -> None:
        self.defined: list[str] = []
        self.fail: Exception | None = None
        self.storage = storage
        self.template = template
        self.busy_seen: list[str] = []

    def all(self) -> list[Any]:
        return []

    def accel_check(self) -> tuple[bool, str]:
        return False, "no KVM in this test"

    async def define(self, xml: str) -> None:
        # While the clone runs: the template is shared-marked, a resize of it is refused.
        try:
            with self.storage.busy(self.template, "being resized"):
                self.busy_seen.append("not marked")
        except InvalidState as err:
            self.busy_seen.append(err.message)
        if self.fail is not None:
            raise self.fail
        self.defined.append(xml)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[CloneAPI, Registry, Path]:
    layout: Layout = system_layout(tmp_path / "root")
    layout.run_dir.mkdir(parents=True)
    layout.ensure()
    storage = StorageDriver(layout)
    storage.load()
    storage.ensure_default()
    folder = layout.images_dir
    image = tmp_path / "work" / "disk.qcow2"
    image.parent.mkdir()
    create_image(str(image), "qcow2", 4 << 20)
    TemplateStore(folder).install("tpl", image, os_name="test", source="unit test")
    registry = Registry(storage, str(folder / "tpl.template.qcow2"))
    api = CloneAPI(storage, EventBus())
    asyncio.run(api.startup(registry))  # type: ignore[arg-type]
    return api, registry, folder


def test_linked_clone_from_a_template(setup: tuple[CloneAPI, Registry, Path]) -> None:
    api, registry, folder = setup
    result = asyncio.run(
        api.clone(CloneOptions(original="tpl", name="c1", network="user", disk_size=8 << 20))
    )
    assert (result.kind, result.linked, result.disks, result.seed) == (
        "template",
        True,
        ["c1.qcow2"],
        "c1-seed.iso",
    )
    assert registry.busy_seen and "being cloned to c1" in registry.busy_seen[0]
    dom = parse_domain(registry.defined[0])
    assert dom.type == "qemu"  # the daemon's KVM probe said no
    assert [d.source_volume for d in dom.devices.disks] == ["c1.qcow2", "c1-seed.iso"]
    assert dom.devices.interfaces[0].mac == result.macs[0]
    assert (folder / "c1.qcow2").stat().st_mode & 0o777 == 0o600
    assert result.steps[0] == f"Disk c1.qcow2: overlay on {folder / 'tpl.template.qcow2'}"
    # The marks are gone: the template may be resized again.
    with api.storage.busy(str(folder / "tpl.template.qcow2"), "being resized"):
        pass


def test_failed_definition_leaves_nothing(setup: tuple[CloneAPI, Registry, Path]) -> None:
    api, registry, folder = setup
    before = sorted(p.name for p in folder.iterdir())
    registry.fail = OperationFailed("definition refused")
    for linked in (True, False):
        with pytest.raises(OperationFailed, match="definition refused"):
            asyncio.run(api.clone(CloneOptions(original="tpl", name="c2", network="none", linked=linked)))
        assert sorted(p.name for p in folder.iterdir()) == before


def test_existing_volume_refused_before_anything_is_made(setup: tuple[CloneAPI, Registry, Path]) -> None:
    api, registry, folder = setup
    (folder / "c3-seed.iso").write_bytes(b"")  # a leftover seed is replaced; a disk name is refused
    (folder / "c3.qcow2").write_bytes(b"")
    with pytest.raises(AlreadyExists, match=r"volume c3\.qcow2 exists already"):
        asyncio.run(api.clone(CloneOptions(original="tpl", name="c3", network="none")))
    assert registry.defined == [] and registry.busy_seen == []
    assert (folder / "c3-seed.iso").exists()  # nothing changed by a refused clone
    (folder / "c3.qcow2").unlink()
    result = asyncio.run(api.clone(CloneOptions(original="tpl", name="c3", network="none")))
    assert result.steps[0] == "Replacing c3-seed.iso, left by a domain of that name that is gone"
    assert (folder / "c3-seed.iso").stat().st_size > 0


def test_a_domain_whose_disk_is_being_cloned_does_not_start(
    setup: tuple[CloneAPI, Registry, Path], tmp_path: Path
) -> None:
    """The clone of a shut-off domain reads its disks: starting that domain meanwhile is refused."""
    from types import SimpleNamespace

    from pyvirt.daemon.launch import check_disks
    from pyvirt.daemon.storage import StorageHook

    api, _registry, _folder = setup
    disk = tmp_path / "orig.qcow2"
    create_image(str(disk), "qcow2", 1 << 20)
    dom = parse_domain(
        "<domain type='qemu'><name>orig</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><disk type='file' device='disk'>"
        f"<driver name='qemu' type='qcow2'/><source file='{disk}'/><target dev='vda'/></disk>"
        "</devices></domain>"
    )
    reg = SimpleNamespace(storage=StorageHook(api.storage))
    with (
        api.storage.busy(str(disk), "being cloned to copy", shared=True),
        pytest.raises(InvalidState, match=r"busy \(being cloned to copy\)"),
    ):
        check_disks(reg, dom)  # type: ignore[arg-type]
    assert check_disks(reg, dom) == {}  # type: ignore[arg-type]
