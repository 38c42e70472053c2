"""The CalDAV / CardDAV adapter: `DavAdapter` over one HTTP session.

Discovery (RFC 6764): the configured URL, else /.well-known/caldav and /.well-known/carddav,
asked for DAV:current-user-principal; the principal names the calendar and address book
home sets, and `collections()` lists both. Pull: REPORT sync-collection (RFC 6578) with
truncated answers continued; PROPFIND depth 1 as the fallback listing; calendar-multiget and
addressbook-multiget in batches, several in flight, a batch whose answer is too large split
in halves; a first pull as one calendar-query / addressbook-query (`fetch_all`). Push: PUT
and DELETE with If-Match / If-None-Match.

Every href handed out is a canonical absolute path (`dav_href.normalize`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from bridge.upstream import dav_answers as A
from bridge.upstream import dav_href
from bridge.upstream import dav_xml as X
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import (
    ADDRESSBOOK,
    CALENDAR,
    NOTES,
    TASKS,
    Collection,
    DavAdapter,
    DavSettings,
    Delta,
    Fetched,
    Resource,
    SyncTokenInvalid,
)
from bridge.upstream.dav_http import DavHttp, ResponseTooLarge
from bridge.upstream.dav_marks import ChangeMarks, settled

COMPONENT_OF = {CALENDAR: "VEVENT", TASKS: "VTODO", NOTES: "VJOURNAL"}
MAX_SYNC_ROUNDS = 10_000  # truncated sync-collection answers followed, at most

# The listing of the home sets, every run: no DAV:sync-token, which a server may compute by
# reading every member (Radicale does, and its CTag too: asking for both doubles the cost
# of a run with nothing to do). The token is asked for by itself (`sync_token`) when a pull
# needs one, and only of a collection that has no CTag here.
_COLLECTION_PROPS = [
    X.RESOURCETYPE,
    X.DISPLAYNAME,
    X.COMPONENT_SET,
    X.GETCTAG,
    X.PRIVILEGE_SET,
    X.GETLASTMODIFIED,
]
# Between full listings: last-modified instead of the CTag (see dav_marks).
_PROBE_PROPS = [p for p in _COLLECTION_PROPS if p != X.GETCTAG]


class HttpDavAdapter(DavAdapter):
    def __init__(self, settings: DavSettings) -> None:
        self.settings = settings
        self.http = DavHttp(settings)
        self.marks = ChangeMarks(settings.probe_modified, settings.full_listing_every)
        self.principal: str | None = None
        self.calendar_home: str | None = None
        self.addressbook_home: str | None = None

    # --- discovery ----------------------------------------------------------------------

    async def connect(self) -> None:
        self.principal = self.calendar_home = self.addressbook_home = None
        try:
            await self._discover()
        except BaseException:
            await self.http.close()
            raise

    async def _discover(self) -> None:
        base = self.http.base
        path = urlsplit(base).path
        candidates = [base]
        if "/.well-known/" not in path:
            candidates += ["/.well-known/caldav", "/.well-known/carddav"]
        principal = None
        for href in candidates:
            principal = await self._principal_at(href)
            if principal is not None:
                break
        if principal is None:
            raise UpstreamError(
                f"{base}: no CalDAV or CardDAV service found (no current-user-principal "
                "there or at /.well-known/caldav or /.well-known/carddav)"
            )
        self.principal = principal
        ms = await self._propfind(principal, 0, [X.CALENDAR_HOME, X.ADDRESSBOOK_HOME], auth=True)
        for r in ms.responses:
            cal = r.hrefs(X.CALENDAR_HOME, self.http.url(principal))
            card = r.hrefs(X.ADDRESSBOOK_HOME, self.http.url(principal))
            if cal and self.calendar_home is None:
                self.calendar_home = dav_href.as_collection(cal[0])
            if card and self.addressbook_home is None:
                self.addressbook_home = dav_href.as_collection(card[0])
        if self.calendar_home is None and self.addressbook_home is None:
            raise UpstreamError(
                f"principal {principal} has no calendar-home-set nor addressbook-home-set"
            )

    async def _principal_at(self, href: str) -> str | None:
        answer = await self.http.request(
            "PROPFIND",
            href,
            body=X.propfind([X.PRINCIPAL]),
            headers={"Depth": "0"},
            cross_origin=True,
        )
        if answer.status == 403:
            raise AuthFailed(f"PROPFIND {answer.url}: 403 Forbidden (access refused)")
        if answer.status != 207:
            return None
        try:
            ms = X.parse_multistatus(answer.body, answer.url)
        except X.DavXmlError:
            return None
        for r in ms.responses:
            found = r.hrefs(X.PRINCIPAL, answer.url)
            if found:
                self.http.rebase(answer.url)
                return found[0]
        return None

    async def close(self) -> None:
        await self.http.close()

    # --- collections --------------------------------------------------------------------

    async def collections(self, *, first_sync: bool = False) -> list[Collection]:
        probing = self.marks.probing()
        # A first sync lists last-modified instead of CTags too: a settled one is the
        # collection's change mark until the next full listing (see dav_marks).
        cheap = probing or (first_sync and self.marks.enabled)
        homes = [h for h in (self.calendar_home, self.addressbook_home) if h is not None]
        found: dict[str, tuple[Collection, str | None, str | None]] = {}
        for home in dict.fromkeys(homes):
            ms, date = await self._propfind_dated(
                home, 1, _PROBE_PROPS if cheap else _COLLECTION_PROPS
            )
            for r in ms.responses:
                if dav_href.as_collection(r.href) == home or not r.href.startswith(home):
                    continue
                c = A.collection(r)
                if c is not None and c.href not in found:
                    found[c.href] = (c, r.text(X.GETLASTMODIFIED), date)
        listed = []
        for href, (c, modified, date) in found.items():
            if probing:
                seen = self.marks.unchanged(href, modified)
                if seen is not None:
                    mark = None if seen.ctag else seen.modified
                    listed.append(
                        dataclasses.replace(
                            c, ctag=seen.ctag, sync_token=seen.sync_token, modified=mark
                        )
                    )
                    continue
            elif cheap and modified is not None and settled(modified, date):
                self.marks.record_first(href, modified, date)
                listed.append(dataclasses.replace(c, modified=modified))
                continue
            if cheap:
                c, modified, date = await self._collection_at(c, modified, date)
            if c.ctag is None:  # without a CTag the sync token is the change mark
                try:
                    token = await self.sync_token(c)
                except (ConnectFailed, AuthFailed):
                    raise
                except UpstreamError:
                    listed.append(c)
                    continue  # no mark: the collection is pulled every run
                c = dataclasses.replace(c, ctag=token, sync_token=token)
            self.marks.record(href, modified, date, c.ctag, c.sync_token)
            listed.append(c)
        if not probing:
            self.marks.full_listing_done()
        return listed

    async def _collection_at(
        self, c: Collection, modified: str | None, date: str | None
    ) -> tuple[Collection, str | None, str | None]:
        """The collection with its CTag, and the last-modified read with it (Depth 0)."""
        ms, date = await self._propfind_dated(c.href, 0, _COLLECTION_PROPS)
        for r in ms.responses:
            if dav_href.as_collection(r.href) == c.href:
                found = A.collection(r)
                if found is not None:
                    return found, r.text(X.GETLASTMODIFIED), date
        return c, None, date

    async def sync_token(self, collection: Collection) -> str | None:
        href = dav_href.as_collection(collection.href)
        answer = await self.http.request(
            "PROPFIND", href, body=X.propfind([X.SYNC_TOKEN]), headers={"Depth": "0"}
        )
        if answer.status != 207:
            raise A.error("PROPFIND", answer)
        for r in A.parse(answer).responses:
            if dav_href.as_collection(r.href) == href:
                return r.text(X.SYNC_TOKEN)
        return None

    async def create_collection(self, kind: str, name: str) -> Collection:
        home = self.addressbook_home if kind == ADDRESSBOOK else self.calendar_home
        if kind not in (ADDRESSBOOK, *COMPONENT_OF):
            raise UpstreamError(f"unknown collection kind {kind!r}")
        if home is None:
            raise UpstreamError(f"the server has no home for {kind} collections")
        href = dav_href.member(home, uuid.uuid4().hex) + "/"
        if kind == ADDRESSBOOK:
            answer = await self.http.request("MKCOL", href, body=X.mkcol_addressbook(name))
        else:
            body = X.mkcalendar(name, [COMPONENT_OF[kind]])
            answer = await self.http.request("MKCALENDAR", href, body=body)
        if answer.status not in (200, 201, 204):
            raise A.error("create collection", answer)
        ms = await self._propfind(href, 0, _COLLECTION_PROPS)
        for r in ms.responses:
            if dav_href.as_collection(r.href) == href:
                c = A.collection(r)
                if c is not None:
                    return c
        return Collection(href=href, name=name, kind=kind)

    async def rename_collection(self, href: str, name: str) -> None:
        href = dav_href.as_collection(dav_href.normalize(href))
        answer = await self.http.request("PROPPATCH", href, body=X.proppatch_displayname(name))
        if answer.status == 207:
            ms = A.parse(answer)
            failed = {p: s for r in ms.responses for p, s in r.missing.items()}
            if failed:
                raise UpstreamError(f"PROPPATCH {answer.url}: displayname refused ({failed})")
            return
        if answer.status not in (200, 204):
            raise A.error("PROPPATCH", answer)

    async def delete_collection(self, href: str) -> None:
        href = dav_href.as_collection(dav_href.normalize(href))
        answer = await self.http.request("DELETE", href)
        if answer.status not in (200, 202, 204, 404, 410):
            raise A.error("DELETE", answer)

    # --- pull ---------------------------------------------------------------------------

    async def changes(self, collection: Collection, token: str | None) -> Delta:
        href = dav_href.as_collection(collection.href)
        changed: dict[str, str | None] = {}  # href → ETag, in the order reported
        removed: dict[str, None] = {}
        current = token
        for _ in range(MAX_SYNC_ROUNDS):
            answer = await self.http.request(
                "REPORT", href, body=X.sync_collection(current), headers={"Depth": "0"}
            )
            if answer.status in (400, 403, 409, 412) and (
                X.VALID_SYNC_TOKEN in X.error_conditions(answer.body)
            ):
                raise SyncTokenInvalid(
                    f"REPORT sync-collection {answer.url}: the server refused the sync token"
                )
            if answer.status != 207:
                raise A.error("REPORT sync-collection", answer)
            ms = A.parse(answer)
            if not ms.sync_token:
                raise UpstreamError(
                    f"REPORT sync-collection {answer.url}: the answer has no sync-token"
                )
            truncated = False
            parents = {href, dav_href.as_collection(ms.base)}
            for r in ms.responses:
                if dav_href.as_collection(r.href) in parents:
                    truncated = truncated or r.status == 507
                    continue
                if not A.is_member(r.href, parents):
                    continue
                if r.status in (404, 410):
                    changed.pop(r.href, None)
                    removed[r.href] = None
                elif r.status is None or 200 <= r.status < 300:
                    removed.pop(r.href, None)
                    changed[r.href] = A.normalize_etag(r.text(X.GETETAG))
            if not truncated:
                # An initial sync lists what is there; some servers (Radicale) also
                # report members deleted long ago, which mean nothing to a new client.
                return Delta(
                    ms.sync_token,
                    [Resource(h, e) for h, e in changed.items()],
                    list(removed) if token is not None else [],
                )
            if ms.sync_token == current:
                raise UpstreamError(
                    f"REPORT sync-collection {answer.url}: truncated answer without progress"
                )
            current = ms.sync_token
        raise UpstreamError(
            f"REPORT sync-collection {href}: still truncated after {MAX_SYNC_ROUNDS} rounds"
        )

    async def listing(self, collection: Collection) -> list[Resource]:
        href = dav_href.as_collection(collection.href)
        ms = await self._propfind(href, 1, [X.GETETAG, X.RESOURCETYPE])
        return A.members(ms, href)

    async def fetch(self, collection: Collection, hrefs: Iterable[str]) -> AsyncIterator[Fetched]:
        wanted = list(hrefs)
        size = max(1, self.settings.multiget_batch)
        batches = iter([wanted[i : i + size] for i in range(0, len(wanted), size)])
        window: deque[asyncio.Task[list[Fetched]]] = deque()

        def schedule() -> None:
            batch = next(batches, None)
            if batch is not None:
                window.append(asyncio.ensure_future(self._multiget(collection, batch)))

        try:
            for _ in range(max(1, self.settings.max_in_flight)):
                schedule()
            while window:
                results = await window.popleft()
                schedule()
                for f in results:
                    yield f
        finally:
            for t in window:
                t.cancel()
            if window:
                await asyncio.gather(*window, return_exceptions=True)

    async def fetch_all(self, collection: Collection) -> list[Fetched]:
        href = dav_href.as_collection(collection.href)
        addressbook = collection.kind == ADDRESSBOOK
        answer = await self.http.request(
            "REPORT",
            href,
            body=X.query_all(addressbook),
            headers={"Depth": "1"},
            limit=self.settings.query_all_bytes,
        )
        if answer.status != 207:
            raise A.error("REPORT query", answer)
        return A.query_results(A.parse(answer), href, addressbook)

    async def _multiget(self, collection: Collection, batch: list[str]) -> list[Fetched]:
        href = dav_href.as_collection(collection.href)
        addressbook = collection.kind == ADDRESSBOOK
        paths = [dav_href.normalize(h, self.http.url(href)) for h in batch]
        try:
            answer = await self.http.request("REPORT", href, body=X.multiget(addressbook, paths))
        except ResponseTooLarge:
            if len(batch) == 1:
                return [Fetched(batch[0], None, None, error="too large")]
            half = len(batch) // 2
            return await self._multiget(collection, batch[:half]) + await self._multiget(
                collection, batch[half:]
            )
        if answer.status != 207:
            raise A.error("REPORT multiget", answer)
        return A.multiget_results(A.parse(answer), batch, paths, addressbook)

    # --- push ---------------------------------------------------------------------------

    async def put(
        self,
        collection: Collection,
        name: str,
        data: bytes,
        *,
        etag: str | None = None,
        create: bool = False,
    ) -> Resource:
        href = dav_href.member(dav_href.as_collection(collection.href), name)
        ctype = "text/vcard" if collection.kind == ADDRESSBOOK else "text/calendar"
        headers = {"Content-Type": f"{ctype}; charset=utf-8"}
        if create:
            headers["If-None-Match"] = "*"
        if etag is not None:
            headers["If-Match"] = etag
        answer = await self.http.request("PUT", href, body=data, headers=headers)
        if answer.status not in (200, 201, 204):
            raise A.error("PUT", answer)
        new = A.normalize_etag(answer.headers.get("ETag"))
        if new is not None and new.startswith("W/"):
            new = None  # the server changed the data: the engine reads it back
        return Resource(href, new)

    async def delete(self, href: str, *, etag: str | None = None) -> None:
        href = dav_href.normalize(href)
        headers = {"If-Match": etag} if etag is not None else {}
        answer = await self.http.request("DELETE", href, headers=headers)
        if answer.status not in (200, 202, 204, 404, 410):
            raise A.error("DELETE", answer)

    # --- helpers ------------------------------------------------------------------------

    async def _propfind(
        self, href: str, depth: int, props: list[str], *, auth: bool = False
    ) -> X.Multistatus:
        return (await self._propfind_dated(href, depth, props, auth=auth))[0]

    async def _propfind_dated(
        self, href: str, depth: int, props: list[str], *, auth: bool = False
    ) -> tuple[X.Multistatus, str | None]:
        """The multistatus and the answer's Date header."""
        answer = await self.http.request(
            "PROPFIND", href, body=X.propfind(props), headers={"Depth": str(depth)}
        )
        if auth and answer.status == 403:
            raise AuthFailed(f"PROPFIND {answer.url}: 403 Forbidden (access refused)")
        if answer.status != 207:
            raise A.error("PROPFIND", answer)
        return A.parse(answer), answer.headers.get("Date")
