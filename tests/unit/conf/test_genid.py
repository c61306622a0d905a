"""The VM generation ID (pyvirt.conf.genid): <genid> kept, <genid/> given a GUID at define, vmgenid."""

from __future__ import annotations

import uuid

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = "<domain type='qemu'><name>g</name>{genid}<memory>65536</memory><os><type>hvm</type></os></domain>"


def test_given_and_generated_guids() -> None:
    given = "E9392370-2917-465E-892B-D057F46512D6"
    dom = load_domain_xml(XML.format(genid=f"<genid>{given}</genid>"))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert f"vmgenid,guid={given.lower()},id=vmgenid0" in argv
    auto = load_domain_xml(XML.format(genid="<genid/>"))
    assert auto.genid is not None and uuid.UUID(auto.genid)
    defined = format_domain(auto)
    assert f"<genid>{auto.genid}</genid>" in defined
    assert load_domain_xml(defined).genid == auto.genid  # kept from then on
    assert load_domain_xml(XML.format(genid="")).genid is None


def test_a_bad_guid_is_refused() -> None:
    with pytest.raises(PyvirtError, match="invalid GUID 'nope' in element 'genid'"):
        load_domain_xml(XML.format(genid="<genid>nope</genid>"))
