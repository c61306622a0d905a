"""Block jobs against a scripted QEMU: the backing chain handed over by descriptor before the first
job, and a job's end applied whether its event arrives or it ended while no daemon listened."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon import blockjobs
from pyvirt.errors import InvalidArgument, InvalidState
from pyvirt.image.create import create_image
from tests.support.fakeqmp import Bench, FakeQemu, run_bench

XML = """<domain type='qemu'>
  <name>d1</name>
  <memory unit='KiB'>131072</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{top}'/>
      <target dev='vda' bus='virtio'/></disk>
    <serial type='pty'/>
  </devices>
</domain>
"""


class Graph:
    """QEMU's block graph as the fake shows it: the disk's top over the base QEMU opened by path,
    then over the nodes the daemon added (blockdev-add, blockdev-reopen)."""

    def __init__(self, below: tuple[str, str] = ("#block1", "#block2")) -> None:
        self.added: dict[str, dict[str, Any]] = {}
        self.below = below  # the base's format and file nodes QEMU has at start
        self.backing = below[0]
        self.jobs: list[dict[str, Any]] = []

    def install(self, qemu: FakeQemu) -> None:
        async def add(args: dict[str, Any]) -> Any:
            self.added[str(args["node-name"])] = args
            return {}

        async def reopen(args: dict[str, Any]) -> Any:
            self.backing = str(args["options"][0]["backing"])
            return {}

        async def graph(args: dict[str, Any]) -> Any:
            nodes = [("pyvirt-1-format", 1), ("pyvirt-1-storage", 2)]
            edges = [(1, "file", 2)]
            if self.backing == self.below[0]:
                nodes += [(self.below[0], 3), (self.below[1], 4)]
                edges += [(1, "backing", 3), (3, "file", 4)]
            else:
                fmt = self.added[self.backing]
                nodes += [(self.backing, 3), (str(fmt["file"]), 4)]
                edges += [(1, "backing", 3), (3, "file", 4)]
            return {
                "nodes": [{"id": i, "name": n, "type": "block-driver"} for n, i in nodes],
                "edges": [{"parent": p, "name": name, "child": c} for p, name, c in edges],
            }

        async def ok(args: dict[str, Any]) -> Any:
            return {}

        async def jobs(args: dict[str, Any]) -> Any:
            return self.jobs

        async def named(args: dict[str, Any]) -> Any:
            return [{"node-name": self.below[1], "ro": True}]  # opened read-only

        for name, handler in {
            "blockdev-add": add,
            "blockdev-reopen": reopen,
            "x-debug-query-block-graph": graph,
            "block-stream": ok,
            "block-commit": ok,
            "job-dismiss": ok,
            "query-jobs": jobs,
            "query-fdsets": lambda args: _list(),
            "query-named-block-nodes": named,
        }.items():
            qemu.handle(name, handler)


async def _list() -> Any:
    return []


def images(root: Path) -> tuple[Path, Path]:
    base, top = root / "base.qcow2", root / "top.qcow2"
    create_image(str(base), "qcow2", 1 << 20)
    create_image(str(top), "qcow2", None, backing=str(base), backing_fmt="qcow2")
    return base, top


def test_a_pull_that_ended_while_no_daemon_listened_is_applied_by_the_next(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    base, top = images(root)
    graph = Graph()

    async def body(b: Bench) -> None:
        await b.reg.define(XML.format(top=top))
        await b.reg.start("d1")
        qemu = b.host["d1"]
        obj = b.reg.lookup("d1")
        assert obj.live is not None
        assert [layer.source for layer in obj.live.devices.disks[0].backing or []] == [str(base)]
        await blockjobs.pull(b.reg, "d1", "vda", bandwidth=1 << 20)
        # The base was handed over by descriptor and put under the top in place of QEMU's own node.
        opts = next(a for a in graph.added.values() if a["driver"] == "file")
        assert opts["filename"].startswith("/dev/fdset/") and opts["read-only"] is False
        assert graph.backing not in graph.below
        stream = next(args for cmd, args in qemu.commands if cmd == "block-stream")
        assert stream == {
            "job-id": "pull-vda",
            "device": "pyvirt-1-format",
            "auto-dismiss": False,
            "speed": 1 << 20,
        }
        with pytest.raises(InvalidState, match="already in active block job"):
            await blockjobs.commit(b.reg, "d1", "vda", active=True)
        assert b.record("d1")["blockjobs"]["vda"]["state"] == "running"

        graph.jobs = [{"id": "pull-vda", "type": "stream", "status": "concluded"}]
        await b.restart_daemon()
        obj = b.reg.lookup("d1")
        assert obj.live is not None and obj.live.devices.disks[0].backing == []
        assert b.record("d1")["blockjobs"]["vda"]["state"] == "completed"
        assert ("job-dismiss", {"id": "pull-vda"}) in b.host["d1"].commands
        assert ("blockdev-del", {"node-name": graph.backing}) in b.host["d1"].commands
        info = await blockjobs.info(b.reg, "d1", "vda")
        assert (info["type"], info["state"]) == ("pull", "completed")
        assert ("block-job", "completed") in [(e.kind, e.event) for e in _events(b)]

    run_bench(root, body, graph.install)


def test_a_running_job_is_found_again_and_its_failure_leaves_the_chain(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    base, top = images(root)
    graph = Graph()

    async def body(b: Bench) -> None:
        await b.reg.define(XML.format(top=top))
        await b.reg.start("d1")
        with pytest.raises(InvalidArgument, match="could not find image"):
            await blockjobs.commit(b.reg, "d1", "vda", active=True, base=str(root / "other.qcow2"))
        with pytest.raises(InvalidArgument, match="not found in domain"):
            await blockjobs.pull(b.reg, "d1", "vdz")
        assert b.host["d1"].count("blockdev-add") == 0  # refused before anything was done
        await blockjobs.commit(b.reg, "d1", "vda", active=True)
        graph.jobs = [{"id": "commit-vda", "type": "commit", "status": "running"}]
        await b.restart_daemon()
        assert b.record("d1")["blockjobs"]["vda"]["state"] == "running"
        applied = b.applied("d1", "BLOCK_JOB_COMPLETED")
        b.host["d1"].emit(
            "BLOCK_JOB_COMPLETED",
            {
                "device": "commit-vda",
                "type": "commit",
                "len": 1,
                "offset": 0,
                "speed": 0,
                "error": "No space",
            },
        )
        await applied
        job = b.record("d1")["blockjobs"]["vda"]
        assert (job["state"], job["error"]) == ("failed", "No space")
        obj = b.reg.lookup("d1")
        assert obj.live is not None and [x.source for x in obj.live.devices.disks[0].backing or []] == [
            str(base)
        ]
        assert obj.live.devices.disks[0].source == str(top)

    run_bench(root, body, graph.install)


def _events(b: Bench) -> list[Any]:
    out = []
    while not b.queue.empty():
        out.append(b.queue.get_nowait())
    return out


def test_a_read_only_backing_node_is_replaced_by_a_writable_one(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    """A hot-plugged disk's backing file was handed over read-only under nodes the daemon named: a
    commit needs it writable, so it is handed over again and the old nodes are removed."""
    _base, top = images(root)
    graph = Graph(below=("pyvirt-7-format", "pyvirt-7-storage"))

    async def body(b: Bench) -> None:
        await b.reg.define(XML.format(top=top))
        await b.reg.start("d1")
        await blockjobs.commit(b.reg, "d1", "vda", active=True)
        assert graph.backing not in graph.below
        commands = b.host["d1"].commands
        assert ("blockdev-del", {"node-name": "pyvirt-7-format"}) in commands
        assert ("blockdev-del", {"node-name": "pyvirt-7-storage"}) in commands
        commit = next(args for cmd, args in commands if cmd == "block-commit")
        assert commit["base-node"] == graph.backing and commit["device"] == "pyvirt-1-format"

    run_bench(root, body, graph.install)
