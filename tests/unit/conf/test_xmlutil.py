"""The safe XML reader and the libvirt-style writer."""

from __future__ import annotations

import resource

import pytest

from pyvirt.conf import xmlutil
from pyvirt.conf.xmlutil import MAX_DOCUMENT_BYTES, Elem, parse_document, serialize, x
from pyvirt.errors import UnsupportedConfig, XMLError

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain type='kvm'><name>&lol9;</name></domain>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY secret SYSTEM "file:///etc/shadow">]>
<domain type='kvm'><name>&secret;</name></domain>
"""


def test_entity_bomb_is_refused_before_expansion() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(XMLError, match="entities are not allowed"):
        parse_document(BILLION_LAUGHS)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 16 * 1024


def test_external_entity_is_refused() -> None:
    with pytest.raises(XMLError, match="not allowed"):
        parse_document(EXTERNAL_ENTITY)


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE domain SYSTEM "http://example.invalid/domain.dtd"><domain/>',
        # Attribute defaults from a DTD would silently change the document: refused too.
        "<!DOCTYPE domain [<!ATTLIST domain type CDATA 'xen'>]><domain/>",
    ],
)
def test_any_doctype_is_refused(text: str) -> None:
    with pytest.raises(XMLError, match="not allowed"):
        parse_document(text)


def test_expat_handlers_refuse_a_doctype_the_precheck_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlutil, "_FORBIDDEN_MARKERS", ())
    with pytest.raises(XMLError, match="not allowed"):
        parse_document(BILLION_LAUGHS)


def test_undefined_entity_is_malformed() -> None:
    with pytest.raises(XMLError, match=r"line 1, column \d+: undefined entity"):
        parse_document("<domain>&nope;</domain>")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("<domain>\n  <name>x</nam>\n</domain>", 2, 12),
        ("<domain type='kvm>", 1, 1),
        ("", 1, 1),
        ("<domain></domain><extra/>", 1, 18),
    ],
)
def test_malformed_xml_reports_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(XMLError, match=f"malformed XML at line {line}, column {column}"):
        parse_document(text)


def test_oversized_documents_are_refused_unread() -> None:
    text = "<domain>" + " " * MAX_DOCUMENT_BYTES + "</domain>"
    with pytest.raises(XMLError, match="too large"):
        parse_document(text)


def test_raw_inner_is_kept_verbatim_and_dedented() -> None:
    root = parse_document(
        "<domain>\n  <metadata>\n    <a:x xmlns:a='urn:a'>\n      <a:y v='&gt;'/>\n"
        "    </a:x>\n  </metadata>\n</domain>",
        raw_paths=frozenset({"metadata"}),
    )
    assert root.children[0].raw_inner == "<a:x xmlns:a='urn:a'>\n  <a:y v='&gt;'/>\n</a:x>"


def test_empty_raw_element() -> None:
    root = parse_document("<domain><metadata/></domain>", raw_paths=frozenset({"metadata"}))
    assert root.children[0].raw_inner == ""


def test_paths_are_relative_to_the_root() -> None:
    root = parse_document("<domain><devices><disk><driver/></disk></devices></domain>")
    assert root.path == "domain"
    assert root.children[0].children[0].children[0].path == "devices/disk/driver"


def test_unconsumed_attribute_and_child_are_refused_by_path() -> None:
    root = parse_document("<domain><devices foo='bar'><hostdev/></devices></domain>")
    devices = Elem(root).child("devices")
    assert devices is not None
    with pytest.raises(UnsupportedConfig, match="attribute 'foo' = 'bar' of 'devices' is not supported"):
        devices.done()
    devices.attr("foo")
    with pytest.raises(UnsupportedConfig, match="element 'devices/hostdev' is not supported"):
        devices.done()


def test_stray_text_is_refused() -> None:
    root = Elem(parse_document("<domain>hello</domain>"))
    with pytest.raises(UnsupportedConfig, match="text content"):
        root.done()


def test_integer_and_flag_attributes() -> None:
    elem = Elem(parse_document("<t port='0x10' n='7' bad='7x' yes='yes' onoff='off' neg='-1'/>"))
    assert elem.integer("port") == 16
    assert elem.integer("n", maximum=7) == 7
    assert elem.integer("neg") == -1
    assert elem.flag("yes") is True
    assert elem.flag("onoff", "on", "off") is False
    with pytest.raises(XMLError, match="invalid integer '7x'"):
        elem.integer("bad")
    with pytest.raises(XMLError, match="out of range"):
        elem.integer("n", minimum=8)


@pytest.mark.parametrize("value", ["", "-", "0x", "0X10", "0xg", "1_000", " ", "\u0663", "+1", "1.0"])
def test_what_is_not_an_integer(value: str) -> None:
    with pytest.raises(XMLError, match="invalid integer"):
        Elem(parse_document(f"<t n='{value}'/>")).integer("n")


def test_writer_quotes_like_libvirt() -> None:
    root = x("domain", {"type": "kvm", "skip": None})
    root.add(x("name", text="a<b&c"), x("description", {"q": 'it\'s "x"'}), None)
    assert serialize(root) == (
        "<domain type='kvm'>\n"
        "  <name>a&lt;b&amp;c</name>\n"
        "  <description q='it&apos;s &quot;x&quot;'/>\n"
        "</domain>\n"
    )


def test_a_lone_surrogate_is_refused_as_xml() -> None:
    # JSON's "\ud800" escapes put one in a define's XML; it was a UnicodeEncodeError (a 500).
    with pytest.raises(XMLError, match=r"not valid Unicode: character '\\udc80' at offset 11"):
        parse_document("<domain a='\udc80'/>")
