"""``pyvirt install`` for real under TCG: a --location install of an installer tree made of the test
guest's kernel and initrd (the "installer"), its serial console, the switch to the installed system
after the install-time reboot, and a cloud-init --import install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon
from tests.support.guest import copy_disk, guest_artifacts

pytestmark = pytest.mark.slow


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A Debian "url" installer tree (virt-install's layout) whose kernel and initrd are the test guest's."""
    art = guest_artifacts()
    kernel = art.vmlinuz or art.kernel
    root = tmp_path / "installer-amd64"
    images = root / "current/images"
    (images / "netboot/debian-installer/amd64").mkdir(parents=True)
    (images / "MANIFEST").write_text("Debian installer images\n")
    shutil.copyfile(kernel, images / "netboot/debian-installer/amd64/linux")
    shutil.copyfile(art.initrd, images / "netboot/debian-installer/amd64/initrd.gz")
    yield root


def test_location_install_two_phases(daemon: Daemon, tree: Path) -> None:
    art = guest_artifacts()
    result = daemon.cli(
        "install", "--json", "--name", "inst", "--memory", "256", "--vcpus", "1", "--os-variant", "debian11",
        "--location", str(tree), "--extra-args", art.cmdline, "--disk", "size=1", "--network", "none",
        "--graphics", "none", "--virt-type", "qemu", "--noautoconsole",
    ).ok()  # fmt: skip
    info = json.loads(result.out)
    assert info["started"] and len(info["xml"]) == 2
    disk = daemon.pool_dir / "inst.qcow2"
    assert str(disk) in info["created"] and disk.exists()
    assert "inst.qcow2" in daemon.cli("vol-list", "default").ok().out
    inactive = ET.fromstring(daemon.cli("dumpxml", "--inactive", "inst").ok().out)
    assert inactive.find("os/kernel") is None and inactive.findtext("on_reboot") in (None, "restart")
    live = ET.fromstring(daemon.cli("dumpxml", "inst").ok().out)
    kernel = live.findtext("os/kernel")
    assert kernel and Path(kernel).read_bytes() == (art.vmlinuz or art.kernel).read_bytes()
    assert live.findtext("on_reboot") == "destroy"
    console = Console(daemon, "inst")
    try:
        console.expect("guest# ", timeout=300)
        console.send("reboot -f\n")
    finally:
        console.close()
    # the install phase ends (on_reboot destroy); the daemon starts the installed system
    for _ in range(600):  # running again, from its final definition
        live = ET.fromstring(daemon.cli("dumpxml", "inst").ok().out)
        if daemon.state("inst") == "running" and live.find("os/kernel") is None:
            break
        time.sleep(0.2)
    assert live.find("os/kernel") is None and live.find("os/boot").get("dev") == "hd"
    assert not Path(kernel).exists()  # the installer's copies are gone with the install phase
    daemon.cli("destroy", "inst").ok()
    daemon.cli("undefine", "--remove-all-storage", "inst").ok()
    assert not disk.exists()


def _popen(daemon: Daemon, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "pyvirt"), "install", *args],
        env=daemon.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _location_args(tree: Path, name: str) -> list[str]:
    return [
        "--name", name, "--memory", "256", "--vcpus", "1", "--os-variant", "debian11",
        "--location", str(tree), "--extra-args", guest_artifacts().cmdline, "--disk", "size=1",
        "--network", "none", "--graphics", "none", "--virt-type", "qemu",
    ]  # fmt: skip


def test_autoconsole_text_attaches_the_installer_console(daemon: Daemon, tree: Path) -> None:
    """pyvirt install --autoconsole text: the serial console of the install phase, on stdin/stdout."""
    proc = _popen(daemon, *_location_args(tree, "ac"), "--autoconsole", "text")
    assert proc.stdout is not None and proc.stdin is not None
    seen = b""
    deadline = time.monotonic() + 300
    os.set_blocking(proc.stdout.fileno(), False)
    while b"guest# " not in seen and time.monotonic() < deadline and proc.poll() is None:
        chunk = proc.stdout.read(65536)
        seen += chunk or b""
        if not chunk:
            time.sleep(0.1)
    assert b"guest# " in seen, seen[-2000:]
    assert b"Connected to domain 'ac'" in seen
    proc.stdin.write(b"reboot -f\n")
    proc.stdin.flush()
    assert proc.wait(120) == 0  # the console ends with the install phase
    daemon.wait_state("ac", "running", timeout=120)  # the installed system
    daemon.cli("destroy", "ac").ok()


def test_wait_noreboot_autostart_quiet(daemon: Daemon, tree: Path) -> None:
    """pyvirt install --wait follows the install phase; --noreboot leaves the domain off after it;
    --autostart marks it; -q prints nothing."""
    proc = _popen(
        daemon,
        *_location_args(tree, "wt"),
        "--noautoconsole",
        "--wait",
        "10",
        "--noreboot",
        "--autostart",
        "-q",
    )
    daemon.wait_state("wt", "running", timeout=60)
    console = Console(daemon, "wt")
    try:
        console.expect("guest# ", timeout=300)
        console.send("reboot -f\n")
    finally:
        console.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b"", err
    assert daemon.state("wt") == "shut off"  # --noreboot: the installed system is not started
    time.sleep(1)
    assert daemon.state("wt") == "shut off"
    info = daemon.cli("dominfo", "wt").ok().out
    assert re.search(r"Autostart:\s+enable", info), info


def test_dry_run_transient_cloud_init(daemon: Daemon, tmp_path: Path) -> None:
    art = guest_artifacts()
    disk = copy_disk(art, tmp_path / "root.qcow2")
    boot = f'kernel={art.kernel},initrd={art.initrd},kernel_args="{art.disk_cmdline}"'
    args = [
        "--name", "ci", "--memory", "256", "--os-variant", "debian11", "--import", "--disk", str(disk),
        "--boot", boot, "--cloud-init", "root-password-generate=on", "--network", "none",
        "--graphics", "none", "--virt-type", "qemu", "--noautoconsole",
    ]  # fmt: skip
    dry = daemon.cli("install", "--dry-run", *args).ok()
    assert "Dry run completed successfully" in dry.err
    assert daemon.cli("list", "--all", "--name").ok().out.strip() == ""
    assert not (daemon.root / "var/lib/pyvirt/boot").exists()
    result = daemon.cli("install", "--transient", *args).ok()
    assert re.search(r"Generated password for first root login: \S{8,}", result.out), result.out
    assert re.search(r"Persistent:\s+no", daemon.cli("dominfo", "ci").ok().out)
    console = Console(daemon, "ci")
    try:
        console.expect("guest# ", timeout=300)
        out = console.run(
            "modprobe ahci; modprobe sr_mod; modprobe isofs; sleep 1; mount -t iso9660 -o ro /dev/sr0 /mnt "
            "&& cat /mnt/meta-data /mnt/user-data",
            timeout=120,
        )
    finally:
        console.close()
    assert "instance-id: ci" in out and '"expire": true' in out, out
    daemon.cli("destroy", "ci").ok()
    assert daemon.cli("list", "--all", "--name").ok().out.strip() == ""  # transient: gone


def test_windows_11_install_starts_with_uefi_and_hyperv(daemon: Daemon, tmp_path: Path) -> None:
    """pyvirt install --os-variant win11 --cdrom: SATA disks, e1000e, localtime, Hyper-V
    enlightenments on QEMU's -cpu, UEFI firmware chosen from QEMU's descriptors; --tpm none."""
    (tmp_path / "iso").mkdir()
    (tmp_path / "iso/README").write_text("setup.exe would be here\n")
    iso = tmp_path / "win.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), str(tmp_path / "iso")], check=True)
    daemon.cli(
        "install", "--name", "win", "--memory", "512", "--vcpus", "1", "--os-variant", "win11",
        "--cdrom", str(iso), "--disk", "size=1", "--network", "user", "--graphics", "vnc",
        "--tpm", "none", "--virt-type", "qemu", "--noautoconsole",
    ).ok()  # fmt: skip
    live = ET.fromstring(daemon.cli("dumpxml", "win").ok().out)
    inactive = ET.fromstring(daemon.cli("dumpxml", "--inactive", "win").ok().out)
    assert inactive.find("os").get("firmware") == "efi"
    assert "OVMF" in (live.findtext("os/loader") or "") and live.find("clock").get("offset") == "localtime"
    assert live.find("features/hyperv/spinlocks").get("retries") == "8191"
    assert live.find("devices/disk[@device='disk']/target").get("bus") == "sata"
    assert live.find("devices/interface/model").get("type") == "e1000e"
    pid = daemon.qemu_pids()["win"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    cpu = argv[argv.index(b"-cpu") + 1].decode()
    assert "hv-relaxed=on" in cpu and "hv-vapic=on" in cpu and "hv-spinlocks=0x1fff" in cpu, cpu
    assert any(b"OVMF" in a for a in argv), argv
    daemon.cli("destroy", "win").ok()
    daemon.cli("undefine", "--nvram", "--remove-all-storage", "win").ok()


def test_default_spice_display_runs(daemon: Daemon, tmp_path: Path) -> None:
    """pyvirt install with no --graphics: SPICE with its agent channel, two USB redirections, ich9 sound
    and a virtio video, as virt-install gives; the guest boots with them."""
    art = guest_artifacts()
    disk = copy_disk(art, tmp_path / "root.qcow2")
    boot = f'kernel={art.kernel},initrd={art.initrd},kernel_args="{art.disk_cmdline}"'
    daemon.cli(
        "install", "--name", "sp", "--memory", "256", "--os-variant", "debian11", "--import",
        "--disk", str(disk), "--boot", boot, "--network", "none", "--virt-type", "qemu", "--noautoconsole",
    ).ok()  # fmt: skip
    pid = daemon.qemu_pids()["sp"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert "spicevmc,id=charredir1,name=usbredir" in argv and any(a.startswith("usb-redir,") for a in argv)
    assert any("name=com.redhat.spice.0" in a for a in argv) and "-spice" in argv
    console = Console(daemon, "sp")
    try:
        console.expect("guest# ", timeout=300)
    finally:
        console.close()
    daemon.cli("destroy", "sp").ok()
