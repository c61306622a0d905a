"""QEMU's locked-memory limit, set in the child before it executes (pyvirt.qemu.process): a VFIO
domain's figure (daemon/hostdevs.py), or none at all for <memoryBacking><locked/>."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from pyvirt.conf import memory_backing
from pyvirt.qemu import process


def child_limit(tmp_path: Path, **memlock: object) -> str:
    out = tmp_path / "limits"
    popen, _ = process._launch(
        lambda _fd: ["/bin/sh", "-c", f"grep 'Max locked memory' /proc/self/limits > {out}"],
        tmp_path / "m.sock",
        tmp_path / "qemu.log",
        **memlock,  # type: ignore[arg-type]
    )
    assert popen.wait() == 0
    return " ".join(out.read_text().split()[3:5])


def test_the_child_gets_the_vfio_limit(tmp_path: Path) -> None:
    """(128 MiB + 1 GiB) where the daemon may raise the limit (root with CAP_SYS_RESOURCE); else a
    figure below its own hard limit, which any process may set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    want = (128 + 1024) * 1024 * 1024 if memory_backing.can_lift_memlock() else min(hard, 8 << 20) // 2
    assert child_limit(tmp_path, memlock_bytes=want) == f"{want} {want}"
    shown = ["unlimited" if v == resource.RLIM_INFINITY else str(v) for v in (soft, hard)]
    assert child_limit(tmp_path) == " ".join(shown)  # the daemon's own, untouched


@pytest.mark.skipif(
    not memory_backing.can_lift_memlock(), reason="lifting RLIMIT_MEMLOCK needs CAP_SYS_RESOURCE"
)
def test_the_child_of_a_locked_domain_gets_no_limit(tmp_path: Path) -> None:
    assert child_limit(tmp_path, memlock=True) == "unlimited unlimited"
