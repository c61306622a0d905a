"""XML escaping for text and single-quoted attribute values, as libvirt writes them.

Kept free of imports: the CLI verbs that print small XML documents (snapshot-create-as, blockcopy
--print-xml) use it without loading the XML framework (:mod:`pyvirt.conf.xmlutil`, which uses it too).
"""

from __future__ import annotations


def escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(value: str) -> str:
    escaped = escape_text(value).replace("'", "&apos;").replace('"', "&quot;")
    return escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
