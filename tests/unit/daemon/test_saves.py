"""save against a scripted QEMU (tests/support/fakeqmp.py): the domain is SAVING while QEMU migrates
(dominfo and domstate show ``paused (saving)``), and a migration that fails or is cancelled leaves the
guest running as before and no file behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon import saves
from pyvirt.daemon.lifecycle import DomainState
from pyvirt.errors import OperationFailed
from pyvirt.qemu import savefile
from tests.support.fakeqmp import Bench, FakeQemu, QmpError, run_bench

STREAM = b"QEVM" + bytes(100_000)


def scripted(outcome: str, release: asyncio.Event, image: Path) -> Any:
    """QEMU's side of a migration to ``image``: active until ``release``, then ``outcome``."""

    def script(qemu: FakeQemu) -> None:
        async def ok(args: dict[str, Any]) -> Any:
            return {}

        async def migrate(args: dict[str, Any]) -> Any:
            if args.get("uri") != f"fd:{saves.FD_NAME}":
                raise QmpError(f"unexpected uri {args.get('uri')}")
            qemu.status = "finish-migrate"
            return {}

        async def query_migrate(args: dict[str, Any]) -> Any:
            if not release.is_set():
                return {"status": "active", "ram": {"total": 1000, "remaining": 400, "transferred": 600}}
            if outcome == "completed":
                with open(image, "r+b") as fh:  # what QEMU wrote through the descriptor it was given
                    fh.seek(0, 2)
                    fh.write(STREAM)
                qemu.status = "postmigrate"
                return {"status": "completed"}
            qemu.status = "paused"
            return {"status": outcome, "error-desc": "No space left on device"}

        for command in ("getfd", "migrate-set-parameters"):
            qemu.handle(command, ok)
        qemu.handle("migrate", migrate)
        qemu.handle("query-migrate", query_migrate)

    return script


def test_saving_shows_and_completes(root: Path) -> None:
    release = asyncio.Event()
    image = root / "d1.save"

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        task = asyncio.ensure_future(saves.save(b.reg, "d1", str(image)))
        await b.host["d1"].received("migrate").wait()
        assert b.reg.lookup("d1").state is DomainState.SAVING
        assert b.state("d1") == "paused (saving)"
        assert b.reg.info("d1")["state"] == "paused"
        assert savefile.PARTIAL in image.read_bytes()[:16]  # never taken for a complete image meanwhile
        release.set()
        await task
        assert b.state("d1") == "shut off (saved)"
        header = savefile.read(str(image))
        assert header.running and header.stream_len == len(STREAM) and "<name>d1</name>" in header.xml
        assert b.drain()[-1] == ("stopped", "saved")

    run_bench(root, body, scripted("completed", release, image))


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_a_failed_save_leaves_the_guest_running_and_no_file(root: Path, outcome: str) -> None:
    release = asyncio.Event()
    release.set()
    image = root / "d1.save"

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        with pytest.raises(OperationFailed, match=f"migration {outcome}: No space left on device"):
            await saves.save(b.reg, "d1", str(image))
        assert not image.exists()
        assert b.state("d1") == "running (save canceled)"
        assert b.host["d1"].status == "running"

    run_bench(root, body, scripted(outcome, release, image))


def test_a_paused_domain_stays_paused_after_a_failed_save(root: Path) -> None:
    release = asyncio.Event()
    release.set()
    image = root / "d1.save"

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1", paused=True)
        with pytest.raises(OperationFailed):
            await saves.save(b.reg, "d1", str(image), running=True)
        assert not image.exists()
        assert b.state("d1") == "paused (user)"
        assert b.host["d1"].count("cont") == 0

    run_bench(root, body, scripted("failed", release, image))
