"""Memory and CPU limits on a domain's cgroup (memtune, schedinfo, ``<memtune>``, ``<cputune><shares>``).

The values go to the domain's cgroup v2 group (:mod:`pyvirt.qemu.cgroup`) when the v2 hierarchy has
the controller. On a hybrid host, whose memory and cpu controllers stay with cgroup v1, they go to a
twin group of the same path in that controller's v1 hierarchy, which QEMU (and the domain's other
processes in its v2 group: its swtpm) is moved into the first time a limit is set (as libvirt uses
the v1 controllers there); the twins are removed with the v2 group.

Sizes are in KiB, as libvirt's: :data:`UNLIMITED_KIB` stands for no limit. On cgroup v2 the soft limit
is ``memory.high`` and the swap limit ``memory.swap.max``, as libvirt maps them. CPU shares are
``cpu.shares`` on v1 (2-262144) and ``cpu.weight`` on v2 (1-10000); a quota of -1 is unlimited.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.mounts import read_mounts
from pyvirt.qemu import cgroup

log = logging.getLogger(__name__)

UNLIMITED_KIB = 9007199254740991  # libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED
MEMORY_FIELDS = ("hard_limit", "soft_limit", "swap_hard_limit")
CPU_FIELDS = ("cpu_shares", "global_period", "global_quota")
MAX_QUOTA = 17592186044415
_V1_FILES = {
    "hard_limit": "memory.limit_in_bytes",
    "soft_limit": "memory.soft_limit_in_bytes",
    "swap_hard_limit": "memory.memsw.limit_in_bytes",
}
_V2_FILES = {"hard_limit": "memory.max", "soft_limit": "memory.high", "swap_hard_limit": "memory.swap.max"}


def v1_mounts() -> dict[str, Path]:
    """The cgroup v1 hierarchies of the memory and cpu controllers, by controller."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for mount in read_mounts():
            if mount.fstype == "cgroup":
                for option in mount.options:
                    if option in ("memory", "cpu"):
                        found.setdefault(option, Path(mount.mountpoint))
    return found


class DomainGroup:
    """The cgroup(s) of one running domain's QEMU (``v2``: the group it was started in)."""

    def __init__(self, v2: str | None, pid: int) -> None:
        if v2 is None:
            raise OperationFailed(
                "this daemon gives domains no cgroup of their own (session mode, or no cgroup v2): "
                "memtune and schedinfo need one"
            )
        self.v2 = Path(v2)
        self.pid = pid

    def where(self, controller: str) -> tuple[Path, int]:
        """The directory holding ``controller``'s files for the domain, and its cgroup version; on v1
        the twin group is made and QEMU moved into it."""
        try:
            if controller in (self.v2 / "cgroup.controllers").read_text().split():
                return self.v2, 2
        except OSError as err:
            raise OperationFailed(f"cannot read the cgroup {self.v2}: {err.strerror}") from err
        twin = twin_path(self.v2, controller)
        if twin is None:
            raise OperationFailed(f"the host's cgroups have no {controller} controller for domains")
        try:
            twin.mkdir(parents=True, exist_ok=True)
            if str(self.pid) not in (twin / "cgroup.procs").read_text().split():
                (twin / "cgroup.procs").write_text(str(self.pid))
        except OSError as err:
            raise OperationFailed(
                f"cannot move QEMU into the {controller} cgroup {twin}: {err.strerror}"
            ) from err
        self._move_helpers(twin)
        return twin, 1

    def _move_helpers(self, twin: Path) -> None:
        """The domain's other processes in its v2 group (its swtpm) follow QEMU into ``twin``."""
        with contextlib.suppress(OSError):
            there = set((twin / "cgroup.procs").read_text().split())
            for pid in (self.v2 / "cgroup.procs").read_text().split():
                if pid not in there:
                    with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                        (twin / "cgroup.procs").write_text(pid)

    # Memory

    def memory(self) -> dict[str, int]:
        path, version = self.where("memory")
        files = _V2_FILES if version == 2 else _V1_FILES
        return {name: _to_kib(_read(path / files[name])) for name in MEMORY_FIELDS}

    def set_memory(self, changes: dict[str, int]) -> None:
        """Limits in KiB (:data:`UNLIMITED_KIB`: none), the others kept; refused (nothing changed) when
        the swap limit would be below the hard limit."""
        path, version = self.where("memory")
        files = _V2_FILES if version == 2 else _V1_FILES
        now = self.memory()
        wanted = {**now, **changes}
        check_memory(wanted)
        order = list(changes)
        # cgroup v1 keeps memsw >= limit at every step: raise the swap limit first, lower it last.
        if "swap_hard_limit" in order and wanted["swap_hard_limit"] >= now["swap_hard_limit"]:
            order.remove("swap_hard_limit")
            order.insert(0, "swap_hard_limit")
        for name in order:
            try:
                (path / files[name]).write_text(_from_kib(wanted[name], version))
            except OSError as err:
                raise OperationFailed(f"cannot set {name} on the cgroup {path}: {err.strerror}") from err

    # CPU

    def cpu(self) -> dict[str, int]:
        path, version = self.where("cpu")
        if version == 2:
            quota, period = _read(path / "cpu.max").split()
            return {
                "cpu_shares": int(_read(path / "cpu.weight")),
                "global_period": int(period),
                "global_quota": -1 if quota == "max" else int(quota),
            }
        return {
            "cpu_shares": int(_read(path / "cpu.shares")),
            "global_period": int(_read(path / "cpu.cfs_period_us")),
            "global_quota": int(_read(path / "cpu.cfs_quota_us")),
        }

    def set_cpu(self, changes: dict[str, int]) -> None:
        path, version = self.where("cpu")
        check_cpu(changes, version)
        try:
            if version == 2:
                if "cpu_shares" in changes:
                    (path / "cpu.weight").write_text(str(changes["cpu_shares"]))
                if "global_period" in changes or "global_quota" in changes:
                    now = self.cpu()
                    quota = changes.get("global_quota", now["global_quota"])
                    period = changes.get("global_period", now["global_period"])
                    (path / "cpu.max").write_text(f"{'max' if quota < 0 else quota} {period}")
                return
            for name, file in (
                ("cpu_shares", "cpu.shares"),
                ("global_period", "cpu.cfs_period_us"),
                ("global_quota", "cpu.cfs_quota_us"),
            ):
                if name in changes:
                    (path / file).write_text(str(changes[name]))
        except OSError as err:
            raise OperationFailed(
                f"cannot set the CPU bandwidth of the cgroup {path}: {err.strerror}"
            ) from err


def check_memory(values: dict[str, int]) -> None:
    hard, swap = values.get("hard_limit", UNLIMITED_KIB), values.get("swap_hard_limit", UNLIMITED_KIB)
    if swap < hard:
        raise InvalidArgument(
            "invalid argument: memory hard_limit tunable value must be lower than or equal to swap_hard_limit"
        )


def check_cpu(values: dict[str, int], version: int = 1) -> None:
    """schedinfo's ranges (libvirt's); ``version`` 2 bounds the shares to cpu.weight's."""
    top = 10000 if version == 2 else 262144
    shares = values.get("cpu_shares")
    if shares is not None and not (1 if version == 2 else 2) <= shares <= top:
        raise InvalidArgument(f"invalid argument: cpu_shares must be between 2 and {top} (cgroup v{version})")
    period = values.get("global_period")
    if period is not None and not 1000 <= period <= 1000000:
        raise InvalidArgument("invalid argument: global_period must be in range [1000, 1000000]")
    quota = values.get("global_quota")
    if quota is not None and quota != -1 and not 1000 <= quota <= MAX_QUOTA:
        raise InvalidArgument(f"invalid argument: global_quota must be -1 or in range [1000, {MAX_QUOTA}]")


def twin_path(v2: Path, controller: str) -> Path | None:
    mount, hierarchy = cgroup.mount_point(), v1_mounts().get(controller)
    if mount is None or hierarchy is None or not v2.is_relative_to(mount):
        return None
    return hierarchy / v2.relative_to(mount)


def remove_twins(v2: str | Path) -> None:
    """Remove the v1 twins of a domain's group (its QEMU has exited)."""
    for controller in ("memory", "cpu"):
        twin = twin_path(Path(v2), controller)
        if twin is not None and twin.is_dir():
            cgroup.remove(twin)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:
        raise OperationFailed(f"cannot read {path}: {err.strerror}") from err


def _to_kib(text: str) -> int:
    if text == "max":
        return UNLIMITED_KIB
    kib = int(text) // 1024
    return UNLIMITED_KIB if kib >= UNLIMITED_KIB or int(text) >= 0x7FFFFFFFFFFFF000 else kib


def _from_kib(kib: int, version: int) -> str:
    if kib >= UNLIMITED_KIB:
        return "max" if version == 2 else "-1"
    return str(kib * 1024)
