"""A vhost-user block disk's golden command line run by the real QEMU against real backends:
qemu-storage-daemon exports two raw images as vhost-user-blk on the sockets the command line names, and
QEMU, connecting at start, negotiates with both (the guest's memory shared through memfd) before it
answers QMP."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.qemu.test_golden_argv_runs import runnable
from tests.unit.qemu.test_command import argv_for

pytestmark = pytest.mark.skipif(not shutil.which("qemu-storage-daemon"), reason="no qemu-storage-daemon")


def test_qemu_connects_to_vhost_user_block_backends(tmp_path: Path) -> None:
    argv = runnable(argv_for("domain/libvirt-vhostuser-disk"), tmp_path)
    sockets = [m.group(1) for arg in argv if (m := re.match(r"socket,id=chr-vu-[^,]+,path=([^,]+)", arg))]
    assert len(sockets) == 2
    daemon_args = ["qemu-storage-daemon"]
    for index, sock in enumerate(sockets):
        image = tmp_path / f"backend{index}.raw"
        image.write_bytes(b"\0" * 1024 * 1024)
        daemon_args += [
            "--blockdev", f"driver=file,node-name=file{index},filename={image}",
            "--export", f"type=vhost-user-blk,id=exp{index},node-name=file{index},"
            f"addr.type=unix,addr.path={sock},writable=on",
        ]  # fmt: skip
    backends = subprocess.Popen(daemon_args, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if all(Path(sock).exists() for sock in sockets):
                break
            time.sleep(0.1)
        commands = "".join(json.dumps({"execute": c}) + "\n" for c in ("qmp_capabilities", "quit"))
        result = subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"QEMU refused it: {result.stderr.strip()}"
        assert '"return"' in result.stdout
    finally:
        backends.terminate()
        backends.wait(10)
