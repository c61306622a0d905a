"""pyvirtd killed with -9 at random moments while clients define, start, destroy and undefine VMs.

Each VM is driven by one client, in the cycle define → start → destroy → undefine, so what the daemon
must show for it is known: the state after the last acknowledged operation, or, when the daemon died
under an operation, the state before or after it. After every kill the clients check that (a defined
VM never disappears, a running one never stops, a destroyed one never runs again). At the end:
every QEMU of the root is a running domain's, one per domain, with the pid the daemon recorded; every
config file parses and names its domain; no temporary file is left. Each VM has a qcow2 disk, so a
second QEMU on it would also be refused by QEMU's image locking.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyvirt.client.api import Connection
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.errors import ConnectionFailed, NotFound, PyvirtError
from pyvirt.qemu.process import qemus_of
from pyvirt.store import is_temp_file
from tests.support.daemon import Daemon
from tests.support.guest import domain_xml, guest_artifacts, overlay_disk
from tests.support.stress import report, scale

pytestmark = pytest.mark.slow

State = tuple[bool, bool]  # (defined, running)
CYCLE = ("define", "start", "destroy", "undefine")
AFTER: dict[str, State] = {
    "define": (True, False),
    "start": (True, True),
    "destroy": (True, False),
    "undefine": (False, False),
}


@dataclass
class VM:
    name: str
    xml: str
    expect: set[State] = field(default_factory=lambda: {(False, False)})
    step: int = 0  # index in CYCLE of the next operation


@dataclass
class Tally:
    acknowledged: int = 0
    interrupted: int = 0  # the daemon died under the request
    refused: int = 0  # refused by the daemon (e.g. a start of a VM a cut-off request had started)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def observe(conn: Connection, name: str) -> State:
    try:
        info = conn.domain(name).info()
    except NotFound:
        return (False, False)
    return (bool(info["persistent"]), info["state"] != "shut off")


def client(daemon: Daemon, vms: list[VM], tally: Tally, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    conn: Connection | None = None
    while not stop.is_set():
        vm = rng.choice(vms)
        op = CYCLE[vm.step]
        try:
            if conn is None:
                conn = daemon.connect()
            resync = False
            try:
                if op == "define":
                    conn.define_xml(vm.xml)
                else:
                    dom = conn.domain(vm.name)
                    getattr(dom, op)()
            except ConnectionFailed:
                raise
            except PyvirtError as err:
                with tally.lock:
                    if "internal error" in str(err):
                        tally.server_errors.append(f"{op} {vm.name}: {err}")
                    tally.refused += 1
                resync = True
            else:
                vm.expect = {AFTER[op]}
                vm.step = (vm.step + 1) % len(CYCLE)
                with tally.lock:
                    tally.acknowledged += 1
            if resync:
                resynchronise(conn, vm, tally)
        except (ConnectionFailed, OSError):
            with tally.lock:
                tally.interrupted += 1
            vm.expect = vm.expect | {AFTER[op]}
            if conn is not None:
                conn.close()
            conn = None
            # Wait for the next daemon, then check what it says against what was acknowledged.
            while not stop.is_set():
                try:
                    conn = daemon.connect()
                    resynchronise(conn, vm, tally)
                    break
                except (ConnectionFailed, OSError):
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.1)
    if conn is not None:
        conn.close()


def resynchronise(conn: Connection, vm: VM, tally: Tally) -> None:
    seen = observe(conn, vm.name)
    if seen not in vm.expect:
        with tally.lock:
            tally.violations.append(f"{vm.name}: (defined, running) = {seen}, expected one of {vm.expect}")
    vm.expect = {seen}
    vm.step = {(False, False): 0, (True, False): 1, (True, True): 2}.get(seen, 2)


def test_kill9_under_define_start_destroy_undefine(daemon: Daemon, tmp_path: Path) -> None:
    kills, nvms, nclients = scale(10, 100), scale(5, 20), scale(3, 8)
    art = guest_artifacts()
    vms = []
    for i in range(nvms):
        name = f"k9-{i:02d}"
        disk = overlay_disk(art, tmp_path / f"{name}.qcow2")
        vms.append(VM(name, domain_xml(name, disk=disk, memory_mib=64)))
    tally = Tally()
    stop = threading.Event()
    share = [vms[i::nclients] for i in range(nclients)]
    threads = [
        threading.Thread(target=client, args=(daemon, share[i], tally, stop, i), daemon=True)
        for i in range(nclients)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random(1234)
    restart_times = []
    started = time.monotonic()
    for _ in range(kills):
        time.sleep(rng.uniform(0.05, 2.0))
        daemon.kill9()
        t0 = time.monotonic()
        daemon.start()
        restart_times.append(time.monotonic() - t0)
    time.sleep(2)  # the clients see the last daemon and check their VMs against it
    stop.set()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a client hangs"
    elapsed = time.monotonic() - started

    # One more kill with nothing in flight, then the state the new daemon finds.
    daemon.kill9()
    daemon.start()
    with daemon.connect() as conn:
        listing = {d["name"]: d for d in conn.list_domains()}
        for vm in vms:
            resynchronise(conn, vm, tally)
    qemus = qemus_of(daemon.run_dir)
    per_domain: dict[str, list[int]] = {}
    for pid, name in qemus.items():
        per_domain.setdefault(name, []).append(pid)
    recorded = daemon.qemu_pids()
    running = {name for name, d in listing.items() if d["state"] != "shut off"}
    orphans = sorted(pid for pid, name in qemus.items() if recorded.get(name) != pid or name not in running)
    doubles = sorted(name for name, pids in per_domain.items() if len(pids) > 1)
    without_qemu = sorted(name for name in running if name not in per_domain)
    torn = []
    for path in daemon.config_dir.glob("*.xml"):
        try:
            if load_domain_xml(path.read_text()).name != path.stem:
                torn.append(path.name)
        except PyvirtError as err:
            torn.append(f"{path.name}: {err}")
    persistent = {name for name, d in listing.items() if d["persistent"]}
    configs = {p.stem for p in daemon.config_dir.glob("*.xml")}
    temp_files = [
        os.path.join(d, f) for d, _, files in os.walk(daemon.root) for f in files if is_temp_file(f)
    ]

    # The disks are locked by their QEMU: a second one on the same disk would have been refused too.
    unlocked = []
    probed = sorted(running)
    if not probed:  # the clients happened to leave every VM stopped: start one for the probe
        with daemon.connect() as conn:
            conn.define_xml(vms[0].xml)
            conn.domain(vms[0].name).start()
        probed = [vms[0].name]
    for name in probed:
        probe = subprocess.run(
            ["qemu-img", "info", str(tmp_path / f"{name}.qcow2")], capture_output=True, text=True
        )
        if probe.returncode == 0 or "lock" not in probe.stderr:
            unlocked.append(name)
    report(
        "kill9",
        {
            "kills": kills,
            "vms": nvms,
            "clients": nclients,
            "seconds": round(elapsed, 1),
            "operations_acknowledged": tally.acknowledged,
            "operations_cut_by_a_kill": tally.interrupted,
            "operations_refused": tally.refused,
            "restart_seconds_median": round(sorted(restart_times)[len(restart_times) // 2], 2),
            "restart_seconds_max": round(max(restart_times), 2),
            "qemus_at_end": len(qemus),
            "vms_lost_or_wrong_state": len(tally.violations),
            "orphaned_qemus": len(orphans),
            "domains_with_two_qemus": len(doubles),
            "running_without_qemu": len(without_qemu),
            "torn_configs": len(torn),
            "temp_files_left": len(temp_files),
            "server_errors": len(tally.server_errors),
            "running_disks_without_a_lock": len(unlocked),
        },
    )
    assert tally.acknowledged > kills, "the clients got almost nothing done: the test tested nothing"
    assert not tally.violations
    assert not orphans and not doubles and not without_qemu
    assert not unlocked, unlocked
    assert persistent == configs and not torn
    assert not temp_files
    assert not tally.server_errors
