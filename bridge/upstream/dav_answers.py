"""The DAV adapter's reading of server answers: multistatus parsed or refused with an
`UpstreamError`, HTTP errors mapped to the adapter's exceptions, and the collections,
members and multiget results an answer names."""

from __future__ import annotations

from bridge.upstream import dav_href
from bridge.upstream import dav_xml as X
from bridge.upstream.base import UpstreamError
from bridge.upstream.dav_base import (
    ADDRESSBOOK,
    CALENDAR,
    NOTES,
    TASKS,
    Collection,
    Fetched,
    PreconditionFailed,
    Resource,
    ResourceGone,
)
from bridge.upstream.dav_http import Answer

_WRITE_PRIVILEGES = {X.qn(X.DAV, p) for p in ("all", "write", "write-content", "bind")}


def kind_of(components: frozenset[str]) -> str | None:
    """The folder kind of a calendar collection: events win over tasks over journals; a
    calendar that names no component set takes every component."""
    if not components or "VEVENT" in components:
        return CALENDAR
    if "VTODO" in components:
        return TASKS
    if "VJOURNAL" in components:
        return NOTES
    return None


def normalize_etag(value: str | None) -> str | None:
    """An entity tag in its quoted form ("abc"), whether or not the server quoted it."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    if v.startswith('"') or v.startswith('W/"'):
        return v
    return f'"{v}"'


def is_member(href: str, parents: set[str]) -> bool:
    """`href` is a resource directly inside one of `parents` (the collection as asked for
    and as the answering URL names it): neither a sub-collection nor anything elsewhere
    on the server, which a member listing must never name."""
    return not href.endswith("/") and href.rsplit("/", 1)[0] + "/" in parents


def crlf(text: str) -> bytes:
    """XML parsing turned CRLF into LF; iCalendar and vCard lines end in CRLF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def collection(r: X.Response) -> Collection | None:
    types = r.children(X.RESOURCETYPE)
    components = frozenset[str]()
    if X.CALENDAR in types:
        components = r.components()
        kind = kind_of(components)
    elif X.ADDRESSBOOK in types:
        kind = ADDRESSBOOK
    else:
        return None
    if kind is None:
        return None
    href = dav_href.as_collection(r.href)
    token = r.text(X.SYNC_TOKEN)
    privileges = r.privileges()
    return Collection(
        href=href,
        name=r.text(X.DISPLAYNAME) or dav_href.last_segment(href),
        kind=kind,
        components=components,
        ctag=r.text(X.GETCTAG) or token,
        sync_token=token,
        writable=privileges is None or bool(privileges & _WRITE_PRIVILEGES),
    )


def members(ms: X.Multistatus, href: str) -> list[Resource]:
    """The members a PROPFIND depth 1 of the collection `href` names, with their ETags."""
    out = []
    parents = {href, dav_href.as_collection(ms.base)}
    for r in ms.responses:
        if not is_member(r.href, parents):
            continue
        if X.COLLECTION in r.children(X.RESOURCETYPE):
            continue
        if r.status is not None and r.status >= 300:
            continue
        out.append(Resource(r.href, normalize_etag(r.text(X.GETETAG))))
    return out


def query_results(ms: X.Multistatus, href: str, addressbook: bool) -> list[Fetched]:
    """The members a calendar-query / addressbook-query of the collection `href` names,
    with their ETags and data (members the server could not read: data None, error set)."""
    parents = {href, dav_href.as_collection(ms.base)}
    members = [r for r in ms.responses if is_member(r.href, parents)]
    return _results(members, [r.href for r in members], [r.href for r in members], addressbook)


def multiget_results(
    ms: X.Multistatus, batch: list[str], paths: list[str], addressbook: bool
) -> list[Fetched]:
    """One result per href asked for (`batch`, as `paths` on the server), in order."""
    return _results(ms.responses, batch, paths, addressbook)


def _results(
    responses: list[X.Response], batch: list[str], paths: list[str], addressbook: bool
) -> list[Fetched]:
    by_href = {r.href: r for r in responses}
    data_prop = X.ADDRESS_DATA if addressbook else X.CALENDAR_DATA
    out = []
    for original, path in zip(batch, paths, strict=True):
        r = by_href.get(path)
        if r is None:
            out.append(Fetched(original, None, None, error="missing"))
            continue
        if r.status is not None and r.status >= 300:
            out.append(Fetched(original, None, None, error=str(r.status)))
            continue
        etag = normalize_etag(r.text(X.GETETAG))
        el = r.props.get(data_prop)
        if el is None:
            status = r.missing.get(data_prop)
            out.append(Fetched(original, etag, None, error=str(status or "no data")))
            continue
        out.append(Fetched(original, etag, crlf("".join(el.itertext()))))
    return out


def parse(answer: Answer) -> X.Multistatus:
    try:
        return X.parse_multistatus(answer.body, answer.url)
    except X.DavXmlError as e:
        raise UpstreamError(f"{answer.url}: {e}") from None


def error(what: str, answer: Answer) -> UpstreamError:
    text = f"{what} {answer.url}: {answer.status}"
    # the preconditions a DAV:error names (no-uid-conflict, valid-calendar-data ...)
    conditions = sorted(
        c.rsplit("}", 1)[-1]
        for c in X.error_conditions(answer.body)
        if c != X.qn(X.DAV, "responsedescription")
    )
    detail = ", ".join([*conditions, answer.excerpt()][:4]).strip(", ")
    if detail:
        text += f" ({detail[:200]})"
    if answer.status == 412:
        return PreconditionFailed(text)
    if answer.status in (404, 410):
        return ResourceGone(text)
    return UpstreamError(text)
