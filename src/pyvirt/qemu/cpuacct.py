"""Per-CPU accounting of a domain's QEMU (cpu-stats without --total), from cgroup v1's cpuacct.

cgroup v2 keeps no per-CPU counters. On a hybrid host, where the cpuacct controller stays with cgroup v1,
a domain's QEMU joins a twin of its v2 group (:mod:`pyvirt.qemu.cgroup`) in the cpuacct hierarchy
before it executes, and each vCPU thread a child ``vcpuN`` of that twin once QEMU has made it (libvirt's
layout). ``cpuacct.usage_percpu`` of the twin is then each host CPU's time of the whole QEMU, and the sum
over the ``vcpuN`` children that of the guest's CPUs (libvirt's ``cpu_time`` and ``vcpu_time``). The
twin and its children are removed with the v2 group. On a host without a v1 cpuacct hierarchy,
:func:`percpu` refuses with libvirt's words.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.mounts import MOUNTINFO, read_mounts
from pyvirt.qemu import cgroup
from pyvirt.qemu.monitor import Monitor

NO_PERCPU = "Operation not supported: operation 'getCpuacctPercpuUsage' not supported for backend 'cgroup V2'"


@dataclass(frozen=True)
class CpuTimes:
    """Nanoseconds one host CPU spent on a domain: on all of QEMU, and on its vCPUs alone."""

    cpu_time: int
    vcpu_time: int


def hierarchy(mountinfo: Path = MOUNTINFO) -> Path | None:
    """Where cgroup v1 mounts the cpuacct controller (alone or with cpu), or None."""
    with contextlib.suppress(OSError):
        for mount in read_mounts(mountinfo):
            if mount.fstype == "cgroup" and "cpuacct" in mount.options:
                return Path(mount.mountpoint)
    return None


def twin(v2: str | Path) -> Path | None:
    """The cpuacct twin of the v2 group ``v2`` (the same path in the v1 hierarchy), or None."""
    mount, acct = cgroup.mount_point(), hierarchy()
    if mount is None or acct is None or not Path(v2).is_relative_to(mount):
        return None
    return acct / Path(v2).relative_to(mount)


def create(v2: str | Path) -> Path | None:
    """Make the twin of ``v2`` (QEMU joins it at start, see :mod:`pyvirt.qemu.process`); None on a host
    without a v1 cpuacct hierarchy."""
    path = twin(v2)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OperationFailed(f"cannot make the cpuacct cgroup {path}: {err.strerror}") from err
    return path


def place_vcpus(v2: str | Path, threads: dict[int, int]) -> None:
    """Move each vCPU thread (vCPU index → thread id) into the twin's ``vcpuN`` child."""
    path = twin(v2)
    if path is None or not path.is_dir():
        return
    for index, tid in threads.items():
        child = path / f"vcpu{index}"
        try:
            child.mkdir(exist_ok=True)
            (child / "tasks").write_text(str(tid))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile (an unplugged vCPU)
        except OSError as err:
            raise OperationFailed(f"cannot move vCPU {index}'s thread into {child}: {err.strerror}") from err


async def place(monitor: Monitor, v2: str | None) -> None:
    """Move the vCPU threads QEMU has (asked by QMP) into their ``vcpuN`` groups: at start, while QEMU is
    paused and no vCPU has run, and after a vCPU hot-plug."""
    path = twin(v2) if v2 else None
    if v2 is None or path is None or not path.is_dir():
        return
    cpus = await monitor.execute("query-cpus-fast")
    place_vcpus(v2, {int(cpu["cpu-index"]): int(cpu["thread-id"]) for cpu in cpus})


def remove(v2: str | Path) -> None:
    """Remove the twin of ``v2`` and its children (QEMU has exited)."""
    path = twin(v2)
    if path is None or not path.is_dir():
        return
    for child in path.glob("vcpu*"):
        cgroup.remove(child)
    cgroup.remove(path)


def present_cpus(path: str = "/sys/devices/system/cpu/present") -> list[int]:
    """The host's present CPUs (a kernel CPU list such as ``0-3,6``)."""
    cpus: list[int] = []
    with open(path) as fh:
        for part in fh.read().strip().split(","):
            first, _, last = part.partition("-")
            cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def host_cpus() -> int:
    """How many CPUs libvirt's per-CPU statistics list: up to the highest present CPU."""
    return max(present_cpus()) + 1


def _usage(path: Path, cpus: list[int], total: int) -> list[int]:
    """``cpuacct.usage_percpu`` of ``path``: one figure per present CPU, absent CPUs 0."""
    try:
        values = [int(v) for v in (path / "cpuacct.usage_percpu").read_text().split()]
    except (OSError, ValueError) as err:
        raise OperationFailed(f"cannot read {path / 'cpuacct.usage_percpu'}: {err}") from err
    out = [0] * total
    for cpu, value in zip(cpus, values, strict=False):
        out[cpu] = value
    return out


def percpu(v2: str | None, vcpus: list[int]) -> list[CpuTimes]:
    """Each host CPU's time on the domain whose v2 group is ``v2`` and on its online ``vcpus``."""
    if not v2:  # a session daemon's domain, or a host without cgroups
        raise InvalidState("Requested operation is not valid: cgroup CPUACCT controller is not mounted")
    path = twin(v2)
    if path is None or not (path / "cpuacct.usage_percpu").exists():
        raise UnsupportedConfig(NO_PERCPU)
    cpus = present_cpus()
    total = max(cpus) + 1
    cpu_time = _usage(path, cpus, total)
    vcpu_time = [0] * total
    for index in vcpus:
        child = path / f"vcpu{index}"
        if not child.is_dir():
            continue  # a vCPU whose thread was not placed (plugged while the daemon was away)
        for cpu, value in enumerate(_usage(child, cpus, total)):
            vcpu_time[cpu] += value
    return [CpuTimes(c, v) for c, v in zip(cpu_time, vcpu_time, strict=True)]


def open_twin_procs(v2: str | Path) -> int | None:
    """A descriptor on the twin's ``cgroup.procs`` (QEMU writes ``0`` to join), or None."""
    path = twin(v2)
    if path is None or not path.is_dir():
        return None
    return os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
