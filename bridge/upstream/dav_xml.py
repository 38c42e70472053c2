"""WebDAV / CalDAV / CardDAV XML: the request bodies the adapter sends and a parser for the
multistatus answers it gets.

Answers are parsed with defusedxml (no DTDs, no entities, no external references), so a
hostile server cannot expand entities or reach files; the caller bounds the body size
before it gets here. Everything is read into plain values (`Response`) so that the rest of
the adapter never walks an element tree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bridge.upstream import dav_href

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_NS = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:A="{CARDDAV}" xmlns:CS="{CS}"'


def qn(ns: str, name: str) -> str:
    """A Clark name, as ElementTree spells tags: {DAV:}href."""
    return f"{{{ns}}}{name}"


HREF = qn(DAV, "href")
STATUS = qn(DAV, "status")
RESPONSE = qn(DAV, "response")
PROPSTAT = qn(DAV, "propstat")
PROP = qn(DAV, "prop")
ERROR = qn(DAV, "error")
SYNC_TOKEN = qn(DAV, "sync-token")
GETETAG = qn(DAV, "getetag")
GETLASTMODIFIED = qn(DAV, "getlastmodified")
RESOURCETYPE = qn(DAV, "resourcetype")
DISPLAYNAME = qn(DAV, "displayname")
COLLECTION = qn(DAV, "collection")
PRIVILEGE_SET = qn(DAV, "current-user-privilege-set")
PRINCIPAL = qn(DAV, "current-user-principal")
CALENDAR_HOME = qn(CALDAV, "calendar-home-set")
ADDRESSBOOK_HOME = qn(CARDDAV, "addressbook-home-set")
COMPONENT_SET = qn(CALDAV, "supported-calendar-component-set")
CALENDAR = qn(CALDAV, "calendar")
ADDRESSBOOK = qn(CARDDAV, "addressbook")
CALENDAR_DATA = qn(CALDAV, "calendar-data")
ADDRESS_DATA = qn(CARDDAV, "address-data")
GETCTAG = qn(CS, "getctag")
VALID_SYNC_TOKEN = qn(DAV, "valid-sync-token")


class DavXmlError(ValueError):
    """The server's answer is not the XML it should be."""


@dataclass
class Response:
    """One DAV:response of a multistatus."""

    href: str  # canonical absolute path
    status: int | None  # the response-level status (sync-collection removals, multiget 404)
    props: dict[str, ET.Element] = field(default_factory=dict)  # found (2xx) properties
    missing: dict[str, int] = field(default_factory=dict)  # property → status

    def text(self, name: str) -> str | None:
        el = self.props.get(name)
        if el is None:
            return None
        return "".join(el.itertext()).strip() or None

    def hrefs(self, name: str, base: str) -> list[str]:
        el = self.props.get(name)
        if el is None:
            return []
        out = []
        for h in el.iter(HREF):
            if h.text and h.text.strip():
                try:
                    out.append(dav_href.normalize(h.text, base))
                except ValueError:
                    continue  # not a URL: as if absent
        return out

    def children(self, name: str) -> set[str]:
        """Clark names of the property's child elements (resourcetype)."""
        el = self.props.get(name)
        return set() if el is None else {c.tag for c in el}

    def components(self) -> frozenset[str]:
        el = self.props.get(COMPONENT_SET)
        if el is None:
            return frozenset()
        return frozenset(
            c.get("name", "").upper() for c in el.iter(qn(CALDAV, "comp")) if c.get("name")
        )

    def privileges(self) -> set[str] | None:
        el = self.props.get(PRIVILEGE_SET)
        if el is None:
            return None
        return {c.tag for p in el.iter(qn(DAV, "privilege")) for c in p}


@dataclass
class Multistatus:
    responses: list[Response]
    sync_token: str | None = None
    base: str = ""  # canonical path of the URL that answered (after redirects)


_STATUS = re.compile(r"^\s*HTTP/\d(?:\.\d)?\s+(\d{3})")


def _status(el: ET.Element | None) -> int | None:
    if el is None or not el.text:
        return None
    m = _STATUS.match(el.text)
    return int(m.group(1)) if m else None


def parse_xml(body: bytes) -> ET.Element:
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as e:
        raise DavXmlError(f"the answer is not valid XML ({e})") from None
    if not isinstance(root, ET.Element):
        raise DavXmlError("the answer is not an XML document")
    return root


def parse_multistatus(body: bytes, base: str) -> Multistatus:
    """The responses of a 207 answer; hrefs made canonical against the request URL."""
    root = parse_xml(body)
    if root.tag != qn(DAV, "multistatus"):
        raise DavXmlError(f"expected a DAV:multistatus, got {root.tag[:80]!r}")
    out: list[Response] = []
    for r in root.findall(RESPONSE):
        href_el = r.find(HREF)
        if href_el is None or not href_el.text or not href_el.text.strip():
            continue
        try:
            href = dav_href.normalize(href_el.text, base)
        except ValueError:
            continue  # not a URL: nothing can refer to it
        resp = Response(href, _status(r.find(STATUS)))
        for ps in r.findall(PROPSTAT):
            code = _status(ps.find(STATUS)) or 200
            prop = ps.find(PROP)
            if prop is None:
                continue
            for p in prop:
                if 200 <= code < 300:
                    resp.props[p.tag] = p
                else:
                    resp.missing[p.tag] = code
        out.append(resp)
    token_el = root.find(SYNC_TOKEN)
    token = token_el.text.strip() if token_el is not None and token_el.text else None
    try:
        path = dav_href.normalize(base)
    except ValueError:
        path = ""
    return Multistatus(out, token or None, path)


def error_conditions(body: bytes) -> set[str]:
    """Clark names of the preconditions in a DAV:error body (empty when there is none)."""
    if not body.lstrip().startswith(b"<"):
        return set()
    try:
        root = parse_xml(body)
    except DavXmlError:
        return set()
    if root.tag != ERROR:
        return set()
    return {c.tag for c in root}


# --- request bodies ---------------------------------------------------------------------

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """Character data: escaped, without the characters XML 1.0 cannot carry."""
    return escape(_NOT_XML.sub("", text))


def _prop_list(props: list[str]) -> str:
    parts = []
    for clark in props:
        ns, _, name = clark[1:].partition("}")
        prefix = {DAV: "D", CALDAV: "C", CARDDAV: "A", CS: "CS"}[ns]
        parts.append(f"<{prefix}:{name}/>")
    return "".join(parts)


def propfind(props: list[str]) -> bytes:
    return f"{_HEAD}<D:propfind {_NS}><D:prop>{_prop_list(props)}</D:prop></D:propfind>".encode()


def sync_collection(token: str | None) -> bytes:
    tok = f"<D:sync-token>{_x(token)}</D:sync-token>" if token else "<D:sync-token/>"
    return (
        f"{_HEAD}<D:sync-collection {_NS}>{tok}<D:sync-level>1</D:sync-level>"
        f"<D:prop><D:getetag/></D:prop></D:sync-collection>"
    ).encode()


def multiget(addressbook: bool, hrefs: list[str]) -> bytes:
    refs = "".join(f"<D:href>{_x(h)}</D:href>" for h in hrefs)
    if addressbook:
        return (
            f"{_HEAD}<A:addressbook-multiget {_NS}><D:prop><D:getetag/><A:address-data/>"
            f"</D:prop>{refs}</A:addressbook-multiget>"
        ).encode()
    return (
        f"{_HEAD}<C:calendar-multiget {_NS}><D:prop><D:getetag/><C:calendar-data/>"
        f"</D:prop>{refs}</C:calendar-multiget>"
    ).encode()


def query_all(addressbook: bool) -> bytes:
    """calendar-query / addressbook-query for every member with its data: a calendar filter
    of VCALENDAR alone matches every calendar object (RFC 4791 9.7.1); an address book filter
    with no prop-filter matches every vCard on the servers tested (Radicale, Cyrus)."""
    if addressbook:
        return (
            f"{_HEAD}<A:addressbook-query {_NS}><D:prop><D:getetag/><A:address-data/>"
            f"</D:prop><A:filter/></A:addressbook-query>"
        ).encode()
    return (
        f"{_HEAD}<C:calendar-query {_NS}><D:prop><D:getetag/><C:calendar-data/></D:prop>"
        f'<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    ).encode()


def mkcalendar(name: str, components: list[str]) -> bytes:
    comps = "".join(f'<C:comp name="{_x(c)}"/>' for c in components)
    return (
        f"{_HEAD}<C:mkcalendar {_NS}><D:set><D:prop>"
        f"<D:displayname>{_x(name)}</D:displayname>"
        f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
        f"</D:prop></D:set></C:mkcalendar>"
    ).encode()


def mkcol_addressbook(name: str) -> bytes:
    return (
        f"{_HEAD}<D:mkcol {_NS}><D:set><D:prop>"
        f"<D:resourcetype><D:collection/><A:addressbook/></D:resourcetype>"
        f"<D:displayname>{_x(name)}</D:displayname>"
        f"</D:prop></D:set></D:mkcol>"
    ).encode()


def proppatch_displayname(name: str) -> bytes:
    return (
        f"{_HEAD}<D:propertyupdate {_NS}><D:set><D:prop>"
        f"<D:displayname>{_x(name)}</D:displayname>"
        f"</D:prop></D:set></D:propertyupdate>"
    ).encode()
