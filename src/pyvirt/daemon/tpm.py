"""A domain's emulated TPM (``<tpm><backend type='emulator'>``): the daemon's side of
:mod:`pyvirt.qemu.swtpm`.

At each start, before QEMU: the state is made on the first start (``swtpm_setup``, as QEMU's user,
the state owned by it under ``STATE/swtpm/UUID``), the PCR banks ``<active_pcr_banks>`` names are
activated (not on a restore: the saved state carries its own), and ``swtpm socket`` is started in the
domain's run folder and cgroup (as libvirt places it: the domain's limits and accounting cover it);
QEMU gets its control socket. swtpm ends with QEMU (``--terminate``), and the
stop waits for it so that the state on disk is complete.

A swtpm that dies under a running guest (killed, out of memory) leaves the guest a TPM that lost its
volatile state and answers nothing more: the daemon ends the domain as crashed (``shut off
(crashed)``, or a restart with ``on_crash='restart'``) and its log says why, where libvirt would
leave the guest running with a failing TPM.

The state goes with ``undefine`` unless ``--keep-tpm`` (libvirt's rule: ``persistent_state='yes'``
keeps it unless ``--tpm``); a transient domain's goes when it stops, unless ``persistent_state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf.domain import Domain
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import swtpm
from pyvirt.qemu.process import append_log, watch_exit

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.paths import Layout
    from pyvirt.qemu.process import QemuProcess, RunRecord

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task[None]] = set()  # the reactions to a swtpm's death under way


def state_base(layout: Layout) -> Path:
    return layout.state_dir / "swtpm"


def emulated(dom: Domain) -> bool:
    return dom.devices.tpm is not None and dom.devices.tpm.backend == "emulator"


def _passphrase(reg: DomainRegistry, dom: Domain) -> bytes | None:
    tpm = dom.devices.tpm
    if tpm is None or tpm.secret is None:
        return None
    if reg.secrets is None:
        raise UnsupportedConfig("unsupported configuration: an encrypted TPM state needs the secret driver")
    secret = reg.secrets.get(tpm.secret)
    if secret.usage_type != "vtpm":
        raise UnsupportedConfig(
            f"unsupported configuration: secret {tpm.secret} of the TPM's <encryption> has usage "
            f"'{secret.usage_type or 'none'}': a TPM state is encrypted with a 'vtpm' secret"
        )
    return reg.secrets.value(secret)


def _paths(reg: DomainRegistry, dom: Domain, run_dir: Path) -> swtpm.Paths:
    tpm = dom.devices.tpm
    assert tpm is not None and tpm.version is not None
    layout = reg.layout
    config_dir = layout.state_dir / "swtpm-config"
    return swtpm.Paths(
        state=swtpm.state_dir(state_base(layout), dom.uuid, tpm.version),
        log=layout.log_dir / f"{dom.name}-swtpm.log",
        run_dir=run_dir,
        config=config_dir / "swtpm_setup.conf",
    )


def _prepare_files(reg: DomainRegistry, paths: swtpm.Paths) -> None:
    """The folders and the log, owned by QEMU's user (swtpm's); the local CA's configuration."""
    ident = reg.confinement.ident
    ca_dir = reg.layout.state_dir / "swtpm-localca"
    for path, mode, owned in (
        (paths.state.parent.parent, 0o711, False),
        (paths.state.parent, 0o711, False),
        (paths.state, 0o700, True),
        (ca_dir, 0o700, True),
    ):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        if owned and ident is not None:
            os.chown(path, ident.uid, ident.gid)
            for child in path.iterdir():  # a state restored from a backup by root
                os.chown(child, ident.uid, ident.gid)
    swtpm.write_ca_config(paths.config.parent, ca_dir)
    paths.log.touch(mode=0o600)
    if ident is not None:
        os.chown(paths.log, ident.uid, ident.gid)


@contextlib.contextmanager
def _pipes(passphrase: bytes | None, count: int) -> Iterator[list[int]]:
    """``count`` pipes each holding the passphrase, for one tool run (none without a passphrase)."""
    fds: list[int] = []
    try:
        if passphrase is not None:
            fds = [swtpm.passphrase_pipe(passphrase) for _ in range(count)]
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def _start_blocking(
    reg: DomainRegistry, dom: Domain, paths: swtpm.Paths, record: RunRecord, incoming: bool
) -> subprocess.Popen[bytes]:
    for path in (paths.socket, paths.log, paths.pidfile, paths.state):
        if "," in str(path):  # swtpm splits its options on ',' and has no escape for one (checked)
            raise UnsupportedConfig(
                f"unsupported configuration: the TPM emulator of domain '{dom.name}': swtpm cannot be "
                f"given the path '{path}', which has a ',' (from the domain's name)"
            )
    credentials = record.credentials
    tpm = dom.devices.tpm
    assert tpm is not None and tpm.version is not None
    passphrase = _passphrase(reg, dom)
    _prepare_files(reg, paths)
    created = not swtpm.has_state(paths.state)
    try:
        if created:
            with _pipes(passphrase, 1) as fds:
                argv = swtpm.setup_argv(
                    paths,
                    tpm.version,
                    f"{dom.name}:{dom.uuid}",
                    pwd_fd=fds[0] if fds else None,
                    pcr_banks=tpm.pcr_banks,
                    incoming=incoming,
                )
                swtpm.run_setup(argv, paths, credentials, tuple(fds))
        elif tpm.pcr_banks and not incoming:
            with _pipes(passphrase, 1) as fds:
                argv = swtpm.reconfigure_argv(paths, tpm.pcr_banks, pwd_fd=fds[0] if fds else None)
                swtpm.run_setup(argv, paths, credentials, tuple(fds))
        with _pipes(passphrase, 2) as fds:
            argv = swtpm.swtpm_argv(paths, tpm.version, key_fds=(fds[0], fds[1]) if fds else None)
            append_log(reg.layout.domain_log(dom.name), "starting swtpm: " + " ".join(argv))
            return swtpm.spawn(argv, paths, credentials, tuple(fds), record.cgroup)
    except BaseException:
        if created:
            shutil.rmtree(paths.state, ignore_errors=True)
        raise


async def start(
    reg: DomainRegistry, obj: DomainObject, dom: Domain, record: RunRecord, run_dir: Path, *, incoming: bool
) -> str | None:
    """Start ``dom``'s swtpm (emulated TPM) in ``run_dir``; returns its control socket for QEMU's
    command line, None without one. The caller undoes it with :func:`stop` if the start fails."""
    if not emulated(dom):
        return None
    paths = _paths(reg, dom, run_dir)
    proc = await asyncio.to_thread(_start_blocking, reg, dom, paths, record, incoming)
    _watch(reg, obj, obj.generation + 1, proc)  # the generation of the QEMU about to start
    return str(paths.socket)


def stop(run_dir: Path) -> None:
    """End the swtpm of the domain whose run folder is ``run_dir`` (if one is left), and wait."""
    swtpm.stop(run_dir)


def rewatch(reg: DomainRegistry, obj: DomainObject, run_dir: Path) -> None:
    """A domain an earlier daemon left running: watch its swtpm again (not this daemon's child, so
    its exit status is unknown: any exit under a guest nobody is stopping counts). One already gone
    ends the domain as crashed."""
    if obj.live is None or not emulated(obj.live):
        return
    loop = asyncio.get_running_loop()
    generation = obj.generation

    def died(how: str) -> None:
        task = loop.create_task(_on_death(reg, obj, generation, how))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    pid = swtpm.running_pid(run_dir)
    if pid is None or not watch_exit(pid, lambda: died("its process ended")):
        died("gone while the daemon was away")


def _watch(reg: DomainRegistry, obj: DomainObject, generation: int, proc: subprocess.Popen[bytes]) -> None:
    """Reap swtpm when it exits; one that dies unasked under the running guest ends the domain."""
    loop = asyncio.get_running_loop()

    def exited() -> None:
        status = proc.wait()
        if status in (0, -signal.SIGTERM):  # QEMU went (--terminate), or the stop ended it
            return
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        task = loop.create_task(_on_death(reg, obj, generation, how))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    watch_exit(proc.pid, exited)


async def _on_death(reg: DomainRegistry, obj: DomainObject, generation: int, how: str) -> None:
    qemu: QemuProcess | None = obj.proc
    if obj.generation != generation or qemu is None or not qemu.alive() or obj.stop_reason is not None:
        return  # QEMU is going (or gone): swtpm went with it
    message = (
        f"the TPM emulator (swtpm) of domain {obj.name} exited unexpectedly ({how}): "
        "the guest's TPM lost its state; the domain is ended as crashed"
    )
    log.error("%s", message)
    append_log(reg.layout.domain_log(obj.name), message)
    qemu.kill()  # SIGKILL: no SHUTDOWN event, so the exit counts as the crash it is (on_crash applies)


def remove_state(layout: Layout, dom: Domain) -> None:
    """Delete the TPM state of ``dom`` (all versions: the folder of its UUID)."""
    shutil.rmtree(state_base(layout) / dom.uuid, ignore_errors=True)


def keep_at_undefine(dom: Domain, tpm_flag: str | None) -> bool:
    """Whether ``undefine`` keeps the TPM state: ``keep`` (``--keep-tpm``), ``delete`` (``--tpm``),
    else libvirt's default, which is ``persistent_state``."""
    tpm = dom.devices.tpm
    if tpm is None or tpm.backend != "emulator":
        return True
    if tpm_flag is not None:
        return tpm_flag == "keep"
    return bool(tpm.persistent_state)
