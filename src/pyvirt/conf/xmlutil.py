"""Safe XML reading and libvirt-style XML writing for the conf layer.

Reading goes through expat directly: a document type declaration (and so any entity declaration, the
root of "billion laughs" and external-entity attacks) is refused before anything is expanded, and
documents larger than :data:`MAX_DOCUMENT_BYTES` are refused unread. The result is a small tree of
:class:`Node`; :class:`Elem` wraps a node and records which attributes and children a parser consumed,
so that :meth:`Elem.done` can refuse everything the model does not know, by name and path.

Writing builds :class:`XNode` trees and prints them the way libvirt does: two-space indentation,
attribute values in single quotes, empty elements as ``<tag/>``. A parsed element becomes an element to
write with :func:`editable`: that is how a client edits a device element of a domain's XML and sends
it back (the CLI's attach-disk, detach-disk and change-media).

Those CLI verbs import this module at start-up, so it loads nothing heavy (no ``re``, ``dataclasses``,
``typing`` or ``xml.etree``: each costs a short CLI command more CPU than the rest of its start);
expat is a C module.
"""

from __future__ import annotations

import pyexpat as expat  # xml.parsers.expat re-exports it, through two packages more to import

from pyvirt.conf.xmlescape import escape_attr, escape_text
from pyvirt.errors import UnsupportedConfig, XMLError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_FORBIDDEN_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_DECIMAL = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class _Refused(Exception):
    """Raised inside expat callbacks to abort parsing of a forbidden construct."""


class Node:
    """One parsed element. ``path`` is relative to the root (``devices/disk/driver``)."""

    __slots__ = ("attrib", "children", "line", "path", "raw_inner", "tag", "text")

    def __init__(
        self, tag: str, attrib: dict[str, str], path: str, line: int, children: list[Node] | None = None
    ) -> None:
        self.tag = tag
        self.attrib = attrib
        self.path = path
        self.line = line
        self.children: list[Node] = [] if children is None else children
        self.text = ""
        self.raw_inner: str | None = None  # inner XML kept verbatim, for elements named in raw_paths

    def __repr__(self) -> str:
        return f"Node({self.path!r}, line {self.line})"


def _start_tag_end(data: bytes, start: int) -> int:
    """Index just past the ``>`` closing the start tag at ``start`` (quotes may hold ``>``)."""
    quote = 0
    for pos in range(start, len(data)):
        char = data[pos]
        if quote:
            if char == quote:
                quote = 0
        elif char in (0x22, 0x27):
            quote = char
        elif char == 0x3E:
            return pos + 1
    return len(data)


def normalise_raw(inner: str) -> str:
    """Inner XML without surrounding blank lines and common indentation (stable across re-indenting)."""
    import textwrap

    lines = inner.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(line.rstrip() for line in lines))


def parse_document(text: str, *, raw_paths: frozenset[str] = frozenset()) -> Node:
    """Parse ``text`` into a :class:`Node` tree, refusing DTDs, entities and oversized input.

    Elements whose path is in ``raw_paths`` also keep their inner XML verbatim in ``raw_inner``.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate: JSON's \ud800 escapes can carry one
        raise XMLError(
            f"XML document is not valid Unicode: character {err.object[err.start]!a} at offset {err.start}"
        ) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise XMLError(f"XML document is too large ({len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES})")
    if any(marker in data for marker in _FORBIDDEN_MARKERS):
        raise XMLError("XML document type declarations and entities are not allowed (<!DOCTYPE>/<!ENTITY>)")

    parser = expat.ParserCreate(encoding="utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    raw_starts: dict[int, int] = {}
    result: list[Node] = []

    def refuse(*_args: object) -> int:
        raise _Refused("XML document type declarations and entities are not allowed")

    def start(tag: str, attrib: dict[str, str]) -> None:
        parent = stack[-1] if stack else None
        path = tag if parent is None or len(stack) == 1 else f"{parent.path}/{tag}"
        node = Node(tag, dict(attrib), path, parser.CurrentLineNumber)
        if path in raw_paths and parent is not None:
            index = parser.CurrentByteIndex
            end = _start_tag_end(data, index)
            raw_starts[id(node)] = -1 if data[end - 2 : end] == b"/>" else end
        if parent is None:
            result.append(node)
        else:
            parent.children.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        node = stack.pop()
        begin = raw_starts.pop(id(node), None)
        if begin is not None:
            inner = "" if begin < 0 else data[begin : parser.CurrentByteIndex].decode("utf-8")
            node.raw_inner = normalise_raw(inner)

    def chars(chunk: str) -> None:
        if stack:
            stack[-1].text += chunk

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.NotationDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data, True)
    except _Refused as err:
        raise XMLError(str(err)) from None
    except expat.ExpatError as err:
        message = expat.ErrorString(err.code)
        raise XMLError(f"malformed XML at line {err.lineno}, column {err.offset + 1}: {message}") from err
    if not result:
        raise XMLError("XML document has no root element")
    return result[0]


def unsupported(message: str) -> UnsupportedConfig:
    return UnsupportedConfig(f"unsupported configuration: {message}")


class Elem:
    """A node being read by a parser: every attribute, child and text it does not consume is refused."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._attrs_used: set[str] = set()
        self._children_used: set[int] = set()
        self._text_used = False

    @property
    def path(self) -> str:
        return self.node.path

    @property
    def tag(self) -> str:
        return self.node.tag

    def attr(self, name: str) -> str | None:
        self._attrs_used.add(name)
        return self.node.attrib.get(name)

    def require(self, name: str) -> str:
        value = self.attr(name)
        if value is None:
            raise XMLError(f"missing attribute '{name}' of '{self.path}'")
        return value

    def choice(self, name: str, allowed: Iterable[str], *, required: bool = False) -> str | None:
        """An attribute limited to ``allowed``; any other value is UnsupportedConfig."""
        value = self.require(name) if required else self.attr(name)
        if value is not None and value not in allowed:
            raise unsupported(f"attribute '{name}' = '{value}' of '{self.path}' is not supported")
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        """A decimal (or 0x-prefixed hex) integer attribute, optionally bounded."""
        value = self.attr(name)
        if value is None:
            return None
        return self._to_int(value, f"attribute '{name}' of '{self.path}'", minimum, maximum)

    def _to_int(self, value: str, what: str, minimum: int | None, maximum: int | None) -> int:
        text = value.strip()
        negative = text.startswith("-")
        digits = text[1:] if negative else text
        hexadecimal = digits[:2] == "0x"
        body = digits[2:] if hexadecimal else digits
        if not body or not set(body) <= (_HEX if hexadecimal else _DECIMAL):
            raise XMLError(f"invalid integer '{value}' in {what}")
        number = int(body, 16 if hexadecimal else 10) * (-1 if negative else 1)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            low = "" if minimum is None else f" >= {minimum}"
            high = "" if maximum is None else f" <= {maximum}"
            joiner = " and" if low and high else ""
            raise XMLError(f"value {number} of {what} is out of range (expected{low}{joiner}{high})")
        return number

    def flag(self, name: str, true: str = "yes", false: str = "no") -> bool | None:
        """A yes/no (or on/off) attribute as a bool."""
        value = self.choice(name, (true, false))
        return None if value is None else value == true

    def child(self, tag: str) -> Elem | None:
        """The only child named ``tag``, or None; two of them are an error."""
        found = self.children(tag)
        if len(found) > 1:
            raise XMLError(f"element '{found[1].path}' may appear only once (line {found[1].node.line})")
        return found[0] if found else None

    def children(self, tag: str) -> list[Elem]:
        found = []
        for node in self.node.children:
            if node.tag == tag:
                self._children_used.add(id(node))
                found.append(Elem(node))
        return found

    def each(self) -> Iterator[Elem]:
        """Every child in document order, all marked as consumed: the caller refuses unknown ones."""
        for node in self.node.children:
            self._children_used.add(id(node))
            yield Elem(node)

    def text(self, *, required: bool = True) -> str:
        """The element's text, stripped; an empty text is an error when ``required``."""
        self._text_used = True
        value = self.node.text.strip()
        if required and not value:
            raise XMLError(f"element '{self.path}' must not be empty")
        return value

    def text_int(self, *, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._to_int(self.text(), f"element '{self.path}'", minimum, maximum)

    def skip(self, *names: str) -> None:
        """Accept (and ignore) these attributes and children."""
        self._attrs_used.update(names)
        for node in self.node.children:
            if node.tag in names:
                self._children_used.add(id(node))

    def refuse(self) -> UnsupportedConfig:
        return unsupported(f"element '{self.path}' is not supported")

    def done(self) -> None:
        """Refuse anything that was not consumed."""
        for name, value in self.node.attrib.items():
            if name not in self._attrs_used:
                raise unsupported(f"attribute '{name}' = '{value}' of '{self.path}' is not supported")
        for node in self.node.children:
            if id(node) not in self._children_used:
                raise unsupported(f"element '{node.path}' is not supported")
        if not self._text_used and self.node.text.strip():
            raise unsupported(f"text content in element '{self.path}' is not supported")


class XNode:
    """An element to write. ``raw`` is inner XML written verbatim (re-indented)."""

    __slots__ = ("attrs", "children", "raw", "tag", "text")

    def __init__(
        self,
        tag: str,
        attrs: list[tuple[str, str]] | None = None,
        children: list[XNode] | None = None,
        text: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.tag = tag
        self.attrs: list[tuple[str, str]] = [] if attrs is None else attrs
        self.children: list[XNode] = [] if children is None else children
        self.text = text
        self.raw = raw

    def __repr__(self) -> str:
        return f"XNode({self.tag!r}, {self.attrs!r}, {len(self.children)} children)"

    def add(self, *children: XNode | None) -> XNode:
        self.children.extend(child for child in children if child is not None)
        return self

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.attrs if key == name), None)

    def set(self, name: str, value: str) -> None:
        """Change attribute ``name`` where it stands, or add it at the end."""
        for index, (key, _) in enumerate(self.attrs):
            if key == name:
                self.attrs[index] = (name, value)
                return
        self.attrs.append((name, value))

    def find(self, tag: str, **attrs: str) -> XNode | None:
        """The first child element ``tag`` (with these attribute values)."""
        return next(
            (
                child
                for child in self.children
                if child.tag == tag and all(child.get(key) == value for key, value in attrs.items())
            ),
            None,
        )

    def findall(self, tag: str) -> list[XNode]:
        return [child for child in self.children if child.tag == tag]


AttrValue = str | int | None


def x(tag: str, attrs: Mapping[str, AttrValue] | None = None, *, text: str | None = None) -> XNode:
    """An :class:`XNode`; attributes whose value is None are left out."""
    pairs = [(key, str(value)) for key, value in (attrs or {}).items() if value is not None]
    return XNode(tag, pairs, text=text)


def editable(node: Node) -> XNode:
    """A parsed element (and its subtree) as an element to read, change and write back, as a client
    does with the XML it gets: attributes in document order, text where an element has no children
    (libvirt's XML has no mixed content)."""
    text = None if node.children else node.text or None
    return XNode(node.tag, list(node.attrib.items()), [editable(child) for child in node.children], text)


def yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def on_off(value: bool | None) -> str | None:
    return None if value is None else ("on" if value else "off")


def _write(node: XNode, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    attrs = "".join(f" {key}='{escape_attr(value)}'" for key, value in node.attrs)
    if node.raw:
        inner_pad = "  " * (depth + 1)
        body = "\n".join(inner_pad + line if line else line for line in node.raw.split("\n"))
        out.append(f"{pad}<{node.tag}{attrs}>\n{body}\n{pad}</{node.tag}>")
    elif node.children:
        out.append(f"{pad}<{node.tag}{attrs}>")
        for child in node.children:
            _write(child, depth + 1, out)
        out.append(f"{pad}</{node.tag}>")
    elif node.text is not None and node.text != "":
        out.append(f"{pad}<{node.tag}{attrs}>{escape_text(node.text)}</{node.tag}>")
    else:
        out.append(f"{pad}<{node.tag}{attrs}/>")


def serialize(root: XNode) -> str:
    """The document as libvirt prints it, ending with a newline."""
    out: list[str] = []
    _write(root, 0, out)
    return "\n".join(out) + "\n"
