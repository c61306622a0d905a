"""<features><hyperv> (pyvirt.conf.hyperv): parsed, written back, and QEMU's -cpu properties."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>w</name><memory>65536</memory><os><type>hvm</type></os>
<features><acpi/><hyperv><relaxed state='on'/><vapic state='off'/><spinlocks state='on' retries='8191'/>
</hyperv></features></domain>"""


def test_round_trip_and_cpu_flags() -> None:
    dom = load_domain_xml(XML)
    assert dom.hyperv == {"relaxed": {"state": "on"}, "vapic": {"state": "off"},
                          "spinlocks": {"state": "on", "retries": "8191"}}  # fmt: skip
    again = load_domain_xml(format_domain(dom))
    assert again.hyperv == dom.hyperv and again.features == ["acpi", "hyperv"]
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    cpu = argv[argv.index("-cpu") + 1]
    assert "hv-relaxed=on" in cpu and "hv-spinlocks=0x1fff" in cpu and "hv-vapic" not in cpu


@pytest.mark.parametrize(
    ("inner", "word"),
    [
        ("<xmm_input state='on'/>", "xmm_input"),
        ("<spinlocks state='on'/>", "retries"),
        ("<relaxed/>", "state"),
        ("<stimer state='on'><direct/></stimer>", "state"),
    ],
)
def test_refused_by_name(inner: str, word: str) -> None:
    with pytest.raises(PyvirtError, match=word):
        load_domain_xml(XML.replace("<relaxed state='on'/>", inner))


def test_vendor_id_reenlightenment_and_avic() -> None:
    inner = "<vendor_id state='on' value='KVM Hv'/><reenlightenment state='on'/><avic state='off'/>"
    dom = load_domain_xml(format_domain(load_domain_xml(XML.replace("<relaxed state='on'/>", inner))))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    cpu = argv[argv.index("-cpu") + 1]
    assert "hv-vendor-id=KVM Hv" in cpu and "hv-reenlightenment=on" in cpu and "hv-avic" not in cpu
    with pytest.raises(PyvirtError, match="must be 1-12 printable characters"):
        load_domain_xml(XML.replace("<relaxed state='on'/>", "<vendor_id state='on' value='ThirteenChars'/>"))


def test_evmcs_stimer_direct_and_passthrough_mode() -> None:
    inner = "<synic state='on'/><stimer state='on'><direct state='on'/></stimer><evmcs state='on'/>"
    dom = load_domain_xml(format_domain(load_domain_xml(XML.replace("<relaxed state='on'/>", inner))))
    assert dom.hyperv["stimer"] == {"state": "on", "direct": "on"}
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    cpu = argv[argv.index("-cpu") + 1]
    assert "hv-stimer=on,hv-stimer-direct=on,hv-evmcs=on" in cpu
    passthrough = XML.replace("<hyperv>", "<hyperv mode='passthrough'>")
    again = load_domain_xml(format_domain(load_domain_xml(passthrough)))
    assert "<hyperv mode='passthrough'>" in format_domain(again)
    argv = build_argv(again, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert argv[argv.index("-cpu") + 1].startswith("qemu64,hv-passthrough=on,hv-relaxed=on")
