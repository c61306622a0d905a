"""TPMs: ``<tpm model='tpm-tis|tpm-crb'>`` with ``<backend type='emulator' version='2.0'/>`` (swtpm) or
``<backend type='passthrough'><device path='/dev/tpm0'/></backend>`` (the host's TPM), as libvirt 9.0
writes them and gives them to QEMU: ``-tpmdev emulator,chardev=`` (swtpm's control socket) or
``-tpmdev passthrough,path=,cancel-path=``, then ``-device tpm-tis|tpm-crb,tpmdev=``.

Starting either is refused by name before QEMU runs when the host lacks what it needs: swtpm for the
emulator (Debian's ``swtpm`` package), the TPM device for passthrough. The emulator's state encryption,
PCR banks and persistent state options are refused at parse time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError


@dataclass
class TPMConfig:
    model: str = "tpm-tis"
    backend: str = "emulator"  # emulator | passthrough
    version: str | None = None  # emulator: 2.0 (1.2 refused: QEMU 7.2's swtpm users want 2.0)
    path: str | None = None  # passthrough: the host's TPM device
    alias: str | None = None
    address: PCIAddress | None = None


def parse(e: Elem) -> TPMConfig:
    tpm = TPMConfig(model=e.choice("model", ("tpm-tis", "tpm-crb")) or "tpm-tis")
    backend = e.child("backend")
    if backend is None:
        raise XMLError("'devices/tpm' needs a <backend>")
    tpm.backend = backend.choice("type", ("emulator", "passthrough"), required=True) or "emulator"
    if tpm.backend == "emulator":
        tpm.version = backend.choice("version", ("2.0",)) or "2.0"
    else:
        device = backend.child("device")
        tpm.path = device.require("path") if device is not None else "/dev/tpm0"
        if not tpm.path.startswith("/dev/"):
            raise XMLError(f"TPM device '{tpm.path}' of '{backend.path}/device' must be under /dev")
        if device is not None:
            device.done()
    backend.done()
    return tpm


def write(tpm: TPMConfig, extra: tuple[XNode | None, ...]) -> XNode:
    backend = x("backend", {"type": tpm.backend, "version": tpm.version})
    if tpm.backend == "passthrough":
        backend.add(x("device", {"path": tpm.path}))
    return x("tpm", {"model": tpm.model}).add(backend, *extra)


def options(tpm: TPMConfig, socket: str | None) -> list[str]:
    """The ``-chardev``/``-tpmdev``/``-device`` options; ``socket`` is swtpm's (emulator)."""
    dev_id = tpm.alias or "tpm0"
    if tpm.backend == "passthrough":
        name = os.path.basename(tpm.path or "/dev/tpm0")
        tpmdev = (
            f"passthrough,id=tpm-{dev_id},path={tpm.path},cancel-path=/sys/class/tpm/{name}/device/cancel"
        )
        out = ["-tpmdev", tpmdev]
    else:
        if socket is None:
            raise UnsupportedConfig("unsupported configuration: the TPM emulator's socket is made at start")
        out = [
            "-chardev",
            f"socket,id=chrtpm,path={socket}",
            "-tpmdev",
            f"emulator,id=tpm-{dev_id},chardev=chrtpm",
        ]
    return [*out, "-device", f"{tpm.model},tpmdev=tpm-{dev_id},id={dev_id}"]


def require_host(dom: Domain) -> None:
    """Refuse the start by name when the host lacks the TPM's backend."""
    tpm = dom.devices.tpm
    if tpm is None:
        return
    if tpm.backend == "passthrough" and not os.path.exists(tpm.path or "/dev/tpm0"):
        raise UnsupportedConfig(f"unsupported configuration: TPM passthrough: this host has no {tpm.path}")
    if tpm.backend == "emulator":
        if shutil.which("swtpm") is None:
            raise UnsupportedConfig(
                "unsupported configuration: TPM emulator: swtpm is not installed (Debian's swtpm package)"
            )
        raise UnsupportedConfig("unsupported configuration: TPM emulator: pyvirt does not start swtpm yet")
    raise UnsupportedConfig(
        "unsupported configuration: TPM passthrough: the host TPM is not handed to QEMU yet"
    )
