"""domxml-from-native qemu-argv: QEMU command lines to domain XML, and what has no XML refused by name."""

from __future__ import annotations

import collections
import contextlib
import re
import shlex

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.conf.from_native import _IGNORED_DEVICES, domxml_from_native
from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.unit.qemu.test_command import argv_for, runtime_context

HAND_WRITTEN = (
    "LC_ALL=C PATH=/bin /usr/bin/qemu-system-x86_64 -name guest=fromargv -machine pc,accel=tcg -m 512 "
    "-smp 2 -drive file=/srv/a.qcow2,if=virtio,format=qcow2 -cdrom /srv/b.iso -netdev user,id=n0 "
    "-device e1000,netdev=n0,mac=52:54:00:12:34:56 -vnc 127.0.0.1:3 -boot order=dc -rtc base=localtime"
)


def test_a_hand_written_command_line() -> None:
    dom = load_domain_xml(domxml_from_native("qemu-argv", HAND_WRITTEN))
    assert (dom.name, dom.type, dom.memory_kib, dom.vcpus, dom.os.machine) == (
        "fromargv",
        "qemu",
        524288,
        2,
        "pc",
    )
    assert [(d.target_dev, d.target_bus, d.device, d.source) for d in dom.devices.disks] == [
        ("vda", "virtio", "disk", "/srv/a.qcow2"),
        ("hdc", "ide", "cdrom", "/srv/b.iso"),
    ]
    nic = dom.devices.interfaces[0]
    assert (nic.type, nic.model, nic.mac) == ("user", "e1000", "52:54:00:12:34:56")
    assert (dom.devices.graphics[0].port, dom.devices.graphics[0].autoport) == (5903, False)
    assert dom.os.boot == ["cdrom", "hd"] and dom.clock is not None and dom.clock.offset == "localtime"


def _devices(argv: list[str]) -> collections.Counter[str]:
    """The -device drivers but the controllers from_native leaves to defaults and addresses."""
    drivers = (argv[i + 1].split(",")[0] for i, a in enumerate(argv[:-1]) if a == "-device")
    return collections.Counter(d for d in drivers if d not in _IGNORED_DEVICES)


@pytest.mark.parametrize(
    "name",
    [
        "domain/minimal",
        "domain/libvirt-pc-ide-floppy",
        "domain/libvirt-spice-qxl",
        "domain/libvirt-iothreads",
        "domain/libvirt-cpu-pinning",
        "qemu/firmware-formats",
        "qemu/efi-secure-no-keys",
    ],
)
def test_pyvirts_own_command_lines_come_back_to_the_same_devices(name: str) -> None:
    argv = argv_for(name)
    dom = load_domain_xml(domxml_from_native("qemu-argv", shlex.join(argv)))
    again = build_argv(dom, runtime_context(dom))
    assert _devices(again) == _devices(argv)
    for flag in (
        "-smp",
        "-m",
        "-cpu",
        "-spice",
        "-audiodev",
        "-object",
        "-numa",
        "-machine",
        "-blockdev",
        "-global",
    ):
        assert [a for i, a in enumerate(again[1:]) if again[i] == flag] == [
            a for i, a in enumerate(argv[1:]) if argv[i] == flag
        ], flag


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("/usr/bin/qemu-system-x86_64 -foo bar", UnsupportedConfig, "QEMU option '-foo' has no domain XML"),
        (
            "/usr/bin/qemu-system-x86_64 -device ivshmem-plain,id=x",
            UnsupportedConfig,
            "QEMU device 'ivshmem-plain'",
        ),
        ("/usr/bin/qemu-system-x86_64 -display gtk", UnsupportedConfig, "-display 'gtk'"),
        ("/usr/bin/qemu-system-x86_64 -serial stdio", UnsupportedConfig, "-serial 'stdio' (only pty)"),
        ("/usr/bin/qemu-system-x86_64 -global foo.bar=1", UnsupportedConfig, "-global 'foo.bar=1'"),
        ("/usr/bin/qemu-system-x86_64 -cpu qemu64,model-id=x", UnsupportedConfig, "-cpu flag 'model-id=x'"),
        ("/usr/bin/qemu-system-x86_64 -m", InvalidArgument, "option '-m' needs a value"),
        ("LC_ALL=C", InvalidArgument, "no QEMU command line"),
    ],
)
def test_what_has_no_xml_is_refused_by_name(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        domxml_from_native("qemu-argv", text)


def test_only_qemu_argv() -> None:
    with pytest.raises(InvalidArgument, match="unsupported config type xen-xm"):
        domxml_from_native("xen-xm", HAND_WRITTEN)


def test_a_vnc_password_cannot_come_from_the_command_line() -> None:
    with pytest.raises(UnsupportedConfig, match="-vnc option 'password=on'"):
        domxml_from_native("qemu-argv", "/usr/bin/qemu-system-x86_64 -vnc 127.0.0.1:0,password=on")


VALUES = ["", "-1", "abc", "{", "a=b,c"]


def test_mutated_command_lines_are_read_or_refused_never_crash() -> None:
    from tests.unit.qemu.test_command import CASES

    seen = 0
    for name in CASES:
        argv = argv_for(name)
        for i in range(1 + len(name) % 2, len(argv), 2):  # half the positions, a different half per case
            for mutant in ([*argv[:i], *argv[i + 1 :]], *([*argv[:i], v, *argv[i + 1 :]] for v in VALUES)):
                with contextlib.suppress(InvalidArgument, UnsupportedConfig):  # anything else fails the test
                    domxml_from_native("qemu-argv", shlex.join(mutant))
                seen += 1
    assert seen > 500


def test_machine_options_without_xml_are_refused() -> None:
    with pytest.raises(UnsupportedConfig, match="-machine option 'nvdimm'"):
        domxml_from_native("qemu-argv", "/usr/bin/qemu-system-x86_64 -machine q35,nvdimm=on")


def test_device_properties_without_xml_are_refused() -> None:
    with pytest.raises(UnsupportedConfig, match="property 'rombar' of QEMU device 'e1000'"):
        domxml_from_native(
            "qemu-argv", "/usr/bin/qemu-system-x86_64 -netdev user,id=n -device e1000,netdev=n,rombar=0"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-netdev user,id=n,hostfwd=tcp::2222-:22 -device e1000,netdev=n", "network option 'hostfwd'"),
        ("-nic user,model=virtio-net-pci,smb=/srv", "network option 'smb'"),
        ("-drive file=/a.img,if=virtio,snapshot=on", "-drive option 'snapshot'"),
    ],
)
def test_netdev_and_drive_options_without_xml_are_refused(text: str, message: str) -> None:
    with pytest.raises(UnsupportedConfig, match=re.escape(message)):
        domxml_from_native("qemu-argv", "/usr/bin/qemu-system-x86_64 " + text)


def test_drive_readonly_and_cache() -> None:
    xml = domxml_from_native(
        "qemu-argv", "/usr/bin/qemu-system-x86_64 -drive file=/a.img,if=virtio,readonly=on,cache=none"
    )
    disk = load_domain_xml(xml).devices.disks[0]
    assert (disk.readonly, disk.cache) == (True, "none")


def test_a_command_line_without_usb_or_balloon_keeps_them_out() -> None:
    """define adds libvirt's implicit USB controller and balloon; the XML says there are none."""
    xml = domxml_from_native("qemu-argv", "/usr/bin/qemu-system-x86_64 -machine pc -m 64 -nodefaults")
    assert "<controller type='usb' index='0' model='none'/>" in xml and "<memballoon model='none'/>" in xml
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    devices = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]
    assert not any("usb" in dev or "balloon" in dev for dev in devices), devices
