"""The daemon under stress: kill -9 with running guests, autostart across restarts, concurrent
starts, and two clients acting on one domain at once."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def define(daemon: Daemon, tmp_path: Path, name: str, **kw: object) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, **kw))  # type: ignore[arg-type]
    daemon.cli("define", str(path)).ok()


def test_kill9_daemon_keeps_guests_and_readopts_them(daemon: Daemon, tmp_path: Path) -> None:
    for name in ("k1", "k2"):
        define(daemon, tmp_path, name)
        daemon.cli("start", name).ok()
    Console(daemon, "k1").expect("pyvirt-guest: ready")
    pids = daemon.qemu_pids()
    daemon.kill9()
    for pid in pids.values():
        assert Path(f"/proc/{pid}").exists(), "QEMU died with the daemon"
    daemon.start()
    listing = daemon.cli("list").ok().out
    assert "k1" in listing and "k2" in listing and listing.count("running") == 2
    assert daemon.qemu_pids() == pids
    console = Console(daemon, "k1")
    assert console.run("echo still-$((1+1))") == "still-2"
    console.close()
    # Ids survive, and new ids do not collide.
    ids = {daemon.cli("domid", n).ok().out.strip() for n in ("k1", "k2")}
    define(daemon, tmp_path, "k3")
    daemon.cli("start", "k3").ok()
    assert daemon.cli("domid", "k3").ok().out.strip() not in ids
    # Still fully manageable: ACPI shutdown reaches the guest, destroy works.
    daemon.cli("shutdown", "k1").ok()
    daemon.wait_state("k1", "shut off", 90)
    daemon.cli("destroy", "k2").ok()
    daemon.cli("destroy", "k3").ok()
    assert not daemon.qemu_pids()


def test_guest_stopping_while_daemon_is_down_is_noticed(daemon: Daemon, tmp_path: Path) -> None:
    import os
    import signal

    define(daemon, tmp_path, "g1")
    daemon.cli("start", "g1").ok()
    pid = daemon.qemu_pids()["g1"]
    daemon.stop()
    os.kill(pid, signal.SIGKILL)
    daemon.start()
    assert daemon.state("g1") == "shut off"
    assert not (daemon.run_dir / "g1.json").exists()


def test_autostart_across_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "auto1")
    define(daemon, tmp_path, "manual1")
    daemon.cli("autostart", "auto1").ok()
    daemon.restart()
    daemon.wait_state("auto1", "running", 30)  # autostart runs once the daemon already serves
    assert daemon.state("manual1") == "shut off"
    Console(daemon, "auto1").expect("pyvirt-guest: ready")
    daemon.cli("destroy", "auto1").ok()


def test_twenty_concurrent_starts(daemon: Daemon, tmp_path: Path) -> None:
    names = [f"c{i:02d}" for i in range(20)]
    for name in names:
        define(daemon, tmp_path, name, memory_mib=64)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda n: daemon.cli("start", n), names))
    for name, result in zip(names, results, strict=True):
        assert result.rc == 0, (name, result.err)
    listing = daemon.cli("list").ok().out
    assert listing.count("running") == 20
    ids = [daemon.cli("domid", n).ok().out.strip() for n in names]
    assert len(set(ids)) == 20
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda n: daemon.cli("destroy", n), names))
    assert all(r.rc == 0 for r in results), [r.err for r in results if r.rc]
    assert not daemon.qemu_pids()


def test_two_clients_on_one_domain(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "shared")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: daemon.cli("start", "shared"), range(2)))
    assert sorted(r.rc for r in results) == [0, 1]
    loser = next(r for r in results if r.rc)
    assert "domain is already running" in loser.err
    assert len(daemon.qemu_pids()) == 1

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: daemon.cli("destroy", "shared"), range(2)))
    assert sorted(r.rc for r in results) == [0, 1]
    assert "domain is not running" in next(r for r in results if r.rc).err
    assert daemon.state("shared") == "shut off"

    # A second console is refused while one is attached; --force takes it over.
    daemon.cli("start", "shared").ok()
    first = Console(daemon, "shared")
    second = daemon.cli("console", "shared", input="")
    assert second.rc == 1 and "Active console session exists" in second.err
    first.close()
    daemon.cli("destroy", "shared").ok()


def test_slow_start_does_not_block_other_domains(daemon: Daemon, tmp_path: Path) -> None:
    import time

    define(daemon, tmp_path, "fast")
    define(daemon, tmp_path, "other")
    daemon.cli("start", "other").ok()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        start = pool.submit(daemon.cli, "start", "fast")
        t0 = time.monotonic()
        info = daemon.cli("dominfo", "other").ok()
        elapsed = time.monotonic() - t0
        assert start.result().rc == 0
    assert "running" in info.out
    assert elapsed < 5
    daemon.cli("destroy", "fast").ok()
    daemon.cli("destroy", "other").ok()
