"""A multistatus document written as text, byte for byte as wsgidav writes it through
ElementTree: `ns0` for `DAV:`, further namespaces numbered in order of first use (or their
registered prefix) and declared on the root, `<x />` for empty elements, the same escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

DAV_NS = "DAV:"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_REGISTERED: dict[str, str] = getattr(ET, "_namespace_map", {_XML_NS: "xml"})
HEADER = b'<?xml version="1.0" encoding="utf-8" ?>\n'


def escape_text(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attr(text: str) -> str:
    text = escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


class Document:
    """Collects the parts of a document; `qname` hands out prefixes as names are used."""

    def __init__(self) -> None:
        self.namespaces: dict[str, str] = {}
        self._qnames: dict[str, str] = {}
        self.parts: list[str] = []
        self.ms = self.qname("{DAV:}multistatus")  # the root's namespace comes first

    def qname(self, name: str) -> str:
        q = self._qnames.get(name)
        if q is not None:
            return q
        if name[:1] == "{":
            uri, local = name[1:].rsplit("}", 1)
            prefix = self.namespaces.get(uri)
            if prefix is None:
                prefix = _REGISTERED.get(uri) or f"ns{len(self.namespaces)}"
                if prefix != "xml":
                    self.namespaces[uri] = prefix
            q = f"{prefix}:{local}" if prefix else local
        else:
            q = name
        self._qnames[name] = q
        return q

    def empty(self, name: str) -> str:
        return f"<{self.qname(name)} />"

    def text(self, name: str, value: str) -> str:
        q = self.qname(name)
        return f"<{q}>{escape_text(value)}</{q}>" if value else f"<{q} />"

    def element(self, elem: Any) -> str:
        """An ElementTree element (a complex property value), as ElementTree writes it."""
        out: list[str] = []
        self._serialize(elem, out)
        return "".join(out)

    def _serialize(self, elem: Any, out: list[str]) -> None:
        tag = elem.tag
        if tag is ET.Comment:
            out.append(f"<!--{elem.text}-->")
        elif tag is ET.ProcessingInstruction:
            out.append(f"<?{elem.text}?>")
        else:
            q = self.qname(tag)
            out.append("<" + q)
            for key, value in elem.items():
                out.append(f' {self.qname(key)}="{escape_attr(value)}"')
            if elem.text or len(elem):
                out.append(">")
                if elem.text:
                    out.append(escape_text(elem.text))
                for child in elem:
                    self._serialize(child, out)
                out.append(f"</{q}>")
            else:
                out.append(" />")
        if elem.tail:
            out.append(escape_text(elem.tail))

    def to_bytes(self) -> bytes:
        decls = "".join(
            f' xmlns:{prefix}="{escape_attr(uri)}"'
            for uri, prefix in sorted(self.namespaces.items(), key=lambda kv: kv[1])
        )
        body = f"<{self.ms}{decls}>{''.join(self.parts)}</{self.ms}>"
        return HEADER + body.encode("utf-8", "xmlcharrefreplace")
