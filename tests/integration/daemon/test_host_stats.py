"""Host statistics and capabilities through a real daemon: nodecpustats, nodememstats, freecell,
maxvcpus, cpu-models, sysinfo and domcapabilities, checked against /proc, sysfs and QEMU itself."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from pyvirt.qemu.kvmprobe import kvm_usable
from tests.support.daemon import Daemon


def qemu_default_machine() -> dict[str, object]:
    """The default machine as QEMU itself reports it (the oracle for maxvcpus)."""
    commands = '{"execute":"qmp_capabilities"}\n{"execute":"query-machines"}\n{"execute":"quit"}\n'
    out = subprocess.run(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"],
        input=commands, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    machines = next(json.loads(line) for line in out.splitlines() if line.startswith('{"return": ['))[
        "return"
    ]
    return next(m for m in machines if m.get("is-default"))


def test_host_statistics(daemon: Daemon) -> None:
    d = daemon
    cpu = d.cli("nodecpustats").ok().out
    rows = re.findall(r"^(\w+):\s+(\d+)$", cpu, re.M)
    assert [r[0] for r in rows] == ["user", "system", "idle", "iowait"] and cpu.endswith("\n\n"), cpu
    assert int(rows[2][1]) > 0
    one = re.findall(r"^(\w+):\s+(\d+)$", d.cli("nodecpustats", "--cpu", "0").ok().out, re.M)
    assert int(one[2][1]) <= int(rows[2][1])  # CPU 0's idle time is part of the total's
    percent = d.cli("nodecpustats", "--percent").ok().out
    assert re.match(r"usage:\s+\d+\.\d%\nuser:\s+\d+\.\d%\nsystem:", percent), percent
    bad_cpu = d.cli("nodecpustats", "--cpu", "100000")
    assert bad_cpu.rc == 1 and "Invalid cpuNum" in bad_cpu.err

    mem = d.cli("nodememstats").ok().out
    values = dict(re.findall(r"^(\w+)\s*:\s+(\d+) KiB$", mem, re.M))
    assert list(values) == ["total", "free", "buffers", "cached"], mem
    total = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    assert total and int(values["total"]) == int(total.group(1))
    if Path("/sys/devices/system/node/node0").is_dir():
        cell = dict(
            re.findall(r"^(\w+)\s*:\s+(\d+) KiB$", d.cli("nodememstats", "--cell", "0").ok().out, re.M)
        )
        assert set(cell) == {"total", "free"} and int(cell["total"]) <= int(values["total"])
        assert re.fullmatch(r"0: \d+ KiB\n\n", d.cli("freecell", "--cellno", "0").ok().out)
    assert re.fullmatch(r"Total: \d+ KiB\n\n", d.cli("freecell").ok().out)
    cells = d.cli("freecell", "--all").ok().out
    assert re.match(r"(\s+\d+: +\d+ KiB\n)+-{20}\nTotal: +\d+ KiB\n\n$", cells), cells
    assert d.cli("freecell", "--all", "--cellno", "0").rc == 1


def test_host_capabilities(daemon: Daemon) -> None:
    d = daemon
    machine = qemu_default_machine()
    assert d.cli("maxvcpus").ok().out == f"{machine['cpu-max']}\n\n"
    assert d.cli("maxvcpus", "--type", "qemu").ok().out == f"{machine['cpu-max']}\n\n"
    if not kvm_usable()[0]:
        no_kvm = d.cli("maxvcpus", "--type", "kvm")
        assert no_kvm.rc == 1 and "KVM is not usable" in no_kvm.err
    models = d.cli("cpu-models", "x86_64").ok().out.split()
    assert {"qemu64", "Skylake-Client", "EPYC"} <= set(models) and not any(m.endswith("-v1") for m in models)
    other = d.cli("cpu-models", "aarch64")
    assert other.rc == 1 and "aarch64" in other.err
    assert ET.fromstring(d.cli("sysinfo").ok().out).attrib == {"type": "smbios"}
    caps = ET.fromstring(d.cli("domcapabilities", "--virttype", "qemu", "--machine", "q35").ok().out)
    assert caps.findtext("domain") == "qemu" and caps.findtext("arch") == "x86_64"
    assert caps.findtext("machine", "").startswith("pc-q35-")
    vcpu = caps.find("vcpu")
    assert vcpu is not None and int(vcpu.get("max", 0)) >= 255
    custom = caps.find("./cpu/mode[@name='custom']")
    assert custom is not None and "qemu64" in [m.text for m in custom.findall("model")]
    hostdev = caps.find("./devices/hostdev")  # passthrough (daemon/hostdevs.py); VFIO where the host has it
    assert hostdev is not None and hostdev.get("supported") == "yes"
    assert [v.text for v in hostdev.findall("./enum[@name='subsysType']/value")] == ["usb", "pci", "scsi"]
    backends = [v.text for v in hostdev.findall("./enum[@name='pciBackend']/value")]
    assert backends == (["vfio"] if Path("/dev/vfio/vfio").exists() else [])
    default = ET.fromstring(d.cli("domcapabilities").ok().out)
    assert default.findtext("machine") == machine["name"]
    refused = d.cli("domcapabilities", "--xpath", "//vcpu")
    assert refused.rc == 1 and "--xpath" in refused.err
    assert d.cli("domcapabilities", "--wrap").rc == 1
    binary = default.findtext("path", "")
    chosen = ET.fromstring(d.cli("domcapabilities", "--emulatorbin", binary).ok().out)
    assert chosen.findtext("path") == binary
    unknown = d.cli("domcapabilities", "--emulatorbin", "/nonexistent/qemu")
    assert unknown.rc == 1 and "/nonexistent/qemu" in unknown.err
    assert d.cli("domcapabilities", "--arch", "ppc64").rc == 1
