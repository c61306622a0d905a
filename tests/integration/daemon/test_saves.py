"""save/restore and managedsave/start on real QEMU guests under TCG: the guest's RAM (a file in its
tmpfs, a shell variable) and a background process survive; the image verbs; every refusal leaves the
domain, the image and the host as they were."""

from __future__ import annotations

import contextlib
import re
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow

READY = r"pyvirt-guest: ready"


def boot(daemon: Daemon, tmp_path: Path, name: str) -> tuple[Path, Console]:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name))
    daemon.cli("define", str(path)).ok()
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect(READY)
    return path, console


def mark(console: Console, value: str) -> str:
    """Leave ``value`` in the guest's RAM (a tmpfs file and a shell variable) and start a background
    process; returns the process id."""
    tmpfs = "grep -q ' /dev/shm tmpfs' /proc/mounts || mount -t tmpfs shm /dev/shm"
    assert console.run(f"mkdir -p /dev/shm; {tmpfs}; grep -c ' /dev/shm tmpfs' /proc/mounts") == "1"
    console.run(f"echo {value} > /dev/shm/marker; MARK={value}")
    pid = console.run("sleep 100000 & echo $!")
    assert pid.isdigit(), pid
    return pid


def check_mark(daemon: Daemon, name: str, value: str, pid: str) -> None:
    console = Console(daemon, name, history=False)
    console.send("\n")
    assert console.run("cat /dev/shm/marker") == value
    assert console.run("echo $MARK") == value
    assert console.run(f"kill -0 {pid} && echo alive") == "alive"
    console.close()


class Events:
    """Domain events of the daemon, collected in the background."""

    def __init__(self, daemon: Daemon) -> None:
        self.stream = daemon.connect().events()
        self.seen: list[tuple[str, str, str]] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        event: Any
        with contextlib.suppress(Exception):  # the stream closed under it
            for event in self.stream:
                self.seen.append((event["name"], event["event"], event["detail"]))

    def close(self) -> list[tuple[str, str, str]]:
        self.stream.close()
        return self.seen


def test_save_restore_keeps_ram_and_processes(daemon: Daemon, tmp_path: Path) -> None:
    _path, console = boot(daemon, tmp_path, "s1")
    pid = mark(console, "marker-4242")
    console.close()
    events = Events(daemon)
    image = tmp_path / "s1.save"

    result = daemon.cli("save", "s1", str(image), "--verbose").ok()
    assert result.out == f"\nDomain 's1' saved to {image}\n\n"
    assert result.err.endswith("Save: [100 %]")
    assert daemon.cli("domstate", "--reason", "s1").ok().out == "shut off (saved)\n\n"
    assert not daemon.qemu_pids()
    assert image.stat().st_mode & 0o777 == 0o600
    assert re.search(r"^Managed save:\s+no$", daemon.cli("dominfo", "s1").ok().out, re.M)
    saved_xml = daemon.cli("save-image-dumpxml", str(image)).ok().out
    assert "<name>s1</name>" in saved_xml and " id=" not in saved_xml.splitlines()[0]

    result = daemon.cli("restore", str(image)).ok()
    assert result.out == f"Domain restored from {image}\n\n"
    assert daemon.cli("domstate", "--reason", "s1").ok().out == "running (restored)\n\n"
    check_mark(daemon, "s1", "marker-4242", pid)
    assert image.exists()  # a plain save image stays; restore it as often as wanted

    # A relative path is the client's: made absolute on a local connection.
    rel = daemon.cli("save", "s1", "again.save", "--paused", cwd=tmp_path).ok()
    assert rel.out == f"\nDomain 's1' saved to {tmp_path / 'again.save'}\n\n"
    daemon.cli("restore", str(tmp_path / "again.save")).ok()
    assert daemon.cli("domstate", "--reason", "s1").ok().out == "paused (user)\n\n"
    daemon.cli("resume", "s1").ok()
    check_mark(daemon, "s1", "marker-4242", pid)

    seen = events.close()
    assert ("s1", "stopped", "saved") in seen and ("s1", "started", "restored") in seen

    # Refused on a shut-off domain: nothing written.
    daemon.cli("destroy", "s1").ok()
    other = tmp_path / "other.save"
    result = daemon.cli("save", "s1", str(other))
    assert result.rc == 1
    assert result.err == (
        f"error: Failed to save domain 's1' to {other}\n"
        "error: Requested operation is not valid: domain is not running\n"
    )
    assert not other.exists()


def test_bypass_cache_and_running_paused_flags(daemon: Daemon, tmp_path: Path) -> None:
    _path, console = boot(daemon, tmp_path, "s2")
    pid = mark(console, "direct-io")
    console.close()
    image = tmp_path / "s2.save"
    daemon.cli("save", "--bypass-cache", "--paused", "s2", str(image)).ok()
    # --paused in the image: the restore leaves it paused; --running overrides that.
    daemon.cli("restore", "--bypass-cache", "--running", str(image)).ok()
    assert daemon.cli("domstate", "--reason", "s2").ok().out == "running (restored)\n\n"
    check_mark(daemon, "s2", "direct-io", pid)
    daemon.cli("save", "s2", str(image)).ok()
    daemon.cli("restore", "--paused", str(image)).ok()
    assert daemon.cli("domstate", "s2").ok().out == "paused\n\n"
    result = daemon.cli("restore", "--paused", "--running", str(image))
    assert result.rc == 1 and "mutually exclusive" in result.err


def test_image_xml_define_and_edit(daemon: Daemon, tmp_path: Path) -> None:
    path, console = boot(daemon, tmp_path, "s3")
    pid = mark(console, "edited")
    console.close()
    image = tmp_path / "s3.save"
    daemon.cli("save", "s3", str(image)).ok()

    # save-image-define: a compatible XML (a description added) and the state to restore into.
    xml = daemon.cli("save-image-dumpxml", "--security-info", str(image)).ok().out
    new_xml = tmp_path / "new.xml"
    new_xml.write_text(xml.replace("<name>s3</name>", "<name>s3</name><description>after</description>"))
    result = daemon.cli("save-image-define", str(image), str(new_xml), "--paused").ok()
    assert result.out == f"State file {image} updated.\n\n"
    assert "<description>after</description>" in daemon.cli("save-image-dumpxml", str(image)).ok().out

    # An incompatible one (more memory) is refused, the image unchanged.
    bigger = tmp_path / "bigger.xml"
    bigger.write_text(re.sub(r"<memory[^>]*>\d+</memory>", "<memory unit='KiB'>262144</memory>", xml))
    before = image.read_bytes()[:8192]
    result = daemon.cli("save-image-define", str(image), str(bigger))
    assert result.rc == 1
    assert result.err.startswith(f"error: Failed to update {image}\nerror: unsupported configuration: Target")
    assert "max memory" in result.err
    assert image.read_bytes()[:8192] == before

    # save-image-edit through $EDITOR.
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's|>after</description>|>edited</description>|' \"$1\"\n")
    editor.chmod(0o755)
    result = daemon.cli("save-image-edit", str(image), "--running", env={"EDITOR": str(editor)}).ok()
    assert result.out == f"State file {image} edited.\n\n"
    result = daemon.cli("save-image-edit", str(image), env={"EDITOR": "true"}).ok()
    assert result.out == f"Saved image {image} XML configuration not changed.\n\n"

    daemon.cli("restore", str(image)).ok()  # --running from the edit
    assert daemon.cli("domstate", "s3").ok().out == "running\n\n"
    assert "<description>edited</description>" in daemon.cli("dumpxml", "s3").ok().out
    check_mark(daemon, "s3", "edited", pid)

    # save --xml: the image keeps the XML given (compatible), and refuses an incompatible one.
    running_xml = daemon.cli("dumpxml", "--security-info", "s3").ok().out
    given = tmp_path / "given.xml"
    given.write_text(re.sub(r"<description>.*?</", "<description>given</", running_xml))
    result = daemon.cli("save", "s3", str(image), "--xml", str(bigger))
    assert result.rc == 1 and "max memory" in result.err
    assert daemon.cli("domstate", "s3").ok().out == "running\n\n"
    daemon.cli("save", "s3", str(image), "--xml", str(given)).ok()
    assert "<description>given</description>" in daemon.cli("save-image-dumpxml", str(image)).ok().out
    assert path.exists()


def test_managedsave_start_force_boot_remove_undefine(daemon: Daemon, tmp_path: Path) -> None:
    _path, console = boot(daemon, tmp_path, "m1")
    pid = mark(console, "managed-1")
    console.close()
    managed = daemon.root / "var/lib/pyvirt/qemu/save/m1.save"

    result = daemon.cli("managedsave", "m1", "--verbose").ok()
    assert result.out == "\nDomain 'm1' state saved by pyvirt\n\n"
    assert result.err.endswith("Managedsave: [100 %]")
    assert managed.exists()
    assert daemon.cli("domstate", "--reason", "m1").ok().out == "shut off (saved)\n\n"
    assert re.search(r"^Managed save:\s+yes$", daemon.cli("dominfo", "m1").ok().out, re.M)
    listing = daemon.cli("list", "--all", "--managed-save").ok().out
    assert re.search(r"^ -\s+m1\s+saved\s*$", listing, re.M), listing
    assert re.search(r"^ -\s+m1\s+shut off\s*$", daemon.cli("list", "--all").ok().out, re.M)
    assert "m1" in daemon.cli("list", "--all", "--with-managed-save").ok().out
    assert "m1" not in daemon.cli("list", "--all", "--without-managed-save").ok().out
    assert "<name>m1</name>" in daemon.cli("managedsave-dumpxml", "m1").ok().out

    # undefine refuses a domain with a managed save unless told to remove it.
    result = daemon.cli("undefine", "m1")
    assert result.rc == 1
    assert result.err == (
        "error: Failed to undefine domain 'm1'\nerror: Requested operation is not valid: "
        "Refusing to undefine while domain managed save image exists\n"
    )

    # managedsave-define --paused: start resumes it paused; the image is gone after.
    xml = daemon.cli("managedsave-dumpxml", "--security-info", "m1").ok().out
    new_xml = tmp_path / "m1-new.xml"
    new_xml.write_text(xml.replace("<name>m1</name>", "<name>m1</name><title>from the image</title>"))
    result = daemon.cli("managedsave-define", "m1", str(new_xml), "--paused").ok()
    assert result.out == "Managed save state file of domain 'm1' updated.\n\n"
    assert daemon.cli("start", "m1", "--bypass-cache").ok().out == "Domain 'm1' started\n\n"
    assert daemon.cli("domstate", "--reason", "m1").ok().out == "paused (user)\n\n"
    assert not managed.exists()
    assert re.search(r"^Managed save:\s+no$", daemon.cli("dominfo", "m1").ok().out, re.M)
    assert "<title>from the image</title>" in daemon.cli("dumpxml", "m1").ok().out
    daemon.cli("resume", "m1").ok()
    check_mark(daemon, "m1", "managed-1", pid)

    # managedsave-edit, then start resumes where it was.
    daemon.cli("managedsave", "--running", "m1").ok()
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's|from the image|edited|' \"$1\"\n")
    editor.chmod(0o755)
    result = daemon.cli("managedsave-edit", "m1", env={"EDITOR": str(editor)}).ok()
    assert result.out == "Managed save image of Domain 'm1' XML configuration edited.\n\n"
    result = daemon.cli("managedsave-edit", "m1", "--paused", env={"EDITOR": "true"}).ok()
    assert result.out == "Managed save image of domain 'm1' XML configuration not changed.\n\n"
    daemon.cli("start", "m1").ok()
    assert daemon.cli("domstate", "--reason", "m1").ok().out == "running (restored)\n\n"
    check_mark(daemon, "m1", "managed-1", pid)

    # start --force-boot discards the managed save: a fresh boot, the RAM gone.
    daemon.cli("managedsave", "m1").ok()
    daemon.cli("start", "m1", "--force-boot").ok()
    assert not managed.exists()
    assert daemon.cli("domstate", "--reason", "m1").ok().out == "running (booted)\n\n"
    console = Console(daemon, "m1")
    console.expect(READY)
    assert console.run("cat /dev/shm/marker 2>/dev/null || echo none") == "none"
    console.close()

    # managedsave-remove, twice.
    daemon.cli("managedsave", "m1").ok()
    result = daemon.cli("managedsave-remove", "m1").ok()
    assert result.out == "Removed managedsave image for domain 'm1'\n\n"
    assert not managed.exists()
    result = daemon.cli("managedsave-remove", "m1").ok()
    assert result.out == "Domain 'm1' has no manage save image; removal skipped\n\n"
    result = daemon.cli("managedsave-dumpxml", "m1")
    assert result.rc == 1 and "domain does not have managed save image" in result.err

    # undefine --managed-save removes it with the domain.
    daemon.cli("start", "m1").ok()
    daemon.cli("managedsave", "m1").ok()
    daemon.cli("undefine", "m1", "--managed-save").ok()
    assert not managed.exists()
    assert "m1" not in daemon.cli("list", "--all").ok().out


def test_bad_images_and_conflicts_change_nothing(daemon: Daemon, tmp_path: Path) -> None:
    path, console = boot(daemon, tmp_path, "b1")
    console.close()
    image = tmp_path / "b1.save"
    daemon.cli("save", "b1", str(image)).ok()
    data = image.read_bytes()

    def refused(file: Path, *words: str) -> None:
        result = daemon.cli("restore", str(file))
        assert result.rc == 1, result
        assert result.err.startswith(f"error: Failed to restore domain from {file}\nerror: "), result.err
        for word in words:
            assert word in result.err, result.err
        assert daemon.cli("domstate", "b1").ok().out == "shut off\n\n"
        assert not daemon.qemu_pids()
        assert daemon.cli("list", "--all", "--name").ok().out.split() == ["b1"]

    refused(path, "image magic is incorrect", "is not a save image")
    truncated = tmp_path / "truncated.save"
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, "is truncated")
    bad_xml = tmp_path / "bad-xml.save"
    bad_xml.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    refused(bad_xml, "checksum")
    bad_stream = tmp_path / "bad-stream.save"
    start = 64 + struct.unpack_from("<I", data, 24)[0]  # the header's xml_space: where the stream starts
    cut = len(data) - 4096
    bad_stream.write_bytes(data[:start] + bytes(cut - start) + data[cut:])
    refused(bad_stream, "QEMU could not load the state saved in")
    assert daemon.cli("domstate", "--reason", "b1").ok().out == "shut off (failed)\n\n"
    partial = tmp_path / "partial.save"
    partial.write_bytes(b"PyvirtQemuPart\x00\x01" + data[16:])
    refused(partial, "incomplete")

    # The image names a domain that runs: refused, the running one untouched.
    daemon.cli("start", "b1").ok()
    result = daemon.cli("restore", str(image))
    assert result.rc == 1 and "domain is already running" in result.err
    assert daemon.cli("domstate", "--reason", "b1").ok().out == "running (booted)\n\n"
    daemon.cli("destroy", "b1").ok()

    # A defined domain of that name with another UUID: refused.
    daemon.cli("undefine", "b1").ok()
    other = tmp_path / "other.xml"
    other.write_text(domain_xml("b1"))
    daemon.cli("define", str(other)).ok()
    result = daemon.cli("restore", str(image))
    assert result.rc == 1 and "already exists with uuid" in result.err
    daemon.cli("undefine", "b1").ok()

    # No domain of that name or UUID: restored as a transient domain, as libvirt does.
    daemon.cli("restore", str(image)).ok()
    info = daemon.cli("dominfo", "b1").ok().out
    assert re.search(r"^Persistent:\s+no$", info, re.M)
    daemon.cli("destroy", "b1").ok()
    assert "b1" not in daemon.cli("list", "--all").ok().out
