"""The daemon's launch action when the start fails: the start's error is the one returned, and the undo
removes what the clone made even when a step of it fails unexpectedly."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon.provision import LaunchAPI
from pyvirt.errors import OperationFailed
from pyvirt.guest.clone import CloneOptions, CloneResult
from pyvirt.guest.template import TemplateStore


class Domains:
    """The registry's surface the launch uses: the start fails; the undo's undefine fails as told."""

    def __init__(self, undefine_error: Exception | None) -> None:
        self.undefine_error = undefine_error
        self.calls: list[str] = []

    async def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        raise OperationFailed("internal error: QEMU exited while connecting to its monitor: no memory")

    def lookup(self, name: str) -> Any:
        self.calls.append(f"lookup {name}")
        return type("Obj", (), {"active": False})()

    async def undefine(self, name: str) -> None:
        self.calls.append(f"undefine {name}")
        if self.undefine_error is not None:
            raise self.undefine_error


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, ...]] = []

    def publish(self, *args: str) -> None:
        self.published.append(args)


class Clones:
    def __init__(self, folder: Path, domains: Domains) -> None:
        self.folder = folder
        self.domains = domains
        self.events = Events()

    def _pool_folder(self, pool: str) -> Path:
        return self.folder

    async def clone(self, opts: CloneOptions) -> CloneResult:
        for vol in ("x3.qcow2", "x3-seed.iso"):
            (self.folder / vol).write_bytes(b"made by the clone")
        return CloneResult(
            name=opts.name,
            uuid="u",
            original=opts.original,
            kind="template",
            linked=True,
            disks=["x3.qcow2"],
            seed="x3-seed.iso",
        )


@pytest.mark.parametrize("undefine_error", [None, OSError(5, "Input/output error")])
def test_a_failed_start_returns_its_own_error_and_removes_the_clone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    undefine_error: Exception | None,
) -> None:
    monkeypatch.setattr(TemplateStore, "exists", lambda self, name: name == "bb")
    domains = Domains(undefine_error)
    clones = Clones(tmp_path, domains)
    api = LaunchAPI(clones)  # type: ignore[arg-type]
    with pytest.raises(OperationFailed, match="no memory"):
        asyncio.run(api.launch(CloneOptions(original="bb", name="x3")))
    assert domains.calls == ["start x3", "lookup x3", "undefine x3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert sorted(e[1] for e in clones.events.published) == ["default/x3-seed.iso", "default/x3.qcow2"]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged == ([] if undefine_error is None else ["while undoing the failed launch of x3"])
