"""<features><smm><tseg> and <tcg><tb-cache> (pyvirt.conf.feature_sizes): parsed, written back, on QEMU's
command line, refused where libvirt refuses them."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='{kind}'><name>t</name><memory>65536</memory>
<os><type machine='{machine}'>hvm</type></os><features>{features}</features></domain>"""
SIZES = "<smm state='on'><tseg unit='GiB'>1</tseg></smm><tcg><tb-cache unit='MiB'>64</tb-cache></tcg>"


def argv(features: str, machine: str = "q35", kind: str = "qemu") -> list[str]:
    dom = load_domain_xml(XML.format(kind=kind, machine=machine, features=features))
    dom = load_domain_xml(format_domain(dom))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_sizes_round_trip_and_reach_qemu() -> None:
    dom = load_domain_xml(XML.format(kind="qemu", machine="q35", features=SIZES))
    assert dom.feature_attrs["smm"] == {"state": "on", "tseg": "1024"}
    assert dom.feature_attrs["tcg"] == {"tb-cache": "65536"}
    text = format_domain(dom)
    assert "<tseg unit='MiB'>1024</tseg>" in text and "<tb-cache unit='KiB'>65536</tb-cache>" in text
    out = argv(SIZES)
    assert out[out.index("-accel") + 1] == "tcg,tb-size=64"
    assert out[out.index("-global") + 1] == "mch.extended-tseg-mbytes=1024"
    plain = argv("<smm state='on'/>")
    assert plain[plain.index("-accel") + 1] == "tcg" and "-global" not in plain


@pytest.mark.parametrize(
    ("features", "machine", "kind", "reason"),
    [
        ("<smm state='on'><tseg>48</tseg></smm>", "pc", "qemu", "only q35 machines have an extended TSEG"),
        ("<smm state='off'><tseg>48</tseg></smm>", "q35", "qemu", "needs SMM on"),
        ("<smm><tseg unit='KiB'>1000</tseg></smm>", "q35", "qemu", "whole number of MiB"),
        ("<tcg><tb-cache>1024</tb-cache></tcg>", "q35", "kvm", "features/tcg is for domain type 'qemu'"),
        ("<tcg><tb-cache>1024</tb-cache><other/></tcg>", "q35", "qemu", "features/tcg/other"),
    ],
)
def test_refused_by_name(features: str, machine: str, kind: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(features, machine, kind)
