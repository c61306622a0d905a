"""Block jobs on a real guest under TCG: blockcommit, blockpull, blockcopy, blockjob, blockresize,
domblkinfo and domblkerror, with qemu-img as the oracle of every image the jobs leave.

The guest boots from its initramfs and sees one data disk, /dev/vda: a qcow2 overlay over a qcow2
base, made with qemu-img before the start. The guest writes a pattern through the overlay; the
expected content of each image is a raw file written here, which ``qemu-img compare`` checks.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (the oracle) is not installed"),
]

MIB = 1 << 20
SIZE = 64 * MIB


def qemu_img(*args: str) -> str:
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"qemu-img {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def chain(path: Path) -> list[str]:
    """The files of ``path``'s backing chain, top first, as qemu-img sees them."""
    infos = json.loads(qemu_img("info", "-U", "--backing-chain", "--output=json", str(path)))
    return [str(info["filename"]) for info in infos]


def make_chain(tmp: Path, base_mib: int = 4) -> tuple[Path, Path, Path]:
    """base.qcow2 (``base_mib`` MiB of 0x11) under top.qcow2; returns (base, top, expected raw file)."""
    expected = tmp / "expected.raw"
    with open(expected, "wb") as fh:
        fh.write(b"\x11" * base_mib * MIB)
        fh.truncate(SIZE)
    base, top = tmp / "base.qcow2", tmp / "top.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(expected), str(base))
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top))
    return base, top, expected


def expect_written(expected: Path, offset: int, length: int, byte: int) -> None:
    with open(expected, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([byte]) * length)


def guest_write(console: Console, offset_mib: int, mib: int, byte: int, dev: str = "vda") -> None:
    """The guest writes ``mib`` MiB of ``byte`` at ``offset_mib`` MiB of /dev/``dev``, flushed."""
    out = console.run(
        f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null | tr '\\000' '\\{byte:03o}' | "
        f"dd of=/dev/{dev} bs=1M seek={offset_mib} conv=fsync 2>&1; echo rc=$?",
        timeout=120,
    )
    assert "rc=0" in out, out


def disk_xml(path: Path, target: str = "vda", fmt: str = "qcow2") -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
        f"<source file='{path}'/><target dev='{target}' bus='virtio'/></disk>"
    )


def define_and_start(daemon: Daemon, tmp: Path, name: str, disks: str) -> Console:
    xml = tmp / f"{name}.xml"
    xml.write_text(domain_xml(name, extra_devices=disks))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect("pyvirt-guest: ready")
    return console


def disk_element(daemon: Daemon, name: str, *extra: str) -> str:
    out = daemon.cli("dumpxml", name, *extra).ok().out
    return out[out.index("<disk") : out.index("</disk>")]


def wait_state(daemon: Daemon, name: str, disk: str, states: tuple[str, ...], limit: float = 600) -> str:
    """Poll the job (as virsh --wait does) until it reaches one of ``states``; a generous limit only
    keeps a broken job from hanging the suite."""
    conn = daemon.connect()
    deadline = time.monotonic() + limit
    while True:
        state = conn.domain(name).block_job(disk)["state"]
        if state in states or time.monotonic() > deadline:
            return str(state)
        time.sleep(0.5)


def test_active_commit_pivots_to_the_base_and_blockresize_grows_it(daemon: Daemon, tmp_path: Path) -> None:
    base, top, expected = make_chain(tmp_path)
    console = define_and_start(daemon, tmp_path, "bjc", disk_xml(top))
    assert daemon.cli("blockjob", "bjc", "vda", "--info").ok().out == "No current block job for vda\n"
    live = disk_element(daemon, "bjc")
    assert f"<source file='{top}'/>" in live and f"<source file='{base}'/>" in live, live
    assert "<backingStore type='file'>" in live and "<format type='qcow2'/>" in live, live

    guest_write(console, 1, 2, 0x22)
    expect_written(expected, 1 * MIB, 2 * MIB, 0x22)
    done = daemon.cli("blockcommit", "bjc", "vda", "--active", "--pivot", "--wait", "--verbose").ok()
    assert done.out == "\nSuccessfully pivoted\n", done
    assert "Block commit: [100 %]" in done.err, done
    live = disk_element(daemon, "bjc")
    assert f"<source file='{base}'/>" in live and str(top) not in live, live
    assert re.search(r"<source file='[^']+'/>\s*<backingStore/>", live), live  # the base stands alone
    assert f"<source file='{base}'/>" in disk_element(daemon, "bjc", "--inactive")
    assert daemon.cli("blockjob", "bjc", "vda", "--info").ok().out == "No current block job for vda\n"
    # The guest still reads what it wrote, now from the base.
    assert '"' * 16 in console.run("dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | hexdump -C | head -1")

    # blockresize: the guest sees the new size at once; domblkinfo reports it.
    assert console.run("cat /sys/block/vda/size").split()[-1] == str(SIZE // 512)
    done = daemon.cli("blockresize", "bjc", "vda", "128M").ok()
    assert done.out == "Block device 'vda' is resized\n", done
    sectors = console.run("sleep 1; cat /sys/block/vda/size").split()[-1]
    assert sectors == str(128 * MIB // 512), sectors
    info = daemon.cli("domblkinfo", "bjc", "vda").ok().out
    assert info.startswith(f"Capacity:       {128 * MIB}\n"), info
    human = daemon.cli("domblkinfo", "bjc", "--all", "--human").ok().out
    assert re.search(r" vda\s+128\.000 MiB\s", human), human
    assert daemon.cli("domblkerror", "bjc").ok().out == "No errors found\n\n"
    console.close()
    daemon.cli("destroy", "bjc").ok()

    # The oracle: the base holds the guest's data, its chain is itself, the image is sound.
    assert chain(base) == [str(base)]
    qemu_img("check", str(base))
    expanded = tmp_path / "expected128.raw"
    shutil.copyfile(expected, expanded)
    os.truncate(expanded, 128 * MIB)
    assert "Images are identical" in qemu_img("compare", "-f", "raw", "-F", "qcow2", str(expanded), str(base))
    # Shut off: domblkinfo reads the image; blockresize is refused as virsh's, nothing changes.
    assert daemon.cli("domblkinfo", "bjc", "vda").ok().out.startswith(f"Capacity:       {128 * MIB}\n")
    unknown = daemon.cli("domblkinfo", "bjc", "vdz")
    assert unknown.rc == 1 and "disk 'vdz' not found in domain" in unknown.err, unknown
    refused = daemon.cli("blockresize", "bjc", "vda", "256M")
    assert refused.rc == 1 and "domain is not running" in refused.err, refused
    assert qemu_img("info", "--output=json", str(base)).count(str(128 * MIB)) == 1


def test_pull_copy_with_a_slow_job_across_a_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    base, top, expected = make_chain(tmp_path, base_mib=8)
    raw = tmp_path / "plain.raw"
    with open(raw, "wb") as fh:
        fh.truncate(16 * MIB)
    console = define_and_start(daemon, tmp_path, "bjp", disk_xml(top) + disk_xml(raw, "vdb", "raw"))
    before = disk_element(daemon, "bjp")

    # Bad input: refused with the reason, nothing started, nothing changed.
    cases = [
        (("blockcommit", "bjp", "vdb", "--wait"), "has no backing file"),
        (("blockpull", "bjp", "vdb"), "has no backing file"),
        (
            ("blockcommit", "bjp", "vda", "--active", "--base", str(tmp_path / "no.qcow2")),
            "could not find image",
        ),
        (("blockcommit", "bjp", "vdz", "--active"), "disk 'vdz' not found in domain"),
        (("blockcommit", "bjp", "vda", "--wait"), "active layer requires active flag"),
        (("blockcommit", "bjp", "vda", "--verbose"), "--verbose requires at least one of"),
        (("blockcopy", "bjp", "vda", "--dest", str(raw)), "already exists"),
        (("blockcopy", "bjp", "vda"), "need either --dest or --xml"),
        (("blockjob", "bjp", "vda", "--abort"), "does not have an active block job"),
        (("blockjob", "bjp", "vda", "--raw", "--abort"), "mutually exclusive"),
    ]
    for args, message in cases:
        result = daemon.cli(*args)
        assert result.rc == 1 and message in result.err, (args, result)
    assert disk_element(daemon, "bjp") == before
    assert daemon.cli("blockjob", "bjp", "vda", "--info").ok().out == "No current block job for vda\n"
    assert os.path.getsize(raw) == 16 * MIB

    # blockpull: the overlay takes in its backing data and stands alone.
    guest_write(console, 0, 1, 0x33)
    expect_written(expected, 0, MIB, 0x33)
    done = daemon.cli("blockpull", "bjp", "vda", "--wait", "--verbose").ok()
    assert done.out == "\nPull complete\n" and "Block Pull: [100 %]" in done.err, done
    live = disk_element(daemon, "bjp")
    assert str(base) not in live and re.search(r"<source file='[^']+'/>\s*<backingStore/>", live), live
    assert chain(top) == [str(top)]

    # blockcopy at 1 MiB/s: the job runs long enough to be seen, and to outlive a daemon restart.
    guest_write(console, 8, 6, 0x44)
    expect_written(expected, 8 * MIB, 6 * MIB, 0x44)
    copy = tmp_path / "copy.qcow2"
    dest = str(copy)
    started = daemon.cli("blockcopy", "bjp", "vda", "--dest", dest, "--bandwidth", "1", "--transient-job")
    assert started.ok().out == "Block Copy started\n"
    info = daemon.cli("blockjob", "bjp", "vda", "--info").ok()
    assert "Block Copy: [" in info.err, info
    assert info.out == "    Bandwidth limit: 1048576 bytes/s (1.000 MiB/s)\n\n", info
    raw_info = daemon.cli("blockjob", "bjp", "vda", "--raw").ok().out
    assert raw_info.startswith(" type=copy\n bandwidth=1\n cur="), raw_info
    console.close()
    daemon.restart()
    console = Console(daemon, "bjp", history=False)
    again = daemon.cli("blockjob", "bjp", "vda", "--raw").ok().out
    assert again.startswith(" type=copy\n bandwidth=1\n"), again
    daemon.cli("blockjob", "bjp", "vda", "--bandwidth", "0").ok()
    assert wait_state(daemon, "bjp", "vda", ("ready", "failed", "canceled")) == "ready"
    daemon.cli("blockjob", "bjp", "vda", "--pivot").ok()
    # The files handed to QEMU follow: the copy is its (recorded), the old top given back.
    owners = json.loads((daemon.run_dir / "bjp.json").read_text())["owners"]
    if owners:  # QEMU runs as its own user (a system daemon)
        qemu_uid = pwd.getpwnam("pyvirt-qemu").pw_uid
        assert str(copy) in owners and str(top) not in owners, owners
        assert copy.stat().st_uid == qemu_uid and top.stat().st_uid == os.getuid()
    live = disk_element(daemon, "bjp")
    assert f"<source file='{copy}'/>" in live and str(top) not in live, live
    assert f"<source file='{copy}'/>" in disk_element(daemon, "bjp", "--inactive")
    # The guest goes on writing, into the copy.
    guest_write(console, 20, 1, 0x55)
    expect_written(expected, 20 * MIB, MIB, 0x55)
    console.close()
    daemon.cli("destroy", "bjp").ok()

    assert copy.stat().st_uid == os.getuid()  # given back when QEMU stopped
    for image in (top, copy):
        qemu_img("check", str(image))
    assert chain(copy) == [str(copy)]
    assert "Images are identical" in qemu_img("compare", "-f", "raw", "-F", "qcow2", str(expected), str(copy))


def overlay_from(raw: Path, backing: Path, dest: Path) -> None:
    """A qcow2 ``dest`` over ``backing`` holding what ``raw`` has that ``backing`` has not (qemu-img)."""
    qemu_img("convert", "-f", "raw", "-O", "qcow2", "-B", str(backing), "-F", "qcow2", str(raw), str(dest))


def next_event(events: object, kind: str) -> dict[str, object]:
    for event in events:  # type: ignore[attr-defined]
        if event["kind"] == kind:
            return dict(event)
    raise AssertionError("the event stream ended")


def test_chain_jobs_with_every_option(daemon: Daemon, tmp_path: Path) -> None:
    """base <- m1 <- m2 <- top: an intermediate commit, a partial pull, aborted and throttled jobs, a
    shallow copy left behind, an active commit keeping its overlay, and a pivot to a reused raw file."""
    base, _top, expected = make_chain(tmp_path)
    m1, m2, top = tmp_path / "m1.qcow2", tmp_path / "m2.qcow2", tmp_path / "t.qcow2"
    expect_written(expected, 4 * MIB, MIB, 0x21)
    overlay_from(expected, base, m1)
    expect_written(expected, 5 * MIB, MIB, 0x31)
    overlay_from(expected, m1, m2)
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(m2), "-F", "qcow2", str(top))
    console = define_and_start(daemon, tmp_path, "bj3", disk_xml(top))
    guest_write(console, 6, 1, 0x41)
    expect_written(expected, 6 * MIB, MIB, 0x41)
    conn = daemon.connect()
    events = iter(conn.events())

    # The intermediate m2 into m1, named relative in the top's header, then deleted.
    done = daemon.cli(
        "blockcommit", "bj3", "vda", "--top", str(m2), "--shallow", "--keep-relative", "--delete",
        "--bytes", "--bandwidth", str(100 * MIB), "--wait",
    ).ok()  # fmt: skip
    assert done.out == "\nCommit complete\n", done
    assert not m2.exists()
    assert chain(top) == [str(top), str(m1), str(base)]
    assert json.loads(qemu_img("info", "-U", "--output=json", str(top)))["backing-filename"] == "m1.qcow2"
    event = next_event(events, "block-job")
    assert (event["event"], event["detail"]) == ("completed", f"commit:vda:{top}"), event
    live = disk_element(daemon, "bj3")
    assert str(m2) not in live and f"<source file='{m1}'/>" in live, live

    # A pull at 1 byte/s outlasts --timeout: aborted, the chain as it was.
    slow = daemon.cli(
        "blockpull", "bj3", "vda", "--bytes", "--bandwidth", "1", "--wait", "--timeout", "1", "--async"
    )
    assert slow.rc == 1 and slow.out == "\nPull aborted\n" and "error" not in slow.err, slow
    assert wait_state(daemon, "bj3", "vda", ("canceled", "completed", "failed")) == "canceled"
    assert chain(top) == [str(top), str(m1), str(base)]

    # A partial pull: m1's data into the top, which then backs onto the base (relative).
    done = daemon.cli("blockpull", "bj3", "vda", "--base", str(base), "--keep-relative", "--wait").ok()
    assert done.out == "\nPull complete\n", done
    assert chain(top) == [str(top), str(base)] and m1.exists()
    assert json.loads(qemu_img("info", "-U", "--output=json", str(top)))["backing-filename"] == "base.qcow2"

    # A shallow copy over the same base, finished without a pivot: the domain keeps its top.
    copy = tmp_path / "shallow.qcow2"
    done = daemon.cli(
        "blockcopy", "bj3", "vda", "--dest", str(copy), "--shallow", "--format", "qcow2",
        "--granularity", "65536", "--buf-size", str(MIB), "--synchronous-writes", "--finish",
        "--timeout", "600",
    ).ok()  # fmt: skip
    assert done.out == "\nSuccessfully copied\n", done
    assert f"<source file='{top}'/>" in disk_element(daemon, "bj3")
    assert chain(copy) == [str(copy), str(base)]
    assert "Images are identical" in qemu_img("compare", "-U", str(top), str(copy))
    printed = daemon.cli(
        "blockcopy", "bj3", "vda", "--dest", "/x.img", "--format", "qcow2", "--print-xml"
    ).ok()
    assert printed.out == "<disk type='file'>\n  <source file='/x.img'/>\n  <driver type='qcow2'/>\n</disk>\n"
    refused = daemon.cli("blockcopy", "bj3", "vda", "--dest", str(tmp_path / "b.img"), "--blockdev")
    assert refused.rc == 1 and "is not a block device" in refused.err, refused

    # An active commit ended without a pivot: the base has everything, the top stays the disk.
    done = daemon.cli("blockcommit", "bj3", "vda", "--active", "--keep-overlay", "--async").ok()
    assert done.out == "\nCommit complete, overlay image kept\n", done
    assert f"<source file='{top}'/>" in disk_element(daemon, "bj3")
    assert "Images are identical" in qemu_img("compare", "-U", "-F", "qcow2", str(base), str(top))

    # A throttled job: its limit in bytes, changed, then aborted without waiting.
    started = daemon.cli("blockcommit", "bj3", "vda", "--active", "--bytes", "--bandwidth", "1").ok()
    assert started.out == "Active Block Commit started\n", started
    info = daemon.cli("blockjob", "bj3", "vda", "--info", "--bytes").ok()
    assert info.out == "    Bandwidth limit: 1 bytes/s (1.000 B/s)\n\n", info
    assert "Active Block Commit: [" in info.err, info
    daemon.cli("blockjob", "bj3", "vda", "--bandwidth", "2", "--bytes").ok()
    assert " bandwidth=2\n" in daemon.cli("blockjob", "bj3", "vda", "--raw", "--bytes").ok().out
    assert daemon.cli("blockjob", "bj3", "vda", "--async").ok().out == "\n"
    assert wait_state(daemon, "bj3", "vda", ("canceled", "completed", "failed")) == "canceled"
    event = next_event(events, "block-job")  # the stream saw every job: the ones above, then this
    while event["event"] != "canceled" or not str(event["detail"]).startswith("active_commit"):
        event = next_event(events, "block-job")
    assert event["detail"] == f"active_commit:vda:{top}", event

    # A pivot to a raw file that exists (--xml, --reuse-external): the domain now runs on it.
    reused = tmp_path / "reused.raw"
    with open(reused, "wb") as fh:
        fh.truncate(SIZE)
    spec = tmp_path / "dest.xml"
    spec.write_text(f"<disk type='file'><source file='{reused}'/><driver type='raw'/></disk>")
    done = daemon.cli("blockcopy", "bj3", "vda", "--xml", str(spec), "--reuse-external", "--pivot", "--wait")
    assert done.ok().out == "\nSuccessfully pivoted\n", done
    live = disk_element(daemon, "bj3")
    assert f"<source file='{reused}'/>" in live and "type='raw'" in live, live
    assert "<backingStore/>" in live and "<backingStore type" not in live, live
    guest_write(console, 7, 1, 0x51)
    expect_written(expected, 7 * MIB, MIB, 0x51)
    console.close()
    daemon.cli("destroy", "bj3").ok()
    assert "Images are identical" in qemu_img("compare", "-f", "raw", "-F", "raw", str(expected), str(reused))
    for image in (base, top, copy):
        qemu_img("check", str(image))


def test_jobs_over_an_external_snapshot_and_on_a_hot_plugged_disk(daemon: Daemon, tmp_path: Path) -> None:
    """The disk's top is no longer the node QEMU started with: an external snapshot's overlay (commit
    it back), or a hot-plugged disk whose backing file the daemon handed over read-only (committing
    into it hands it over again writable); then blockresize, domblkinfo and an unplug."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    base, top, expected = make_chain(first)
    console = define_and_start(daemon, tmp_path, "bjs", disk_xml(top))

    overlay = first / "snap.qcow2"
    spec = f"vda,snapshot=external,driver=qcow2,file={overlay}"
    daemon.cli("snapshot-create-as", "bjs", "s1", "--disk-only", "--diskspec", spec).ok()
    assert chain(overlay) == [str(overlay), str(top), str(base)]
    guest_write(console, 2, 1, 0x61)
    expect_written(expected, 2 * MIB, MIB, 0x61)
    done = daemon.cli("blockcommit", "bjs", "vda", "--active", "--pivot", "--wait").ok()
    assert done.out == "\nSuccessfully pivoted\n", done
    assert re.search(rf"^ vda\s+{re.escape(str(base))}$", daemon.cli("domblklist", "bjs").ok().out, re.M)
    done = daemon.cli("blockresize", "bjs", "vda", "96M").ok()
    assert console.run("sleep 1; cat /sys/block/vda/size").split()[-1] == str(96 * MIB // 512)

    # A qcow2 chain plugged live: /dev/vdb in the guest.
    hbase, htop, hexpected = make_chain(second)
    daemon.cli("attach-disk", "bjs", str(htop), "vdb", "--subdriver", "qcow2", "--serial", "HOTJOB").ok()
    console.run("for i in $(seq 120); do [ -e /sys/block/vdb ] && break; sleep 0.5; done", 90)
    guest_write(console, 1, 2, 0x62, dev="vdb")
    expect_written(hexpected, 1 * MIB, 2 * MIB, 0x62)
    done = daemon.cli("blockcommit", "bjs", "vdb", "--active", "--pivot", "--wait", "--verbose").ok()
    assert done.out == "\nSuccessfully pivoted\n" and "Block commit: [100 %]" in done.err, done
    out = daemon.cli("domblklist", "bjs").ok().out
    assert re.search(rf"^ vdb\s+{re.escape(str(hbase))}$", out, re.M), out
    daemon.cli("blockresize", "bjs", "vdb", "80M").ok()
    assert console.run("sleep 1; cat /sys/block/vdb/size").split()[-1] == str(80 * MIB // 512)
    info = daemon.cli("domblkinfo", "bjs", "vdb").ok().out
    assert info.startswith(f"Capacity:       {80 * MIB}\n"), info
    assert daemon.cli("domblkerror", "bjs").ok().out == "No errors found\n\n"
    guest_write(console, 4, 1, 0x63, dev="vdb")
    expect_written(hexpected, 4 * MIB, MIB, 0x63)
    daemon.cli("detach-disk", "bjs", "vdb").ok()  # waits for the guest to let go
    assert console.run("ls /sys/block").split().count("vdb") == 0
    # QEMU let go of every file of the disk, the job's nodes too, and they were given back.
    pid = daemon.qemu_pids()["bjs"]
    held = {os.path.realpath(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    assert str(top) not in held and str(base) in held  # (seen: the domain's own disk is)
    assert str(hbase) not in held and str(htop) not in held, held
    assert hbase.stat().st_uid == os.getuid() and htop.stat().st_uid == os.getuid()
    console.close()
    daemon.cli("destroy", "bjs").ok()

    for image, raw, mib in ((base, expected, 96), (hbase, hexpected, 80)):
        assert chain(image) == [str(image)]
        qemu_img("check", str(image))
        os.truncate(raw, mib * MIB)
        assert "Images are identical" in qemu_img("compare", "-f", "raw", "-F", "qcow2", str(raw), str(image))
