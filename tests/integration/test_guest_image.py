"""The test guest itself: its artifacts, its domain XML, and its behaviour under plain QEMU (TCG)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.guest import (
    BOOT_TIMEOUT,
    BUILD_SCRIPT,
    POWER_BUTTON,
    PROMPT,
    READY,
    GuestArtifacts,
    Qmp,
    copy_disk,
    domain_xml,
    guest_artifacts,
    guest_dir,
    running_qemu,
)

EXIT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def art() -> GuestArtifacts:
    return guest_artifacts()


def test_artifacts(art: GuestArtifacts) -> None:
    manifest = json.loads((guest_dir() / "manifest.json").read_text())
    assert art.kernel.read_bytes()[:4] == b"\x7fELF"
    assert art.vmlinuz is not None and art.vmlinuz.read_bytes()[0x202:0x206] == b"HdrS"  # bzImage header
    assert art.initrd.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(art.disk)], check=True, capture_output=True, text=True
    ).stdout)  # fmt: skip
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 64 * 1024 * 1024
    assert "console=ttyS0,115200" in art.cmdline and "root=" not in art.cmdline
    assert "root=/dev/vda" in art.disk_cmdline
    assert manifest["kernel_version"] == art.kernel_version != ""
    assert any(m.endswith("/virtio_blk.ko") for m in manifest["modules"])


def test_build_is_cached() -> None:
    def stamps() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in guest_dir().iterdir()}

    before = stamps()
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(guest_dir())], check=True, capture_output=True, text=True, timeout=60
    )
    assert "cached" in result.stderr
    assert stamps() == before  # nothing built, nothing rewritten


def test_domain_xml(art: GuestArtifacts, tmp_path: Path) -> None:
    xml = domain_xml(
        "t1", disk=tmp_path / "d.qcow2", nic_network="default", nic_user=True, mac="52:54:00:12:34:56",
        on_poweroff="destroy", on_crash="preserve", panic=True, vnc=True,
        extra_devices="<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    )  # fmt: skip
    dom = ET.fromstring(xml)
    assert dom.get("type") == "qemu" and dom.findtext("name") == "t1"
    assert dom.findtext("os/kernel") == str(art.kernel)
    assert dom.findtext("os/cmdline") == art.disk_cmdline
    assert dom.find("os/type").get("machine") == "pc"  # type: ignore[union-attr]
    assert dom.findtext("on_poweroff") == "destroy" and dom.find("on_reboot") is None
    assert dom.find("devices/disk/target").get("dev") == "vda"  # type: ignore[union-attr]
    nics = dom.findall("devices/interface")
    assert [n.get("type") for n in nics] == ["network", "user"]
    assert nics[0].find("mac").get("address") == "52:54:00:12:34:56"  # type: ignore[union-attr]
    assert dom.find("devices/panic").get("model") == "isa"  # type: ignore[union-attr]
    assert dom.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]
    assert dom.find("devices/rng") is not None
    plain = ET.fromstring(domain_xml("t2"))
    assert plain.findtext("os/cmdline") == art.cmdline and plain.find("devices/disk") is None
    if shutil.which("virt-xml-validate"):
        for name, text in (("full", xml), ("plain", domain_xml("t2", nic_bridge="br0", balloon=True))):
            path = tmp_path / f"{name}.xml"
            path.write_text(text)
            check = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_boot_shell_and_powerdown(art: GuestArtifacts, tmp_path: Path) -> None:
    with running_qemu(art, tmp_path) as vm:
        start = time.monotonic()
        vm.console.wait_for(re.escape(READY), BOOT_TIMEOUT)
        print(f"\ntest guest (initramfs, vmlinux/PVH): boot to ready in {time.monotonic() - start:.2f} s")
        vm.console.wait_for(re.escape(PROMPT), 30)
        vm.console.sendline("echo hello-$((6*7))")
        vm.console.wait_for(r"(?m)^hello-42$", 30)
        assert vm.console.run("cat /proc/sys/kernel/sysrq").strip() == "1"
        assert vm.console.run("ls /dev/input/").count("event") >= 1
        vm.console.sendline("sleep 60; echo not-interrupted")  # ^C reaches the foreground job
        time.sleep(1)
        vm.console.send("\x03")
        vm.console.wait_for(re.escape(PROMPT), 10)
        assert vm.console.run("echo after-ctrl-c").strip() == "after-ctrl-c"
        assert not re.search(r"(?m)^not-interrupted$", vm.console.text)
        with Qmp(vm.qmp_path) as qmp:
            qmp.execute("system_powerdown")
            vm.console.wait_for(re.escape(POWER_BUTTON), 60)
            assert vm.proc.wait(EXIT_TIMEOUT) == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_boot_bzimage(art: GuestArtifacts, tmp_path: Path) -> None:
    assert art.vmlinuz is not None
    with running_qemu(art, tmp_path, kernel=art.vmlinuz) as vm:
        start = time.monotonic()
        vm.console.wait_for(re.escape(READY), BOOT_TIMEOUT)
        print(f"\ntest guest (initramfs, vmlinuz/bzImage): boot to ready in {time.monotonic() - start:.2f} s")
        assert vm.console.run("uname -r").strip() == art.kernel_version


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_boot_from_disk_and_write(art: GuestArtifacts, tmp_path: Path) -> None:
    disk = copy_disk(art, tmp_path / "disk.qcow2")
    with running_qemu(art, tmp_path, disk=disk) as vm:
        start = time.monotonic()
        vm.console.wait_for(re.escape(READY), BOOT_TIMEOUT)
        print(f"\ntest guest (ext4 root on /dev/vda): boot to ready in {time.monotonic() - start:.2f} s")
        mounts = vm.console.run("cat /proc/mounts")
        assert re.search(r"(?m)^/dev/vda / ext4 rw", mounts), mounts
        vm.console.run("echo pyvirt-was-here > /file; sync")
        vm.console.sendline("poweroff")  # busybox init: sync, remount / read-only, power off
        assert vm.proc.wait(EXIT_TIMEOUT) == 0
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True)
    out = subprocess.run(["debugfs", "-R", "cat /file", str(raw)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "pyvirt-was-here"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("model", "restrict"), [("virtio-net-pci", "off"), ("e1000", "on")])
def test_dhcp_lease_on_user_network(art: GuestArtifacts, tmp_path: Path, model: str, restrict: str) -> None:
    # QEMU's own user network (slirp) only; the guest sends nothing but DHCP. restrict=on also cuts slirp
    # off from the outside, and then its DHCP offers no router.
    nic = ["-nic", f"user,model={model},restrict={restrict}"]
    with running_qemu(art, tmp_path, extra_args=nic) as vm:
        vm.console.wait_for(re.escape(READY), BOOT_TIMEOUT)
        vm.console.wait_for(re.escape("pyvirt-guest: eth0 lease 10.0.2.15"), 60)
        assert "inet 10.0.2.15/24" in vm.console.run("ip -4 addr show dev eth0")
        if restrict == "off":
            routes = vm.console.run("ip route")
            assert "default via 10.0.2.2 dev eth0" in routes, routes


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sysrq_panic_reaches_pvpanic(art: GuestArtifacts, tmp_path: Path) -> None:
    extra = ["-device", "pvpanic", "-action", "panic=pause"]
    with running_qemu(art, tmp_path, extra_args=extra) as vm:
        vm.console.wait_for(re.escape(READY), BOOT_TIMEOUT)
        vm.console.wait_for(re.escape(PROMPT), 30)
        with Qmp(vm.qmp_path) as qmp:
            vm.console.sendline("echo c > /proc/sysrq-trigger")
            event = qmp.wait_event("GUEST_PANICKED", 60)
            assert event["data"]["action"] == "pause"
