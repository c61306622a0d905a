"""The domainsnapshot XML model: parse, format, round trip, refusals; which disk gets which snapshot."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain import DiskConfig, Domain
from pyvirt.conf.snapshot_disks import align_disks, overlay_name
from pyvirt.conf.snapshot_xml import DomainSnapshot, SnapshotDisk, format_snapshot, parse_snapshot
from pyvirt.errors import InvalidArgument, PyvirtError, UnsupportedConfig, XMLError

STORED = """<domainsnapshot>
  <name>s2</name>
  <description>after &amp; before</description>
  <state>disk-snapshot</state>
  <parent>
    <name>s1</name>
  </parent>
  <creationTime>1700000000</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'>
      <driver type='qcow2'/>
      <source file='/var/lib/pyvirt/images/vm.s2'/>
    </disk>
    <disk name='hdc' snapshot='no'/>
  </disks>
  <domain type='qemu'>
    <name>vm</name>
    <devices>
      <disk type='file' device='disk'/>
    </devices>
  </domain>
  <active>1</active>
</domainsnapshot>
"""


def test_stored_form_round_trips_byte_for_byte() -> None:
    snap = parse_snapshot(STORED, redefine=True)
    assert (snap.name, snap.parent, snap.state, snap.creation_time) == (
        "s2",
        "s1",
        "disk-snapshot",
        1700000000,
    )
    assert snap.current and snap.location == "external" and snap.disk_only and not snap.active
    assert snap.disks[0] == SnapshotDisk("vda", "external", "file", "qcow2", "/var/lib/pyvirt/images/vm.s2")
    assert snap.domain_xml is not None and snap.domain_xml.startswith(
        "<domain type='qemu'>\n  <name>vm</name>"
    )
    assert format_snapshot(snap, stored=True) == STORED
    assert "<active>" not in format_snapshot(snap)


def test_user_input_may_not_set_what_the_daemon_fills_in() -> None:
    for tag in ("<state>running</state>", "<creationTime>1</creationTime>", "<parent><name>x</name></parent>",
                "<domain type='qemu'/>", "<active>1</active>"):  # fmt: skip
        with pytest.raises(InvalidArgument, match="--redefine"):
            parse_snapshot(f"<domainsnapshot>{tag}</domainsnapshot>")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("<snapshot/>", XMLError, "expected a <domainsnapshot>"),
        ("<domainsnapshot><name>a</name><name>b</name></domainsnapshot>", XMLError, "only once"),
        ("<domainsnapshot><name>../x</name></domainsnapshot>", InvalidArgument, "invalid snapshot name"),
        ("<domainsnapshot><name>.x</name></domainsnapshot>", InvalidArgument, "invalid snapshot name"),
        ("<domainsnapshot><memory snapshot='internal' file='/m'/></domainsnapshot>", XMLError, "to a file"),
        ("<domainsnapshot><memory file='rel'/></domainsnapshot>", XMLError, "absolute"),
        ("<domainsnapshot><disks><disk name='vda'><source file='o'/></disk></disks></domainsnapshot>",
         XMLError, "absolute"),
        ("<domainsnapshot><disks><disk name='vda' snapshot='no'><driver type='qcow2'/></disk></disks>"
         "</domainsnapshot>", XMLError, "only for snapshot='external'"),
        ("<domainsnapshot><disks><disk name='vda'/><disk name='vda'/></disks></domainsnapshot>",
         XMLError, "twice"),
        ("<domainsnapshot><disks><disk name='vda' colour='red'/></disks></domainsnapshot>",
         UnsupportedConfig, "colour"),
        ("<domainsnapshot><disks><disk name='vda'><driver type='raw'/></disk></disks></domainsnapshot>",
         UnsupportedConfig, "'type' = 'raw'"),
        ("<domainsnapshot><name>x</name", XMLError, "malformed"),
    ],
)  # fmt: skip
def test_bad_snapshot_xml_is_refused_by_name(text: str, error: type[PyvirtError], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_snapshot(text, redefine=True)


def test_a_disk_with_a_file_is_external_and_an_empty_document_is_fine() -> None:
    snap = parse_snapshot("<domainsnapshot><disks><disk name='vda'><source file='/o'/></disk></disks>"
                          "<memory file='/m'/></domainsnapshot>")  # fmt: skip
    assert snap.disks[0].snapshot == "external" and snap.memory == "external" and snap.memory_file == "/m"
    assert parse_snapshot("<domainsnapshot/>") == DomainSnapshot()
    assert (
        format_snapshot(DomainSnapshot(name="x")) == "<domainsnapshot>\n  <name>x</name>\n</domainsnapshot>\n"
    )


def _dom(*disks: DiskConfig) -> Domain:
    dom = Domain(name="vm", uuid="6695eb01-f6a4-8304-79aa-97f2502e193f")
    dom.devices.disks.extend(disks)
    return dom


QCOW = DiskConfig(source="/img/vm.qcow2", driver_type="qcow2", target_dev="vda")
RAW = DiskConfig(source="/img/data.raw", driver_type="raw", target_dev="vdb")
CDROM = DiskConfig(source="/iso/x.iso", device="cdrom", target_dev="hdc", target_bus="ide")


def test_align_fills_every_disk_with_libvirts_defaults() -> None:
    snap = DomainSnapshot(name="s1")
    align_disks(snap, _dom(QCOW, CDROM), active=True, disk_only=False)
    assert snap.memory == "internal"
    assert [(d.name, d.snapshot) for d in snap.disks] == [("vda", "internal"), ("hdc", "no")]

    snap = DomainSnapshot(name="s1")
    align_disks(snap, _dom(QCOW, RAW, CDROM), active=True, disk_only=True)
    assert snap.memory == "no"
    got = [(d.name, d.snapshot, d.source) for d in snap.disks]
    assert got == [
        ("vda", "external", "/img/vm.s1"),
        ("vdb", "external", "/img/data.s1"),
        ("hdc", "no", None),
    ]
    assert {d.driver_type for d in snap.disks if d.snapshot == "external"} == {"qcow2"}

    snap = DomainSnapshot(name="off")
    align_disks(snap, _dom(QCOW), active=False, disk_only=False)
    assert snap.memory == "no" and snap.disks[0].snapshot == "internal"


def test_align_refuses_before_anything_is_done() -> None:
    with pytest.raises(
        UnsupportedConfig, match="internal snapshot for disk vdb unsupported for storage type raw"
    ):
        align_disks(DomainSnapshot(name="s"), _dom(QCOW, RAW), active=True, disk_only=False)
    snap = DomainSnapshot(name="s", disks=[SnapshotDisk("vdb", "external")])
    with pytest.raises(UnsupportedConfig, match="mixing internal and external"):
        align_disks(snap, _dom(QCOW, RAW), active=True, disk_only=False)
    with pytest.raises(UnsupportedConfig, match="no disk named 'vdz'"):
        align_disks(
            DomainSnapshot(name="s", disks=[SnapshotDisk("vdz")]), _dom(QCOW), active=True, disk_only=False
        )
    with pytest.raises(UnsupportedConfig, match="offline"):
        align_disks(DomainSnapshot(name="s", memory="internal"), _dom(QCOW), active=False, disk_only=False)
    with pytest.raises(UnsupportedConfig, match="cannot be snapshotted"):
        snap = DomainSnapshot(name="s", disks=[SnapshotDisk("hdc", "internal")])
        align_disks(snap, _dom(QCOW, CDROM), active=True, disk_only=False)
    with pytest.raises(InvalidArgument, match="nothing"):
        snap = DomainSnapshot(name="s", disks=[SnapshotDisk("vda", "no")])
        align_disks(snap, _dom(QCOW), active=False, disk_only=False)
    with pytest.raises(InvalidArgument, match="current source"):
        snap = DomainSnapshot(name="s", disks=[SnapshotDisk("vda", "external", source="/img/vm.qcow2")])
        align_disks(snap, _dom(QCOW), active=True, disk_only=True)
    # a disk named by its source path is matched too
    snap = DomainSnapshot(name="s", disks=[SnapshotDisk("/img/vm.qcow2", "external", source="/o/new.qcow2")])
    align_disks(snap, _dom(QCOW), active=True, disk_only=True)
    assert snap.disks[0].name == "vda" and snap.disks[0].source == "/o/new.qcow2"


def test_overlay_names_follow_libvirt() -> None:
    assert overlay_name("/img/vm.qcow2", "s1") == "/img/vm.s1"
    assert overlay_name("/img/vm", "s1") == "/img/vm.s1"
    assert overlay_name("/img/.hidden", "s1") == "/img/.hidden.s1"
    assert overlay_name("/img/a.b.qcow2", "s1") == "/img/a.b.s1"


def test_a_disks_own_snapshot_attribute_is_its_default() -> None:
    skipped = DiskConfig(source="/img/data.qcow2", driver_type="qcow2", target_dev="vdb", snapshot="no")
    snap = DomainSnapshot(name="s1")
    align_disks(snap, _dom(QCOW, skipped), active=True, disk_only=False)
    assert [(d.name, d.snapshot) for d in snap.disks] == [("vda", "internal"), ("vdb", "no")]
    manual = DiskConfig(source="/img/data.qcow2", driver_type="qcow2", target_dev="vdb", snapshot="manual")
    with pytest.raises(UnsupportedConfig, match="snapshot='manual' is not supported"):
        align_disks(DomainSnapshot(name="s2"), _dom(QCOW, manual), active=True, disk_only=False)
    vhost = DiskConfig(source="/run/vu.sock", type="vhostuser", target_dev="vdc")
    snap = DomainSnapshot(name="s3")
    align_disks(snap, _dom(QCOW, vhost), active=True, disk_only=False)
    assert snap.disks[1].snapshot == "no"  # a vhost-user backend's disk is not QEMU's to snapshot
