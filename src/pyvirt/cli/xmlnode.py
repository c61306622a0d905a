"""Small XML elements for the CLI's disk verbs (attach-disk, detach-disk, change-media): read with
expat, written as libvirt and virsh write them (two-space indent, single-quoted attributes).

Not :mod:`xml.etree.ElementTree`: importing it (re, enum, functools, copy, contextlib) costs a Python
process more CPU than the rest of such a verb's start-up; expat itself is a C module. A :class:`Node`
has the part of ElementTree's ``Element`` interface those verbs use. Text is kept only where an element
has no children (``<serial>``, ``<wwn>``), which is all libvirt's device XML has.
"""

from __future__ import annotations

from pyvirt.conf.xmlescape import escape_attr, escape_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator


class Node:
    """One element: ``tag``, ``attrib`` (in document order), child elements, and text."""

    __slots__ = ("attrib", "children", "tag", "text")

    def __init__(self, tag: str, attrib: dict[str, str] | None = None, text: str | None = None) -> None:
        self.tag = tag
        self.attrib = dict(attrib or {})
        self.children: list[Node] = []
        self.text = text

    def __iter__(self) -> Iterator[Node]:
        return iter(self.children)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def set(self, key: str, value: str) -> None:
        self.attrib[key] = value

    def add(self, tag: str, attrib: dict[str, str] | None = None, text: str | None = None) -> Node:
        """A new child element at the end (ElementTree's ``SubElement``)."""
        child = Node(tag, attrib, text)
        self.children.append(child)
        return child

    def insert(self, index: int, child: Node) -> None:
        self.children.insert(index, child)

    def remove(self, child: Node) -> None:
        self.children.remove(child)

    def find(self, tag: str) -> Node | None:
        """The first child element ``tag``."""
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.tag == tag]

    def iter(self, tag: str) -> Iterator[Node]:
        """Every element ``tag`` of this subtree, this one included, in document order."""
        if self.tag == tag:
            yield self
        for child in self.children:
            yield from child.iter(tag)


def parse(text: str) -> Node:
    """The root element of the XML document ``text`` (an :class:`InvalidArgument` if it is not XML)."""
    import pyexpat

    from pyvirt.errors import InvalidArgument

    stack: list[Node] = []
    root: list[Node] = []
    chars: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = Node(tag, attrs)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)
        chars.clear()

    def end(_tag: str) -> None:
        node = stack.pop()
        if not node.children and chars:
            node.text = "".join(chars)
        chars.clear()

    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars.append
    try:
        parser.Parse(text, True)
    except pyexpat.ExpatError as err:
        raise InvalidArgument(f"malformed XML: {err}") from err
    return root[0]


def tostring(node: Node, indent: str = "") -> str:
    """``node`` as libvirt formats XML, each element on its own line, ending with a newline."""
    attrs = "".join(f" {key}='{escape_attr(value)}'" for key, value in node.attrib.items())
    if node.children:
        inner = "".join(tostring(child, indent + "  ") for child in node.children)
        return f"{indent}<{node.tag}{attrs}>\n{inner}{indent}</{node.tag}>\n"
    if node.text:
        return f"{indent}<{node.tag}{attrs}>{escape_text(node.text)}</{node.tag}>\n"
    return f"{indent}<{node.tag}{attrs}/>\n"
