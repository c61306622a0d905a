"""Validation: names that become file names, sizes, duplicates, boot order, lifecycle actions."""

from __future__ import annotations

import dataclasses
import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvirt.conf.domain import DiskConfig, Domain, InterfaceConfig
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.conf.names import validate_name
from pyvirt.conf.validate import validate_domain, validate_uuid
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
MINIMAL = (DATA / "minimal.xml").read_text()
NAME_CHARS = string.ascii_letters + string.digits + "_.+:-=,"  # '=' and ',': refused in object names


def test_corpus_is_valid() -> None:
    for path in DATA.glob("*.xml"):
        validate_domain(load_domain_xml(path.read_text()))


OBJECT_BAD = [
    *("", "a/b", "..", "../etc", "a..b", ".hidden", "with space", "quo'te", 'dq"', "semi;colon", "$(x)"),
    *("`id`", "a|b", "a&b", "a>b", "a*", "a?", "a!", "new\nline", "tab\t", "bell\x07", "x" * 201),
    *("-leading", "ünïcode", "a=b,c"),
]


@pytest.mark.parametrize("name", OBJECT_BAD)
@pytest.mark.parametrize("what", ["network", "template"])
def test_bad_object_names(name: str, what: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_name(name, what)
    assert "letters, digits and '_.+:-'" in info.value.message


@pytest.mark.parametrize("name", ["a", "web01", "Debian-12.5", "db_primary+1", "ns:vm", "x" * 200])
@pytest.mark.parametrize("what", ["domain", "network", "template"])
def test_good_names(name: str, what: str) -> None:
    validate_name(name, what)


# What libvirt 9.0's libvirtd defines (checked on it): all but '/', a newline, '.' and '..'.
@pytest.mark.parametrize(
    "name",
    ["a=b,c", "with space", "quo'te", "$(x)", "a..b", ".hidden", "-leading", "ünïcode", "a%b$c;d", "ü" * 100],
)
def test_domain_names_libvirt_takes(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../etc", "new\nline", "tab\t", "bell\x07", "x" * 201, "ü" * 101, "\ud800"]
)
def test_bad_domain_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_name(name)
    assert "has no '/' and no control characters" in info.value.message


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=200))
def test_name_property_within_the_allowed_set(name: str) -> None:
    ok = name[0].isalnum() and ".." not in name and "=" not in name and "," not in name
    if ok:
        validate_name(name, "network")
    else:
        with pytest.raises(InvalidArgument):
            validate_name(name, "network")


@given(st.text(min_size=1, max_size=60))
def test_name_property_accepted_names_are_safe_file_names(name: str) -> None:
    for what in ("network", "domain"):
        try:
            validate_name(name, what)
        except InvalidArgument:
            continue
        assert "/" not in name and name not in (".", "..") and not re.search(r"[\x00-\x1f\x7f]", name)
        assert len(name.encode()) <= 200
        if what == "network":
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+:-]*", name) and ".." not in name


def test_bad_name_in_a_document() -> None:
    with pytest.raises(InvalidArgument, match=r"invalid domain name 'a/b'"):
        load_domain_xml(MINIMAL.replace("<name>minimal</name>", "<name>a/b</name>"))


@pytest.mark.parametrize("value", ["", "not-a-uuid", "4DEA22B3-1D52-D8F3-2516-782E98AB3FA0", "4dea22b31d52"])
def test_bad_uuids(value: str) -> None:
    with pytest.raises(InvalidArgument, match="UUID"):
        validate_uuid(value)


def domain(**changes: object) -> Domain:
    dom = load_domain_xml(MINIMAL)
    return dataclasses.replace(dom, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"memory_kib": 1023}, InvalidArgument, "out of range"),
        ({"memory_kib": 16 * 1024**3 + 1}, InvalidArgument, "out of range"),
        ({"current_memory_kib": 524289}, InvalidArgument, "must not exceed memory"),
        ({"vcpus": 0}, InvalidArgument, "vcpu count 0"),
        ({"vcpus": 256}, InvalidArgument, "vcpu count 256"),
        ({"type": "xen"}, UnsupportedConfig, "domain type 'xen'"),
        ({"on_crash": "coredump-destroy"}, UnsupportedConfig, "on_crash action"),
        ({"uuid": "nope"}, InvalidArgument, "UUID"),
        ({"metadata": "<a:x xmlns:a='urn:a'>"}, XMLError, "metadata is not well-formed"),
    ],
)
def test_domain_level_checks(changes: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate_domain(domain(**changes))


def with_devices(devices: str, os_extra: str = "") -> str:
    text = MINIMAL.replace("</os>", f"{os_extra}</os>")
    return text.replace("</domain>", f"<devices>{devices}</devices></domain>")


DISK = "<disk type='file'><source file='/img/{0}'/><target dev='{0}' bus='virtio'/>{1}</disk>"


@pytest.mark.parametrize(
    ("devices", "os_extra", "message"),
    [
        (DISK.format("vda", "") * 2, "", "target 'vda' is used by more than one disk"),
        ("<interface type='user'><mac address='01:54:00:00:00:01'/></interface>", "", "multicast"),
        (DISK.format("vda", "<boot order='1'/>"), "<boot dev='hd'/>", "per-device boot elements cannot"),
        (
            DISK.format("vda", "<boot order='1'/>") + DISK.format("vdb", "<boot order='1'/>"),
            "",
            "boot order 1",
        ),
        ("<disk type='file'><target dev='vda'/></disk>", "", "has no source"),
        ("<disk type='file'><source file='/a'/><target dev='xvda'/></disk>", "", "invalid disk target"),
        (
            "<controller type='sata' index='0'/><controller type='sata' index='0'/>",
            "",
            "more than one 'sata'",
        ),
        ("<graphics type='vnc' port='22' autoport='no'/>", "", "VNC port 22 is out of range"),
        ("<serial type='file'><source path=''/></serial>", "", "needs <source path"),
        (
            "<channel type='unix'><target type='virtio' name='a b'/></channel>",
            "",
            "invalid channel target name",
        ),
    ],
)
def test_device_checks(devices: str, os_extra: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        load_domain_xml(with_devices(devices, os_extra))


def test_boot_order_per_device_alone_is_fine() -> None:
    load_domain_xml(
        with_devices(DISK.format("vda", "<boot order='1'/>") + DISK.format("vdb", "<boot order='2'/>"))
    )


def test_usb_companions_share_an_index() -> None:
    text = with_devices(
        "<controller type='usb' index='0' model='ich9-ehci1'/>"
        "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
    )
    load_domain_xml(text)


def test_domains_built_in_code_are_checked_too() -> None:
    dom = Domain(name="coded")
    dom.devices.disks.append(DiskConfig(source="/a", target_dev="vda"))
    dom.devices.interfaces.append(InterfaceConfig(type="network", mac="52:54:00:00:00:09"))
    with pytest.raises(InvalidArgument, match="names no network"):
        validate_domain(dom)
    dom.devices.interfaces[0].source_network = "default"
    validate_domain(dom)


def pci_controller(model: str, inner: str) -> str:
    return f"<controller type='pci' index='1' model='{model}'>{inner}</controller>"


def q35(text: str) -> str:
    return text.replace("machine='pc'", "machine='q35'")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            MINIMAL.replace("</memory>", "</memory><currentMemory unit='MiB'>256</currentMemory>").replace(
                "</domain>", "<devices><memballoon model='none'/></devices></domain>"
            ),
            InvalidArgument,
            "currentMemory (262144 KiB) below memory needs <memballoon model='virtio'>",
        ),
        (
            with_devices("<memballoon model='none'><stats period='5'/></memballoon>"),
            InvalidArgument,
            "stats period",
        ),
        (with_devices("<watchdog model='itco'/>"), UnsupportedConfig, "watchdog model 'itco' needs a q35"),
        (
            with_devices(
                "<watchdog model='ib700' action='pause'/><watchdog model='i6300esb' action='reset'/>"
            ),
            UnsupportedConfig,
            "watchdogs with different actions",
        ),
        (
            with_devices("<video><model type='vga' primary='yes'/></video>" * 2),
            InvalidArgument,
            "only one video device can be primary",
        ),
        (with_devices("<video><model type='vga' heads='2'/></video>"), UnsupportedConfig, "heads > 1"),
        (
            with_devices("<video><model type='virtio' vram='16384'/></video>"),
            UnsupportedConfig,
            "vram for video",
        ),
        (
            with_devices("<video><model type='cirrus' vram='9000'/></video>"),
            InvalidArgument,
            "4, 8 or 16 MiB",
        ),
        (
            with_devices(
                "", "<loader secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
            ),
            UnsupportedConfig,
            "secure boot (loader secure='yes') needs a q35 machine",
        ),
        (
            q35(
                with_devices(
                    "", "<loader secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"
                )
            ),
            InvalidArgument,
            "requires the SMM feature",
        ),
        (
            MINIMAL.replace(
                "</os>", "</os><clock offset='utc'><timer name='rtc' tickpolicy='merge'/></clock>"
            ),
            UnsupportedConfig,
            "tickpolicy 'merge' of timer 'rtc'",
        ),
        (
            MINIMAL.replace(
                "</os>", "</os><clock offset='utc'><timer name='hpet' tickpolicy='catchup'/></clock>"
            ),
            UnsupportedConfig,
            "tickpolicy 'catchup' of timer 'hpet'",
        ),
        (
            MINIMAL.replace("</os>", "</os><clock offset='utc'><timer name='pit' present='no'/></clock>"),
            UnsupportedConfig,
            "attribute 'present' of timer 'pit'",
        ),
        (
            q35(
                with_devices(
                    "<controller type='pci' index='0' model='pcie-root'/>"
                    + "<controller type='pci' index='2' model='pcie-root-port'/>"
                    + pci_controller("pcie-to-pci-bridge", "<target chassis='3'/>")
                )
            ),
            UnsupportedConfig,
            "target chassis of controller 'pci' index 1",
        ),
        (
            q35(with_devices(pci_controller("pcie-root-port", "<target busNr='3'/>"))),
            UnsupportedConfig,
            "target busNr",
        ),
        (
            q35(with_devices(pci_controller("pcie-root-port", "<target port='0x100'/>"))),
            InvalidArgument,
            "target port='0x100' of controller 'pci' index 1 is out of range",
        ),
        (
            q35(with_devices(pci_controller("pcie-root-port", "<model name='pci-bridge'/>"))),
            InvalidArgument,
            "model name 'pci-bridge' does not fit",
        ),
        (
            with_devices("<controller type='usb' index='0' model='piix3-uhci' ports='4'/>"),
            UnsupportedConfig,
            "'ports' of usb controller model 'piix3-uhci'",
        ),
        (
            with_devices(
                "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
            ),
            InvalidArgument,
            "has no ich9-ehci1 master with the same index",
        ),
        (
            q35(with_devices("<controller type='ide' index='0'/>")),
            UnsupportedConfig,
            "only the pc machine's IDE",
        ),
        (
            with_devices("<emulator>qemu</emulator>"),
            InvalidArgument,
            "emulator 'qemu' must be an absolute path",
        ),
        (MINIMAL.replace("machine='pc'", "machine='rom'"), UnsupportedConfig, "machine type 'rom'"),
        (with_devices("<serial type='unix'/>"), InvalidArgument, "serial of type 'unix' needs <source path"),
        (with_devices("<channel type='unix'/>"), InvalidArgument, "a channel needs <target type='virtio'"),
        (
            with_devices("<input type='tablet' bus='usb'/><controller type='usb' model='none'/>"),
            InvalidArgument,
            "USB tablet input needs a USB controller",
        ),
        (with_devices("<graphics type='vnc'/>" * 2), UnsupportedConfig, "more than one graphics device"),
        (
            with_devices("<watchdog model='ib700'><address type='pci' bus='0' slot='3'/></watchdog>"),
            InvalidArgument,
            "watchdog 'ib700' cannot have an address of type 'pci'",
        ),
        (
            with_devices("<input type='mouse' bus='ps2'><address type='pci' bus='0' slot='3'/></input>"),
            InvalidArgument,
            "ps2 mouse input cannot have an address of type 'pci'",
        ),
        (with_devices("<serial type='pty'><target port='4'/></serial>"), UnsupportedConfig, "serial port 4"),
        (
            with_devices("<serial type='pty'><target port='1'/></serial>" * 2),
            InvalidArgument,
            "serial port 1 is used by more than one serial device",
        ),
        (
            with_devices("<channel type='unix'><target type='virtio' name='a.b'/></channel>" * 2),
            InvalidArgument,
            "channel name 'a.b' is used by more than one channel",
        ),
        (
            with_devices("<serial type='pty'><target type='usb-serial'/></serial>"),
            UnsupportedConfig,
            "serial target 'usb-serial'",
        ),
        (
            with_devices("<panic model='pvpanic'><address type='isa' iobase='0x505'/></panic>"),
            InvalidArgument,
            "panic model 'pvpanic' cannot have an address of type 'isa'",
        ),
        (
            with_devices("<controller type='usb' index='0' model='ich9-uhci1'><master/></controller>"),
            XMLError,
            "missing attribute 'startport'",
        ),
    ],
)
def test_what_qemu_cannot_honour_is_refused_at_define(
    text: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(text)


def test_the_primary_video_comes_first() -> None:
    dom = load_domain_xml(
        with_devices("<video><model type='virtio'/></video><video><model type='vga' primary='yes'/></video>")
    )
    assert [video.model for video in dom.devices.videos] == ["vga", "virtio"]


@pytest.mark.parametrize(
    ("machine", "models"), [("pc", ["pci-root", "pci-bridge"]), ("q35", ["pcie-root", "pcie-root-port"])]
)
def test_pci_controllers_without_a_model_get_libvirts(machine: str, models: list[str]) -> None:
    text = with_devices("<controller type='pci' index='0'/><controller type='pci' index='1'/>")
    dom = load_domain_xml(text.replace("machine='pc'", f"machine='{machine}'"))
    assert [ctl.model for ctl in dom.devices.controllers if ctl.type == "pci" and ctl.index <= 1] == models


NIC = "<interface type='{0}'><mac address='52:54:00:00:00:0{1}'/>{2}<target dev='{3}'/></interface>"


@pytest.mark.parametrize(
    ("devices", "error", "message"),
    [
        (
            NIC.format("bridge", 1, "<source bridge='br0'/>", "a/b"),
            InvalidArgument,
            "invalid interface/target dev 'a/b'",
        ),
        (NIC.format("bridge", 1, "<source bridge='br0'/>", "x" * 16), InvalidArgument, "1 to 15 bytes"),
        (
            NIC.format("bridge", 1, "<source bridge='br0'/>", "a b"),
            InvalidArgument,
            "invalid interface/target",
        ),
        (NIC.format("user", 1, "", "mytap"), UnsupportedConfig, "type 'user' has no tap"),
        (
            NIC.format("bridge", 1, "<source bridge='br0'/>", "tap1")
            + NIC.format("bridge", 2, "<source bridge='br0'/>", "tap1"),
            InvalidArgument,
            "target dev 'tap1' is used by more than one interface",
        ),
    ],
)
def test_interface_target_dev_checks(devices: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(devices))


def test_interface_target_dev_kept_for_the_tap() -> None:
    dom = load_domain_xml(with_devices(NIC.format("network", 1, "<source network='default'/>", "guest-a.0")))
    assert dom.devices.interfaces[0].target_dev == "guest-a.0"


def with_vcpu(vcpu: str, extra: str = "") -> str:
    return MINIMAL.replace("<os>", f"{vcpu}{extra}<os>", 1)


def test_vcpu_current_cpuset_and_cputune_round_trip() -> None:
    text = with_vcpu(
        "<vcpu placement='static' cpuset='0-1,^3' current='2'>4</vcpu>",
        "<cputune><vcpupin vcpu='0' cpuset='0'/><emulatorpin cpuset='1'/></cputune>",
    )
    dom = load_domain_xml(text)
    assert (dom.vcpus, dom.vcpu_current, dom.online_vcpus, dom.vcpu_cpuset) == (4, 2, 2, "0-1,^3")
    assert dom.cputune is not None and dom.cputune.vcpupin == {0: "0"} and dom.cputune.emulatorpin == "1"
    out = format_domain(dom)
    assert "<vcpu placement='static' cpuset='0-1,^3' current='2'>4</vcpu>" in out
    assert "<vcpupin vcpu='0' cpuset='0'/>" in out and "<emulatorpin cpuset='1'/>" in out
    assert load_domain_xml(out) == dom


@pytest.mark.parametrize(
    ("vcpu", "extra", "error", "message"),
    [
        (
            "<vcpu current='5'>4</vcpu>",
            "",
            InvalidArgument,
            "vcpu current='5' must be between 1 and the maximum (4)",
        ),
        ("<vcpu current='0'>4</vcpu>", "", XMLError, "current"),
        ("<vcpu cpuset='2-1'>4</vcpu>", "", XMLError, "attribute 'cpuset' of 'vcpu'"),
        (
            "<vcpu>2</vcpu>",
            "<cputune><vcpupin vcpu='2' cpuset='0'/></cputune>",
            InvalidArgument,
            "vcpu='2' names no vCPU",
        ),
        ("<vcpu>2</vcpu>", "<cputune><vcpupin vcpu='1' cpuset='x'/></cputune>", XMLError, "cputune/vcpupin"),
        ("<vcpu>2</vcpu>", "<cputune><period>1024</period></cputune>", UnsupportedConfig, "'cputune/period'"),
        (
            "<vcpu>2</vcpu>",
            "<cputune><vcpupin vcpu='1' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>",
            XMLError,
            "pinned twice",
        ),
    ],
)
def test_vcpu_checks(vcpu: str, extra: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_vcpu(vcpu, extra))


def test_topology_clusters() -> None:
    cpu = "<cpu><topology sockets='1' dies='1' clusters='{0}' cores='2' threads='1'/></cpu>"
    dom = load_domain_xml(with_vcpu("<vcpu>2</vcpu>").replace("</os>", "</os>" + cpu.format(1)))
    assert dom.cpu is not None and dom.cpu.clusters == 1
    assert "clusters='1'" in format_domain(dom)
    with pytest.raises(
        UnsupportedConfig, match=re.escape("clusters='2': QEMU 7.2's x86 machines have no CPU clusters")
    ):
        load_domain_xml(with_vcpu("<vcpu>4</vcpu>").replace("</os>", "</os>" + cpu.format(2)))


LOADER = "<loader readonly='yes' type='{0}'{1}>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"


@pytest.mark.parametrize(
    ("os_extra", "error", "message"),
    [
        (
            LOADER.format("pflash", " format='qcow2'"),
            UnsupportedConfig,
            "format' = 'qcow2' of 'os/loader': only raw",
        ),
        (
            LOADER.format("pflash", "") + "<nvram templateFormat='qcow2'/>",
            UnsupportedConfig,
            "only raw NVRAM template",
        ),
        (
            LOADER.format("pflash", "") + "<nvram format='qcow2'>/a</nvram>",
            UnsupportedConfig,
            "only raw NVRAM",
        ),
        (
            LOADER.format("pflash", " stateless='yes'") + "<nvram>/var/a</nvram>",
            InvalidArgument,
            "stateless='yes' keeps no NVRAM",
        ),
    ],
)
def test_firmware_format_and_stateless_checks(os_extra: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices("", os_extra))


def test_firmware_formats_round_trip() -> None:
    os_extra = (
        LOADER.format("pflash", " format='raw'") + "<nvram templateFormat='raw' format='raw'>/v</nvram>"
    )
    out = format_domain(load_domain_xml(with_devices("", os_extra)))
    assert "format='raw'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>" in out
    assert "<nvram templateFormat='raw' format='raw'>/v</nvram>" in out


FLOPPY = "<disk type='file' device='{0}'><source file='/f.img'/><target dev='{1}' bus='{2}'/>{3}</disk>"


@pytest.mark.parametrize(
    ("devices", "error", "message"),
    [
        (FLOPPY.format("floppy", "fda", "ide", ""), UnsupportedConfig, "a floppy goes on bus 'fdc'"),
        (FLOPPY.format("disk", "hda", "fdc", ""), UnsupportedConfig, "bus 'fdc' takes only floppies"),
        (FLOPPY.format("floppy", "fdc", "fdc", ""), InvalidArgument, "drive address unit 2 of disk 'fdc'"),
        (
            FLOPPY.format("floppy", "fda", "fdc", "<address type='drive' controller='0' bus='1' unit='0'/>"),
            InvalidArgument,
            "drive address bus 1 of disk 'fda' is out of range on fdc (0-0)",
        ),
        (
            FLOPPY.format("floppy", "fda", "fdc", "") * 2,
            InvalidArgument,
            "target 'fda' is used by more than one",
        ),
        (
            FLOPPY.format("floppy", "fda", "fdc", "")
            + FLOPPY.format("floppy", "fdb", "fdc", "<address type='drive' unit='0'/>"),
            InvalidArgument,
            "fdc drive address 0:0:0:0 is used by both disk 'fda' and disk 'fdb'",
        ),
        ("<controller type='fdc' index='1'/>", UnsupportedConfig, "one floppy controller (index 0)"),
    ],
)
def test_floppy_checks(devices: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(devices))


def test_floppy_bus_from_the_name_and_empty_drive() -> None:
    dom = load_domain_xml(with_devices("<disk type='file' device='floppy'><target dev='fdb'/></disk>"))
    assert (dom.devices.disks[0].target_bus, dom.devices.disks[0].source) == ("fdc", None)


VIRTIO = (
    "<disk type='file'><driver name='qemu' type='raw' iothread='{0}'/>"
    "<source file='/a'/><target dev='{1}'/></disk>"
)


@pytest.mark.parametrize(
    ("threads", "devices", "error", "message"),
    [
        (
            "<iothreads>1</iothreads>",
            VIRTIO.format(2, "vda"),
            InvalidArgument,
            "names iothread 2, which the domain",
        ),
        ("", VIRTIO.format(1, "vda"), InvalidArgument, "names iothread 1, which the domain does not have"),
        (
            "<iothreads>1</iothreads>",
            VIRTIO.format(1, "sda"),
            UnsupportedConfig,
            "iothread needs bus 'virtio'",
        ),
        (
            "<iothreads>1</iothreads><iothreadids><iothread id='3'/><iothread id='4'/></iothreadids>",
            "",
            InvalidArgument,
            "<iothreadids> names 2 threads but <iothreads> is 1",
        ),
        (
            "<iothreads>2</iothreads><iothreadids><iothread id='3'/><iothread id='3'/></iothreadids>",
            "",
            InvalidArgument,
            "iothread id '3' is given more than once",
        ),
        ("<iothreads>1</iothreads><iothreadids><iothread id='0'/></iothreadids>", "", XMLError, "'id'"),
    ],
)
def test_iothread_checks(threads: str, devices: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(devices).replace("<os>", threads + "<os>", 1))


def test_iothread_ids_fill_from_one() -> None:
    from pyvirt.conf.validate import iothread_ids

    text = "<iothreads>3</iothreads><iothreadids><iothread id='2'/></iothreadids>"
    assert iothread_ids(
        load_domain_xml(with_devices(VIRTIO.format(3, "vda")).replace("<os>", text + "<os>", 1))
    ) == [2, 1, 3]


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        (
            "<model type='qxl' ram='65536' vgamem='65536'/>",
            InvalidArgument,
            "ram 65536 KiB must be at least twice",
        ),
        ("<model type='qxl' vram='3000'/>", InvalidArgument, "qxl video vram 3000 KiB: a power of two"),
        ("<model type='qxl' vgamem='512'/>", InvalidArgument, "qxl video vgamem 512 KiB"),
        ("<model type='vga' ram='65536'/>", UnsupportedConfig, "ram for video model 'vga'"),
        ("<model type='virtio' vgamem='16384'/>", UnsupportedConfig, "vgamem for video model 'virtio'"),
        ("<model type='bochs' heads='2'/>", UnsupportedConfig, "heads > 1 for video model 'bochs'"),
    ],
)
def test_video_checks(model: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(f"<video>{model}</video>"))


def test_qxl_round_trips() -> None:
    model = (
        "<model type='qxl' ram='65536' vram='65536' vram64='131072' vgamem='16384' heads='2' primary='yes'/>"
    )
    out = format_domain(load_domain_xml(with_devices(f"<video>{model}</video>")))
    assert model in out


@pytest.mark.parametrize(
    ("graphics", "error", "message"),
    [
        ("<graphics type='spice' tlsPort='5901'/>", UnsupportedConfig, "SPICE over TLS is not supported"),
        (
            "<graphics type='vnc'><image compression='off'/></graphics>",
            UnsupportedConfig,
            "element 'devices/graphics/image' is not supported",
        ),
        ("<graphics type='spice'><listen type='socket' socket='rel.sock'/></graphics>", XMLError, "absolute"),
        (
            "<graphics type='spice'><image compression='zip'/></graphics>",
            UnsupportedConfig,
            "'compression' = 'zip'",
        ),
        ("<graphics type='spice'><gl enable='maybe'/></graphics>", UnsupportedConfig, "'enable' = 'maybe'"),
        (
            "<graphics type='spice'><channel name='main' mode='secure'/></graphics>",
            UnsupportedConfig,
            "channel",
        ),
        (
            "<graphics type='spice' port='80' autoport='no'/>",
            InvalidArgument,
            "SPICE port 80 is out of range",
        ),
    ],
)
def test_spice_checks(graphics: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(graphics))


def test_spice_round_trips() -> None:
    graphics = (
        "<graphics type='spice' port='5930' autoport='no' listen='0.0.0.0'>"
        "<listen type='address' address='0.0.0.0'/><image compression='auto_glz'/><mouse mode='server'/>"
        "</graphics>"
    )
    out = format_domain(load_domain_xml(with_devices(graphics)))
    assert "<graphics type='spice' port='5930' autoport='no' listen='0.0.0.0'>" in out
    assert "<image compression='auto_glz'/>" in out and "<mouse mode='server'/>" in out


@pytest.mark.parametrize(
    ("devices", "error", "message"),
    [
        ("<audio id='1' type='spice'/>", UnsupportedConfig, "of type 'spice' needs a SPICE display"),
        (
            "<audio id='1' type='none'/><audio id='1' type='none'/>",
            InvalidArgument,
            "audio id '1' is used by more",
        ),
        ("<audio id='1' type='dbus'/>", UnsupportedConfig, "'type' = 'dbus'"),
        (
            "<sound model='ac97'><audio id='2'/></sound><audio id='1' type='none'/>",
            InvalidArgument,
            "audio id '2'",
        ),
        ("<sound model='ac97'><codec type='micro'/></sound>", UnsupportedConfig, "codecs are for HDA"),
        ("<sound model='ich9'/>", UnsupportedConfig, "sound model 'ich9' needs a q35 machine"),
        ("<sound model='pcspk'/>", UnsupportedConfig, "'model' = 'pcspk'"),
        (
            "<sound model='ich6'><address type='usb' bus='0' port='1'/></sound>",
            InvalidArgument,
            "sound #0 cannot have an address of type 'usb'",
        ),
    ],
)
def test_audio_and_sound_checks(devices: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(devices))


def test_sound_round_trips() -> None:
    sound = "<sound model='ich6'><codec type='duplex'/><codec type='output'/><audio id='1'/></sound>"
    out = format_domain(load_domain_xml(with_devices(sound + "<audio id='1' type='none'/>")))
    assert sound in re.sub(r">\s+<", "><", re.sub(r"<address type='pci'[^>]*/>", "", out))


CELL = "<cell id='{0}' cpus='{1}' memory='{2}' unit='MiB'/>"


@pytest.mark.parametrize(
    ("cells", "error", "message"),
    [
        (CELL.format(0, "0-1", 512) + CELL.format(1, "1", 512), InvalidArgument, "cell 1 shares vCPUs [1]"),
        (CELL.format(0, "0", 512) + CELL.format(2, "1", 512), InvalidArgument, "cell ids must be 0, 1"),
        (CELL.format(0, "0-2", 1024), InvalidArgument, "NUMA cell 0 has vCPU 2, beyond the domain's 2"),
        (
            "<cell id='0' cpus='0-1' memory='1024' unit='MiB' memAccess='none'/>",
            UnsupportedConfig,
            "memAccess",
        ),
        ("<cell id='0' cpus='x' memory='1024' unit='MiB'/>", XMLError, "attribute 'cpus' of 'cpu/numa/cell'"),
    ],
)
def test_numa_checks(cells: str, error: type[Exception], message: str) -> None:
    text = with_vcpu("<vcpu>2</vcpu>").replace("</os>", f"</os><cpu><numa>{cells}</numa></cpu>", 1)
    text = re.sub(r"<memory unit='MiB'>\d+</memory>", "<memory unit='MiB'>1024</memory>", text)
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(text)


def test_numa_memory_is_the_cells_sum_as_libvirts_define_makes_it() -> None:
    text = with_vcpu("<vcpu>2</vcpu>").replace(
        "</os>", "</os><cpu><numa>" + CELL.format(0, "0", 256) + CELL.format(1, "1", 256) + "</numa></cpu>", 1
    )
    text = re.sub(r"<memory unit='MiB'>\d+</memory>", "<memory unit='MiB'>1024</memory>", text)
    dom = load_domain_xml(text)
    assert dom.memory_kib == 512 * 1024
    assert dom.current_memory_kib in (None, 512 * 1024)  # the balloon clamped to the new total


@pytest.mark.parametrize(
    ("numatune", "message"),
    [
        ("<memory placement='auto'/>", "numatune placement='auto' needs numad"),
        ("<memory mode='restrictive' nodeset='0'/>", "mode='restrictive'"),
        ("<memnode cellid='3' mode='strict' nodeset='0'/>", "memnode cellid 3 names no NUMA cell"),
    ],
)
def test_numatune_refusals(numatune: str, message: str) -> None:
    text = with_vcpu("<vcpu>2</vcpu>").replace(
        "</os>", "</os><cpu><numa>" + CELL.format(0, "0-1", 1024) + "</numa></cpu>", 1
    )
    text = re.sub(r"<memory unit='MiB'>\d+</memory>", "<memory unit='MiB'>1024</memory>", text)
    text = text.replace("<os>", f"<numatune>{numatune}</numatune><os>", 1)
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=re.escape(message)):
        load_domain_xml(text)


def test_numa_round_trips() -> None:
    text = with_vcpu("<vcpu>2</vcpu>").replace(
        "</os>", "</os><cpu><numa>" + CELL.format(0, "0", 512) + CELL.format(1, "1", 512) + "</numa></cpu>", 1
    )
    text = re.sub(r"<memory unit='MiB'>\d+</memory>", "<memory unit='MiB'>1024</memory>", text)
    out = format_domain(load_domain_xml(text))
    assert "<cell id='1' cpus='1' memory='524288' unit='KiB'/>" in out


NBD = (
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>{0}"
    "<target dev='vda' bus='virtio'/></disk>"
)


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("<source protocol='tftp' name='a'><host name='h'/></source>", UnsupportedConfig, "protocol 'tftp'"),
        ("<source protocol='rbd' name='pool'><host name='h'/></source>", XMLError, "pool or image name"),
        ("<source protocol='nbd'/>", XMLError, "needs exactly one <host>"),
        ("<source protocol='nbd'><host name='a'/><host name='b'/></source>", XMLError, "exactly one <host>"),
        ("<source protocol='nbd'><host transport='unix' socket='rel'/></source>", XMLError, "absolute path"),
        ("<source protocol='nbd'><host transport='rdma' name='a'/></source>", UnsupportedConfig, "'rdma'"),
        ("<source protocol='nbd'><host name='a' port='0'/></source>", XMLError, "port"),
        ("", InvalidArgument, "disk 'vda' has no source"),
    ],
)
def test_network_disk_checks(source: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(with_devices(NBD.format(source)))


def test_nbd_disk_round_trips() -> None:
    for source in (
        "<source protocol='nbd' name='root'><host name='nbd.example.org' port='10809'/></source>",
        "<source protocol='nbd'><host transport='unix' socket='/run/nbd.sock'/></source>",
    ):
        out = format_domain(load_domain_xml(with_devices(NBD.format(source))))
        assert source in re.sub(r">\s+<", "><", out)


def test_memory_backing_round_trips() -> None:
    backing = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
    out = format_domain(load_domain_xml(MINIMAL.replace("<os>", backing + "<os>", 1)))
    assert backing in re.sub(r">\s+<", "><", out)
