"""XML features that reach QEMU and the guest, seen from inside a real guest under TCG: the balloon
target of ``<currentMemory>``, firmware chosen from QEMU's descriptors for ``firmware='efi'``, and devices
(watchdog, USB port, PCIe root port) on the addresses the XML gives them; the watchdog, armed by the
guest and never fed, fires: libvirt's watchdog event (also as ``event --event watchdog`` shows it alone),
the domain paused for it."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.events import listening, read_until, watch
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = pytest.mark.slow
OVMF = "/usr/share/OVMF"
# The i6300ESB armed from inside the guest: memory decoding on, both stage timers (~1 s each: 1000 at
# its 1 kHz scale) written after the unlock sequence 0x80 0x86 at BAR+0xc, then WDT_ENABLE (bit 1) in
# its lock register (config 0x68).
ARM_I6300ESB = (
    "echo 1 > {dev}/enable; B=$(head -1 {dev}/resource | cut -d' ' -f1);"
    " devmem $((B+12)) 16 0x80; devmem $((B+12)) 16 0x86; devmem $B 32 1000;"
    " devmem $((B+12)) 16 0x80; devmem $((B+12)) 16 0x86; devmem $((B+4)) 32 1000;"
    " printf '\\002' | dd of={dev}/config bs=1 seek=104 count=1 2>/dev/null; echo armed"
)


def define(daemon: Daemon, tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()


def guest_mem_total_kib(console: Console, below: int) -> int:
    """MemTotal once it drops below ``below`` KiB (the balloon inflates after boot), or its last value."""
    script = (
        "i=0; while [ $i -lt 120 ]; do t=$(sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo);"
        f" [ $t -lt {below} ] && break; i=$((i+1)); sleep 1; done; echo total=$t"
    )
    out = console.run(script, timeout=180)
    match = re.search(r"total=(\d+)", out)
    assert match, out
    return int(match.group(1))


def test_current_memory_is_the_balloon_target(daemon: Daemon, tmp_path: Path) -> None:
    text = domain_xml("bal1", memory_mib=256, balloon=True)
    text = text.replace("</memory>", "</memory><currentMemory unit='MiB'>160</currentMemory>", 1)
    define(daemon, tmp_path, "bal1", text)
    daemon.cli("start", "bal1").ok()
    console = Console(daemon, "bal1")
    console.expect("pyvirt-guest: ready")
    # 256 MiB of RAM, ballooned down to 160 MiB: the guest sees less than 200 MiB in total.
    assert guest_mem_total_kib(console, 200 * 1024) < 200 * 1024
    console.close()
    daemon.cli("destroy", "bal1").ok()


def efi_domain(name: str, os_extra: str) -> str:
    art = guest_artifacts()
    assert art.vmlinuz is not None
    text = domain_xml(name, memory_mib=256)
    text = text.replace("<os>", "<os firmware='efi'>").replace('machine="pc"', 'machine="q35"')
    text = text.replace("machine='pc'", "machine='q35'")
    text = re.sub(r"<kernel>[^<]*</kernel>", f"<kernel>{art.vmlinuz}</kernel>", text)
    return text.replace("</os>", f"{os_extra}</os>")


def test_firmware_efi_takes_the_descriptors_choice(daemon: Daemon, tmp_path: Path) -> None:
    # A plain firmware='efi' on q35: Debian's secure-boot build with Microsoft keys, and SMM, as libvirt.
    define(daemon, tmp_path, "efi1", efi_domain("efi1", ""))
    daemon.cli("start", "efi1").ok()
    live = daemon.cli("dumpxml", "efi1").ok().out
    assert f"<loader readonly='yes' type='pflash'>{OVMF}/OVMF_CODE_4M.ms.fd</loader>" in live
    assert f"template='{OVMF}/OVMF_VARS_4M.ms.fd'" in live
    assert "<smm/>" in live or "<smm state='on'/>" in live
    nvram = next(daemon.root.rglob("efi1_VARS.fd"))
    assert nvram.stat().st_size == Path(f"{OVMF}/OVMF_VARS_4M.ms.fd").stat().st_size
    log = (daemon.root / "var/log/pyvirt/qemu/efi1.log").read_text()
    assert "OVMF_CODE_4M.ms.fd" in log and "smm=on" in log
    assert daemon.state("efi1") == "running"
    daemon.cli("destroy", "efi1").ok()
    assert "firmware='efi'" in daemon.cli("dumpxml", "efi1").ok().out  # the config keeps the request
    # Without secure boot the guest's kernel (signed by Debian, not Microsoft) boots through OVMF.
    no_sb = "<firmware><feature enabled='no' name='secure-boot'/></firmware>"
    define(daemon, tmp_path, "efi2", efi_domain("efi2", no_sb))
    daemon.cli("start", "efi2").ok()
    assert f"{OVMF}/OVMF_CODE_4M.fd</loader>" in daemon.cli("dumpxml", "efi2").ok().out
    console = Console(daemon, "efi2")
    console.expect("pyvirt-guest: ready", 300)
    assert console.run("test -d /sys/firmware/efi && echo uefi") == "uefi"
    console.close()
    daemon.cli("destroy", "efi2").ok()


def test_unsatisfiable_firmware_is_refused_at_define(daemon: Daemon, tmp_path: Path) -> None:
    text = efi_domain("efi3", "<firmware><feature enabled='yes' name='secure-boot'/></firmware>")
    path = tmp_path / "efi3.xml"
    path.write_text(text.replace("machine='q35'", "machine='pc'").replace('machine="q35"', 'machine="pc"'))
    result = daemon.cli("define", str(path))
    assert result.rc == 1
    assert "Unable to find any firmware to satisfy 'efi' with secure-boot=yes" in result.err
    assert "efi3" not in daemon.cli("list", "--all").ok().out


def test_devices_sit_where_the_xml_puts_them(daemon: Daemon, tmp_path: Path) -> None:
    extra = (
        "<controller type='usb' index='0' model='piix3-uhci'/>"
        "<input type='tablet' bus='usb'><address type='usb' bus='0' port='2'/></input>"
        "<watchdog model='i6300esb' action='pause'>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='011' function='0x0'/></watchdog>"
    )
    define(daemon, tmp_path, "dev1", domain_xml("dev1", extra_devices=extra))
    daemon.cli("start", "dev1").ok()
    console = Console(daemon, "dev1")
    console.expect("pyvirt-guest: ready")
    # slot='011' is octal, slot 9: the i6300ESB (8086:25ab) is at 00:09.0.
    ids = console.run("cat /sys/bus/pci/devices/0000:00:09.0/vendor /sys/bus/pci/devices/0000:00:09.0/device")
    assert ids.split() == ["0x8086", "0x25ab"]
    log = (daemon.root / "var/log/pyvirt/qemu/dev1.log").read_text()
    assert "usb-tablet,id=input0,bus=usb.0,port=2" in log and "-watchdog-action pause" in log
    # The guest arms the i6300ESB and never feeds it (it has no driver for it: through sysfs and
    # /dev/mem): QEMU's WATCHDOG is libvirt's watchdog event, and the domain is paused for it.
    # A second watcher, of watchdog events only (virsh event --event watchdog), started first.
    only = watch(daemon, "--event", "watchdog", "--domain", "dev1")
    watcher = watch(daemon, "--all", "--domain", "dev1")
    try:
        listening(daemon, watcher, "dev1", tmp_path)
        console.run(ARM_I6300ESB.format(dev="/sys/bus/pci/devices/0000:00:09.0"))
        seen = read_until(watcher, b"Suspended Watchdog\n").decode()
        fired = seen[seen.index("event 'watchdog'") :].splitlines()
        assert fired == [
            "event 'watchdog' for domain 'dev1': pause",
            "event 'lifecycle' for domain 'dev1': Suspended Watchdog",
        ], seen
        assert daemon.cli("domstate", "dev1", "--reason").ok().out.strip() == "paused (watchdog)"
        # Should the watchdog-only watcher have subscribed after the first firing, the guest arms the
        # watchdog again until it has seen one.
        printed = read_until(only, b"\n", bound=20, settle=True)
        for _ in range(3):
            if printed:
                break
            daemon.cli("resume", "dev1").ok()
            console.run(ARM_I6300ESB.format(dev="/sys/bus/pci/devices/0000:00:09.0"))
            read_until(watcher, b"Suspended Watchdog\n")
            printed = read_until(only, b"\n", bound=20, settle=True)
    finally:
        for proc in (watcher, only):
            proc.send_signal(signal.SIGINT)
            proc.wait()
    assert only.stdout is not None
    printed += only.stdout.read()
    # the action and the domain, and no lifecycle line: only what --event watchdog asks for
    lines = printed.decode().splitlines()
    events = [line for line in lines if line.startswith("event ")]
    assert events and set(events) == {"event 'watchdog' for domain 'dev1': pause"}, lines
    assert f"events received: {len(events)}" in lines, lines
    daemon.cli("resume", "dev1").ok()
    console.close()
    daemon.cli("destroy", "dev1").ok()
