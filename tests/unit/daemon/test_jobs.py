"""domjobinfo/domjobabort on a domain in a job state (pyvirt.daemon.display), with a scripted monitor:
the job is read from the lifecycle, its progress from query-migrate, and a save or migration is
cancelled (the operation running it then fails and puts the domain back: shown with a real save
against a scripted QEMU)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyvirt.cli.keys import _capacity
from pyvirt.daemon import saves
from pyvirt.daemon.display import DisplayAPI
from pyvirt.daemon.lifecycle import DomainState
from pyvirt.errors import InvalidState, OperationFailed
from tests.support.fakeqmp import Bench, FakeQemu, run_bench


class Monitor:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.calls.append(command)
        if command == "query-migrate":
            return {
                "status": "active",
                "total-time": 1500,
                "ram": {"transferred": 3 << 20, "remaining": 1 << 20, "total": 4 << 20},
            }
        return {}


class Proc:
    def __init__(self) -> None:
        self.monitor = Monitor()


class Obj:
    def __init__(self, state: DomainState) -> None:
        self.state = state
        self.name = "vm1"
        self.proc = Proc() if state.active else None

    @property
    def active(self) -> bool:
        return self.proc is not None


class Registry:
    def __init__(self, obj: Obj) -> None:
        self.obj = obj

    def lookup(self, key: str) -> Obj:
        return self.obj


class Request:
    params = {"name": "vm1"}


def api(state: DomainState) -> tuple[DisplayAPI, Obj]:
    obj = Obj(state)
    display = DisplayAPI()
    asyncio.run(display.startup(Registry(obj)))  # type: ignore[arg-type]
    return display, obj


def test_no_job() -> None:
    display, _ = api(DomainState.RUNNING)
    assert asyncio.run(display.jobinfo(Request())) == {"type": "None", "operation": ""}  # type: ignore[arg-type]
    with pytest.raises(InvalidState, match="no job is active on the domain"):
        asyncio.run(display.jobabort(Request()))  # type: ignore[arg-type]


def test_a_save_in_progress_is_reported_and_cancelled() -> None:
    display, obj = api(DomainState.SAVING)
    info = asyncio.run(display.jobinfo(Request()))  # type: ignore[arg-type]
    stats = info.pop("stats")  # libvirt's job statistics (tests/unit/qemu/test_migstats.py)
    assert info == {
        "type": "Unbounded",
        "operation": "Save",
        "time_elapsed_ms": 1500,
        "data_processed": 3 << 20,
        "data_remaining": 1 << 20,
        "data_total": 4 << 20,
    }
    assert stats["time_elapsed"] == 1500 and stats["memory_processed"] == 3 << 20
    asyncio.run(display.jobabort(Request()))  # type: ignore[arg-type]
    assert obj.proc is not None and obj.proc.monitor.calls[-1] == "migrate_cancel"


def test_a_migration_being_set_up_has_no_figures_yet() -> None:
    display, obj = api(DomainState.SAVING)
    assert obj.proc is not None

    async def setup(command: str, arguments: dict[str, Any] | None = None) -> Any:
        return {"status": "setup"}  # QEMU 7.2's query-migrate before the first pass: no ram, no total-time

    obj.proc.monitor.execute = setup  # type: ignore[method-assign]
    info = asyncio.run(display.jobinfo(Request()))  # type: ignore[arg-type]
    assert info == {"type": "Unbounded", "operation": "Save"}


def test_a_snapshot_cannot_be_aborted() -> None:
    display, obj = api(DomainState.SNAPSHOTTING)
    with pytest.raises(OperationFailed, match="snapshot job of domain 'vm1' cannot be aborted"):
        asyncio.run(display.jobabort(Request()))  # type: ignore[arg-type]
    assert obj.proc is not None and "migrate_cancel" not in obj.proc.monitor.calls


def test_capacity_as_virsh() -> None:
    assert _capacity(512) == "512.000 B"
    assert _capacity(3 << 20) == "3.000 MiB"
    assert _capacity(1536 << 30) == "1.500 TiB"


def test_a_real_save_is_reported_then_aborted(root: Path) -> None:
    cancelled = asyncio.Event()

    def script(qemu: FakeQemu) -> None:
        async def ok(args: dict[str, Any]) -> Any:
            return {}

        async def query_migrate(args: dict[str, Any]) -> Any:
            if cancelled.is_set():
                qemu.status = "paused"
                return {"status": "cancelled"}
            return {
                "status": "active",
                "total-time": 20,
                "ram": {"total": 1000, "remaining": 400, "transferred": 600},
            }

        async def migrate_cancel(args: dict[str, Any]) -> Any:
            cancelled.set()
            return {}

        for command in ("getfd", "migrate-set-parameters", "migrate"):
            qemu.handle(command, ok)
        qemu.handle("query-migrate", query_migrate)
        qemu.handle("migrate_cancel", migrate_cancel)

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        display = DisplayAPI()
        await display.startup(b.reg)
        request = Request()
        request.params = {"name": "d1"}
        saving = asyncio.ensure_future(saves.save(b.reg, "d1", str(root / "d1.save")))
        await b.host["d1"].received("migrate").wait()
        info = await display.jobinfo(request)  # type: ignore[arg-type]
        assert (info["type"], info["operation"], info["data_remaining"]) == ("Unbounded", "Save", 400)
        await display.jobabort(request)  # type: ignore[arg-type]
        with pytest.raises(OperationFailed, match="migration cancelled"):
            await saving
        assert b.state("d1") == "running (save canceled)"
        assert not (root / "d1.save").exists()
        assert (await display.jobinfo(request))["type"] == "None"  # type: ignore[arg-type]

    run_bench(root, body, script)
