"""<source startupPolicy>: written back, checked at define, and what a start does with a missing source."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon.launch import apply_startup_policies
from pyvirt.errors import PyvirtError

XML = """<domain type='qemu'><name>s</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='{root}/present.img'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><source file='{root}/gone.img' startupPolicy='optional'/>
<target dev='vdb' bus='virtio'/></disk>
<disk type='file' device='cdrom'><source file='{root}/gone.iso' startupPolicy='{cdrom}'/>
<target dev='hdc' bus='ide'/><readonly/></disk>
</devices></domain>"""


def test_a_missing_optional_source_empties_the_cdrom_and_leaves_the_disk_out(tmp_path: Path) -> None:
    (tmp_path / "present.img").touch()
    dom = load_domain_xml(XML.format(root=tmp_path, cdrom="optional"))
    assert "startupPolicy='optional'" in format_domain(dom)
    assert load_domain_xml(format_domain(dom)).devices.disks[1].startup_policy == "optional"
    apply_startup_policies(dom, incoming=False)
    assert [(d.target_dev, d.source) for d in dom.devices.disks] == [
        ("vda", f"{tmp_path}/present.img"),
        ("hdc", None),
    ]


def test_requisite_empties_the_drive_only_of_a_restore(tmp_path: Path) -> None:
    (tmp_path / "present.img").touch()
    (tmp_path / "gone.img").touch()
    boot = load_domain_xml(XML.format(root=tmp_path, cdrom="requisite"))
    apply_startup_policies(boot, incoming=False)
    assert boot.devices.disks[2].source == f"{tmp_path}/gone.iso"  # left for check_disks to refuse
    restore = load_domain_xml(XML.format(root=tmp_path, cdrom="requisite"))
    apply_startup_policies(restore, incoming=True)
    assert restore.devices.disks[2].source is None and len(restore.devices.disks) == 3


@pytest.mark.parametrize(
    ("disk", "reason"),
    [
        (
            "<disk type='file'><source file='/x' startupPolicy='requisite'/><target dev='vda'/></disk>",
            "'requisite' of disk 'vda' is for a cdrom or floppy only",
        ),
        (
            "<disk type='network'><source protocol='nbd' name='e' startupPolicy='optional'><host name='h'/>"
            "</source><target dev='vda'/></disk>",
            "startupPolicy",
        ),
        ("<disk type='file'><source file='/x' startupPolicy='maybe'/><target dev='vda'/></disk>", "maybe"),
    ],
)
def test_refused_by_name(disk: str, reason: str) -> None:
    text = f"<domain type='qemu'><name>s</name><memory>65536</memory><os><type>hvm</type></os><devices>{disk}"
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(text + "</devices></domain>")
