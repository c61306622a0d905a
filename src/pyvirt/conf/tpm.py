"""TPMs: ``<tpm model='tpm-tis|tpm-crb'>`` with ``<backend type='emulator' version='2.0|1.2'>`` (swtpm,
started per domain by the daemon: :mod:`pyvirt.daemon.tpm`) or ``<backend type='passthrough'><device
path='/dev/tpm0'/></backend>`` (the host's TPM), as libvirt 9.0 writes them and gives them to QEMU:
``-chardev socket`` (swtpm's control socket) and ``-tpmdev emulator,chardev=``, or ``-tpmdev
passthrough,path=,cancel-path=``, then ``-device tpm-tis|tpm-crb,tpmdev=``. ``<backend
type='external'><source type='unix' mode='connect' path='...'/></backend>``: a TPM emulator someone
else runs (an swtpm serving that control socket); QEMU connects to it as to the daemon's own swtpm
(``-tpmdev emulator``), the socket handed to QEMU's user for the run (qemu.ownership) as libvirt
relabels it, and a start without the socket is refused by name.

The emulator's ``persistent_state``, ``<encryption secret=…/>`` (a ``vtpm`` secret) and
``<active_pcr_banks>`` are read and written back as libvirt does; libvirt 9.0 has no ``<profile>``.
Without ``version`` the emulator is a TPM 2.0 behind ``tpm-crb`` and a TPM 1.2 behind ``tpm-tis``
(libvirt 9.0's default); a TPM 1.2 cannot sit behind a CRB interface, nor have PCR banks chosen.

Starting is refused by name before QEMU runs when the host lacks what it needs: swtpm for the emulator
(Debian's ``swtpm`` and ``swtpm-tools`` packages), the TPM device for passthrough.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.secret import parse_uuid
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x, yes_no
from pyvirt.errors import UnsupportedConfig, XMLError

#: The PCR banks ``<active_pcr_banks>`` may name, in libvirt's order (swtpm_setup's names).
PCR_BANKS = ("sha1", "sha256", "sha384", "sha512")


@dataclass
class TPMConfig:
    model: str = "tpm-tis"
    backend: str = "emulator"  # emulator | passthrough | external
    version: str | None = None  # emulator: 2.0 or 1.2
    path: str | None = None  # passthrough: the host's TPM device; external: the emulator's socket
    persistent_state: bool | None = None  # emulator: keep the state when a transient domain ends
    secret: str | None = None  # emulator: UUID of the vtpm secret the state is encrypted with
    pcr_banks: list[str] | None = None  # emulator (2.0): the PCR banks to activate at each start
    alias: str | None = None
    address: PCIAddress | None = None


def parse(e: Elem) -> TPMConfig:
    tpm = TPMConfig(model=e.choice("model", ("tpm-tis", "tpm-crb")) or "tpm-tis")
    backend = e.child("backend")
    if backend is None:
        raise XMLError("'devices/tpm' needs a <backend>")
    tpm.backend = backend.choice("type", ("emulator", "passthrough", "external"), required=True) or "emulator"
    if tpm.backend == "emulator":
        default = "2.0" if tpm.model == "tpm-crb" else "1.2"
        tpm.version = backend.choice("version", ("2.0", "1.2")) or default
        if tpm.version == "1.2" and tpm.model == "tpm-crb":
            raise unsupported(f"TPM 1.2 with model 'tpm-crb' of '{e.path}': a CRB interface needs TPM 2.0")
        tpm.persistent_state = backend.flag("persistent_state")
        enc = backend.child("encryption")
        if enc is not None:
            tpm.secret = parse_uuid(enc.require("secret"), f"secret of '{enc.path}'")
            enc.done()
        banks = backend.child("active_pcr_banks")
        if banks is not None:
            tpm.pcr_banks = []
            for bank in banks.each():
                if bank.tag not in PCR_BANKS:
                    raise bank.refuse()
                bank.done()
                if bank.tag not in tpm.pcr_banks:
                    tpm.pcr_banks.append(bank.tag)
            tpm.pcr_banks.sort(key=PCR_BANKS.index)
            if tpm.version != "2.0" and tpm.pcr_banks:
                raise unsupported(f"'{banks.path}' of a TPM {tpm.version}: only a TPM 2.0 has PCR banks")
            banks.done()
    elif tpm.backend == "external":
        source = backend.child("source")
        if source is None:
            raise XMLError(f"missing element 'source' of '{backend.path}'")
        source.choice("type", ("unix",), required=True)
        source.choice("mode", ("connect",))
        tpm.path = source.require("path")
        if not tpm.path.startswith("/"):
            raise XMLError(f"TPM socket '{tpm.path}' of '{source.path}' must be an absolute path")
        source.done()
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
    backend = x(
        "backend",
        {"type": tpm.backend, "version": tpm.version, "persistent_state": yes_no(tpm.persistent_state)},
    )
    if tpm.backend == "passthrough":
        backend.add(x("device", {"path": tpm.path}))
    elif tpm.backend == "external":
        backend.add(x("source", {"type": "unix", "mode": "connect", "path": tpm.path}))
    if tpm.secret is not None:
        backend.add(x("encryption", {"secret": tpm.secret}))
    if tpm.pcr_banks is not None:
        backend.add(x("active_pcr_banks").add(*(x(bank) for bank in tpm.pcr_banks)))
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
    elif tpm.backend == "external":
        out = [
            "-chardev",
            f"socket,id=chrtpm,path={str(tpm.path).replace(',', ',,')}",
            "-tpmdev",
            f"emulator,id=tpm-{dev_id},chardev=chrtpm",
        ]
    else:
        if socket is None:
            raise UnsupportedConfig("unsupported configuration: the TPM emulator's socket is made at start")
        out = [
            "-chardev",
            f"socket,id=chrtpm,path={socket.replace(',', ',,')}",
            "-tpmdev",
            f"emulator,id=tpm-{dev_id},chardev=chrtpm",
        ]
    return [*out, "-device", f"{tpm.model},tpmdev=tpm-{dev_id},id={dev_id}"]


def require_host(dom: Domain) -> None:
    """Refuse the start by name when the host lacks the TPM's backend."""
    tpm = dom.devices.tpm
    if tpm is None:
        return
    if tpm.backend == "external":
        path = tpm.path or ""
        if not os.path.exists(path) or not stat.S_ISSOCK(os.stat(path).st_mode):
            raise UnsupportedConfig(
                f"unsupported configuration: external TPM: no emulator's socket at '{path}' (start the "
                "swtpm that serves it first)"
            )
        return
    if tpm.backend == "passthrough" and not os.path.exists(tpm.path or "/dev/tpm0"):
        raise UnsupportedConfig(f"unsupported configuration: TPM passthrough: this host has no {tpm.path}")
    if tpm.backend == "emulator":
        for tool, package in (("swtpm", "swtpm"), ("swtpm_setup", "swtpm-tools")):
            if shutil.which(tool) is None:
                raise UnsupportedConfig(
                    f"unsupported configuration: TPM emulator: {tool} is not installed "
                    f"(Debian's {package} package)"
                )
        return
    raise UnsupportedConfig(
        "unsupported configuration: TPM passthrough: the host TPM is not handed to QEMU yet"
    )
