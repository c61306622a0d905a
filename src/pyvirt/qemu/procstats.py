"""Counters the kernel keeps for a QEMU process and its taps, read from /proc and its cgroup.

All reads are cheap text parses with no QMP round trip: CPU time of the process (its cgroup's
``cpu.stat`` when it has one, which also counts threads that have exited), each thread's run and
queue time (``schedstat``, in nanoseconds), the resident set, and every network device's counters in
one read of ``/proc/net/dev`` (of the reader's network namespace, where the daemon's taps are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTime:
    """Nanoseconds of CPU a process used: in total, in user mode and in the kernel."""

    total: int
    user: int
    system: int


@dataclass(frozen=True)
class NetCounters:
    """A network device's counters, as the host sees them (a tap's rx is what its guest sent)."""

    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_drop: int

    def guest_view(self) -> NetCounters:
        """The counters from the guest's side of a tap (libvirt's domifstat): rx and tx swapped."""
        return NetCounters(
            self.tx_bytes,
            self.tx_packets,
            self.tx_errs,
            self.tx_drop,
            self.rx_bytes,
            self.rx_packets,
            self.rx_errs,
            self.rx_drop,
        )


def process_cpu(pid: int, cgroup: str | None = None) -> CpuTime:
    """CPU time of process ``pid``: from its cgroup's ``cpu.stat`` if it has one, else /proc."""
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cpu.stat")) as fh:
                values = dict(line.split() for line in fh if line.count(" ") == 1)
            return CpuTime(
                int(values["usage_usec"]) * 1000,
                int(values["user_usec"]) * 1000,
                int(values["system_usec"]) * 1000,
            )
        except (OSError, KeyError, ValueError):
            pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return CpuTime(0, 0, 0)
    user, system = int(fields[11]) * _TICK_NS, int(fields[12]) * _TICK_NS
    return CpuTime(user + system, user, system)


def thread_schedstat(pid: int, tid: int) -> tuple[int, int]:
    """(nanoseconds run, nanoseconds waited on a run queue) of one thread; zeros if it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
            run, wait, _slices = fh.read().split()
        return int(run), int(wait)
    except (OSError, ValueError):
        return 0, 0


def thread_cpu(pid: int, tid: int) -> int:
    """The host CPU a thread last ran on (/proc's ``processor``), -1 if it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kib(pid: int) -> int | None:
    """The resident set of ``pid`` in KiB (``statm``'s resident pages: ``status``' VmRSS, one short line
    to read instead of fifty)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        return None


def net_devices() -> dict[str, NetCounters]:
    """Every network device of this network namespace with its counters (one read)."""
    out: dict[str, NetCounters] = {}
    try:
        with open("/proc/net/dev") as fh:
            lines = fh.readlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        f = rest.split()
        if len(f) < 16:
            continue
        out[name.strip()] = NetCounters(
            int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[8]), int(f[9]), int(f[10]), int(f[11])
        )
    return out
