"""libvirt 9.0 as the oracle of domjobinfo on a running job, of qemu-monitor-command's output and of
cpu-stats' format.

A private libvirtd (tests/support/virtinstall.py's Oracle, its QEMU run as root with no virtlogd, no
security driver and no namespaces) and pyvirtd each run the test guest under TCG, and the same virsh
command lines go to both. qemu-monitor-command's replies must be the same text, but for the ``id``
libvirt adds to each command it sends; domjobinfo with no job the same text; domjobinfo during a save
the same fields, in the same order, each in the same format (the figures differ: each save is at its own
point). libvirt's save is held by a FIFO that nobody reads until the job is aborted, pyvirt's (its image
is a temporary file renamed when done) by QEMU's pause-before-switchover. cpu-stats' totals are compared
too (its per-CPU lines where libvirt has them). Skipped without libvirt; the pyvirt side
alone is tested in test_display_keys.py and test_tuning.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon
from tests.support.guest import domain_xml
from tests.support.virtinstall import Oracle

pytestmark = pytest.mark.slow

# Enough for libvirt to run the test guest inside the oracle's namespaces.
QEMU_CONF = """
stdio_handler = "file"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
"""

MONITOR_COMMANDS = (
    ('{"execute":"query-status"}',),
    ("--pretty", '{"execute":"query-status"}'),
    ("--return-value", '{"execute":"query-name"}'),
    ("--hmp", "info", "status"),
    ('{"execute":"no-such-command"}',),
    ('{"execute":"query-status","id":"x"}',),  # a command's own id: libvirt adds its own
)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    reason = Oracle.missing()
    if reason:
        pytest.skip(f"libvirt 9.0 is not the oracle here: {reason}")
    o = Oracle(qemu_conf=QEMU_CONF)
    o.start()
    try:
        yield o
    finally:
        o._virsh("destroy", "jo1")
        o.stop()


def without_id(text: str) -> str:
    """A QMP reply without the ``id`` libvirt gives each command it sends (compact or pretty)."""
    text = re.sub(r',"id":"libvirt-\d+"|"id":"libvirt-\d+",', "", text)  # after a reply, before an error
    return re.sub(r',\n  "id": "libvirt-\d+"', "", text)


def job_format(text: str) -> list[tuple[str, str]]:
    """domjobinfo's lines as (label, the shape of the value): sizes, padded counts with their unit."""
    out = []
    for line in text.splitlines():
        if line:
            out.append((line[:18], shape(line[18:])))
    return out


def shape(value: str) -> str:
    if re.fullmatch(r"\d+\.\d{3} (B|KiB|MiB|GiB|TiB)(/s)?", value):  # virsh's %-.3lf %s
        return "size" + ("/s" if value.endswith("/s") else "")
    number, _, unit = value.partition(" ")
    if number.isdigit():
        unit = unit.strip()
        padded = f"{int(number):<12}" + (f" {unit}" if unit else "")  # virsh's %-12llu
        return f"count {unit}" if value == padded else f"unpadded {value!r}"
    return value


def test_outputs_agree_with_libvirt(oracle: Oracle, daemon: Daemon, tmp_path: Path) -> None:
    xml = tmp_path / "jo1.xml"
    xml.write_text(domain_xml("jo1"))
    oracle.virsh("define", str(xml))
    oracle.virsh("start", "jo1")
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "jo1").ok()
    console = Console(daemon, "jo1")
    console.expect("pyvirt-guest: ready", 180)

    # qemu-monitor-command: the same text, but for libvirt's id.
    for argv in MONITOR_COMMANDS:
        theirs = oracle._virsh("qemu-monitor-command", "jo1", *argv)
        ours = daemon.cli("qemu-monitor-command", "jo1", *argv)
        # After a failed command virsh prints an empty line on stdout, pyvirt nothing (as for every verb).
        assert theirs.returncode == 0 or theirs.stdout == "\n", theirs
        assert (ours.rc, ours.out, ours.err) == (
            theirs.returncode,
            without_id(theirs.stdout) if theirs.returncode == 0 else "",
            theirs.stderr,
        ), argv

    # domjobinfo with no job.
    for flags in ((), ("--rawstats",)):
        theirs = oracle.virsh("domjobinfo", "jo1", *flags)
        assert daemon.cli("domjobinfo", "jo1", *flags).ok().out == theirs, flags

    # domjobinfo during a save: libvirt's held by a FIFO nobody reads.
    fifo = tmp_path / "jo1.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    saving = subprocess.Popen(
        oracle.virsh_command("save", "jo1", str(fifo)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    theirs = until_saving(lambda: oracle.virsh("domjobinfo", "jo1"), saving)
    theirs_raw = oracle.virsh("domjobinfo", "jo1", "--rawstats")
    oracle.virsh("domjobabort", "jo1")
    os.set_blocking(reader, True)
    threading.Thread(target=lambda: drain(reader), daemon=True).start()
    _, err = saving.communicate(timeout=120)
    assert saving.returncode == 1 and "canceled by client" in err, err

    # pyvirt's held before its switch-over.
    capability = {"capability": "pause-before-switchover", "state": True}
    command = {"execute": "migrate-set-capabilities", "arguments": {"capabilities": [capability]}}
    daemon.cli("qemu-monitor-command", "jo1", json.dumps(command)).ok()
    saving = subprocess.Popen(
        [str(BIN / "pyvirt"), "save", "jo1", str(tmp_path / "jo1.save")],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ours = until_saving(lambda: daemon.cli("domjobinfo", "jo1").ok().out, saving)
    ours_raw = daemon.cli("domjobinfo", "jo1", "--rawstats").ok().out
    daemon.cli("domjobabort", "jo1").ok()
    saving.communicate(timeout=120)
    # Memory bandwidth is shown only when not 0: libvirt's save, blocked on its FIFO, has none.
    assert [f for f in job_format(ours) if f[0] != "Memory bandwidth: "] == job_format(theirs), (ours, theirs)
    assert [k.split(":")[0] for k in ours_raw.splitlines() if k and not k.startswith("memory_bps:")] == [
        k.split(":")[0] for k in theirs_raw.splitlines() if k
    ], (ours_raw, theirs_raw)
    console.close()

    # cpu-stats: the same format. libvirt 9.0 puts its QEMU in the cgroup v2 hierarchy even on a hybrid
    # host, where it has no per-CPU figures ('getCpuacctPercpuUsage' not supported for backend 'cgroup
    # V2'): those are compared on a cgroup v1 host only (pyvirt's per-CPU lines are checked against
    # virsh's format in tests/unit/cli/test_stats_options.py); the totals always are.
    for flags in ((), ("--total",)):
        theirs_cpu = oracle._virsh("cpu-stats", "jo1", *flags)
        if theirs_cpu.returncode != 0:
            assert not flags and "cgroup" in theirs_cpu.stderr, theirs_cpu.stderr
            continue
        ours_cpu = daemon.cli("cpu-stats", "jo1", *flags).ok().out
        assert re.sub(r"\d+", "N", ours_cpu) == re.sub(r"\d+", "N", theirs_cpu.stdout), (ours_cpu, theirs_cpu)


def until_saving(read: object, saving: subprocess.Popen[str]) -> str:
    """domjobinfo's text once the save has begun sending memory."""
    assert callable(read)
    out, deadline = "", time.monotonic() + 120
    while "Memory total:" not in out:
        assert saving.poll() is None and time.monotonic() < deadline, (out, saving.poll())
        out = str(read())
    return out


def drain(fd: int) -> None:
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
