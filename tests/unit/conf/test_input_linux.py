"""<input type='evdev'> (pyvirt.conf.input_linux): a host input device read by QEMU's input-linux."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>e</name><memory>65536</memory><os><type>hvm</type></os>
<devices><input type='evdev'>{source}</input></devices></domain>"""


def argv(source: str) -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(source=source))))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_an_evdev_input_is_an_input_linux_object() -> None:
    source = "<source dev='/dev/input/event7' grab='all' grabToggle='ctrl-ctrl' repeat='off'/>"
    text = format_domain(load_domain_xml(XML.format(source=source)))
    assert f"<input type='evdev'>\n      {source}" in text  # no bus written, as libvirt
    out = argv(source)
    assert out[out.index("-object") + 1] == (
        '{"qom-type":"input-linux","id":"input0","evdev":"/dev/input/event7","repeat":false,'
        '"grab_all":true,"grab-toggle":"ctrl-ctrl"}'
    )
    plain = argv("<source dev='/dev/input/event7'/>")
    assert (
        plain[plain.index("-object") + 1]
        == '{"qom-type":"input-linux","id":"input0","evdev":"/dev/input/event7"}'
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "needs <source dev>"),
        ("<source dev='/etc/shadow'/>", "must be a device under /dev/input"),
        ("<source dev='/dev/input/event1' grabToggle='f12'/>", "'grabToggle' = 'f12'"),
        ("<source dev='/dev/input/event1' mode='x'/>", "'mode'"),
    ],
)
def test_refused_by_name(source: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(source)
