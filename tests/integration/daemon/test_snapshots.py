"""Snapshots on real QEMU guests under TCG: internal with memory (QEMU's snapshot jobs), external
disk-only overlays (blockdev-snapshot, then block-commit on delete), with qemu-img as the oracle for
the images they leave."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

READY = r"pyvirt-guest: ready"
QEMU_IMG = shutil.which("qemu-img")


def define(daemon: Daemon, tmp_path: Path, name: str) -> Path:
    disk = copy_disk(guest_artifacts(), tmp_path / f"{name}.qcow2")
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, disk=disk))
    daemon.cli("define", str(path)).ok()
    return disk


def qemu_img(*args: str) -> str:
    assert QEMU_IMG is not None
    return subprocess.run([QEMU_IMG, *args], check=True, capture_output=True, text=True).stdout


def boot(daemon: Daemon, name: str) -> Console:
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect(READY)
    return console


def test_internal_snapshot_with_memory_brings_back_ram_and_processes(daemon: Daemon, tmp_path: Path) -> None:
    disk = define(daemon, tmp_path, "s1vm")
    console = boot(daemon, "s1vm")
    console.run("mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo before > /mnt/t/marker")
    pid = console.run("sleep 10000 & echo $!")
    assert pid.isdigit(), pid

    out = daemon.cli("snapshot-create-as", "s1vm", "snap1", "--description", "before the change").ok().out
    assert out == "Domain snapshot snap1 created\n"
    assert daemon.cli("domstate", "--reason", "s1vm").ok().out == "running (booted)\n\n"
    assert (daemon.config_dir / "snapshot/s1vm/snap1.xml").is_file()

    console.run(f"echo after > /mnt/t/marker; kill {pid}; wait {pid}")
    assert console.run(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone") == "gone"
    assert console.run("cat /mnt/t/marker") == "after"

    assert daemon.cli("snapshot-revert", "s1vm", "snap1").ok().out == "Domain snapshot snap1 reverted\n"
    assert daemon.cli("domstate", "--reason", "s1vm").ok().out == "running (from snapshot)\n\n"
    assert console.run("cat /mnt/t/marker") == "before"
    assert console.run(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone") == "alive"

    info = daemon.cli("snapshot-info", "s1vm", "--current").ok().out
    assert re.search(r"^Name:\s+snap1$", info, re.M) and re.search(r"^State:\s+running$", info, re.M)
    assert re.search(r"^Location:\s+internal$", info, re.M)
    xml = daemon.cli("snapshot-dumpxml", "s1vm", "snap1").ok().out
    assert "<memory snapshot='internal'/>" in xml and "<description>before the change</description>" in xml
    assert "<disk name='vda' snapshot='internal'/>" in xml and "<name>s1vm</name>" in xml

    if QEMU_IMG:  # the oracle: QEMU's own snapshot table in the image holds the VM state
        table = json.loads(qemu_img("info", "-U", "--output=json", str(disk)))["snapshots"]
        assert [s["name"] for s in table] == ["snap1"] and table[0]["vm-state-size"] > 0

    assert daemon.cli("snapshot-delete", "s1vm", "snap1").ok().out == "Domain snapshot snap1 deleted\n"
    assert daemon.cli("snapshot-list", "s1vm", "--name").ok().out == "\n"
    assert not (daemon.config_dir / "snapshot/s1vm/snap1.xml").exists()
    if QEMU_IMG:
        assert "snapshots" not in json.loads(qemu_img("info", "-U", "--output=json", str(disk)))
    assert console.run("echo still-$((40+2))") == "still-42"
    console.close()


def test_external_disk_only_snapshot_then_delete_commits_it(daemon: Daemon, tmp_path: Path) -> None:
    disk = define(daemon, tmp_path, "e1vm")
    console = boot(daemon, "e1vm")
    overlay = tmp_path / "e1vm.ext1"
    out = daemon.cli("snapshot-create-as", "e1vm", "ext1", "--disk-only", "--atomic").ok().out
    assert out == "Domain snapshot ext1 created\n"
    blk = daemon.cli("domblklist", "e1vm").ok().out
    assert re.search(rf"^ vda\s+{re.escape(str(overlay))}$", blk, re.M), blk
    assert f"<source file='{overlay}'/>" in daemon.cli("dumpxml", "--inactive", "e1vm").ok().out
    info = daemon.cli("snapshot-info", "e1vm", "ext1").ok().out
    assert re.search(r"^State:\s+disk-snapshot$", info, re.M) and re.search(
        r"^Location:\s+external$", info, re.M
    )
    assert daemon.cli("snapshot-list", "e1vm", "--external", "--name").ok().out == "ext1\n\n"
    assert daemon.cli("snapshot-list", "e1vm", "--internal", "--name").ok().out == "\n"
    assert daemon.cli("snapshot-list", "e1vm", "--disk-only", "--name").ok().out == "ext1\n\n"
    assert daemon.cli("snapshot-list", "e1vm", "--active", "--name").ok().out == "\n"

    console.run("echo written-after > /root/after; sync")
    if QEMU_IMG:
        chain = json.loads(qemu_img("info", "-U", "--backing-chain", "--output=json", str(overlay)))
        assert [c["filename"] for c in chain] == [str(overlay), str(disk)]
        assert chain[0]["format"] == "qcow2" and chain[0]["backing-filename"] == str(disk)
        qemu_img("check", "-U", str(overlay))

    # ext2 and ext3 build on it: deleting ext2 alone merges its overlay into ext1's beneath the
    # running disk (QEMU's block-commit of an intermediate layer); ext3 then builds on ext1's overlay
    daemon.cli("snapshot-create-as", "e1vm", "ext2", "--disk-only").ok()
    console.run("echo on-ext2 > /root/ext2; sync")
    daemon.cli("snapshot-create-as", "e1vm", "ext3", "--disk-only").ok()
    ext2, ext3 = tmp_path / "e1vm.ext2", tmp_path / "e1vm.ext3"
    assert daemon.cli("snapshot-delete", "e1vm", "ext2").ok().out == "Domain snapshot ext2 deleted\n"
    assert not ext2.exists()
    assert daemon.cli("snapshot-parent", "e1vm", "ext3").ok().out == "ext1\n"
    assert f"<source file='{overlay}'/>" in daemon.cli("snapshot-dumpxml", "e1vm", "ext3").ok().out
    if QEMU_IMG:
        chain = json.loads(qemu_img("info", "-U", "--backing-chain", "--output=json", str(ext3)))
        assert [c["filename"] for c in chain] == [str(ext3), str(overlay), str(disk)]
    assert console.run("cat /root/ext2") == "on-ext2"

    # --children: ext3's overlay is committed into ext1's, then that one into the base
    out = daemon.cli("snapshot-delete", "e1vm", "ext1", "--children").ok().out
    assert out == "Domain snapshot ext1 deleted\n"
    blk = daemon.cli("domblklist", "e1vm").ok().out
    assert re.search(rf"^ vda\s+{re.escape(str(disk))}$", blk, re.M), blk
    assert not overlay.exists() and not ext3.exists()
    assert daemon.cli("snapshot-list", "e1vm", "--name").ok().out == "\n"
    assert console.run("cat /root/after") == "written-after"
    console.run("sync")
    daemon.cli("destroy", "e1vm").ok()
    if QEMU_IMG:
        qemu_img("check", str(disk))
        assert "backing-filename" not in json.loads(qemu_img("info", "--output=json", str(disk)))
    console.close()
    console = boot(daemon, "e1vm")  # the data written on the overlay is in the base now
    assert console.run("cat /root/after") == "written-after"
    console.close()


def test_external_revert_restarts_from_the_snapshot(daemon: Daemon, tmp_path: Path) -> None:
    disk = define(daemon, tmp_path, "r1vm")
    console = boot(daemon, "r1vm")
    console.run("echo kept > /root/kept; sync")
    daemon.cli("snapshot-create-as", "r1vm", "--name", "point", "--disk-only").ok()
    console.run("echo lost > /root/lost; sync")
    console.close()
    assert daemon.cli("snapshot-revert", "r1vm", "point", "--running").ok().out == (
        "Domain snapshot point reverted\n"
    )
    console = Console(daemon, "r1vm")
    console.expect(READY)
    assert console.run("cat /root/kept") == "kept"
    assert console.run("ls /root/lost 2>&1 | grep -c 'No such'") == "1"
    console.close()
    daemon.cli("destroy", "r1vm").ok()
    out = daemon.cli("snapshot-revert", "r1vm", "point", "--paused").ok().out
    assert out == "Domain snapshot point reverted\n"
    assert daemon.cli("domstate", "r1vm").ok().out == "paused\n\n"
    daemon.cli("destroy", "r1vm").ok()

    # shut off: a new overlay by the image library; deleting "point" merges its overlay into the base
    # and rebases the newer one onto it
    daemon.cli("snapshot-create-as", "r1vm", "later", "--disk-only").ok()
    later, point = tmp_path / "r1vm.later", tmp_path / "r1vm.point"
    assert "State:          disk-snapshot" in daemon.cli("snapshot-info", "r1vm", "later").ok().out
    assert daemon.cli("domblklist", "r1vm").ok().out.count(str(later)) == 1
    daemon.cli("snapshot-delete", "r1vm", "point").ok()
    assert not point.exists()
    if QEMU_IMG:
        chain = json.loads(qemu_img("info", "--backing-chain", "--output=json", str(later)))
        assert [c["filename"] for c in chain] == [str(later), str(disk)]
        qemu_img("check", str(later))
    console = boot(daemon, "r1vm")
    assert console.run("cat /root/kept") == "kept"
    console.close()


def test_shut_off_snapshots_tree_revert_and_undefine(daemon: Daemon, tmp_path: Path) -> None:
    """Internal snapshots of a shut-off domain through the image library; the list filters and tree."""
    disk = define(daemon, tmp_path, "offvm")
    for name in ("a", "b"):
        assert daemon.cli("snapshot-create-as", "offvm", name).ok().out == f"Domain snapshot {name} created\n"
    assert daemon.cli("snapshot-current", "offvm", "a").ok().out == "Snapshot a set as current\n"
    daemon.cli("snapshot-create-as", "offvm", "c").ok()
    daemon.restart()  # the metadata is read back from its files
    assert daemon.cli("snapshot-current", "offvm", "--name").ok().out == "c\n"
    cur = daemon.cli("snapshot-current", "offvm").ok().out
    assert cur.startswith("<domainsnapshot>\n  <name>c</name>\n") and "<state>shutoff</state>" in cur
    assert "<memory snapshot='no'/>" in cur and "<parent>\n    <name>a</name>\n  </parent>" in cur
    assert daemon.cli("snapshot-list", "offvm", "--tree").ok().out == "a\n  |\n  +- b\n  +- c\n    \n\n"
    assert daemon.cli("snapshot-list", "offvm", "--roots", "--name").ok().out == "a\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--leaves", "--name").ok().out == "b\nc\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--no-leaves", "--name").ok().out == "a\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--from", "a", "--name").ok().out == "b\nc\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--current", "--name").ok().out == "\n"
    assert daemon.cli("snapshot-list", "offvm", "--inactive", "--name").ok().out == "a\nb\nc\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--metadata", "--name").ok().out == "a\nb\nc\n\n"
    assert daemon.cli("snapshot-list", "offvm", "--no-metadata", "--name").ok().out == "\n"
    assert daemon.cli("snapshot-list", "offvm", "--topological", "--name").ok().out == "a\nb\nc\n\n"
    assert (
        daemon.cli("snapshot-list", "offvm", "--from", "a", "--descendants", "--name").ok().out == "b\nc\n\n"
    )
    listing = daemon.cli("snapshot-list", "offvm", "--parent").ok().out
    assert re.search(r"^ b\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\s+shutoff\s+a$", listing, re.M), listing
    rows = json.loads(daemon.cli("snapshot-list", "offvm", "--json").ok().out)
    assert [(r["name"], r["parent"], r["current"]) for r in rows] == [("a", None, False), ("b", "a", False),
                                                                       ("c", "a", True)]  # fmt: skip
    assert daemon.cli("snapshot-parent", "offvm", "--current").ok().out == "a\n"
    assert daemon.cli("snapshot-parent", "offvm", "--snapshotname", "a").rc == 1
    if QEMU_IMG:
        table = json.loads(qemu_img("info", "--output=json", str(disk)))["snapshots"]
        assert [s["name"] for s in table] == ["a", "b", "c"]
        qemu_img("check", str(disk))

    # revert to a (shut off): the disk goes back, the domain stays off; --running starts it
    console = boot(daemon, "offvm")
    console.run("echo later > /root/later; sync")
    console.close()
    assert daemon.cli("snapshot-revert", "offvm", "a").ok().out == "Domain snapshot a reverted\n"
    assert daemon.cli("domstate", "--reason", "offvm").ok().out == "shut off (from snapshot)\n\n"
    console = boot(daemon, "offvm")
    assert console.run("ls /root/later 2>&1 | grep -c 'No such'") == "1"
    console.close()
    daemon.cli("destroy", "offvm").ok()

    # deletes: --children-only keeps a; --metadata leaves the image's snapshot
    out = daemon.cli("snapshot-delete", "offvm", "a", "--children-only").ok().out
    assert out == "Domain snapshot a children deleted\n"
    assert daemon.cli("snapshot-list", "offvm", "--name").ok().out == "a\n\n"
    refused = daemon.cli("undefine", "offvm")
    assert refused.rc == 1 and "cannot delete inactive domain with 1 snapshots" in refused.err
    assert daemon.cli("snapshot-delete", "offvm", "--current", "--metadata").ok().out == (
        "Domain snapshot a deleted\n"
    )
    if QEMU_IMG:
        assert [s["name"] for s in json.loads(qemu_img("info", "--output=json", str(disk)))["snapshots"]] == [
            "a"
        ]
    daemon.cli("snapshot-create-as", "offvm", "z").ok()
    daemon.cli("undefine", "offvm", "--snapshots-metadata").ok()
    assert not (daemon.config_dir / "snapshot/offvm").exists()


def test_halt_no_metadata_and_print_xml(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "h1vm")
    printed = daemon.cli(
        "snapshot-create-as", "h1vm", "p", "--description", "d", "--print-xml",
        "--diskspec", "vda,snapshot=external,driver=qcow2,stype=file,file=/tmp/x.qcow2",
        "--memspec", "file=/tmp/mem,snapshot=external",
    ).ok().out  # fmt: skip
    assert printed == (
        "<domainsnapshot>\n  <name>p</name>\n  <description>d</description>\n"
        "  <memory snapshot='external' file='/tmp/mem'/>\n  <disks>\n"
        "    <disk name='vda' snapshot='external' type='file'>\n      <driver type='qcow2'/>\n"
        "      <source file='/tmp/x.qcow2'/>\n    </disk>\n  </disks>\n</domainsnapshot>\n\n"
    )
    assert daemon.cli("snapshot-list", "h1vm", "--name").ok().out == "\n"  # nothing was taken
    console = boot(daemon, "h1vm")
    console.close()
    daemon.cli("snapshot-create-as", "h1vm", "gone", "--no-metadata").ok()
    assert daemon.cli("snapshot-list", "h1vm", "--name").ok().out == "\n"
    daemon.cli("snapshot-create-as", "h1vm", "stop", "--halt").ok()
    assert daemon.cli("domstate", "--reason", "h1vm").ok().out == "shut off (from snapshot)\n\n"
    assert "State:          running" in daemon.cli("snapshot-info", "h1vm", "stop").ok().out
    # back to the running state it was taken in, paused as asked
    daemon.cli("snapshot-revert", "h1vm", "stop", "--paused").ok()
    assert daemon.cli("domstate", "--reason", "h1vm").ok().out == "paused (from snapshot)\n\n"
    daemon.cli("snapshot-revert", "h1vm", "--current", "--running", "--force").ok()
    assert daemon.cli("domstate", "--reason", "h1vm").ok().out == "running (from snapshot)\n\n"
    console = Console(daemon, "h1vm")
    assert console.run("echo ok-$((1+1))") == "ok-2"
    console.close()


def test_bad_input_is_refused_and_changes_nothing(daemon: Daemon, tmp_path: Path) -> None:
    disk = define(daemon, tmp_path, "b1vm")
    define(daemon, tmp_path, "b2vm")
    daemon.cli("snapshot-create-as", "b1vm", "s1").ok()

    dup = daemon.cli("snapshot-create-as", "b1vm", "s1")
    assert dup.rc == 1 and dup.err == "error: operation failed: domain moment s1 already exists\n"
    other = daemon.cli("snapshot-revert", "b2vm", "s1")
    assert other.rc == 1
    assert "Domain snapshot not found: no domain snapshot with matching name 's1'" in other.err
    assert daemon.cli("snapshot-info", "b1vm").err == "error: --snapshotname or --current is required\n"
    nocur = daemon.cli("snapshot-current", "b2vm")
    assert nocur.rc == 1 and "domain 'b2vm' has no current snapshot" in nocur.err

    # a raw disk cannot hold an internal snapshot: refused, no metadata, no image touched
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 1024 * 1024)
    xml = tmp_path / "raw.xml"
    xml.write_text(domain_xml("rawvm", disk=raw, disk_format="raw"))
    daemon.cli("define", str(xml)).ok()
    refused = daemon.cli("snapshot-create-as", "rawvm", "r1")
    assert refused.rc == 1
    assert "internal snapshot for disk vda unsupported for storage type raw" in refused.err
    assert not (daemon.config_dir / "snapshot/rawvm").exists()
    refused = daemon.cli("snapshot-create-as", "rawvm", "r1", "--diskspec", "vdz,snapshot=external")
    assert refused.rc == 1 and "no disk named 'vdz'" in refused.err

    # malformed and unknown XML
    bad = tmp_path / "bad.xml"
    for text, message in (
        ("<domainsnapshot><name>x</nam></domainsnapshot>", "malformed XML"),
        ("<domainsnapshot><name>x</name><colour/></domainsnapshot>", "element 'colour' is not supported"),
        ("<domainsnapshot><name>a/b</name></domainsnapshot>", "invalid snapshot name"),
        ("<domainsnapshot><state>running</state></domainsnapshot>", "--redefine"),
        ("<domainsnapshot><memory snapshot='bogus'/></domainsnapshot>", "'snapshot' = 'bogus'"),
    ):
        bad.write_text(text)
        result = daemon.cli("snapshot-create", "b1vm", "--xmlfile", str(bad))
        assert result.rc == 1 and message in result.err, (text, result.err)
    assert daemon.cli("snapshot-list", "b1vm", "--name").ok().out == "s1\n\n"

    for flag in ("--quiesce", "--live"):
        result = daemon.cli("snapshot-create-as", "b1vm", "q", flag)
        assert result.rc == 1 and "unsupported configuration" in result.err, result.err
    result = daemon.cli("snapshot-create-as", "b1vm", "m", "--memspec", "file=/tmp/m.mem")
    assert result.rc == 1 and "memory state cannot be saved with offline" in result.err
    result = daemon.cli("snapshot-create-as", "b1vm", "e", "--reuse-external", "--disk-only")
    assert result.rc == 1 and "does not exist" in result.err
    assert not (tmp_path / "b1vm.e").exists()
    result = daemon.cli("snapshot-revert", "b1vm", "s1", "--running", "--paused")
    assert result.rc == 1 and "mutually exclusive" in result.err
    result = daemon.cli("snapshot-delete", "b1vm", "s1", "--children", "--children-only")
    assert result.rc == 1 and "mutually exclusive" in result.err
    for flag in ("--rename", "--clone"):
        result = daemon.cli("snapshot-edit", "b1vm", "s1", flag)
        assert result.rc == 1 and flag in result.err
    if QEMU_IMG:
        assert [s["name"] for s in json.loads(qemu_img("info", "--output=json", str(disk)))["snapshots"]] == [
            "s1"
        ]


def test_create_from_xml_redefine_and_edit(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "x1vm")
    spec = tmp_path / "snap.xml"
    spec.write_text("<domainsnapshot><name>fromxml</name><description>first</description></domainsnapshot>")
    out = daemon.cli("snapshot-create", "x1vm", "--xmlfile", str(spec), "--validate").ok().out
    assert out == f"Domain snapshot fromxml created from '{spec}'\n"
    daemon.cli("snapshot-create-as", "x1vm", "second").ok()
    # redefine: the metadata only, with --current
    dumped = daemon.cli("snapshot-dumpxml", "x1vm", "fromxml", "--security-info").ok().out
    spec.write_text(dumped.replace("<description>first</description>", "<description>changed</description>"))
    out = daemon.cli("snapshot-create", "x1vm", "--xmlfile", str(spec), "--redefine", "--current").ok().out
    assert out == f"Domain snapshot fromxml created from '{spec}'\n"
    assert daemon.cli("snapshot-current", "x1vm", "--name").ok().out == "fromxml\n"
    assert "<description>changed</description>" in daemon.cli("snapshot-dumpxml", "x1vm", "fromxml").ok().out
    # snapshot-edit through $EDITOR
    editor = "sed -i s/changed/edited/"
    result = daemon.cli("snapshot-edit", "x1vm", "--snapshotname", "fromxml", env={"EDITOR": editor}).ok()
    assert result.out == "Snapshot fromxml edited.\n\n"
    assert "<description>edited</description>" in daemon.cli("snapshot-dumpxml", "x1vm", "fromxml").ok().out
    daemon.cli("snapshot-current", "x1vm", "second").ok()
    daemon.cli("snapshot-edit", "x1vm", "fromxml", "--current", env={"EDITOR": "sed -i s/edited/again/"}).ok()
    assert daemon.cli("snapshot-current", "x1vm", "--name").ok().out == "fromxml\n"


def test_external_snapshot_with_memory_reverts_ram_and_disk(daemon: Daemon, tmp_path: Path) -> None:
    disk = define(daemon, tmp_path, "m1vm")
    console = boot(daemon, "m1vm")
    console.run("mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo before > /mnt/t/marker")
    pid = console.run("sleep 10000 & echo $!")
    memfile = tmp_path / "m1vm.mem1.state"
    out = (
        daemon.cli(
            "snapshot-create-as",
            "m1vm",
            "mem1",
            "--memspec",
            f"file={memfile}",
            "--diskspec",
            "vda,snapshot=external",
        )
        .ok()
        .out
    )
    assert out == "Domain snapshot mem1 created\n"
    assert daemon.cli("domstate", "m1vm").ok().out == "running\n\n"
    overlay = tmp_path / "m1vm.mem1"
    assert str(overlay) in daemon.cli("domblklist", "m1vm").ok().out
    info = daemon.cli("snapshot-info", "m1vm", "mem1").ok().out
    assert re.search(r"^State:\s+running$", info, re.M) and re.search(r"^Location:\s+external$", info, re.M)
    assert (
        f"<memory snapshot='external' file='{memfile}'/>"
        in daemon.cli("snapshot-dumpxml", "m1vm", "mem1").ok().out
    )
    # the memory file is a save image: the save verbs read it
    assert "<name>m1vm</name>" in daemon.cli("save-image-dumpxml", str(memfile)).ok().out

    console.run(f"echo after > /mnt/t/marker; kill {pid}; wait {pid}; echo new > /root/new; sync")
    console.close()
    assert daemon.cli("snapshot-revert", "m1vm", "mem1").ok().out == "Domain snapshot mem1 reverted\n"
    assert daemon.cli("domstate", "--reason", "m1vm").ok().out == "running (from snapshot)\n\n"
    console = Console(daemon, "m1vm")
    assert console.run("cat /mnt/t/marker") == "before"
    assert console.run(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone") == "alive"
    assert console.run("ls /root/new 2>&1 | grep -c 'No such'") == "1"

    # --paused: back to mem1's RAM with the vCPUs stopped until a resume
    console.run("echo changed > /mnt/t/marker")
    console.close()
    out = daemon.cli("snapshot-revert", "m1vm", "mem1", "--paused").ok().out
    assert out == "Domain snapshot mem1 reverted\n"
    assert daemon.cli("domstate", "--reason", "m1vm").ok().out == "paused (from snapshot)\n\n"
    daemon.cli("resume", "m1vm").ok()
    console = Console(daemon, "m1vm")
    assert console.run("cat /mnt/t/marker") == "before"
    # --running, from a shut-off domain: mem1's RAM and process, running
    console.run("echo changed > /mnt/t/marker")
    console.close()
    daemon.cli("destroy", "m1vm").ok()
    out = daemon.cli("snapshot-revert", "m1vm", "mem1", "--running").ok().out
    assert out == "Domain snapshot mem1 reverted\n"
    assert daemon.cli("domstate", "--reason", "m1vm").ok().out == "running (from snapshot)\n\n"
    console = Console(daemon, "m1vm")
    assert console.run("cat /mnt/t/marker") == "before"
    assert console.run(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone") == "alive"

    # --live: the guest runs while its memory is written
    memfile2 = tmp_path / "m1vm.mem2.state"
    daemon.cli("snapshot-create-as", "m1vm", "mem2", "--memspec", str(memfile2), "--live").ok()
    assert daemon.cli("domstate", "m1vm").ok().out == "running\n\n"
    assert memfile2.is_file() and (tmp_path / "m1vm.mem2").is_file()
    assert (
        daemon.cli("snapshot-list", "m1vm", "--external", "--active", "--name").ok().out == "mem1\nmem2\n\n"
    )
    taken = daemon.cli("snapshot-create-as", "m1vm", "mem3", "--memspec", str(memfile2))
    assert taken.rc == 1 and "already exists" in taken.err

    daemon.cli("snapshot-delete", "m1vm", "mem1", "--children").ok()
    assert not memfile.exists() and not memfile2.exists() and not overlay.exists()
    assert re.search(rf"^ vda\s+{re.escape(str(disk))}$", daemon.cli("domblklist", "m1vm").ok().out, re.M)
    assert console.run("cat /mnt/t/marker") == "before"
    console.close()
    if QEMU_IMG:
        qemu_img("check", "-U", str(disk))


def test_state_during_the_job_revert_force_reuse_external_and_create_flags(
    daemon: Daemon, tmp_path: Path
) -> None:
    disk = define(daemon, tmp_path, "j1vm")
    console = boot(daemon, "j1vm")
    console.run("echo one > /root/one; sync")

    # During the job: QEMU is held (SIGSTOP), so the job waits on its first QMP command while
    # domstate and dominfo are asked
    qemu = daemon.qemu_pids()["j1vm"]
    os.kill(qemu, signal.SIGSTOP)
    try:
        job = subprocess.Popen(
            [str(BIN / "pyvirt"), "snapshot-create-as", "j1vm", "busy"],
            env=daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen, deadline = "", time.monotonic() + 120
        while seen != "paused (creating snapshot)" and time.monotonic() < deadline:
            seen = daemon.cli("domstate", "--reason", "j1vm").ok().out.strip()
            time.sleep(0.1)
        assert seen == "paused (creating snapshot)"
        assert re.search(r"^State:\s+paused$", daemon.cli("dominfo", "j1vm").ok().out, re.M)
    finally:
        os.kill(qemu, signal.SIGCONT)
    out, err = job.communicate(timeout=300)
    assert (job.returncode, out) == (0, "Domain snapshot busy created\n"), err
    assert daemon.cli("domstate", "--reason", "j1vm").ok().out == "running (booted)\n\n"

    # --force: the running definition changed since the snapshot (a disk plugged), so QEMU must restart
    extra = tmp_path / "extra.raw"
    extra.write_bytes(b"\0" * 1024 * 1024)
    daemon.cli("attach-disk", "j1vm", str(extra), "vdb", "--subdriver", "raw").ok()
    console.run("echo two > /root/two; sync")
    refused = daemon.cli("snapshot-revert", "j1vm", "busy")
    assert refused.rc == 1 and "revert requires force" in refused.err, refused.err
    assert str(extra) in daemon.cli("domblklist", "j1vm").ok().out
    assert console.run("cat /root/two") == "two"  # the guest ran on, untouched
    console.close()
    daemon.cli("snapshot-revert", "j1vm", "busy", "--force").ok()
    assert daemon.cli("domstate", "--reason", "j1vm").ok().out == "running (from snapshot)\n\n"
    assert str(extra) not in daemon.cli("domblklist", "j1vm").ok().out
    console = Console(daemon, "j1vm")
    assert console.run("cat /root/one") == "one"
    assert console.run("ls /root/two 2>&1 | grep -c 'No such'") == "1"

    # --reuse-external: an overlay made beforehand (cluster size 128 KiB) is used as it is, not made anew
    reused = tmp_path / "reused.qcow2"
    size = json.loads(daemon.cli("img", "info", "-U", "--output=json", str(disk)).ok().out)["virtual-size"]
    daemon.cli(
        "img", "create", "-u", "-f", "qcow2", "-F", "qcow2", "-b", str(disk), "-o", "cluster_size=131072",
        str(reused), str(size),
    ).ok()  # fmt: skip
    daemon.cli(
        "snapshot-create-as", "j1vm", "reuse", "--disk-only", "--reuse-external",
        "--diskspec", f"vda,snapshot=external,file={reused}",
    ).ok()  # fmt: skip
    assert re.search(rf"^ vda\s+{re.escape(str(reused))}$", daemon.cli("domblklist", "j1vm").ok().out, re.M)
    console.run("echo three > /root/three; sync")
    if QEMU_IMG:
        info = json.loads(qemu_img("info", "-U", "--output=json", str(reused)))
        assert info["cluster-size"] == 131072 and info["backing-filename"] == str(disk)
        qemu_img("check", "-U", str(reused))

    # snapshot-create from XML with the creation flags
    spec = tmp_path / "spec.xml"
    spec.write_text("<domainsnapshot><name>nometa</name></domainsnapshot>")
    out = daemon.cli("snapshot-create", "j1vm", "--xmlfile", str(spec), "--no-metadata").ok().out
    assert out == f"Domain snapshot nometa created from '{spec}'\n"
    assert daemon.cli("snapshot-list", "j1vm", "--name").ok().out == "busy\nreuse\n\n"
    if QEMU_IMG:  # the snapshot is in the image all the same
        table = json.loads(qemu_img("info", "-U", "--output=json", str(reused)))["snapshots"]
        assert [t["name"] for t in table] == ["nometa"]
    spec.write_text("<domainsnapshot><name>xdisk</name></domainsnapshot>")
    daemon.cli("snapshot-create", "j1vm", "--xmlfile", str(spec), "--disk-only", "--atomic").ok()
    xdisk = tmp_path / "reused.xdisk"
    assert re.search(rf"^ vda\s+{re.escape(str(xdisk))}$", daemon.cli("domblklist", "j1vm").ok().out, re.M)
    memfile = tmp_path / "xlive.mem"
    spec.write_text(
        f"<domainsnapshot><name>xlive</name><memory snapshot='external' file='{memfile}'/></domainsnapshot>"
    )
    daemon.cli("snapshot-create", "j1vm", "--xmlfile", str(spec), "--live").ok()
    assert memfile.is_file() and (tmp_path / "reused.xlive").is_file()
    assert daemon.cli("domstate", "--reason", "j1vm").ok().out == "running (from snapshot)\n\n"
    spec.write_text("<domainsnapshot><name>xhalt</name><memory snapshot='no'/></domainsnapshot>")
    daemon.cli("snapshot-create", "j1vm", "--xmlfile", str(spec), "--halt", "--disk-only").ok()
    assert daemon.cli("domstate", "--reason", "j1vm").ok().out == "shut off (from snapshot)\n\n"
    info = daemon.cli("snapshot-info", "j1vm", "xhalt").ok().out
    assert re.search(r"^State:\s+disk-snapshot$", info, re.M), info
    console.close()
    assert daemon.cli("snapshot-list", "j1vm", "--name").ok().out == "busy\nreuse\nxdisk\nxhalt\nxlive\n\n"


def test_revert_reset_nvram(daemon: Daemon, tmp_path: Path) -> None:
    disk = copy_disk(guest_artifacts(), tmp_path / "n1vm.qcow2")
    nvram = tmp_path / "n1vm_VARS.fd"
    loader = (
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        f"<nvram>{nvram}</nvram></os>"
    )
    xml = tmp_path / "n1vm.xml"
    xml.write_text(domain_xml("n1vm", disk=disk).replace("</os>", loader, 1))
    daemon.cli("define", str(xml)).ok()
    nvram.write_bytes(b"vars")  # what a first start leaves
    daemon.cli("snapshot-create-as", "n1vm", "s").ok()
    nvram.write_bytes(b"changed")
    daemon.cli("snapshot-revert", "n1vm", "s").ok()
    assert nvram.read_bytes() == b"changed"  # a plain revert leaves the NVRAM as it is
    daemon.cli("snapshot-revert", "n1vm", "s", "--reset-nvram").ok()
    assert not nvram.exists()  # made again from its template at the next start


def test_internal_snapshot_after_hotplug_finds_each_disks_node(daemon: Daemon, tmp_path: Path) -> None:
    """After two disks were plugged live and the first of them unplugged, the disks' block nodes no
    longer follow their order: the snapshot still goes to each disk's own node (the device's)."""
    disk = define(daemon, tmp_path, "hpsnap")
    console = boot(daemon, "hpsnap")
    extra = {}
    for target in ("vdb", "vdc"):
        extra[target] = tmp_path / f"{target}.qcow2"
        daemon.cli("img", "create", "-q", "-f", "qcow2", str(extra[target]), "8M").ok()
        daemon.cli("attach-disk", "hpsnap", str(extra[target]), target, "--subdriver", "qcow2", "--live").ok()
    console.run("for i in $(seq 60); do [ -e /sys/block/vdc ] && break; sleep 1; done", 90)
    daemon.cli("detach-disk", "hpsnap", "vdb", "--live").ok()
    console.run("for i in $(seq 60); do [ -e /sys/block/vdb ] || break; sleep 1; done", 90)

    daemon.cli("snapshot-create-as", "hpsnap", "after-plug").ok()
    if QEMU_IMG:  # the oracle: each image's own table
        for path, tags in ((disk, ["after-plug"]), (extra["vdc"], ["after-plug"]), (extra["vdb"], [])):
            info = json.loads(qemu_img("info", "-U", "--output=json", str(path)))
            assert [s["name"] for s in info.get("snapshots", [])] == tags, (path, info)
    daemon.cli("snapshot-revert", "hpsnap", "after-plug").ok()
    daemon.cli("snapshot-delete", "hpsnap", "after-plug").ok()
    console.close()
    daemon.cli("destroy", "hpsnap").ok()
