"""CPU pinning as libvirt does it without cgroups: the affinity of QEMU's threads, set before the guest runs.

``<vcpu cpuset>`` bounds every thread; ``<cputune><emulatorpin>`` the threads that are not vCPUs, and
``<vcpupin vcpu='N'>`` the thread of vCPU N (its thread id from QMP ``query-cpus-fast``). QEMU starts
paused, so every vCPU thread exists and none has run guest code yet; threads QEMU makes later inherit
the affinity of the thread that makes them (the main loop: the emulator set). A set naming no CPU this
host has online fails the start, naming the element.
"""

from __future__ import annotations

import os

from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import Domain
from pyvirt.errors import OperationFailed
from pyvirt.qemu.monitor import Monitor


def wanted(dom: Domain) -> tuple[frozenset[int] | None, dict[int, tuple[str, frozenset[int]]]]:
    """The emulator threads' CPU set (None: leave alone) and each pinned vCPU's (what, set)."""
    base = parse_cpuset(dom.vcpu_cpuset, "vcpu/@cpuset") if dom.vcpu_cpuset else None
    tune = dom.cputune
    emulator = base
    if tune is not None and tune.emulatorpin is not None:
        emulator = parse_cpuset(tune.emulatorpin, "cputune/emulatorpin")
    vcpus: dict[int, tuple[str, frozenset[int]]] = {}
    for index in range(dom.vcpus):
        pin = tune.vcpupin.get(index) if tune is not None else None
        if pin is not None:
            vcpus[index] = (f"cputune/vcpupin vcpu='{index}'", parse_cpuset(pin, "cputune/vcpupin"))
        elif base is not None:
            vcpus[index] = ("vcpu/@cpuset", base)
    return emulator, vcpus


def _set(tid: int, cpus: frozenset[int], what: str) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        pass  # a thread that ended meanwhile
    except OSError as err:
        raise OperationFailed(
            f"cannot pin to the CPUs of {what} ({err.strerror}): this host has CPUs "
            f"{sorted(os.sched_getaffinity(0))}"
        ) from err


async def apply(monitor: Monitor, pid: int, dom: Domain) -> None:
    emulator, vcpus = wanted(dom)
    if emulator is None and not vcpus:
        return
    threads: dict[int, int] = {}  # thread id → vCPU index
    for cpu in await monitor.execute("query-cpus-fast"):
        threads[int(cpu["thread-id"])] = int(cpu["cpu-index"])
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        index = threads.get(tid)
        if index is None:
            if emulator is not None:
                _set(
                    tid,
                    emulator,
                    "cputune/emulatorpin" if dom.cputune and dom.cputune.emulatorpin else "vcpu/@cpuset",
                )
        elif index in vcpus:
            what, cpus = vcpus[index]
            _set(tid, cpus, what)
