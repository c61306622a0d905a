"""qemu-nbd for the NBD tests (plain and TLS): a server started and waited for until it listens, and
the UEFI test domain whose NVRAM such a server holds (``<nvram type='network'>``)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def _listening(sock: Path | None, port: int | None) -> bool:
    if sock is not None and not sock.exists():
        return False
    if port is not None:
        ss = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        return bool(ss.stdout)
    return True


@contextlib.contextmanager
def qemu_nbd(*args: str, sock: Path | None = None, port: int | None = None) -> Iterator[None]:
    """``qemu-nbd ARGS``, once it listens on ``sock`` (made reachable by QEMU's own user) or on the
    loopback's ``port``; stopped on the way out."""
    proc = subprocess.Popen(["qemu-nbd", *args])
    try:
        for _ in range(100):
            if _listening(sock, port):
                break
            time.sleep(0.1)
        if sock is not None:
            sock.chmod(0o666)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def nvram_domain_xml(name: str, source: str) -> str:
    """The test guest booting OVMF, its NVRAM on the network: ``source`` is the ``<source>`` element."""
    text = domain_xml(name)
    assert "<os>" in text
    loader = f"<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>"
    return text.replace("<os>", f"<os>{loader}<nvram type='network'>{source}</nvram>")


def pflash1_node(daemon: Daemon, name: str) -> dict[str, object]:
    """The block node QEMU opened for the NVRAM flash of the running domain ``name``."""
    out = daemon.cli("qemu-monitor-command", name, '{"execute":"query-named-block-nodes"}').ok().out
    (node,) = [n for n in json.loads(out)["return"] if n["node-name"] == "pyvirt-pflash1-storage"]
    assert isinstance(node, dict)
    return node
