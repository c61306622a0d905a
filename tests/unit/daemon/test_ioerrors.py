"""QEMU's BLOCK_IO_ERROR against a scripted QEMU: the disk found by its device id, by the node its
device reads (the anonymous backend of a -blockdev disk), or by an overlay's node (query-block); the
io-error event carries libvirt's action and reason, the log says each kind once; the STOP that
follows is 'Suspended I/O Error'."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakeqmp import Bench, FakeQemu, run_bench

XML = """<domain type='qemu'>
  <name>d1</name>
  <memory unit='KiB'>131072</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""


def _overlay_over_vda(qemu: FakeQemu) -> None:
    async def query_block(args: dict[str, Any]) -> Any:
        qdev = "/machine/peripheral/virtio-disk0/virtio-backend"
        return [{"qdev": qdev, "inserted": {"node-name": "ovl-1"}}]

    qemu.handle("query-block", query_block)


def test_io_errors_name_the_disk_and_pause_with_their_reason(
    root: Path, errors: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    disk = root / "d.raw"
    disk.write_bytes(bytes(1 << 20))

    async def body(b: Bench) -> None:
        await b.reg.define(XML.format(disk=disk))
        await b.reg.start("d1")
        qemu = b.host["d1"]
        b.drain()
        b.seen.clear()
        data = {"device": "", "operation": "write", "action": "stop", "nospace": True, "reason": "No space"}
        for node in ("pyvirt-1-format", "ovl-1"):  # the recorded root, then an overlay over it
            qemu.emit("BLOCK_IO_ERROR", {**data, "node-name": node})
            await b.event("io-error")
        qemu.emit("BLOCK_IO_ERROR", {**data, "device": "virtio-disk0", "action": "report", "nospace": False})
        await b.event("io-error")
        qemu.emit("BLOCK_IO_ERROR", {**data, "node-name": "unknown", "action": "ignore"})
        await b.event("io-error")
        qemu._stop("io-error")
        await b.event("suspended")
        assert b.state("d1") == "paused (I/O error)"
        details = [json.loads(d) for e, d in b.seen if e == "io-error"]
        known = {"path": str(disk), "alias": "virtio-disk0"}
        assert details == [
            {**known, "action": "pause", "reason": "enospc"},
            {**known, "action": "pause", "reason": "enospc"},
            {**known, "action": "report", "reason": ""},
            {"path": "", "alias": "", "action": "none", "reason": "enospc"},
        ]
        assert b.seen[-1] == ("suspended", "ioerror")
        logged = [r.getMessage() for r in caplog.records if "I/O error on" in r.getMessage()]
        assert len(logged) == 3, logged  # the same error twice is logged once

    run_bench(root, body, _overlay_over_vda)
