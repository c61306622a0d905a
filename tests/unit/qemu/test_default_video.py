"""The video device a display gets when the definition has no ``<video>``: libvirt 9.0's default on x86,
cirrus-vga, whatever the display (virsh domxml-to-native here gives it for VNC, SPICE and SDL)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>v</name><memory>65536</memory>
<os><type machine='{machine}'>hvm</type></os><devices>{devices}</devices></domain>"""


@pytest.mark.parametrize("machine", ["pc", "q35"])
@pytest.mark.parametrize(
    "graphics",
    [
        "<graphics type='vnc'/>",
        "<graphics type='vnc'><listen type='none'/></graphics>",
        "<graphics type='spice' autoport='no'/>",
        "<graphics type='sdl' display=':0'/>",
    ],
)
def test_a_display_without_video_gets_cirrus(machine: str, graphics: str) -> None:
    dom = load_domain_xml(XML.format(machine=machine, devices=graphics))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x", graphics_port=5900))
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device" and "video" in argv[i + 1]] == [
        "cirrus-vga,id=video0"
    ]


def test_a_given_video_is_kept() -> None:
    devices = "<graphics type='spice' autoport='no'/><video><model type='qxl'/></video>"
    argv = build_argv(
        load_domain_xml(XML.format(machine="pc", devices=devices)),
        RuntimeContext(accel="tcg", monitor_path="/x", graphics_port=5900),
    )
    assert not any(arg.startswith("cirrus-vga") for arg in argv)
