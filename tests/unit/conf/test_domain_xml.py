"""Domain XML parse/format: round trips over the corpus, live XML, and strict refusal of the unknown."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.conf.domain import Domain, GraphicsConfig
from pyvirt.conf.domain_xml import format_domain, load_domain_xml, parse_domain
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
CONFIG_DOCS = sorted(p.name for p in DATA.glob("*.xml") if not p.name.startswith("live-"))
LIVE_DOCS = sorted(p.name for p in DATA.glob("live-*.xml"))


def read_doc(name: str) -> str:
    return (DATA / name).read_text()


MINIMAL = read_doc("minimal.xml")


def minimal_with(devices: str = "", top: str = "") -> str:
    return MINIMAL.replace("</domain>", f"{top}<devices>{devices}</devices></domain>")


@pytest.mark.parametrize("name", CONFIG_DOCS)
def test_round_trip(name: str) -> None:
    dom = load_domain_xml(read_doc(name))
    text = format_domain(dom)
    assert parse_domain(text) == dom
    assert format_domain(parse_domain(text)) == text


@pytest.mark.parametrize("name", CONFIG_DOCS)
def test_parse_alone_round_trips(name: str) -> None:
    dom = parse_domain(read_doc(name))
    assert parse_domain(format_domain(dom)) == dom


@pytest.mark.parametrize("name", LIVE_DOCS)
def test_live_round_trip_is_exact(name: str) -> None:
    """A running domain's XML comes back byte for byte, less what pyvirt drops (see the module doc)."""
    text = read_doc(name)
    dom = parse_domain(text, live=True)
    assert dom.id == 7
    out = format_domain(dom, live=True)
    assert parse_domain(out, live=True) == dom
    for dropped in ("index='1'", "portid=", "bridge='virbr0'", "<seclabel"):
        assert dropped in text
        assert dropped not in out
    assert "<backingStore/>" in out  # a running disk's chain is kept (the source stands alone)


def test_live_bits_are_not_in_config_xml() -> None:
    live = parse_domain(read_doc("live-running.xml"), live=True)
    config_text = format_domain(live)
    for runtime in ("id='7'", "<alias", "/dev/pts/4", "vnet3", "port='5901'"):
        assert runtime not in config_text
    assert "port='-1' autoport='yes'" in config_text
    config = parse_domain(read_doc("live-running.xml"))
    assert config.id is None
    assert config.devices.disks[0].alias is None
    assert config.devices.interfaces[0].target_dev is None
    assert config.devices.serials[0].source_path is None
    assert config.devices.graphics[0].port == -1
    # Read as a definition, the running chain is a given one (libvirt keeps it, conf.backing_chain)
    assert config.devices.disks[0].backing_given == "closed"
    assert format_domain(config).replace("      <backingStore/>\n", "", 1) == config_text


def test_live_xml_of_a_running_domain() -> None:
    dom = load_domain_xml(read_doc("test-guest.xml"))
    dom.id = 3
    dom.devices.serials[0].source_path = "/dev/pts/9"
    dom.devices.consoles[0].source_path = "/dev/pts/9"
    dom.devices.interfaces[0].target_dev = "vnet0"
    dom.devices.disks[0].alias = "virtio-disk0"
    dom.devices.graphics[0].port = 5900
    text = format_domain(dom, live=True)
    assert text.startswith("<domain type='qemu' id='3'>\n")
    assert "<console type='pty' tty='/dev/pts/9'>" in text
    assert "<source path='/dev/pts/9'/>" in text
    assert "<target dev='vnet0'/>" in text
    assert "<alias name='virtio-disk0'/>" in text
    assert "port='5900' autoport='yes'" in text


def test_user_aliases_and_user_tap_names_stay_in_config() -> None:
    text = minimal_with(
        "<interface type='bridge'><source bridge='br0'/><target dev='mytap0'/>"
        "<alias name='ua-uplink'/></interface>"
    )
    out = format_domain(parse_domain(text))
    assert "<target dev='mytap0'/>" in out
    assert "<alias name='ua-uplink'/>" in out


def test_secure_false_hides_the_vnc_password() -> None:
    dom = parse_domain(read_doc("uefi-assorted.xml"))
    assert dom.devices.graphics[0].passwd == "s3cr&t"
    assert "passwd='s3cr&amp;t'" in format_domain(dom)
    assert "passwd" not in format_domain(dom, secure=False)


def test_values_of_the_virt_install_document() -> None:
    dom = load_domain_xml(read_doc("virt-install-debian12.xml"))
    assert dom.memory_kib == 2097152
    assert dom.vcpus == 2
    assert dom.vcpu_placement is None
    assert dom.os.machine == "q35"
    assert dom.feature_attrs == {"vmport": {"state": "off"}}
    assert dom.on_reboot == "destroy"
    # its 3 root ports, 3 more for the 6 PCIe devices (as libvirt adds them), the cdrom's SATA controller,
    # the channel's virtio-serial
    assert [(c.type, c.index) for c in dom.devices.controllers] == [
        ("usb", 0),
        *[("pci", i) for i in range(7)],
        ("sata", 0),
        ("virtio-serial", 0),
    ]
    assert dom.devices.graphics[0] == GraphicsConfig(port=-1, autoport=True)
    assert dom.devices.channels[0].source_mode == "bind"
    assert dom.devices.interfaces[0].mac == "52:54:00:a7:3b:01"
    assert dom.metadata is not None and 'id="http://debian.org/debian/12"' in dom.metadata


def test_values_of_the_libvirt_document() -> None:
    dom = load_domain_xml(read_doc("libvirt9-q35-debian.xml"))
    assert dom.resource_partition == "/machine"
    root_port = dom.devices.controllers[2]
    assert root_port.extra == {"model.name": "pcie-root-port", "target.chassis": "1", "target.port": "0x10"}
    assert root_port.address is not None and root_port.address.attrs["multifunction"] == "on"
    assert dom.devices.disks[1].device == "cdrom" and dom.devices.disks[1].source is None
    assert dom.devices.inputs[0].address is not None and dom.devices.inputs[0].address.type == "usb"
    assert dom.cpu is not None and (dom.cpu.cores, dom.cpu.threads, dom.cpu.migratable) == (2, 2, True)
    assert dom.devices.audios[0].type == "none"


def test_metadata_round_trips_verbatim() -> None:
    dom = parse_domain(read_doc("libvirt9-q35-debian.xml"))
    assert dom.metadata == (
        '<libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">\n'
        '  <libosinfo:os id="http://debian.org/debian/12"/>\n'
        "</libosinfo:libosinfo>"
    )
    assert "    <libosinfo:libosinfo xmlns:libosinfo=" in format_domain(dom)


def test_broken_metadata_is_never_written() -> None:
    dom = parse_domain(MINIMAL)
    dom.metadata = "</metadata><hostdev/><metadata>"
    with pytest.raises(XMLError, match="metadata is not well-formed"):
        format_domain(dom)


def _element_paths(root: ET.Element) -> list[tuple[ET.Element, str]]:
    found: list[tuple[ET.Element, str]] = [(root, "domain")]

    def walk(elem: ET.Element, path: str) -> None:
        for child in elem:
            if child.tag == "metadata" or child.tag.startswith("{"):
                continue  # (the QEMU namespace's elements: ElementTree renames their prefix; test_qemu_ns)
            child_path = f"{path}/{child.tag}" if path else child.tag
            found.append((child, child_path))
            walk(child, child_path)

    walk(root, "")
    return found


@pytest.mark.parametrize("name", [*CONFIG_DOCS, *LIVE_DOCS])
def test_every_element_refuses_an_unknown_attribute_and_child(name: str) -> None:
    """Strictness, exhaustively: inject an unknown attribute, then an unknown child, into each element."""
    count = len(_element_paths(ET.fromstring(read_doc(name))))
    for index in range(count):
        for kind in ("attribute", "element"):
            root = ET.fromstring(read_doc(name))
            for metadata in root.findall("metadata"):
                root.remove(metadata)  # ElementTree would hoist its namespaces onto <domain>
            elem, path = _element_paths(root)[index]
            if kind == "attribute":
                elem.set("bogus", "1")
                expected = f"attribute 'bogus' = '1' of '{path}' is not supported"
            else:
                ET.SubElement(elem, "bogus")
                expected = f"element '{path + '/' if index else ''}bogus' is not supported"
            with pytest.raises(UnsupportedConfig) as info:
                parse_domain(ET.tostring(root, encoding="unicode"), live=name in LIVE_DOCS)
            assert info.value.message == f"unsupported configuration: {expected}"


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-ap'/>",
            "attribute 'model' = 'vfio-ap' of 'devices/hostdev'",
        ),
        ("<graphics type='rdp'/>", "attribute 'type' = 'rdp' of 'devices/graphics' is not supported"),
        ("<video><model type='xen'/></video>", "attribute 'type' = 'xen' of 'devices/video/model'"),
        (
            "<channel type='nmdm'><target type='virtio'/></channel>",
            "attribute 'type' = 'nmdm' of 'devices/channel' is not supported",
        ),
        ("<redirdev bus='usb' type='spiceport'/>", "attribute 'type' = 'spiceport' of 'devices/redirdev'"),
        ("<graphics type='vnc'><listen type='network' network='x'/></graphics>", "'devices/graphics/listen'"),
        ("<disk type='nvme'/>", "attribute 'type' = 'nvme' of 'devices/disk'"),
        ("<disk device='tape'/>", "attribute 'device' = 'tape' of 'devices/disk'"),
        ("<interface type='direct'/>", "attribute 'type' = 'direct' of 'devices/interface'"),
        ("<controller type='usb' model='qusb2'/>", "attribute 'model' = 'qusb2'"),
        ("<smartcard mode='passthrough' type='nmdm'/>", "attribute 'type' = 'nmdm' of 'devices/smartcard'"),
        ("<audio id='1' type='dbus'/>", "attribute 'type' = 'dbus' of 'devices/audio'"),
        ("<rng model='virtio'><backend model='gather'/></rng>", "attribute 'model' = 'gather'"),
        ("<rng model='virtio'><backend model='random'>/etc/passwd</backend></rng>", "value '/etc/passwd'"),
        ("<memballoon model='xen'/>", "attribute 'model' = 'xen' of 'devices/memballoon'"),
        ("<input type='joystick'/>", "attribute 'type' = 'joystick'"),
    ],
)
def test_unsupported_devices_are_named(snippet: str, message: str) -> None:
    with pytest.raises(UnsupportedConfig) as info:
        parse_domain(minimal_with(snippet))
    assert info.value.message.startswith("unsupported configuration: ")
    assert message in info.value.message


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("<on_crash>coredump-destroy</on_crash>", "value 'coredump-destroy' of element 'on_crash'"),
        ("<on_reboot>rename-restart</on_reboot>", "value 'rename-restart' of element 'on_reboot'"),
        ("<clock offset='utc' adjustment='reset'/>", "attribute 'adjustment' = 'reset' of 'clock'"),
        ("<cpu mode='host-model'><vendor>Intel</vendor></cpu>", "element 'cpu/vendor' is not supported"),
        ("<features><kvm/></features>", "element 'features/kvm' is not supported"),
        (
            "<features><hyperv><xmm_input state='on'/></hyperv></features>",
            "element 'features/hyperv/xmm_input' is not supported",
        ),
        (
            "<memoryBacking><hugepages><page size='2' unit='M' x='1'/></hugepages></memoryBacking>",
            "attribute 'x' = '1' of 'memoryBacking/hugepages/page'",
        ),
        (
            "<memoryBacking><source type='shm'/></memoryBacking>",
            "attribute 'type' = 'shm' of 'memoryBacking/source'",
        ),
        ("<memoryBacking><locked/><hmat/></memoryBacking>", "element 'memoryBacking/hmat' is not supported"),
        ("<seclabel type='static' model='selinux'/>", "attribute 'type' = 'static' of 'seclabel'"),
        (
            "<seclabel type='dynamic' model='selinux'/>",
            "seclabel model 'selinux': pyvirt confines QEMU by DAC only",
        ),
        ("<seclabel type='dynamic' model='apparmor'/>", "it does no AppArmor labelling"),
        ("<sysinfo type='smbios'/>", "element 'sysinfo' is not supported"),
        ("<idmap><uid start='0' target='1000' count='10'/></idmap>", "element 'idmap' maps a container's"),
    ],
)
def test_unsupported_top_level_config_is_named(top: str, message: str) -> None:
    with pytest.raises(UnsupportedConfig) as info:
        parse_domain(minimal_with(top=top))
    assert message in info.value.message


def test_unsupported_domain_type_and_namespace() -> None:
    with pytest.raises(UnsupportedConfig, match="attribute 'type' = 'xen' of 'domain'"):
        parse_domain(MINIMAL.replace("type='kvm'", "type='xen'"))
    other_ns = "<domain type='kvm' xmlns:lxc='http://libvirt.org/schemas/domain/lxc/1.0'>"
    with pytest.raises(UnsupportedConfig, match="attribute 'xmlns:lxc'"):
        parse_domain(MINIMAL.replace("<domain type='kvm'>", other_ns))


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("<network><name>x</name></network>", XMLError, "expected a <domain> root element"),
        ("<domain type='kvm'><memory>1</memory><os><type>hvm</type></os></domain>", XMLError, "'name'"),
        ("<domain><name>x</name></domain>", XMLError, "missing attribute 'type' of 'domain'"),
        (MINIMAL.replace("<memory unit='MiB'>512", "<memory unit='MiB'>0"), InvalidArgument, "'memory'"),
        (MINIMAL.replace("<memory unit='MiB'>512", "<memory unit='TiB'>17"), InvalidArgument, "16 TiB"),
        (MINIMAL.replace("<memory unit='MiB'>512", "<memory unit='MiB'>lots"), InvalidArgument, "'memory'"),
        (MINIMAL.replace("4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "not-a-uuid"), InvalidArgument, "UUID"),
        (MINIMAL.replace("<name>minimal</name>", "<name>a</name><name>b</name>"), XMLError, "only once"),
        (
            minimal_with("<interface type='user'><mac address='52:54:00:zz:00:01'/></interface>"),
            InvalidArgument,
            "invalid MAC",
        ),
        (minimal_with("<serial type='pty'><target port='x'/></serial>"), XMLError, "invalid integer 'x'"),
        (minimal_with("<disk type='file'><source file='/a'/></disk>"), XMLError, "missing element 'target'"),
        (
            minimal_with(
                "<graphics type='vnc' listen='0.0.0.0'><listen type='address' address='::'/></graphics>"
            ),
            XMLError,
            "must match",
        ),
    ],
)
def test_bad_documents(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_domain(text)


def test_uuid_spellings_are_normalised() -> None:
    text = MINIMAL.replace("4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "4DEA22B31D52D8F32516782E98AB3FA0")
    assert parse_domain(text).uuid == "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"


def test_missing_bus_is_left_for_defaults() -> None:
    text = minimal_with("<disk type='file'><source file='/a'/><target dev='hdc'/></disk>")
    assert parse_domain(text).devices.disks[0].target_bus == ""
    assert load_domain_xml(text).devices.disks[0].target_bus == "ide"
    assert "<target dev='hdc'/>" in format_domain(parse_domain(text))


def test_format_of_a_domain_built_in_code() -> None:
    dom = Domain(name="coded", uuid="11111111-2222-4333-8444-555555555555")
    text = format_domain(dom)
    assert text.splitlines()[:4] == [
        "<domain type='kvm'>",
        "  <name>coded</name>",
        "  <uuid>11111111-2222-4333-8444-555555555555</uuid>",
        "  <memory unit='KiB'>1048576</memory>",
    ]
    assert parse_domain(text) == dom


def test_a_channel_path_made_by_the_daemon_reads_back_as_a_listening_socket() -> None:
    xml = (
        "<domain type='qemu'><name>c</name><memory>65536</memory><os><type>hvm</type></os><devices>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "</devices></domain>"
    )
    dom = load_domain_xml(xml)
    channel = dom.devices.channels[0]
    assert channel.source_mode is None
    channel.source_path = "/run/pyvirt/qemu/c.channels/org.qemu.guest_agent.0"  # as the start fills it in
    again = load_domain_xml(format_domain(dom, live=True))  # a save's or a migration's XML, read back
    assert again.devices.channels[0].source_mode == "bind"
