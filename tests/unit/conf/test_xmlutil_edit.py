"""Editing a parsed document (pyvirt.conf.xmlutil.editable), as the CLI's disk verbs edit a domain's
<disk>: what the reader gives is what ElementTree reads, and what the writer gives back is libvirt's
formatting, read back by ElementTree as the same tree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pyvirt.conf.xmlutil import XNode, editable, parse_document, serialize, x

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


def _xnode_tree(node: XNode) -> tuple[object, ...]:
    return (node.tag, dict(node.attrs), node.text, [_xnode_tree(child) for child in node.children])


def _disks(root: XNode) -> list[XNode]:
    devices = root.find("devices")
    assert devices is not None
    return devices.findall("disk")


def test_editable_holds_what_elementtree_reads() -> None:
    assert _xnode_tree(editable(parse_document(DOMAIN))) == _tree(ET.fromstring(DOMAIN))


def test_written_back_as_libvirt_formats_it() -> None:
    root = editable(parse_document(DOMAIN))
    assert serialize(_disks(root)[0].findall("backingStore")[0]) == (
        "<backingStore type='file' index='1'>\n"
        "  <format type='raw'/>\n"
        "  <source file='/srv/base.raw'/>\n"
        "  <backingStore/>\n"
        "</backingStore>\n"
    )
    assert serialize(root) == DOMAIN


def test_edits() -> None:
    cdrom = _disks(editable(parse_document(DOMAIN)))[1]
    assert cdrom.get("device") == "cdrom" and cdrom.get("missing") is None
    cdrom.children.insert(0, x("source", {"file": "/x.iso"}))
    cdrom.set("type", "block")  # changed where it stands
    cdrom.set("added", "1")
    readonly = cdrom.find("readonly")
    assert readonly is not None and cdrom.find("missing") is None
    cdrom.children.remove(readonly)
    cdrom.add(x("serial", text="a'b"))
    assert serialize(cdrom) == (
        "<disk type='block' device='cdrom' added='1'>\n"
        "  <source file='/x.iso'/>\n"
        "  <target dev='sda' bus='sata'/>\n"
        "  <serial>a'b</serial>\n"
        "</disk>\n"
    )


def test_find_by_attribute() -> None:
    devices = editable(parse_document(DOMAIN)).find("devices")
    assert devices is not None
    cdrom = devices.find("disk", device="cdrom")
    assert cdrom is not None and cdrom.get("device") == "cdrom"
    assert devices.find("disk", device="cdrom", type="file") is cdrom
    assert devices.find("disk", device="floppy") is None
