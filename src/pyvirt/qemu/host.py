"""The host as the driver sees it: node information, capabilities XML, versions, validation checks.

Reads /proc, /sys and the QEMU binary; every function is cheap and synchronous (results that cost a
process spawn, such as QEMU's version, are cached for the daemon's lifetime).
"""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pyvirt.qemu.command import DEFAULT_EMULATOR
from pyvirt.qemu.kvmprobe import kvm_usable

OVMF_CODE_CANDIDATES = (
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
    "/usr/share/edk2/ovmf/OVMF_CODE.fd",
)


@dataclass
class NodeInfo:
    model: str
    cpus: int
    mhz: int
    nodes: int
    sockets: int
    cores: int
    threads: int
    memory_kib: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_info() -> NodeInfo:
    cpus = os.cpu_count() or 1
    physical: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    mhz = 0.0
    phys_id = "0"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            phys_id = value
            sockets.add(value)
        elif key == "core id":
            physical.add((phys_id, value))
        elif key == "cpu MHz" and not mhz:
            mhz = float(value or 0)
    n_sockets = max(1, len(sockets))
    cores = max(1, len(physical) // n_sockets) if physical else cpus
    threads = max(1, cpus // (n_sockets * cores))
    nodes = len(list(Path("/sys/devices/system/node").glob("node[0-9]*"))) or 1
    return NodeInfo(
        model=platform.machine(),
        cpus=cpus,
        mhz=int(mhz),
        nodes=nodes,
        sockets=n_sockets,
        cores=cores,
        threads=threads,
        memory_kib=_meminfo_kib("MemTotal"),
    )


def _meminfo_kib(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_memory_kib() -> int:
    return _meminfo_kib("MemAvailable")


@functools.cache
def qemu_version(emulator: str = DEFAULT_EMULATOR) -> str:
    """'7.2.22' for QEMU 7.2.22, or '' when the emulator is missing."""
    try:
        out = subprocess.run([emulator, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"version (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else ""


def version_number(version: str) -> int:
    """libvirt's integer form: 7.2.22 → 7002022."""
    parts = [int(p) for p in ([*version.split("."), "0", "0"])[:3]] if version else [0, 0, 0]
    return parts[0] * 1_000_000 + parts[1] * 1000 + parts[2]


def hostname() -> str:
    return socket.gethostname()


def host_uuid() -> str:
    for path in ("/sys/class/dmi/id/product_uuid", "/etc/machine-id"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if len(raw) == 32:
            raw = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
        if raw:
            return raw.lower()
    return "00000000-0000-0000-0000-000000000000"


def ovmf_code() -> str | None:
    for path in OVMF_CODE_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


def capabilities_xml() -> str:
    info = node_info()
    usable, _ = kvm_usable()
    emulator = DEFAULT_EMULATOR
    domains = "        <domain type='qemu'/>\n"
    if usable:
        domains += "        <domain type='kvm'/>\n"
    machines = "".join(
        f"        <machine{' canonical=' + repr(c) if c else ''}>{escape(m)}</machine>\n"
        for m, c in (
            ("pc-i440fx-7.2", None),
            ("pc", "pc-i440fx-7.2"),
            ("pc-q35-7.2", None),
            ("q35", "pc-q35-7.2"),
        )
    )
    return (
        "<capabilities>\n\n"
        "  <host>\n"
        f"    <uuid>{host_uuid()}</uuid>\n"
        "    <cpu>\n"
        f"      <arch>{escape(info.model)}</arch>\n"
        f"      <topology sockets='{info.sockets}' dies='1' cores='{info.cores}' threads='{info.threads}'/>\n"
        "    </cpu>\n"
        "    <power_management/>\n"
        "    <iommu support='no'/>\n"
        "    <topology>\n"
        "      <cells num='1'>\n"
        "        <cell id='0'>\n"
        f"          <memory unit='KiB'>{info.memory_kib}</memory>\n"
        f"          <cpus num='{info.cpus}'>\n"
        + "".join(f"            <cpu id='{i}'/>\n" for i in range(info.cpus))
        + "          </cpus>\n"
        "        </cell>\n"
        "      </cells>\n"
        "    </topology>\n"
        "  </host>\n\n"
        "  <guest>\n"
        "    <os_type>hvm</os_type>\n"
        "    <arch name='x86_64'>\n"
        "      <wordsize>64</wordsize>\n"
        f"      <emulator>{emulator}</emulator>\n"
        f"{machines}"
        f"{domains}"
        "    </arch>\n"
        "    <features>\n"
        "      <acpi default='on' toggle='yes'/>\n"
        "      <apic default='on' toggle='no'/>\n"
        "    </features>\n"
        "  </guest>\n\n"
        "</capabilities>\n"
    )


@dataclass
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    detail: str = ""


def _check(name: str, ok: bool, failing: str, hint: str) -> Check:
    """PASS, or ``failing`` ("WARN"/"FAIL") with the hint that says what to do."""
    return Check(name, "PASS" if ok else failing, "" if ok else hint)


def validate_host() -> list[Check]:
    """virt-host-validate's QEMU checks."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    usable, reason = kvm_usable()
    return [
        _check(
            "QEMU: Checking for hardware virtualization",
            " vmx" in cpuinfo or " svm" in cpuinfo,
            "WARN",
            "Only emulated CPUs are available, performance will be significantly limited",
        ),
        _check(
            "QEMU: Checking if device /dev/kvm exists",
            os.path.exists("/dev/kvm"),
            "FAIL",
            "Load the 'kvm_intel' or 'kvm_amd' module",
        ),
        Check("QEMU: Checking if device /dev/kvm is usable", "PASS" if usable else "FAIL", reason),
        _check(
            "QEMU: Checking if device /dev/vhost-net exists",
            os.path.exists("/dev/vhost-net"),
            "WARN",
            "Load the 'vhost_net' module to improve performance of virtio networking",
        ),
        _check(
            "QEMU: Checking if device /dev/net/tun exists",
            os.path.exists("/dev/net/tun"),
            "FAIL",
            "Load the 'tun' module to enable networking for QEMU guests",
        ),
        _check(
            f"QEMU: Checking for {DEFAULT_EMULATOR}",
            bool(qemu_version()),
            "FAIL",
            "Install the qemu-system-x86 package",
        ),
        _check(
            "QEMU: Checking for cgroup 'cpu' controller support",
            os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
            "WARN",
            "Enable the cgroup v2 hierarchy",
        ),
        _check(
            "QEMU: Checking for UEFI firmware (OVMF)",
            ovmf_code() is not None,
            "WARN",
            "Install the ovmf package for <loader> and firmware='efi'",
        ),
    ]
