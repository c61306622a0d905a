"""Pool and volume XML: libvirt's layouts, round trips, and strict refusal of what the driver cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.names import validate_name
from pyvirt.conf.storage import (
    BackingStore,
    Permissions,
    PoolDef,
    PoolSizes,
    Timestamps,
    VolumeInfo,
    format_pool,
    format_pool_config,
    format_volume,
    parse_pool,
    parse_volume,
    volume_xml,
)
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "storage"
UUID = "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"


def test_pool_dumpxml_layout_matches_libvirt() -> None:
    pool = PoolDef(name="default-pool", uuid=UUID, target_path="/default-pool")
    sizes = PoolSizes(capacity=107374182400, allocation=0, available=107374182400)
    # The exact text `virsh -c test:///default pool-dumpxml default-pool` prints (libvirt 9.0).
    assert format_pool(pool, sizes) == (DATA / "pool-test-driver.xml").read_text()


def test_pool_round_trip_with_permissions() -> None:
    text = (DATA / "pool-perms.xml").read_text()
    pool = parse_pool(text)
    assert pool.name == "images"
    assert pool.target_path == "/var/lib/pyvirt/images"
    assert pool.permissions == Permissions(mode=0o711, owner=0, group=0)
    assert format_pool(pool) == text


def test_pool_config_file_has_libvirt_warning_and_parses_back() -> None:
    pool = PoolDef(name="p", uuid=UUID, target_path="/srv/p")
    text = format_pool_config(pool)
    assert text.startswith("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.")
    assert parse_pool(text) == pool


def test_pool_defaults_and_path_sanitizing() -> None:
    pool = parse_pool("<pool type='dir'><name>p</name><target><path>//srv//p/</path></target></pool>")
    assert pool.target_path == "/srv/p"
    assert len(pool.uuid) == 36


@pytest.mark.parametrize(
    ("xml", "error", "fragment"),
    [
        ("<pool type='logical'><name>p</name></pool>", UnsupportedConfig, "pool type 'logical'"),
        ("<pool><name>p</name></pool>", XMLError, "missing attribute 'type'"),
        ("<pool type='dir'><target><path>/x</path></target></pool>", XMLError, "missing pool source name"),
        ("<pool type='dir'><name>p</name></pool>", XMLError, "missing storage pool target path"),
        ("<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>", InvalidArgument, "'/'"),
        ("<pool type='dir'><name>.p</name><target><path>/x</path></target></pool>", InvalidArgument, "'.'"),
        ("<pool type='dir'><name>p</name><target><path>rel</path></target></pool>", XMLError, "absolute"),
        ("<pool type='dir'><name>p</name><target><path>/a/../b</path></target></pool>", XMLError, "'..'"),
        (
            "<pool type='dir'><name>p</name><source><dir path='/x'/></source>"
            "<target><path>/x</path></target></pool>",
            UnsupportedConfig,
            "source/dir",
        ),
        (
            "<pool type='dir'><name>p</name><uuid>nope</uuid><target><path>/x</path></target></pool>",
            XMLError,
            "malformed uuid",
        ),
        (
            "<pool type='dir'><name>p</name><target><path>/x</path><permissions><mode>999</mode>"
            "</permissions></target></pool>",
            XMLError,
            "octal mode",
        ),
        (
            "<pool type='dir'><name>p</name><target><path>/x</path></target><refresh/></pool>",
            UnsupportedConfig,
            "refresh",
        ),
        ("<!DOCTYPE pool [<!ENTITY a 'b'>]><pool type='dir'/>", XMLError, "not allowed"),
    ],
)
def test_pool_refusals(xml: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=None) as info:
        parse_pool(xml)
    assert fragment in str(info.value)


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a/b", "../x", "tab\there", "nl\n", "x" * 256])
def test_bad_volume_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_name(name, "volume")


@pytest.mark.parametrize("name", ["disk.qcow2", "a b", "vm-01_root.img", "ü.raw", "x" * 255])
def test_good_volume_names(name: str) -> None:
    assert validate_name(name, "volume") == name


def test_vol_create_as_xml_is_virshs() -> None:
    assert (
        volume_xml("x", 10485760)
        == "<volume>\n  <name>x</name>\n  <capacity>10485760</capacity>\n</volume>\n"
    )
    text = volume_xml("t.qcow2", 1 << 30, fmt="qcow2", backing_path="/p/b.qcow2", backing_format="qcow2")
    vol = parse_volume(text)
    assert vol.capacity == 1 << 30 and vol.format == "qcow2"
    assert vol.backing == BackingStore("/p/b.qcow2", "qcow2")


def test_volume_units_and_features() -> None:
    vol = parse_volume(
        "<volume><name>v</name><capacity unit='GiB'>2</capacity><allocation unit='MB'>1</allocation>"
        "<target><format type='qcow2'/><compat>1.1</compat><clusterSize unit='KiB'>128</clusterSize>"
        "<features><lazy_refcounts/></features><permissions><mode>0640</mode></permissions></target></volume>"
    )
    assert vol.capacity == 2 << 30 and vol.allocation == 1_000_000
    assert vol.cluster_size == 128 * 1024 and vol.features == ["lazy_refcounts"] and vol.compat == "1.1"
    assert vol.permissions.mode == 0o640


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<volume><capacity>1</capacity></volume>", "missing volume name"),
        ("<volume><name>v</name></volume>", "missing capacity"),
        ("<volume><name>v</name><capacity>-1</capacity></volume>", "malformed capacity"),
        ("<volume><name>v</name><capacity unit='parsecs'>1</capacity></volume>", "unknown size unit"),
        (
            "<volume><name>v</name><capacity>1</capacity><target><format type='vmdk'/></target></volume>",
            "vmdk",
        ),
        (
            "<volume><name>v</name><capacity>1</capacity><backingStore><path>/b</path></backingStore></volume>",
            "does not support a backing store",
        ),
        (
            "<volume><name>v</name><capacity>1</capacity><target><format type='qcow2'/>"
            "<clusterSize>1000</clusterSize></target></volume>",
            "power of two",
        ),
        (
            "<volume><name>v</name><capacity>1</capacity><target><format type='qcow2'/>"
            "<features><nocow/></features></target></volume>",
            "unsupported feature nocow",
        ),
        ("<volume><name>v</name><capacity>1</capacity><target><encryption/></target></volume>", "encryption"),
        ("<volume type='block'><name>v</name><capacity>1</capacity></volume>", "type"),
        ("<volume><name>../etc</name><capacity>1</capacity></volume>", "'/'"),
    ],
)
def test_volume_refusals(xml: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_volume(xml)
    assert fragment in str(info.value)


def test_volume_dumpxml_layout() -> None:
    info = VolumeInfo(
        name="top.qcow2",
        path="/p/top.qcow2",
        format="qcow2",
        capacity=1 << 30,
        allocation=200704,
        physical=196624,
        permissions=Permissions(mode=0o600, owner=0, group=0),
        timestamps=Timestamps(1700000000_123456789, 1700000000_000000000, 1700000001_000000005),
        compat="1.1",
        cluster_size=65536,
        features=[],
        backing=BackingStore("/p/base.qcow2", "qcow2"),
    )
    assert format_volume(info) == (DATA / "volume-qcow2.xml").read_text()
    # What vol-dumpxml prints can be fed back to vol-create.
    vol = parse_volume(format_volume(info))
    assert vol.name == "top.qcow2" and vol.format == "qcow2" and vol.capacity == 1 << 30
