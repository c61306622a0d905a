"""guestmount and guestunmount: a guest's file systems on a host directory, through FUSE.

:func:`mount` starts a daemon (double fork, new session, stdio on /dev/null) that launches the
appliance, mounts the guest's file systems in it, exports them with libguestfs's FUSE support
(``mount_local``) and tells the caller over a pipe that the mount is ready, or why it failed; then it
serves requests (``mount_local_run``) until the directory is unmounted, and shuts the appliance down,
which writes everything back. A small JSON record per mount point (pid, then the final status) lets
:func:`umount` wait for that write-back, so a disk is consistent when ``pyvirt umount`` returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, PyvirtError, error_from_wire
from pyvirt.guest.appliance import Disk, Handle, launch, new_handle
from pyvirt.guest.inspect import inspect, mount_all
from pyvirt.mounts import read_mounts
from pyvirt.paths import default_mode, layout_for
from pyvirt.store import atomic_write

MOUNT_WAIT_SECONDS = 600.0  # an appliance launch under TCG takes 20-60 s on a busy host
UMOUNT_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class FsMount:
    """``-m DEV[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]``: a guest file system and its place in the guest tree."""

    device: str
    mountpoint: str = "/"
    options: str = ""
    fstype: str = ""


def parse_fs_mount(text: str) -> FsMount:
    parts = text.split(":", 3)
    if not parts[0]:
        raise InvalidArgument(f"invalid -m {text!r}: expected DEVICE[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]")
    mountpoint = parts[1] if len(parts) > 1 and parts[1] else "/"
    if not mountpoint.startswith("/"):
        raise InvalidArgument(f"invalid -m {text!r}: the mount point inside the guest must be absolute")
    return FsMount(
        parts[0], mountpoint, parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else ""
    )


def state_dir() -> Path:
    return layout_for(default_mode()).run_dir / "guest-mounts"


def record_path(mountpoint: str | os.PathLike[str]) -> Path:
    key = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:24]
    return state_dir() / f"{key}.json"


def _write_record(path: Path, data: dict[str, object]) -> None:
    atomic_write(path, json.dumps(data).encode(), durable=False)


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_fuse_mount(mountpoint: str) -> bool:
    """True if ``mountpoint`` is the mount point of a FUSE file system."""
    real = os.path.realpath(mountpoint)
    try:
        table = read_mounts()
    except OSError:
        return False
    return any(m.mountpoint == real and m.fstype.startswith("fuse") for m in table)


def _mount_filesystems(
    g: Handle, label: str, inspect_os: bool, mounts: Sequence[FsMount], readonly: bool
) -> None:
    if inspect_os:
        info = inspect(g, label)
        mount_all(g, info, readonly=readonly)
    for m in sorted(mounts, key=lambda m: len(m.mountpoint)):
        options = ",".join(o for o in ("ro" if readonly else "", m.options) if o)
        try:
            if m.fstype:
                g.mount_vfs(options, m.fstype, m.device, m.mountpoint)
            else:
                g.mount_options(options, m.device, m.mountpoint)
        except RuntimeError as err:
            raise OperationFailed(f"cannot mount {m.device} on {m.mountpoint} in the guest: {err}") from err


def _serve(
    ready_fd: int,
    disks: Sequence[Disk],
    mountpoint: str,
    inspect_os: bool,
    mounts: Sequence[FsMount],
    readonly: bool,
    fuse_options: str,
    pid_file: str | None,
) -> int:
    """The daemon's body; returns its exit status. Reports readiness or failure on ``ready_fd``.

    Nothing here may touch the mount point after ``mount_local``: until ``mount_local_run`` serves
    requests, a stat of it would wait on this very process, for ever.
    """
    real = os.path.realpath(mountpoint)
    record = record_path(real)
    os.write(ready_fd, f"pid\t{os.getpid()}\n".encode())
    g = None
    try:
        try:
            g = new_handle()
            launch(g, disks)
            _mount_filesystems(g, disks[0].path, inspect_os, mounts, readonly)
            kwargs: dict[str, object] = {"readonly": readonly}
            if fuse_options:
                kwargs["options"] = fuse_options
            try:
                g.mount_local(mountpoint, **kwargs)
            except RuntimeError as err:
                raise OperationFailed(f"cannot mount on {mountpoint} with FUSE: {err}") from err
            _write_record(record, {"pid": os.getpid(), "mountpoint": real, "status": "serving"})
            if pid_file:
                atomic_write(Path(pid_file), f"{os.getpid()}\n".encode(), 0o644, durable=False)
        except PyvirtError as err:
            os.write(ready_fd, f"{err.code}\t{err.message}\n".encode())
            return 1
        except Exception as err:  # anything else must still reach the waiting parent
            os.write(ready_fd, f"internal\t{type(err).__name__}: {err}\n".encode())
            return 1
        os.write(ready_fd, f"ok\t{os.getpid()}\n".encode())
        os.close(ready_fd)
        ready_fd = -1
        status, message = "done", ""
        try:
            g.mount_local_run()
        except RuntimeError as err:
            status, message = "error", f"serving the FUSE mount failed: {err}"
        try:
            g.shutdown()
        except RuntimeError as err:
            status, message = "error", f"writing back to the disk failed: {err}"
        _write_record(
            record,
            {
                "pid": os.getpid(),
                "mountpoint": real,
                "status": status,
                "message": message,
            },
        )
        return 0 if status == "done" else 1
    finally:
        if ready_fd >= 0:
            os.close(ready_fd)
        if g is not None:
            g.close()


def mount(
    disks: Sequence[Disk],
    mountpoint: str,
    *,
    inspect_os: bool = False,
    mounts: Sequence[FsMount] = (),
    readonly: bool = False,
    fuse_options: str = "",
    pid_file: str | None = None,
    timeout: float = MOUNT_WAIT_SECONDS,
) -> int:
    """Mount the guest on ``mountpoint`` and return once the mount is ready; the server's pid is returned."""
    if not inspect_os and not mounts:
        raise InvalidArgument("say what to mount: -i (inspect the guest) or -m DEVICE[:MOUNTPOINT]")
    if not disks:
        raise InvalidArgument("no disk given: use -a DISK or -d DOMAIN")
    target = Path(mountpoint)
    if not target.is_dir():
        raise InvalidArgument(f"mount point {mountpoint} does not exist or is not a directory")
    if os.path.ismount(target):
        raise InvalidState(f"{mountpoint} is already a mount point")
    from pyvirt.guest.appliance import probe_format

    disks = [Disk(d.path, d.format or probe_format(d.path), d.readonly or readonly) for d in disks]
    for disk in disks:
        if not os.access(disk.path, os.R_OK if disk.readonly else os.R_OK | os.W_OK):
            raise InvalidArgument(f"cannot open disk image {disk.path}: permission denied")

    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # intermediate: start the daemon in a new session, then leave at once
        status = 1
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.close(devnull)
                status = _serve(
                    write_fd, disks, str(target), inspect_os, mounts, readonly, fuse_options, pid_file
                )
            else:
                status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    os.waitpid(first, 0)
    return _await_ready(read_fd, mountpoint, timeout)


def _await_ready(read_fd: int, mountpoint: str, timeout: float) -> int:
    """Read the server's report: its pid first, then ``ok`` or an error; kill it if it takes too long."""
    deadline = time.monotonic() + timeout
    data = b""
    server = 0
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                if server:
                    os.kill(server, signal.SIGKILL)
                raise OperationFailed(f"mounting on {mountpoint} did not finish in {timeout:.0f} s; gave up")
            chunk = pipe.read(4096)
            if not chunk:
                break
            data += chunk
            for line in data.decode(errors="replace").splitlines():
                code, _, rest = line.partition("\t")
                if code == "pid":
                    server = int(rest)
                elif code == "ok":
                    return int(rest)
    lines = [ln for ln in data.decode(errors="replace").splitlines() if not ln.startswith("pid\t")]
    if not lines:
        raise OperationFailed(f"the mount server for {mountpoint} exited before the mount was ready")
    code, _, rest = lines[-1].partition("\t")
    raise error_from_wire(code, rest)


def umount(mountpoint: str, *, retries: int = 5, timeout: float = UMOUNT_WAIT_SECONDS) -> None:
    """Unmount a guest mount and wait until its server has written everything back and exited."""
    real = os.path.realpath(mountpoint)
    record = record_path(real)
    if not is_fuse_mount(real):
        raise InvalidState(f"{mountpoint} is not a mounted guest file system")
    for attempt in range(retries + 1):
        result = subprocess.run(["fusermount3", "-u", real], capture_output=True, text=True)
        if result.returncode == 0:
            break
        if "busy" not in result.stderr or attempt == retries:
            raise OperationFailed(
                f"cannot unmount {mountpoint}: {result.stderr.strip() or 'fusermount3 failed'}"
                + (" (is a process still using it?)" if "busy" in result.stderr else "")
            )
        time.sleep(min(2.0, 0.25 * 2**attempt))
    data = _read_record(record)
    if data is None:
        return
    pid = data.get("pid")
    deadline = time.monotonic() + timeout
    while True:
        data = _read_record(record) or {}
        if data.get("status") in ("done", "error") and not _running(pid):
            break
        if not _running(pid):
            data.setdefault("status", "error")
            data.setdefault(
                "message", "the mount server exited without saying whether the disk was written back"
            )
            break
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"the mount server of {mountpoint} (pid {pid}) did not finish in {timeout:.0f} s"
            )
        time.sleep(0.05)
    record.unlink(missing_ok=True)
    if data.get("status") == "error":
        raise OperationFailed(f"{mountpoint}: {data.get('message')}")


def _running(pid: object) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for a parent that will not reap it."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
