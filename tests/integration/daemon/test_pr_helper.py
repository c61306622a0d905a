"""The per-domain qemu-pr-helper of <reservations managed='yes'> (pyvirt.daemon.pr_helper), run for real:
it listens on its socket in the domain's run directory, the socket is QEMU's user's, and it ends when
released. (QEMU's side needs a host SCSI LUN, which this machine lacks: the command line is the golden
libvirt-reservations case, checked against libvirt's.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from pyvirt.daemon import pr_helper
from pyvirt.qemu.ownership import Identity
from pyvirt.qemu.process import RunRecord

pytestmark = pytest.mark.skipif(shutil.which("qemu-pr-helper") is None, reason="qemu-pr-helper is missing")


def test_the_helper_listens_for_qemu_and_ends_when_released(tmp_path: Path) -> None:
    ident = Identity("nobody", "nogroup", 65534, 65534, ())
    pid, path = asyncio.run(pr_helper.start(tmp_path, ident))
    record = RunRecord(
        name="d", uuid="u", pid=0, id=1, monitor="m", started_at=0.0, accel="tcg", pr_helper=pid
    )
    try:
        assert path == str(tmp_path / "pr-helper0.sock")
        stat = os.stat(path)
        assert (stat.st_uid, stat.st_gid) == (65534, 65534)
        with socket.socket(socket.AF_UNIX) as client:  # QEMU's pr-manager-helper connects so
            client.connect(path)
        assert Path(f"/proc/{pid}").exists()
    finally:
        pr_helper.release(record)
    assert record.pr_helper is None
    for _ in range(600):  # until it has gone (a hang fails here, not a timing)
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
