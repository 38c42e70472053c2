"""PROPFIND of a folder at Depth 0 or 1, answered from the tree's rows (one query for the
members, one for their dead properties) and written as text, instead of through wsgidav's
generic path (a resource object, property lookups and an ElementTree node per property).

The answer is the one wsgidav gives: the same property names for `allprop` and `name` in
the same order, the same values, statuses and hrefs. What is not computed here (MAPI
properties, `lockdiscovery` of a resource with locks, other `DAV:` names) is asked of the
resource object itself. Any other request (another depth, not a folder) goes to wsgidav."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_NOT_FOUND, DAVError, as_DAVError
from wsgidav.xml_tools import is_etree_element, string_to_xml

from bridge.dav import names
from bridge.dav.mapiprops import MAPI_NS
from bridge.dav.provider import FolderResource, StoreProvider, unix_time
from bridge.dav.tree import FolderNode, Member
from bridge.dav.xmlout import Document

_HREF_SAFE = "/!*'(),$-_|."
_MAPI = "{" + MAPI_NS + "}"
RESOURCETYPE = "{DAV:}resourcetype"
CREATIONDATE = "{DAV:}creationdate"
CONTENTLENGTH = "{DAV:}getcontentlength"
CONTENTTYPE = "{DAV:}getcontenttype"
LASTMODIFIED = "{DAV:}getlastmodified"
DISPLAYNAME = "{DAV:}displayname"
ETAG = "{DAV:}getetag"
LOCKDISCOVERY = "{DAV:}lockdiscovery"
SUPPORTEDLOCK = "{DAV:}supportedlock"
_OK = "200 OK"
# An XML fragment ready to write, or (name, value) to write when its turn comes: value None
# (an empty element), text, or an ElementTree element.
Fragment = str | tuple[str, Any]
_DEFAULT_BODY = "<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>"


_ALWAYS_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~" + _HREF_SAFE
)
_QUOTED = {n: f"%{n:02X}" for n in range(128) if chr(n) not in _ALWAYS_SAFE}


def quote_href(segment: str) -> str:
    """`quote(segment, safe=_HREF_SAFE)` (what wsgidav's `get_href` does), faster for the
    usual ASCII names."""
    if segment.isascii():
        return segment.translate(_QUOTED)
    return quote(segment, safe=_HREF_SAFE)


class _Res:
    """One resource of the answer: what its live properties are made of."""

    __slots__ = (
        "collection",
        "created",
        "dead",
        "display",
        "etag",
        "href",
        "length",
        "locked",
        "make",
        "modified",
        "type",
    )

    def __init__(
        self,
        href: str,
        collection: bool,
        created: int,
        modified: int,
        display: str,
        dead: dict[str, str],
        make: Callable[[], Any],
    ) -> None:
        self.href, self.collection, self.display, self.dead = href, collection, display, dead
        self.created, self.modified, self.make = created, modified, make
        self.length: int | None = None
        self.type: str | None = None
        self.etag: str | None = None
        self.locked = False


def handle(
    provider: StoreProvider,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    default_handler: Any,
) -> Iterable[bytes] | None:
    """The response to a PROPFIND this module answers, or None to let wsgidav answer."""
    depth = environ.get("HTTP_DEPTH", "infinity")
    if depth not in ("0", "1"):
        return None
    folder = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if not isinstance(folder, FolderResource):
        return None
    server = default_handler.__self__
    server._evaluate_if_headers(folder, environ)
    mode, wanted = _parse(server, environ)
    data = _Answer(provider, environ, folder).render(depth == "1", mode, wanted)
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(len(data))),
        ],
    )
    return [data]


def _parse(server: Any, environ: dict[str, Any]) -> tuple[str, list[str]]:
    """The request body as wsgidav reads it: ("allprop" | "name" | "named", names)."""
    request = util.parse_xml_body(environ, allow_empty=True)
    if request is None:
        request = util.etree.XML(_DEFAULT_BODY)
    if request.tag != "{DAV:}propfind":
        server._fail(HTTP_BAD_REQUEST)
    mode: str | None = None
    wanted: list[str] = []
    for node in request:
        if node.tag == "{DAV:}allprop":
            if mode:
                server._fail(HTTP_BAD_REQUEST)
            mode = "allprop"
        elif node.tag == "{DAV:}name":
            if mode:
                server._fail(HTTP_BAD_REQUEST)
            mode = "name"
        elif node.tag == "{DAV:}prop":
            if mode not in (None, "named"):
                server._fail(HTTP_BAD_REQUEST)
            mode = "named"
            wanted.extend(p.tag for p in node)
    return mode if mode in ("allprop", "name") else "named", wanted


class _Answer:
    def __init__(
        self, provider: StoreProvider, environ: dict[str, Any], folder: FolderResource
    ) -> None:
        self.provider, self.environ, self.folder = provider, environ, folder
        self.tree = provider.tree(environ)
        self.doc = Document()
        self.locks = provider.lock_manager
        self._times: dict[tuple[int, bool], str] = {}
        self._types: dict[tuple[str, str | None], str] = {}
        self._supportedlock = ""
        rt = self.doc.qname(RESOURCETYPE)
        self._collection = f"<{rt}>{self.doc.empty('{DAV:}collection')}</{rt}>"
        self._not_collection = self.doc.empty(RESOURCETYPE)
        self._q = [self.doc.qname(n) for n in (CREATIONDATE, CONTENTLENGTH, LASTMODIFIED)]
        self._no_locks = self.doc.empty(LOCKDISCOVERY) + self._supported_lock()

    # -- the resources --------------------------------------------------------------------

    def resources(self, members: bool) -> list[_Res]:
        folder, node = self.folder, self.folder.node
        base = folder.get_href()
        out = [self._folder(base, node, folder.dead_props(), lambda: folder)]
        if members:
            reader, ids = self.provider.reader, self.provider.store.ids
            for name, child in node.children.items():
                out.append(
                    self._folder(
                        base + quote_href(name) + "/",
                        child,
                        reader.dead_props(ids.api_id("folder", child.id)),
                        self._folder_maker(child),
                    )
                )
            out.extend(self._item(base, node, m) for m in self.tree.members(node))
        self._mark_locked(out, folder.get_ref_url(), node, members)
        return out

    def _folder(
        self, href: str, node: FolderNode, dead: dict[str, str], make: Callable[[], Any]
    ) -> _Res:
        return _Res(href, True, node.created, node.modified, node.display_name, dead, make)

    def _folder_maker(self, node: FolderNode) -> Callable[[], Any]:
        return lambda: FolderResource(self.provider, self.environ, node)

    def _item(self, base: str, folder: FolderNode, member: Member) -> _Res:
        from bridge.dav.items import ItemResource

        row = member.row
        obj = self.provider.store.ids.api_id("item", member.id)
        res = _Res(
            base + quote_href(member.name),
            False,
            row["created"],
            row["modified"],
            member.name,
            self.tree.dead_props(folder, obj),
            lambda: ItemResource(self.provider, self.environ, folder, member),
        )
        message_class = str(row["message_class"])
        if message_class.startswith("IPM.Document") and row["doc_blob"] is not None:
            res.length = int(row["doc_size"])
            res.type = str(row["doc_type"] or "application/octet-stream")
        else:
            if row["source_blob"] is not None:
                res.length = int(row["size"])
            res.type = self._content_type(message_class, row["source_type"])
        res.etag = f"{obj}-{row['cn']}"
        return res

    def _content_type(self, message_class: str, source_type: str | None) -> str:
        key = (message_class, source_type)
        found = self._types.get(key)
        if found is None:
            ext = names.extension_for(message_class, source_type)
            found = self._types[key] = names.CONTENT_TYPES.get(ext, "application/octet-stream")
        return found

    def _mark_locked(self, out: list[_Res], ref: str, node: FolderNode, members: bool) -> None:
        """Flag the resources that have lock entries; the others have no locks to list."""
        if self.locks is None:
            return
        urls: set[str] | None = getattr(self.locks.storage, "locked_urls", lambda: None)()
        if urls is not None and not urls:
            return
        refs = [ref]
        if members:
            refs += [ref + quote(name) + "/" for name in node.children]
            refs += [ref + quote(m.name) for m in self.tree.members(node)]
        for res, url in zip(out, refs, strict=True):
            if urls is None:
                res.locked = bool(self.locks.get_url_lock_list(url))
            else:
                res.locked = "/" + url.strip("/") in urls

    # -- properties -----------------------------------------------------------------------

    def names(self, res: _Res) -> list[str]:
        """`get_property_names` of the resource (allprop and name list the same)."""
        out = [RESOURCETYPE, CREATIONDATE]
        if res.length is not None:
            out.append(CONTENTLENGTH)
        if res.type is not None:
            out.append(CONTENTTYPE)
        out += [LASTMODIFIED, DISPLAYNAME]
        if res.etag is not None:
            out.append(ETAG)
        if self.locks is not None:
            out += [LOCKDISCOVERY, SUPPORTEDLOCK]
        out.extend(res.dead)
        return out

    def value(self, res: _Res, name: str) -> Fragment | DAVError:
        """The property as an XML fragment, or the error it answers with. Fragments that may
        bring a new namespace are written later, in document order (prefixes are numbered in
        order of first use)."""
        doc = self.doc
        if not name.startswith(_MAPI):
            dead = res.dead.get(name)
            if dead is not None:
                try:
                    return (name, string_to_xml(dead))
                except Exception as exc:
                    return as_DAVError(exc)
            if name == RESOURCETYPE:
                return self._collection if res.collection else doc.empty(name)
            if name == CREATIONDATE:
                return doc.text(name, self._time(res.created, rfc3339=True))
            if name == LASTMODIFIED:
                return doc.text(name, self._time(res.modified, rfc3339=False))
            if name == DISPLAYNAME:
                return doc.text(name, res.display)
            if name == ETAG:
                return DAVError(HTTP_NOT_FOUND) if res.etag is None else doc.text(name, res.etag)
            if name == CONTENTTYPE:
                return DAVError(HTTP_NOT_FOUND) if res.type is None else doc.text(name, res.type)
            if name == CONTENTLENGTH:
                if res.length is None:
                    return DAVError(HTTP_NOT_FOUND)
                return doc.text(name, str(res.length))
            if self.locks is not None and name == LOCKDISCOVERY and not res.locked:
                return doc.empty(name)
            if self.locks is not None and name == SUPPORTEDLOCK:
                return self._supported_lock()
            if not name.startswith("{DAV:}"):
                return DAVError(HTTP_NOT_FOUND)
        return self._asked(res, name)

    def _asked(self, res: _Res, name: str) -> Fragment | DAVError:
        """The value as the resource object gives it."""
        try:
            value = res.make().get_property_value(name)
        except Exception as exc:
            return as_DAVError(exc)
        if value is None or is_etree_element(value):
            return (name, value)
        return (name, util.to_unicode_safe(value))

    def _all_live(self, res: _Res) -> str:
        """`allprop` of a resource without dead properties or locks: `value` of each name of
        `names`, all found."""
        q, doc = self._q, self.doc
        out = [
            self._collection if res.collection else self._not_collection,
            f"<{q[0]}>{self._time(res.created, rfc3339=True)}</{q[0]}>",
        ]
        if res.length is not None:
            out.append(f"<{q[1]}>{res.length}</{q[1]}>")
        if res.type is not None:
            out.append(doc.text(CONTENTTYPE, res.type))
        out.append(f"<{q[2]}>{self._time(res.modified, rfc3339=False)}</{q[2]}>")
        out.append(doc.text(DISPLAYNAME, res.display))
        if res.etag is not None:
            out.append(doc.text(ETAG, res.etag))
        out.append(self._no_locks)
        return "".join(out)

    def _write(self, fragment: Fragment) -> str:
        if isinstance(fragment, str):
            return fragment
        name, value = fragment
        if value is None:
            return self.doc.empty(name)
        if isinstance(value, str):
            return self.doc.text(name, value)
        return self.doc.element(value)

    def _time(self, ticks: int, *, rfc3339: bool) -> str:
        key = (ticks, rfc3339)
        text = self._times.get(key)
        if text is None:
            secs = unix_time(ticks)
            text = util.get_rfc3339_time(secs) if rfc3339 else util.get_rfc1123_time(secs)
            self._times[key] = text
        return text

    def _supported_lock(self) -> str:
        if not self._supportedlock:
            q = self.doc.qname
            e, s, t, w = (q("{DAV:}" + n) for n in ("lockentry", "lockscope", "locktype", "write"))
            exclusive, shared = q("{DAV:}exclusive"), q("{DAV:}shared")
            entries = "".join(
                f"<{e}><{s}><{scope} /></{s}><{t}><{w} /></{t}></{e}>"
                for scope in (exclusive, shared)
            )
            sl = q(SUPPORTEDLOCK)
            self._supportedlock = f"<{sl}>{entries}</{sl}>"
        return self._supportedlock

    # -- the document ---------------------------------------------------------------------

    def render(self, members: bool, mode: str, wanted: list[str]) -> bytes:
        doc = self.doc
        parts = doc.parts
        q_response, q_href = doc.qname("{DAV:}response"), doc.qname("{DAV:}href")
        q_propstat, q_prop = doc.qname("{DAV:}propstat"), doc.qname("{DAV:}prop")
        q_status = doc.qname("{DAV:}status")
        whole = mode == "allprop" and self.locks is not None
        for res in self.resources(members):
            if whole and not res.dead and not res.locked:
                parts.append(
                    f"<{q_response}><{q_href}>{res.href}</{q_href}><{q_propstat}><{q_prop}>"
                    f"{self._all_live(res)}</{q_prop}><{q_status}>HTTP/1.1 200 OK</{q_status}>"
                    f"</{q_propstat}></{q_response}>"
                )
                continue
            props = wanted if mode == "named" else self.names(res)
            groups: dict[str, list[Fragment]] = {}
            for name in props:
                if mode == "name":
                    groups.setdefault(_OK, []).append((name, None))
                    continue
                value = self.value(res, name)
                if isinstance(value, DAVError):
                    status = util.get_http_status_string(value)
                    groups.setdefault(status, []).append((name, None))
                else:
                    groups.setdefault(_OK, []).append(value)
            parts.append(f"<{q_response}><{q_href}>{res.href}</{q_href}>")
            for status, fragments in groups.items():
                parts.append(f"<{q_propstat}><{q_prop}>")
                parts.extend(map(self._write, fragments))
                parts.append(
                    f"</{q_prop}><{q_status}>HTTP/1.1 {status}</{q_status}></{q_propstat}>"
                )
            parts.append(f"</{q_response}>")
        return doc.to_bytes()
