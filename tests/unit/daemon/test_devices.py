"""Disk hot-plug against a scripted QEMU: the files go over as fdsets and the nodes are added before the
device, a refused device_add leaves nothing behind, and a detach the guest does not answer fails after
its wait (the disk stays until the guest lets go, then its nodes and fdsets go)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pyvirt.daemon import devices
from pyvirt.errors import OperationFailed, UnsupportedConfig
from tests.support.fakeqmp import Bench, FakeQemu, QmpError, run_bench


def _disk_xml(root: Path) -> str:
    path = root / "extra.raw"
    path.write_bytes(b"\0" * 65536)
    return f"<disk type='file'><source file='{path}'/><target dev='vdb' bus='virtio'/></disk>"


def test_detach_the_guest_does_not_answer(
    root: Path, errors: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "REMOVAL_TIMEOUT", 0.05)

    def script(qemu: FakeQemu) -> None:
        qemu.auto_release = False

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu, obj = b.host["d1"], b.reg.lookup("d1")
        xml = _disk_xml(root)
        done = await devices.attach(b.reg, "d1", xml, live=True, config=False)
        assert done == {"kind": "disk", "alias": "virtio-disk1"}
        names = [name for name, _ in qemu.commands]
        assert names.index("add-fd") < names.index("blockdev-add") < names.index("device_add")
        added = [args for name, args in qemu.commands if name == "blockdev-add"]
        assert [a["node-name"] for a in added] == ["pyvirt-1-storage", "pyvirt-1-format"]
        assert added[0]["filename"] == "/dev/fdset/1"
        assert (
            "device_add",
            {"id": "virtio-disk1", "drive": "pyvirt-1-format", "driver": "virtio-blk-pci"},
        ) in (qemu.commands)
        assert obj.proc is not None and obj.proc.record.blockdevs["vdb"] == ["pyvirt-1"]
        with pytest.raises(OperationFailed, match="did not release disk vdb within"):
            await devices.detach(b.reg, "d1", xml, live=True, config=False)
        assert obj.live is not None and [d.target_dev for d in obj.live.devices.disks] == ["vdb"]
        assert qemu.count("blockdev-del") == 0
        qemu.guest_release("virtio-disk1")
        await b.event("device-removed", "virtio-disk1")
        assert obj.live.devices.disks == []
        deleted = [args["node-name"] for name, args in qemu.commands if name == "blockdev-del"]
        assert deleted == ["pyvirt-1-format", "pyvirt-1-storage"]
        assert ("remove-fd", {"fdset-id": 1}) in qemu.commands
        assert "vdb" not in obj.proc.record.blockdevs and "vdb" not in obj.proc.record.fdsets

    run_bench(root, body, script)


def test_a_refused_device_add_leaves_nothing(root: Path, errors: list[logging.LogRecord]) -> None:
    def script(qemu: FakeQemu) -> None:
        async def refuse(args: dict[str, object]) -> object:
            raise QmpError("Bus 'pci.0' does not support hotplugging")

        qemu.handle("device_add", refuse)

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu, obj = b.host["d1"], b.reg.lookup("d1")
        with pytest.raises(OperationFailed, match="does not support hotplugging"):
            await devices.attach(b.reg, "d1", _disk_xml(root), live=True, config=True)
        deleted = [args["node-name"] for name, args in qemu.commands if name == "blockdev-del"]
        assert deleted == ["pyvirt-1-format", "pyvirt-1-storage"]
        assert qemu.count("remove-fd") == 1
        assert obj.live is not None and obj.live.devices.disks == []
        assert obj.config is not None and obj.config.devices.disks == []  # --persistent: neither changed
        assert obj.proc is not None and "vdb" not in obj.proc.record.blockdevs

    run_bench(root, body, script)


def test_a_scsi_disk_brings_libvirts_default_controller(root: Path, errors: list[logging.LogRecord]) -> None:
    """A SCSI disk plugged into a domain without a SCSI controller: the controller goes first, of
    libvirt 9.0's x86 default model (lsilogic: QEMU's lsi), then the disk on its bus."""

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu, obj = b.host["d1"], b.reg.lookup("d1")
        path = root / "extra.raw"
        path.write_bytes(b"\0" * 65536)
        xml = f"<disk type='file'><source file='{path}'/><target dev='sda' bus='scsi'/></disk>"
        await devices.attach(b.reg, "d1", xml, live=True, config=False)
        added = [args for name, args in qemu.commands if name == "device_add"]
        # in pc's first free slot, as libvirt's hot-plug gives it
        assert added[0] == {"driver": "lsi", "id": "scsi0", "bus": "pci.0", "addr": "0x4"}
        assert added[1]["driver"] == "scsi-hd" and added[1]["id"] == "scsi0-0-0"
        assert (added[1]["bus"], added[1]["scsi-id"], "lun" in added[1]) == ("scsi0.0", 0, False)
        assert obj.live is not None
        assert [(c.type, c.model) for c in obj.live.devices.controllers if c.type == "scsi"] == [
            ("scsi", "lsilogic")
        ]

    run_bench(root, body)


@pytest.mark.parametrize(
    ("xml", "driver"),
    [
        ("<controller type='scsi' index='1'/>", "lsi"),
        ("<controller type='scsi' index='1' model='virtio-scsi'/>", "virtio-scsi-pci"),
        ("<controller type='scsi' index='1' model='lsisas1078'/>", "megasas"),
    ],
)
def test_scsi_controllers_plug_with_their_model(
    root: Path, xml: str, driver: str, errors: list[logging.LogRecord]
) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        await devices.attach(b.reg, "d1", xml, live=True, config=False)
        plugged = {"driver": driver, "id": "scsi1", "bus": "pci.0", "addr": "0x4"}  # pc's first free slot
        assert ("device_add", plugged) in b.host["d1"].commands

    run_bench(root, body)


def test_scsi_controller_tuning_is_refused_live(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        xml = "<controller type='scsi' index='1' model='virtio-scsi'><driver queues='4'/></controller>"
        with pytest.raises(UnsupportedConfig, match="the <driver> tuning of scsi controller 1"):
            await devices.attach(b.reg, "d1", xml, live=True, config=False)
        assert b.host["d1"].count("device_add") == 0

    run_bench(root, body)
