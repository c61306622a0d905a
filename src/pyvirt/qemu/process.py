"""QEMU processes: spawn detached from the daemon, re-attach after a daemon restart, watch for exit.

A QEMU runs in a session of its own with its stdout/stderr on the domain's log file, so it outlives
the daemon. Its run-time record (``NAME.json``: pid, id, monitor socket, start time, taps) and the
live XML (``NAME.xml``) sit in the QEMU run directory; a new daemon reads them, checks that the pid
still belongs to that QEMU (its command line names the domain's UUID), and reconnects to the monitor.
Exit is watched with a pidfd, which works for children and for re-adopted processes alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyvirt import __version__
from pyvirt.errors import OperationFailed
from pyvirt.qemu import blocked, cgroup, cpuacct, landlock, logs
from pyvirt.qemu.monitor import Monitor, MonitorTimeout
from pyvirt.store import atomic_write

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107
MONITOR_TIMEOUT = 30.0  # pyvirtd.conf's monitor_timeout


@dataclass
class RunRecord:
    """What a daemon needs to re-adopt a running QEMU; stored as JSON beside the live XML."""

    name: str
    uuid: str
    pid: int
    id: int
    monitor: str
    started_at: float
    accel: str
    taps: list[str] = field(default_factory=list)
    ptys: dict[str, str] = field(default_factory=dict)
    vnc_port: int | None = None
    netdevs: dict[str, str] = field(default_factory=dict)  # NIC device id -> its netdev id
    # Disks by target (daemon/devices.py): the prefixes of their block nodes (NODE-format above
    # NODE-storage, top layer first), the fdsets and the files handed to QEMU for those plugged live.
    blockdevs: dict[str, list[str]] = field(default_factory=dict)
    fdsets: dict[str, list[str]] = field(default_factory=dict)
    disk_files: dict[str, list[str]] = field(default_factory=dict)
    node_counter: int = 0  # the highest N of the pyvirt-N block nodes named so far
    state: str = "running"
    reason: str = "booted"
    # Confinement (see qemu/ownership.py and qemu/cgroup.py): the credentials QEMU runs with
    # ([uid, gid, supplementary gids...], None: the daemon's), its cgroup, and the owner, group and
    # mode of each file handed to it, given back when it stops.
    credentials: list[int] | None = None
    cgroup: str | None = None
    owners: dict[str, list[int]] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)  # the files QEMU may open (qemu/landlock.py)
    # Started with autodestroy: ends with its client's connection, which no later daemon holds.
    autodestroy: bool = False
    memlock: bool = False  # <memoryBacking><locked/>: QEMU may lock all its memory (RLIMIT_MEMLOCK)
    memlock_bytes: int = 0  # else, when not 0: its RLIMIT_MEMLOCK (VFIO devices, daemon/hostdevs.py)
    memlock_before: list[int] | None = None  # the limit a VFIO hot-plug raised (prlimit), to go back to
    # The host devices it holds (daemon/hostdevs.py's Claim): reattached to their drivers at stop.
    hostdevs: list[dict[str, Any]] = field(default_factory=list)
    rtc_adjustment0: int | None = None  # <clock offset='variable'>: the adjustment it started with
    # Block jobs (daemon/blockjobs.py) by disk target: the one running, or how the last one ended.
    blockjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A disk's top node in QEMU, by target: the command line's or a hot-plugged disk's (recorded at
    # start and plug, daemon/blockdevs.py), or the one a block job made it.
    blockroots: dict[str, str] = field(default_factory=dict)
    # The disks that run on a given <backingStore> chain, by target: "open" or "closed"
    # (conf.backing_chain.given_of), so that a daemon reading the live XML again keeps them given.
    given_chains: dict[str, str] = field(default_factory=dict)
    # The chardev UNIX sockets the daemon bound for QEMU (daemon/chardev_sockets.py), removed at stop.
    sockets: list[str] = field(default_factory=list)
    # The overlays of <transient/> disks (daemon/transient_disks.py), deleted at stop.
    transient: list[str] = field(default_factory=list)
    pr_helper: int | None = None  # the pid of the domain's qemu-pr-helper (daemon/pr_helper.py)
    virtiofsd: list[int] = field(default_factory=list)  # the pids of its virtiofsds (daemon/virtiofs.py)
    messages: list[str] = field(default_factory=list)  # dominfo's Messages of this run (a virtiofsd died)

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=1).encode(), durable=False)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        data = json.loads(path.read_text())
        return cls(**data)


def log_start_line(log_path: Path, argv: list[str]) -> int:
    """Append libvirt's style of start header to the domain log (rotated first when it is full, see
    :mod:`pyvirt.qemu.logs`); return the offset QEMU's output begins at."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        logs.rotate_if_needed(log_path)
    except OSError as err:
        log.warning("cannot rotate %s: %s", log_path, err)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    header = f"{now}+0000: starting up pyvirt {__version__}\n" + " ".join(argv) + "\n"
    with open(log_path, "ab") as fh:
        fh.write(header.encode())
        return fh.tell()


def log_tail(log_path: Path, offset: int, limit: int = 4000) -> str:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").strip()
    return text[-limit:]


def append_log(log_path: Path, message: str) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    with contextlib.suppress(OSError), open(log_path, "ab") as fh:
        fh.write(f"{now}+0000: {message}\n".encode())


def bind_monitor_socket(path: Path) -> socket.socket:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OperationFailed(
            f"monitor socket path is too long for a Unix socket ({len(str(path))} > {MAX_SOCKET_PATH}): "
            f"{path}; use a shorter PYVIRT_ROOT"
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


class QemuProcess:
    """A running QEMU, child or re-adopted, with its monitor."""

    def __init__(
        self, record: RunRecord, monitor: Monitor, pidfd: int, popen: subprocess.Popen[bytes] | None
    ):
        self.record = record
        self.monitor = monitor
        self._pidfd = pidfd
        self._popen = popen
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit)

    @property
    def pid(self) -> int:
        return self.record.pid

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if self._popen is not None:
            with contextlib.suppress(ChildProcessError):
                self._popen.wait(timeout=0)
        if not self.exited.done():
            self.exited.set_result(None)

    def alive(self) -> bool:
        return not self.exited.done()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def terminate(self, graceful: bool, timeout: float = 10.0) -> None:
        """SIGTERM (graceful: wait for QEMU to flush), then SIGKILL; returns once the process is gone."""
        if not self.alive():
            return
        self.kill(signal.SIGTERM)
        wait = timeout if graceful else 1.0
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), wait)
            return
        except TimeoutError:
            pass
        self.kill(signal.SIGKILL)
        await asyncio.wait_for(asyncio.shield(self.exited), 10.0)

    @classmethod
    async def spawn(
        cls,
        *,
        argv_for_fd: Callable[[int], list[str]],
        record: RunRecord,
        log_path: Path,
        on_event: Callable[[str, dict[str, object]], object],
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> QemuProcess:
        """Start QEMU (paused, -S) and connect its monitor; on any failure nothing is left running.
        ``pass_fds``: descriptors QEMU inherits besides its monitor's (those its command line names);
        ``env``: variables QEMU's environment gets besides the fixed ones (SDL's audio driver)."""
        monitor_path = Path(record.monitor)
        # Off the event loop: the spawn waits for the child's exec, which on a host busy with
        # starting guests can take many milliseconds, and the loop has other domains to serve.
        launch = asyncio.get_running_loop().run_in_executor(
            None,
            _launch,
            argv_for_fd,
            monitor_path,
            log_path,
            record.credentials,
            record.cgroup,
            record.access,
            pass_fds,
            env,
            record.memlock,
            record.memlock_bytes,
        )
        try:
            popen, offset = await asyncio.shield(launch)
        except asyncio.CancelledError:
            launch.add_done_callback(_kill_orphan)
            raise
        record.pid = popen.pid
        pidfd = os.pidfd_open(popen.pid)
        monitor = Monitor(record.name, str(monitor_path))
        proc = cls(record, monitor, pidfd, popen)
        try:
            connect = asyncio.ensure_future(monitor.connect(MONITOR_TIMEOUT))
            done, _ = await asyncio.wait({connect, proc.exited}, return_when=asyncio.FIRST_COMPLETED)
            if connect not in done:
                connect.cancel()
                raise OperationFailed(
                    "internal error: QEMU exited while connecting to its monitor: "
                    + (log_tail(log_path, offset) or "no output")
                )
            try:
                connect.result()
            except MonitorTimeout as err:
                raise OperationFailed(
                    _hang_message(str(err), proc.pid, monitor_path, log_path, offset)
                ) from err
            except OperationFailed:
                # QEMU that fails at start-up (a disk it cannot open) may close the monitor just
                # before it exits: its own words, not the reset connection, say why.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proc.exited), 5)
                if proc.exited.done():
                    raise OperationFailed(
                        "internal error: QEMU exited while connecting to its monitor: "
                        + (log_tail(log_path, offset) or "no output")
                    ) from None
                raise
            monitor.listen(_event_adapter(on_event))
        except BaseException:
            await monitor.close()
            proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(proc.exited), 5)
            with contextlib.suppress(FileNotFoundError):
                monitor_path.unlink()
            raise
        return proc

    @classmethod
    async def reattach(
        cls, record: RunRecord, on_event: Callable[[str, dict[str, object]], object]
    ) -> QemuProcess | None:
        """Adopt a QEMU left running by an earlier daemon; None if it is gone or not ours."""
        if not pid_is_qemu_of(record.pid, record.uuid):
            return None
        try:
            pidfd = os.pidfd_open(record.pid)
        except OSError:
            return None
        monitor = Monitor(record.name, record.monitor)
        proc = cls(record, monitor, pidfd, None)
        try:
            await monitor.connect(timeout=10)
            monitor.listen(_event_adapter(on_event))
        except OperationFailed:
            log.warning("QEMU of %s (pid %d) runs but its monitor does not answer", record.name, record.pid)
            await monitor.close()
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)
            return None
        return proc


def configure(monitor_timeout: float) -> None:
    """pyvirtd.conf's ``monitor_timeout``: how long a starting QEMU may take to open its monitor."""
    global MONITOR_TIMEOUT
    MONITOR_TIMEOUT = monitor_timeout


def _hang_message(reason: str, pid: int, monitor_path: Path, log_path: Path, offset: int) -> str:
    """Why a QEMU that runs never opened its monitor: what it waits in, the sockets it holds (a
    backend that accepted and never answers), and its own last words."""
    waiting = blocked.describe(pid, skip=frozenset({str(monitor_path)}))
    tail = log_tail(log_path, offset, limit=1000)
    return (
        f"internal error: {reason}"
        + (f"; QEMU is {waiting}" if waiting else "")
        + (f"; its last output: {tail}" if tail else "; it wrote nothing")
    )


def _launch(
    argv_for_fd: Callable[[int], list[str]],
    monitor_path: Path,
    log_path: Path,
    credentials: list[int] | None = None,
    cgroup_path: str | None = None,
    access: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    memlock: bool = False,
    memlock_bytes: int = 0,
) -> tuple[subprocess.Popen[bytes], int]:
    """Bind the monitor socket, log the command line and spawn QEMU with the socket's fd, in its
    cgroup and with its credentials (both set in the child before QEMU executes).

    Returns the process and where its output starts in the log."""
    listener = bind_monitor_socket(monitor_path)
    procs_fds: list[int] = []
    ruleset: int | None = None
    try:
        if cgroup_path:
            procs_fds.append(cgroup.open_procs(Path(cgroup_path)))
            acct_fd = cpuacct.open_twin_procs(cgroup_path)  # per-CPU accounting on a hybrid host
            if acct_fd is not None:
                procs_fds.append(acct_fd)
        if access:
            ruleset = landlock.build(access)
        fd = listener.fileno()
        argv = argv_for_fd(fd)
        offset = log_start_line(log_path, argv)
        with open(log_path, "ab") as logfh:
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logfh,
                    stderr=logfh,
                    pass_fds=(fd, *pass_fds),
                    start_new_session=True,
                    # the domain's own variables (<qemu:env>, audio, display) win over the defaults
                    env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", **(env or {})},
                    preexec_fn=_confine(
                        procs_fds, credentials, ruleset, memlock, memlock_bytes
                    ),  # None: nothing to do
                )
            except (OSError, subprocess.SubprocessError) as err:
                reason = err.strerror if isinstance(err, OSError) else str(err)
                raise OperationFailed(f"failed to run {argv[0]}: {reason}") from err
    finally:
        listener.close()
        for fd_ in (*procs_fds, ruleset):
            if fd_ is not None:
                os.close(fd_)
    return popen, offset


def _confine(
    procs_fds: list[int],
    credentials: list[int] | None,
    ruleset: int | None = None,
    memlock: bool = False,
    memlock_bytes: int = 0,
) -> Callable[[], None] | None:
    """What the child does between fork and exec: join the cgroups (while still root), then drop to
    QEMU's user, group and supplementary groups (not QEMU's ``-runas``, which needs QEMU to start
    as root), then shut itself in its files (Landlock). Plain system calls only: the daemon has
    other threads."""
    if not procs_fds and credentials is None and ruleset is None and not memlock and not memlock_bytes:
        return None
    enforce = landlock.enforcer(ruleset) if ruleset is not None else None

    def confine() -> None:
        for procs_fd in procs_fds:
            os.write(procs_fd, b"0")
        if memlock:  # while still root: -overcommit mem-lock=on locks all of QEMU's memory
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        elif memlock_bytes:  # VFIO maps all guest memory for DMA (daemon/hostdevs.py)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock_bytes, memlock_bytes))
        if credentials is not None:
            uid, gid, *groups = credentials
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if enforce is not None:
            enforce()

    return confine


def _kill_orphan(launch: asyncio.Future[tuple[subprocess.Popen[bytes], int]]) -> None:
    """A start cancelled while QEMU was being spawned: end that QEMU (subprocess reaps it later)."""
    if not launch.cancelled() and launch.exception() is None:
        with contextlib.suppress(ProcessLookupError):
            launch.result()[0].kill()


def _event_adapter(
    on_event: Callable[[str, dict[str, object]], object],
) -> Callable[[str, dict[str, object]], asyncio.Future[None]]:
    async def handler(name: str, data: dict[str, object]) -> None:
        result = on_event(name, data)
        if asyncio.iscoroutine(result):
            await result

    return handler  # type: ignore[return-value]


def qemus_of(run_dir: Path) -> dict[int, str]:
    """Every QEMU whose ``-pidfile`` lies in ``run_dir``, that is every QEMU a daemon of this layout
    started, whatever its run record says: pid → domain name (the pidfile's stem)."""
    prefix = os.fsencode(run_dir) + b"/"
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            path = args[args.index(b"-pidfile") + 1]
        except (OSError, ValueError, IndexError):
            continue
        rest = path[len(prefix) :]
        if path.startswith(prefix) and rest.endswith(b".pid") and b"/" not in rest:
            found[int(entry.name)] = os.fsdecode(rest[: -len(".pid")])
    return found


def watch_exit(pid: int, exited: Callable[[], None]) -> bool:
    """Call ``exited`` on the running event loop once ``pid`` (not necessarily a child) has exited,
    seen through a pidfd; False, and no call, if there is no such process. A child is left to its
    reaper (``exited`` may wait for it without blocking)."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False

    def readable() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        exited()

    loop.add_reader(pidfd, readable)
    return True


def kill_and_wait(pid: int, timeout: float = 10.0, *, term: bool = False) -> None:
    """End ``pid`` (not necessarily a child) and wait until it has exited, through a pidfd: SIGKILL at
    once, or with ``term`` SIGTERM first and SIGKILL only if it is still there after ``timeout``.
    Raises OperationFailed if it outlives the SIGKILL by ``timeout``. A child is left to its reaper."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        for sig in (signal.SIGTERM, signal.SIGKILL) if term else (signal.SIGKILL,):
            signal.pidfd_send_signal(pidfd, sig)
            if poller.poll(int(timeout * 1000)):
                return
    except ProcessLookupError:
        return
    finally:
        os.close(pidfd)
    raise OperationFailed(f"process {pid} did not exit after SIGKILL")


def pid_is_qemu_of(pid: int, uuid: str) -> bool:
    """True if ``pid`` is alive and its command line carries ``-uuid UUID``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
    except OSError:
        return False
    try:
        return args[args.index(b"-uuid") + 1].decode() == uuid
    except (ValueError, IndexError):
        return False
