"""virtio-9p shares (pyvirt.conf.filesystem): <filesystem> parsed, written back, as -fsdev and the device."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import unplaced

XML = """<domain type='qemu'><name>f</name><uuid>2b6f0d8e-2f1c-4b1e-9d6a-1f0e2d3c4b5a</uuid>
<memory>65536</memory><os><type machine='q35'>hvm</type></os>
<devices>{fs}</devices></domain>"""
SHARE = """<filesystem accessmode='mapped' dmode='0700'><driver type='path' wrpolicy='immediate' packed='on'/>
<source dir='/srv/a,b'/><target dir='tag1'/><readonly/></filesystem>"""


def argv(fs: str) -> list[str]:
    dom = load_domain_xml(XML.format(fs=fs))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_a_share_on_the_command_line_and_back() -> None:
    out = argv(SHARE)
    fsdev = out[out.index("-fsdev") + 1]
    assert (
        fsdev
        == "local,security_model=mapped,writeout=immediate,readonly=on,dmode=0700,id=fsdev-fs0,path=/srv/a,,b"
    )
    assert "virtio-9p-pci,packed=on,id=fs0,fsdev=fsdev-fs0,mount_tag=tag1" in unplaced(out)
    again = format_domain(load_domain_xml(XML.format(fs=SHARE)))
    assert "<source dir='/srv/a,b'/>" in again and "<readonly/>" in again
    assert argv(again[again.index("<filesystem") : again.index("</filesystem>") + 13]) == out
    squash = argv("<filesystem accessmode='squash'><source dir='/s'/><target dir='t'/></filesystem>")
    assert squash[squash.index("-fsdev") + 1].startswith("local,security_model=none,")


@pytest.mark.parametrize(
    ("fs", "reason"),
    [
        (SHARE.replace("type='path'", "type='handle'"), "QEMU 7.2 has no such fsdev"),
        (SHARE.replace("<readonly/>", "<boot order='1'/>"), "a virtio-9p share cannot boot"),
        ("<filesystem><binary/><source dir='/s'/><target dir='t'/></filesystem>", "binary"),
        (
            SHARE.replace("accessmode='mapped' ", ""),
            "dmode of 'devices/filesystem' needs accessmode='mapped'",
        ),
        (SHARE.replace("dmode='0700'", "dmode='rwx'"), "invalid dmode 'rwx'"),
        (SHARE.replace("/srv/a,b", "srv"), "must be an absolute path"),
        (
            "<filesystem type='block'><source dev='/dev/sdb'/><target dir='t'/></filesystem>",
            "'type' = 'block'",
        ),
        ("<filesystem><source dir='/s'/></filesystem>", "needs <source dir> and <target dir>"),
    ],
)
def test_refused_by_name(fs: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(fs)
