"""libvirt's QEMU namespace (pyvirt.conf.qemu_ns, pyvirt.qemu.overrides): read under any prefix, written
back as qemu:, applied to QEMU's command line and environment, the domain's taints."""

from __future__ import annotations

import json

import pytest

from pyvirt.conf import qemu_ns
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError, UnsupportedConfig
from pyvirt.qemu import overrides
from pyvirt.qemu.command import RuntimeContext, build_argv

NS = "http://libvirt.org/schemas/domain/qemu/1.0"
XML = """<domain type='qemu' xmlns:q='{ns}'><name>n</name><memory>65536</memory>
<os><type machine='pc'>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/x.img'/><target dev='vda' bus='virtio'/>
<alias name='ua-d'/></disk>
</devices>{extra}</domain>"""


def _load(extra: str, ns: str = NS) -> qemu_ns.QemuNamespace:
    dom = load_domain_xml(XML.format(ns=ns, extra=extra))
    assert dom.qemu_ns is not None
    return dom.qemu_ns


def test_any_prefix_read_written_back_as_qemu() -> None:
    extra = "<q:commandline><q:arg value='-S'/><q:env name='A_1'/></q:commandline>"
    dom = load_domain_xml(XML.format(ns=NS, extra=extra))
    text = format_domain(dom)
    assert f"xmlns:qemu='{NS}'" in text and "<qemu:env name='A_1'/>" in text
    again = load_domain_xml(text)
    assert again.qemu_ns == dom.qemu_ns
    assert qemu_ns.environment(again) == {"A_1": ""}
    assert qemu_ns.taints(again) == ["custom-argv"]


def test_other_namespaces_are_refused() -> None:
    with pytest.raises(PyvirtError, match="xmlns:q"):
        load_domain_xml(XML.format(ns="http://example.com/other", extra=""))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("<q:commandline><q:env name='1BAD' value='x'/></q:commandline>", "invalid environment name"),
        ("<q:commandline><q:arg/></q:commandline>", "value"),
        (
            "<q:override><q:device alias='ua-d'><q:frontend><q:property name='p' type='bool' value='yes'/>"
            "</q:frontend></q:device></q:override>",
            "'true' or 'false'",
        ),
        (
            "<q:override><q:device alias='ua-d'><q:frontend><q:property name='p' type='remove' value='1'/>"
            "</q:frontend></q:device></q:override>",
            "takes no value",
        ),
        (
            "<q:override><q:device alias='ua-d'><q:frontend><q:property name='p' type='signed' value='x'/>"
            "</q:frontend></q:device></q:override>",
            "not an integer",
        ),
        ("<q:deprecation behavior='maybe'/>", "maybe"),
        ("<q:unknown/>", "q:unknown"),
    ],
)
def test_bad_namespace_content_is_refused_by_name(extra: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(XML.format(ns=NS, extra=extra))


def test_override_of_a_keyval_and_a_json_device_and_an_unknown_alias() -> None:
    ns = _load(
        "<q:override><q:device alias='ua-d'><q:frontend>"
        "<q:property name='serial' type='string' value='a,b'/>"
        "<q:property name='ro' type='bool' value='true'/>"
        "<q:property name='n' type='signed' value='-2'/><q:property name='bootindex' type='remove'/>"
        "</q:frontend></q:device></q:override><q:deprecation behavior='omit'/>"
    )
    argv = ["-device", "virtio-blk-pci,drive=d,id=ua-d,bootindex=1", "-device", '{"driver":"x","id":"ua-d"}']
    overrides.apply(ns, argv)
    assert argv[1] == "virtio-blk-pci,drive=d,id=ua-d,serial=a,,b,ro=on,n=-2"
    assert json.loads(argv[3]) == {"driver": "x", "id": "ua-d"}  # only the first device of that id
    json_argv = ["-device", '{"driver":"x","id":"ua-d","bootindex":1}']
    overrides.apply(ns, json_argv)
    assert json.loads(json_argv[1]) == {"driver": "x", "id": "ua-d", "serial": "a,b", "ro": True, "n": -2}
    with pytest.raises(PyvirtError, match="alias='ua-d'"):
        overrides.apply(ns, ["-device", "virtio-blk-pci,id=other"])
    dom = load_domain_xml(XML.format(ns=NS, extra="<q:deprecation behavior='omit'/>"))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert argv[argv.index("-compat") + 1] == '{"deprecated-output":"hide"}'


def test_messages_name_the_taints_and_the_capabilities() -> None:
    extra = "<q:capabilities><q:add capability='vnc-colon'/><q:del capability='name'/></q:capabilities>"
    dom = load_domain_xml(XML.format(ns=NS, extra=extra))
    assert qemu_ns.messages(dom) == [
        "tainted: custom configuration parameters specified",
        "qemu:capabilities +vnc-colon, -name change nothing: libvirt 9.0 has retired them",
    ]
    plain = load_domain_xml(XML.format(ns=NS, extra=""))
    assert qemu_ns.taints(plain) == [] and qemu_ns.messages(plain) == []


@pytest.mark.parametrize("kind", ["add", "del"])
def test_a_capability_switch_libvirt_still_reads_is_refused_by_name(kind: str) -> None:
    extra = f"<q:capabilities><q:{kind} capability='blockdev'/></q:capabilities>"
    with pytest.raises(UnsupportedConfig, match="qemu:capabilities 'blockdev'"):
        load_domain_xml(XML.format(ns=NS, extra=extra))
