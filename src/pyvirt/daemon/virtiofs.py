"""The virtiofsd of each virtiofs share (:mod:`pyvirt.conf.virtiofs`), run as libvirt 9.0 runs it.

Before QEMU, for each share, the daemon binds a listening socket ``ALIAS-fs.sock`` in the domain's run
folder (handed to QEMU's user, who connects to it: ``-chardev socket,path=``) and starts virtiofsd
with the daemon's privileges (root: it serves the share with the file owners the guest asks for) on
that socket (``--fd=N``), its standard output and error going to ``DOMAIN-ALIAS-virtiofsd.log`` in
the domain's log folder. virtiofsd ends when QEMU disconnects; the stop of the domain (or a failed
start) ends any left (their pids are in the run record, so a later daemon ends them too).

A virtiofsd that dies under the running guest (killed, crashed) leaves the guest a share that answers
no more; libvirt 9.0 does not watch it (and QEMU says nothing of it), so libvirt has no event for it.
The daemon does: it logs the death (its log and the domain's), ``dominfo`` lists it under
``Messages:`` for the rest of that run, and the event bus gets the nearest of libvirt's events, an
``io-error`` of the share (path: its source folder, alias: its device's, action ``report``: the guest
runs on and its requests fail; reason ``virtiofsd killed by signal N`` or ``virtiofsd exit status
N``, which ``event --event io-error-reason`` prints). The guest runs on, as with libvirt. One found
dead when a restarted daemon looks again gets its message, not an event.

A share on ``<source socket>`` has a virtiofsd someone else runs: none is started or watched, and
the start is refused by name when no socket is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf import virtiofs
from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu.process import append_log, watch_exit

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.conf.filesystem import FilesystemConfig
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.paths import Layout
    from pyvirt.qemu.ownership import Identity
    from pyvirt.qemu.process import RunRecord

log = logging.getLogger(__name__)
SOCKET_MODE = 0o600


def shares(dom: Domain) -> list[tuple[int, FilesystemConfig]]:
    """The virtiofs shares whose virtiofsd the daemon runs (not those on ``<source socket>``)."""
    filesystems = enumerate(dom.devices.filesystems)
    return [(i, fs) for i, fs in filesystems if fs.virtiofs is not None and fs.socket is None]


def binary(fs: FilesystemConfig) -> str:
    """The virtiofsd of ``fs``: its ``<binary path>``, else the vhost-user descriptors' one."""
    assert fs.virtiofs is not None
    path = fs.virtiofs.binary or virtiofs.default_binary()
    if path is None:
        raise UnsupportedConfig(
            f"unsupported configuration: filesystem '{fs.target}': no virtiofsd found (no QEMU vhost-user "
            "descriptor of type 'fs'; install Debian's qemu-system-common or give <binary path>)"
        )
    return path


def require_host(dom: Domain) -> None:
    for fs in dom.devices.filesystems:
        if fs.virtiofs is not None and fs.socket is not None:  # not probed: a connection would end it
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(fs.socket).st_mode):
                    continue
            raise UnsupportedConfig(
                f"unsupported configuration: virtiofs filesystem '{fs.target}': no socket at {fs.socket} "
                "(start its virtiofsd first)"
            )
    for _, fs in shares(dom):
        if os.geteuid() != 0:
            raise UnsupportedConfig(
                "unsupported configuration: virtiofs is not yet supported in session mode "
                "(virtiofsd runs as root)"
            )
        path = binary(fs)
        if not os.access(path, os.X_OK):
            raise OperationFailed(f"internal error: virtiofsd binary '{path}' is not executable")
        if not os.path.isdir(fs.source):
            raise OperationFailed(
                f"internal error: the virtiofs export directory '{fs.source}' does not exist"
            )


def log_path(layout: Layout, name: str, alias: str) -> Path:
    return layout.log_dir / f"{name}-{alias}-virtiofsd.log"


def _listen(path: Path, ident: Identity | None) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()  # a stale one of an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, SOCKET_MODE)
        if ident is not None:
            os.chown(path, ident.uid, ident.gid)
        sock.listen(1)
    except OSError as err:
        sock.close()
        raise OperationFailed(f"operation failed: cannot listen on virtiofs socket '{path}': {err}") from err
    return sock


async def start(
    reg: DomainRegistry, obj: DomainObject, dom: Domain, record: RunRecord, channel_dir: Path
) -> dict[int, str]:
    """Start the virtiofsd of each virtiofs share of ``dom`` (before ``obj``'s QEMU): {share index: its
    socket for QEMU}. Their pids go into ``record`` as they start (the caller ends them with
    :func:`stop` on failure); each is watched while the QEMU about to start runs."""
    layout, ident = reg.layout, reg.confinement.ident
    sockets: dict[int, str] = {}
    for index, fs in shares(dom):
        alias = fs.alias or f"fs{index}"
        path = channel_dir / virtiofs.socket_name(alias)
        sock = _listen(path, ident)
        try:
            argv = virtiofs.daemon_argv(fs, binary(fs), sock.fileno())
            log = log_path(layout, dom.name, alias)
            log.parent.mkdir(parents=True, exist_ok=True)
            append_log(layout.domain_log(dom.name), "starting virtiofsd: " + " ".join(argv))
            with open(log, "ab") as out:
                os.chmod(log, 0o600)
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    pass_fds=(sock.fileno(),),
                    start_new_session=True,
                )
        except OSError as err:
            path.unlink(missing_ok=True)
            raise OperationFailed(f"internal error: Could not start 'virtiofsd': {err}") from err
        finally:
            sock.close()
        record.virtiofsd.append(proc.pid)
        _watch(
            reg,
            obj,
            obj.generation + 1,
            proc,
            f"virtiofsd of filesystem '{fs.target}' ({alias})",
            (fs.source, alias),
        )
        sockets[index] = str(path)
    return sockets


def _watch(
    reg: DomainRegistry,
    obj: DomainObject,
    generation: int,
    proc: subprocess.Popen[bytes],
    what: str,
    share: tuple[str, str],
) -> None:
    """Reap a virtiofsd when it exits; one that dies under the running guest is reported."""
    loop = asyncio.get_running_loop()

    def exited() -> None:
        status = proc.wait()
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        task = loop.create_task(
            _on_exit(reg, obj, generation, proc.pid, f"{what} exited ({how})", share, how)
        )
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    watch_exit(proc.pid, exited)


_tasks: set[asyncio.Task[None]] = set()


def rewatch(reg: DomainRegistry, obj: DomainObject, record: RunRecord) -> None:
    """A domain an earlier daemon left running (``obj.lock`` held): watch its virtiofsds again (not
    this daemon's children: their exit status is unknown); one already gone is reported now."""
    loop = asyncio.get_running_loop()
    generation = obj.generation

    def report(pid: int, how: str, share: tuple[str, str] | None) -> None:
        what = f"virtiofsd (pid {pid}) {how}"
        task = loop.create_task(_on_exit(reg, obj, generation, pid, what, share, how))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    for pid in list(record.virtiofsd):
        share = _share_of(obj, pid)
        if not (_is_virtiofsd(pid) and watch_exit(pid, functools.partial(report, pid, "exited", share))):
            report(pid, "exited while the daemon was away", None)


def _share_of(obj: DomainObject, pid: int) -> tuple[str, str] | None:
    """(source, alias) of the share virtiofsd ``pid`` serves, read from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    options = argv[argv.index("-o") + 1] if "-o" in argv[:-1] else ""  # source=SOURCE first (daemon_argv)
    for index, fs in shares(obj.live) if obj.live is not None else []:
        source = "source=" + fs.source.replace(",", ",,")
        if options == source or options.startswith(source + ","):
            return fs.source, fs.alias or f"fs{index}"
    return None


async def _on_exit(
    reg: DomainRegistry,
    obj: DomainObject,
    generation: int,
    pid: int,
    what: str,
    share: tuple[str, str] | None,
    how: str,
) -> None:
    async with obj.lock:
        qemu = obj.proc
        if obj.generation != generation or qemu is None or not qemu.alive() or obj.stop_reason is not None:
            return  # QEMU is going (or gone): virtiofsd went with it
        message = f"{what} under the running guest: the guest's share answers no more"
        log.error("domain %s: %s", obj.name, message)
        append_log(reg.layout.domain_log(obj.name), message)
        with contextlib.suppress(ValueError):
            qemu.record.virtiofsd.remove(pid)
        qemu.record.messages.append(what)
        reg.save_run_state(obj)
        if share is not None:  # libvirt has no event for it: the nearest, an I/O error the guest sees
            source, alias = share
            detail = {"path": source, "alias": alias, "action": "report", "reason": f"virtiofsd {how}"}
            reg.events.publish("domain", obj.name, "io-error", json.dumps(detail))


def _is_virtiofsd(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return b"virtiofsd" in os.path.basename(argv0)


def stop(record: RunRecord) -> None:
    """End the virtiofsds of ``record`` that are left (each ends by itself when QEMU goes)."""
    for pid in record.virtiofsd:
        if _is_virtiofsd(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    record.virtiofsd = []
