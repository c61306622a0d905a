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
    [("<evmcs state='on'/>", "evmcs"), ("<spinlocks state='on'/>", "retries"), ("<relaxed/>", "state")],
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
