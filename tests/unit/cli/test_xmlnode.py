"""The CLI's small XML elements: what expat reads is what ElementTree reads, and what they write is
libvirt's formatting, read back by ElementTree as the same tree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pyvirt.cli.xmlnode import Node, parse, tostring
from pyvirt.errors import InvalidArgument

DOMAIN = """<domain type='qemu'>
  <name>a&amp;b</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/x &apos;y&apos;.qcow2' index='2'/>
      <backingStore type='file' index='1'>
        <format type='raw'/>
        <source file='/srv/base.raw'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <serial>S&lt;1&gt;</serial>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
  </devices>
</domain>
"""


def _tree(element: ET.Element) -> tuple[object, ...]:
    text = (element.text or "").strip() or None
    return (element.tag, dict(element.attrib), text, [_tree(child) for child in element])


def _node_tree(node: Node) -> tuple[object, ...]:
    return (node.tag, node.attrib, node.text, [_node_tree(child) for child in node])


def test_parse_reads_what_elementtree_reads() -> None:
    assert _node_tree(parse(DOMAIN)) == _tree(ET.fromstring(DOMAIN))


def test_tostring_is_libvirts_formatting_and_reads_back() -> None:
    root = parse(DOMAIN)
    disk = next(root.iter("disk"))
    assert tostring(disk.findall("backingStore")[0]) == (
        "<backingStore type='file' index='1'>\n"
        "  <format type='raw'/>\n"
        "  <source file='/srv/base.raw'/>\n"
        "  <backingStore/>\n"
        "</backingStore>\n"
    )
    assert tostring(root) == DOMAIN
    assert _tree(ET.fromstring(tostring(root))) == _tree(ET.fromstring(DOMAIN))


def test_edits() -> None:
    root = parse(DOMAIN)
    cdrom = list(root.iter("disk"))[1]
    assert cdrom.get("device") == "cdrom" and cdrom.get("missing", "d") == "d"
    cdrom.insert(0, Node("source", {"file": "/x.iso"}))
    cdrom.set("type", "block")
    readonly = cdrom.find("readonly")
    assert readonly is not None
    cdrom.remove(readonly)
    cdrom.add("serial", text="a'b")
    assert tostring(cdrom) == (
        "<disk type='block' device='cdrom'>\n"
        "  <source file='/x.iso'/>\n"
        "  <target dev='sda' bus='sata'/>\n"
        "  <serial>a'b</serial>\n"
        "</disk>\n"
    )


def test_malformed_xml_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="malformed XML"):
        parse("<disk><target></disk>")
