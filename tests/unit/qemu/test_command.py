"""Domain XML → QEMU argv, checked against golden files.

Every domain XML under tests/data/ (``domain/`` and ``qemu/``) has its golden command line beside it
(``NAME.args``), built with the run-time facts the daemon would supply (tap names, volume paths, NVRAM
path, channel sockets). A missing or different golden fails. After an intended change, rewrite them with
``PYVIRT_REGEN_GOLDEN=1`` and review the diff: nothing here writes a golden file otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.conf.domain import Domain
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import firmware
from pyvirt.qemu.command import RuntimeContext, build_argv

DATA_ROOT = Path(__file__).resolve().parents[2] / "data"
DATA = DATA_ROOT / "qemu"
GOLDEN_DIRS = ("domain", "qemu")
CASES = sorted(f"{d}/{p.stem}" for d in GOLDEN_DIRS for p in (DATA_ROOT / d).glob("*.xml"))
REGEN = os.environ.get("PYVIRT_REGEN_GOLDEN") == "1"
# Firmware descriptors shaped as Debian 12's ovmf installs them (checked against the host's below).
DESCRIPTORS = firmware.load_descriptors([str(DATA / "firmware")])


def runtime_context(dom: Domain) -> RuntimeContext:
    """What the daemon decides at start: taps, volume paths, NVRAM and channel sockets."""
    run = "/run/pyvirt/qemu"
    loader = dom.os.loader
    nvram = None
    if loader is not None and loader.type == "pflash" and not loader.stateless:
        nvram = dom.os.nvram or f"/var/lib/pyvirt/qemu/nvram/{dom.name}_VARS.fd"
    return RuntimeContext(
        accel="kvm" if dom.type == "kvm" else "tcg",
        monitor_path=f"{run}/{dom.name}.monitor",
        pidfile=f"{run}/{dom.name}.pid",
        taps={i: f"vnet{i}" for i, nic in enumerate(dom.devices.interfaces) if nic.type != "user"},
        disk_paths={
            i: f"/var/lib/pyvirt/images/{disk.source_pool}/{disk.source_volume}"
            for i, disk in enumerate(dom.devices.disks)
            if disk.type == "volume"
        },
        channel_paths={
            i: ch.source_path or f"{run}/{dom.name}.channels/{ch.target_name or f'channel{i}'}"
            for i, ch in enumerate(dom.devices.channels)
            if ch.type == "unix"
        },
        nvram_path=nvram,
        pr_helper_socket=f"{run}/{dom.name}.channels/pr-helper0.sock",  # a managed qemu-pr-helper's
        virtiofs_sockets={  # where start has each virtiofs share's virtiofsd listen
            i: f"{run}/{dom.name}.channels/{fs.alias or f'fs{i}'}-fs.sock"
            for i, fs in enumerate(dom.devices.filesystems)
            if fs.virtiofs is not None
        },
        shared_overlays={  # where start makes the overlays of <transient shareBacking='yes'/> disks
            i: f"{d.source}.TRANSIENT-{dom.name}"
            for i, d in enumerate(dom.devices.disks)
            if d.layers.share_backing
        },
        graphics_port=5900,  # what start picks for an autoport SPICE display on a host with none
        graphics_socket=f"{run}/{dom.name}.channels/{dom.devices.graphics[0].type}.sock"
        if dom.devices.graphics
        else None,
        tpm_socket=f"{run}/{dom.name}.channels/swtpm.sock",  # where start has swtpm listen
    )


def argv_for(name: str) -> list[str]:
    path = DATA_ROOT / f"{name}.xml" if "/" in name else DATA / f"{name}.xml"
    dom = load_domain_xml(path.read_text())
    firmware.fill_domain(dom, DESCRIPTORS)  # as the daemon does at start
    return build_argv(dom, runtime_context(dom))


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


def test_every_golden_has_its_xml() -> None:
    stale = [
        f"{d}/{p.name}"
        for d in GOLDEN_DIRS
        for p in (DATA_ROOT / d).glob("*.args")
        if not p.with_suffix(".xml").exists()
    ]
    assert not stale, f"golden files without a domain XML: {stale}"


@pytest.mark.parametrize("name", CASES)
def test_golden_argv(name: str) -> None:
    text = render(argv_for(name))
    golden = DATA_ROOT / f"{name}.args"
    if REGEN:
        golden.write_text(text)
    if not golden.exists():
        pytest.fail(f"no golden command line {golden}: run with PYVIRT_REGEN_GOLDEN=1, then review it")
    assert text == golden.read_text(), f"{name}: the command line differs from {golden}"


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


def dom_of(devices: str, machine: str = "q35") -> Domain:
    text = (DATA_ROOT / "domain" / "minimal.xml").read_text().replace("machine='pc'", f"machine='{machine}'")
    return load_domain_xml(text.replace("</domain>", f"<devices>{devices}</devices></domain>"))


def test_itco_lets_the_ich9_watchdog_act() -> None:
    dom = dom_of("<watchdog model='itco' action='shutdown'/>")
    argv = build_argv(dom, runtime_context(dom))
    assert argv[argv.index("-watchdog-action") + 1] == "shutdown"
    assert "ICH9-LPC.noreboot=off" in argv


def test_usb_companions_name_their_master_and_repeat_no_id() -> None:
    dom = dom_of(
        "<controller type='usb' index='1' model='ich9-uhci3'><master startport='4'/></controller>"
        "<controller type='usb' index='1' model='ich9-ehci1'/>"
        "<controller type='usb' index='1' model='ich9-uhci1'><master startport='0'/></controller>"
        "<input type='tablet' bus='usb'><address type='usb' bus='1' port='3'/></input>"
    )
    devices = [a for a in build_argv(dom, runtime_context(dom)) if a.startswith(("ich9", "usb-"))]
    assert devices == [  # the companions in one slot, ICH9's 00:1d (pyvirt.conf.pci_assign)
        "ich9-usb-ehci1,bus=pcie.0,addr=0x1d.0x7,id=usb1",
        "ich9-usb-uhci3,bus=pcie.0,addr=0x1d.0x2,masterbus=usb1.0,firstport=4",
        "ich9-usb-uhci1,bus=pcie.0,addr=0x1d,multifunction=on,masterbus=usb1.0,firstport=0",
        "usb-tablet,id=input0,bus=usb1.0,port=3",
    ]


def test_channel_ports_fill_the_gaps_the_named_ones_leave() -> None:
    channel = "<channel type='unix'><target type='virtio' name='c{0}'/>{1}</channel>"
    port = "<address type='virtio-serial' controller='0' bus='0' port='{0}'/>"
    dom = dom_of(channel.format(0, "") + channel.format(1, port.format(1)) + channel.format(2, ""))
    argv = build_argv(dom, runtime_context(dom))
    ports = [a.split("nr=")[1].split(",")[0] for a in argv if a.startswith("virtserialport")]
    assert ports == ["2", "1", "3"]


@pytest.mark.parametrize("mode", ["mode='connect' ", ""])
def test_a_connect_channel_connects(mode: str) -> None:
    """mode='connect', or no mode with a path (libvirt's default, as virsh domxml-to-native shows)."""
    source = f"<source {mode}path='/run/agent.sock'/>"
    dom = dom_of(f"<channel type='unix'>{source}<target type='virtio' name='a'/></channel>")
    argv = build_argv(dom, runtime_context(dom))
    assert "socket,id=charchannel0,path=/run/agent.sock" in argv
    assert "mode='connect'" in format_domain(dom)


@pytest.mark.parametrize(("kib", "emitted"), [(219100, "219136k"), (262144, "262144k"), (1, "1024k")])
def test_memory_is_rounded_up_to_whole_mib_as_libvirt_aligns_it(kib: int, emitted: str) -> None:
    dom = dom_of("")
    dom.memory_kib = kib
    argv = build_argv(dom, runtime_context(dom))
    assert argv[argv.index("-m") + 1] == f"size={emitted}"


def test_a_domain_name_with_commas_is_escaped_where_qemu_splits_options() -> None:
    """'a=b,c': libvirt's name rule allows it, and QEMU reads ',,' as one comma in its options."""
    argv = argv_for("qemu/name-with-comma")
    assert argv[argv.index("-name") + 1] == "guest=a=b,,c,debug-threads=on"
    chardevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-chardev"]
    assert any("path=/run/pyvirt/qemu/a=b,,c.channels/org.qemu.guest_agent.0" in c for c in chardevs), (
        chardevs
    )
    assert any("path=/var/log/a,,b-serial.log" in c for c in chardevs), chardevs
    assert argv[argv.index("-vnc") + 1].startswith("unix:/run/pyvirt/qemu/a=b,,c.channels/vnc.sock")
