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
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.conf.names import validate_name
from pyvirt.conf.validate import validate_domain, validate_uuid
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
MINIMAL = (DATA / "minimal.xml").read_text()
NAME_CHARS = string.ascii_letters + string.digits + "_.+:-"


def test_corpus_is_valid() -> None:
    for path in DATA.glob("*.xml"):
        validate_domain(load_domain_xml(path.read_text()))


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "..",
        "../etc",
        "a..b",
        ".hidden",
        "with space",
        "quo'te",
        'dq"',
        "semi;colon",
        "$(x)",
        "`id`",
        "a|b",
        "a&b",
        "a>b",
        "a*",
        "a?",
        "a!",
        "new\nline",
        "tab\t",
        "bell\x07",
        "x" * 201,
        "-leading",
        "ünïcode",
    ],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_name(name)
    assert "letters, digits and '_.+:-'" in info.value.message


@pytest.mark.parametrize("name", ["a", "web01", "Debian-12.5", "db_primary+1", "ns:vm", "x" * 200])
def test_good_names(name: str) -> None:
    validate_name(name)


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=200))
def test_name_property_within_the_allowed_set(name: str) -> None:
    ok = name[0].isalnum() and ".." not in name
    if ok:
        validate_name(name)
    else:
        with pytest.raises(InvalidArgument):
            validate_name(name)


@given(st.text(min_size=1, max_size=60))
def test_name_property_accepted_names_are_safe_file_names(name: str) -> None:
    try:
        validate_name(name)
    except InvalidArgument:
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+:-]*", name)
    assert "/" not in name and ".." not in name and not name.startswith(".")


def test_bad_name_in_a_document() -> None:
    with pytest.raises(InvalidArgument, match=r"invalid domain name '\$\(reboot\)'"):
        load_domain_xml(MINIMAL.replace("<name>minimal</name>", "<name>$(reboot)</name>"))


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
        (
            "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>" * 2,
            "",
            "MAC address '52:54:00:00:00:01' is used by more than one interface",
        ),
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
