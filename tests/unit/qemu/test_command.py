"""Domain XML → QEMU argv, checked against golden files (tests/data/qemu/NAME.args).

Set PYVIRT_REGOLD=1 to rewrite the golden files after an intended change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu.command import RuntimeContext, build_argv

DATA = Path(__file__).resolve().parents[2] / "data/qemu"
CASES = sorted(p.stem for p in DATA.glob("*.xml"))


def argv_for(name: str) -> list[str]:
    dom = load_domain_xml((DATA / f"{name}.xml").read_text())
    ctx = RuntimeContext(
        accel="kvm" if dom.type == "kvm" else "tcg",
        monitor_path=f"/run/pyvirt/qemu/{dom.name}.monitor",
        pidfile=f"/run/pyvirt/qemu/{dom.name}.pid",
        taps={i: f"vnet{i}" for i, nic in enumerate(dom.devices.interfaces) if nic.type != "user"},
    )
    return build_argv(dom, ctx)


def render(argv: list[str]) -> str:
    """One argument pair per line, as libvirt's .args golden files."""
    lines = [argv[0]]
    i = 1
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            lines.append(f"{argv[i]} {argv[i + 1]}")
            i += 2
        else:
            lines.append(argv[i])
            i += 1
    return " \\\n".join(lines) + "\n"


@pytest.mark.parametrize("name", CASES)
def test_golden_argv(name: str) -> None:
    text = render(argv_for(name))
    golden = DATA / f"{name}.args"
    if os.environ.get("PYVIRT_REGOLD") or not golden.exists():
        golden.write_text(text)
    assert text == golden.read_text()


def test_argv_is_a_list_without_shell_quoting() -> None:
    argv = argv_for("guest-direct-kernel")
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert argv[argv.index("-append") + 1] == "console=ttyS0,115200 root=/dev/vda"
    assert "-S" in argv and "-no-shutdown" in argv and "-no-reboot" in argv
    assert argv[argv.index("-sandbox") + 1].startswith("on,")
    assert argv[argv.index("-accel") + 1] == "tcg"


def test_blockdev_style_disks() -> None:
    argv = argv_for("guest-direct-kernel")
    blockdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-blockdev"]
    assert '"driver":"qcow2"' in blockdevs[1]
    assert '"filename":"/var/lib/pyvirt/images/guest1.qcow2"' in blockdevs[0]
    assert '"cache":{"direct":true,"no-flush":false}' in blockdevs[0]
    assert "-drive" not in argv


def test_kvm_and_host_passthrough() -> None:
    argv = argv_for("q35-sata-cdrom-vnc")
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host,migratable=on"
    assert argv[argv.index("-vnc") + 1] == "127.0.0.1:5"
    assert "ide-cd,bus=ide.1,id=sata0-0-1,bootindex=2" in argv


def test_unsupported_bus_is_named() -> None:
    dom = load_domain_xml((DATA / "guest-direct-kernel.xml").read_text())
    dom.devices.disks[0].device = "cdrom"
    with pytest.raises(UnsupportedConfig, match="cdrom cannot be on the virtio bus"):
        build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
