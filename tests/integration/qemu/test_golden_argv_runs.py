"""Every golden command line is one the real QEMU accepts.

Each case's argv (tests/unit/qemu/test_command.py) is run by qemu-system-x86_64 with only what this
machine cannot give it swapped: TCG for KVM (``-cpu max`` for ``host``), user networking for taps,
scratch files for disks, NVRAM and sockets. QEMU starts paused (``-S``); a QMP ``quit`` on stdio ends
it. A device, property or value QEMU refuses makes it exit before its QMP greeting, with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvirt.qemu.graphics import free_port
from tests.unit.qemu.test_command import CASES, argv_for

NEEDS_KERNEL = {"domain/test-guest", "qemu/guest-direct-kernel"}  # boot files of a guest not built here
NEEDS_SERVER = {
    "domain/libvirt-nbd-disks",
    "domain/libvirt-input-passthrough",  # a host /dev/input/event device, which this machine has none of
    "domain/libvirt-input-evdev",  # the same
    "domain/libvirt-vhostuser-disk",  # vhost-user block backends (QEMU waits for them at start)
    "domain/libvirt-nbd-tls",  # an NBD server with TLS and client credentials: test_nbd_tls (unit)
    "domain/libvirt-vdpa-lun",  # a vDPA device and a host SCSI disk (scsi-block), which this machine lacks
    "domain/libvirt-smartcard-certificates",  # an NSS database with the card's certificates
    "domain/libvirt-sdl",  # an X display and QEMU's ui-sdl.so (start refuses: test_devices_boot)
    "domain/libvirt-egl-headless",  # a DRM render node (the same)
    "domain/libvirt-spice-gl",  # the same
    "domain/libvirt-hostdev-iscsi",  # made-up iSCSI targets
    "domain/libvirt-hostdev-iscsi-auto",  # the same
    "domain/libvirt-reservations",  # host SCSI LUNs (scsi-block) and qemu-pr-helpers: test_pr_helper
    "domain/libvirt-nvram-network",  # a made-up NBD server (a real one: daemon/test_nbd_disks.py)
    "domain/libvirt-nvram-nbd-tls",  # a made-up NBD server over TLS (a real one: daemon/test_nbd_tls.py)
    "domain/libvirt-backing-chain-network",  # made-up servers (HTTP for real: daemon/test_backing_chain.py)
    "domain/libvirt-network-disks",  # made-up remote servers (HTTP for real: daemon/test_disk_sources.py)
    "domain/libvirt-tpm-emulator",  # swtpm, which the daemon starts: tests/integration/daemon/test_tpm.py
    "domain/libvirt-tpm-external",  # an swtpm someone else runs: tests/integration/daemon/test_tpm.py
    "domain/libvirt-net-sockets",  # vhost-user net backends (test_devices_boot runs a socket NIC)
    "domain/libvirt-virtiofs",  # its virtiofsds, started by the daemon: daemon/test_virtiofs.py
}  # NBD servers: tests/integration/daemon/test_nbd_disks.py runs one
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def runnable(argv: list[str], scratch: Path) -> list[str]:
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("-pidfile", "-accel", "-cpu", "-netdev", "-vnc", "-spice"):
            value = next(args)
            if arg == "-accel":
                out += ["-accel", "tcg"]
            elif arg == "-cpu":
                out += ["-cpu", re.sub(r"^host", "max", value).replace(",migratable=on", "")]
            elif arg == "-netdev":
                out += ["-netdev", "user," + value.rsplit(",", 1)[-1] if value.startswith("tap") else value]
            elif arg == "-spice":  # a port free on this machine (other guests may hold 5900)
                out += ["-spice", re.sub(r"^port=\d+", f"port={free_port('127.0.0.1')}", value)]
            elif arg == "-vnc":
                out += [
                    "-vnc",
                    "127.0.0.1:0,to=99" + "".join(re.findall(r",(?:password|audiodev)=[^,]*", value)),
                ]
            continue
        out.append(arg)
    text = "\0".join(out)
    files = set(re.findall(r'"filename":"([^"]+)"', text)) | set(
        re.findall(r"(?:path|addr|logfile)=(/(?:[^,\0]|,,)+)", text)  # ',,' is QEMU's escaped comma
    )
    memory_files = set(re.findall(r'"mem-path":"([^"]+)"', text))  # NVDIMM, virtio-pmem: QEMU sizes them
    files |= memory_files
    shares = set(re.findall(r"(?:^|\0)local,[^\0]*?path=(/[^,\0]+)", text))  # -fsdev: directories
    shares |= set(re.findall(r'"dir":"([^"]+)"', text))  # vvfat disks: directories
    files |= shares
    for index, path in enumerate(sorted(files)):
        if path.startswith(("/usr/share/OVMF/", "/dev/urandom", "/dev/random")):
            continue
        new = scratch / f"f{index}{Path(path).suffix}"
        if path in shares:
            new.mkdir()
        elif path in memory_files:
            new.touch()
        elif path.endswith(".qcow2"):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(new), "16M"], check=True)
        elif "nvram" in path or "VARS" in path:
            shutil.copyfile(OVMF_VARS, new)
        elif not path.endswith((".sock", ".agent", ".monitor", ".second", ".0", ".log")):
            new.write_bytes(b"\0" * 1024 * 1024)
        text = text.replace(path, str(new))
    # Block devices of the test data become plain files here.
    text = text.replace('"driver":"host_device"', '"driver":"file"').replace(',"aio":"native"', "")
    text = re.sub(r"(^|\0)stdio,", r"\1null,", text)  # stdio is QMP's here
    return [*text.split("\0"), "-qmp", "stdio"]


# Host devices this machine lacks (pyvirt refuses these domains at start here, by name).
NEEDS_HOST = {"domain/libvirt-vsock"} if not Path("/dev/vhost-vsock").exists() else set()
NEEDS_HOST |= {"domain/libvirt-tpm-passthrough"} if not Path("/dev/tpm0").exists() else set()
NEEDS_HOST.add("domain/libvirt-hostdev")  # a made-up host PCI address and USB device
NEEDS_HOST.add("domain/libvirt-hostdev-mdev-usb")  # made-up mediated devices and USB device


@pytest.mark.parametrize("name", sorted(set(CASES) - NEEDS_KERNEL - NEEDS_SERVER - NEEDS_HOST))
def test_qemu_accepts_the_golden_command_line(name: str, tmp_path: Path) -> None:
    argv = runnable(argv_for(name), tmp_path)
    commands = "".join(json.dumps({"execute": c}) + "\n" for c in ("qmp_capabilities", "quit"))
    result = subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"QEMU refused {name}: {result.stderr.strip()}"
    assert '"return"' in result.stdout
