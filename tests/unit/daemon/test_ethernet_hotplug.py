"""``<interface type='ethernet'>`` plugged into and out of a running domain, against a scripted QEMU and a
stand-in network driver: the tap made (or the user's found), the script run with its name, the tap's
descriptor handed over with ``getfd`` for ``netdev_add``; at detach the downscript run and only the
daemon's tap deleted; a refused ``device_add`` deletes the tap it made."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon import devices
from pyvirt.errors import OperationFailed
from tests.support.fakeqmp import Bench, FakeQemu, QmpError, run_bench


class FakeNetworks:
    """The network driver's tap calls, recorded (the real ones: tests/integration/daemon)."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.unplugged: list[str] = []

    async def plug_ethernet(self, *, tap: str | None, mac: str, owner: int | None, **_: Any) -> str:
        self.made.append(tap or "vnet7")
        return self.made[-1]

    async def tap_kind(self, tap: str) -> str | None:
        return "tun" if tap == "usertap0" else None

    async def open_tap(self, tap: str) -> int:
        return os.open("/dev/null", os.O_RDWR)

    def unplug_tap(self, tap: str) -> None:
        self.unplugged.append(tap)


async def _running(b: Bench) -> FakeNetworks:
    """Domain d1 defined and started, the daemon's network driver replaced by the stand-in."""
    await b.define("d1")
    await b.reg.start("d1")
    nets = FakeNetworks()
    b.reg.networks = nets  # type: ignore[assignment]
    return nets


def _script(qemu: FakeQemu) -> None:
    async def ok(args: dict[str, Any]) -> Any:
        return {}

    qemu.handle("getfd", ok)
    qemu.handle("closefd", ok)


def _scripts(root: Path) -> tuple[str, Path]:
    marker = root / "marker"
    for name in ("up", "down"):
        (root / f"{name}.sh").write_text(f'#!/bin/sh\necho "$1 {name}" >> {marker}\n')
        (root / f"{name}.sh").chmod(0o755)
    xml = (
        "<interface type='ethernet'><mac address='52:54:00:e0:00:09'/>"
        f"<script path='{root}/up.sh'/><downscript path='{root}/down.sh'/><model type='virtio'/></interface>"
    )
    return xml, marker


def test_managed_tap_plugged_and_unplugged(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        nets = await _running(b)
        qemu, obj = b.host["d1"], b.reg.lookup("d1")
        xml, marker = _scripts(root)
        await devices.attach(b.reg, "d1", xml, live=True, config=False)
        assert nets.made == ["vnet7"] and marker.read_text() == "vnet7 up\n"
        assert ("getfd", {"fdname": "hostnet1-fd"}) in qemu.commands
        assert ("netdev_add", {"type": "tap", "id": "hostnet1", "fd": "hostnet1-fd"}) in qemu.commands
        assert obj.proc is not None and "vnet7" in obj.proc.record.taps
        await devices.detach(b.reg, "d1", xml, live=True, config=False)
        assert marker.read_text() == "vnet7 up\nvnet7 down\n"
        assert nets.unplugged == ["vnet7"] and "vnet7" not in obj.proc.record.taps
        assert ("netdev_del", {"id": "hostnet1"}) in qemu.commands

    run_bench(root, body, _script)


def test_the_users_tap_is_left_behind(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        nets = await _running(b)
        xml = (
            "<interface type='ethernet'><mac address='52:54:00:e0:00:0a'/>"
            "<target dev='usertap0' managed='no'/><model type='virtio'/></interface>"
        )
        await devices.attach(b.reg, "d1", xml, live=True, config=False)
        assert nets.made == []
        await devices.detach(b.reg, "d1", xml, live=True, config=False)
        assert nets.unplugged == []
        missing = xml.replace("usertap0", "nosuchtap").replace(":0a", ":0b")
        with pytest.raises(OperationFailed, match="no device 'nosuchtap'"):
            await devices.attach(b.reg, "d1", missing, live=True, config=False)

    run_bench(root, body, _script)


def test_a_refused_device_add_deletes_the_tap_it_made(root: Path, errors: list[logging.LogRecord]) -> None:
    def script(qemu: FakeQemu) -> None:
        _script(qemu)

        async def refuse(args: dict[str, object]) -> object:
            raise QmpError("No free slot")

        qemu.handle("device_add", refuse)

    async def body(b: Bench) -> None:
        nets = await _running(b)
        xml, _marker = _scripts(root)
        with pytest.raises(OperationFailed, match="No free slot"):
            await devices.attach(b.reg, "d1", xml, live=True, config=False)
        assert nets.unplugged == ["vnet7"]
        assert ("netdev_del", {"id": "hostnet1"}) in b.host["d1"].commands
        obj = b.reg.lookup("d1")
        assert obj.live is not None and len(obj.live.devices.interfaces) == 1

    run_bench(root, body, script)
