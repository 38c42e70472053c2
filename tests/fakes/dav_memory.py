"""An in-memory CalDAV/CardDAV upstream for unit tests of the sync engine.

`MemoryDavServer` holds the account: collections of each kind, resources with ETags, one
change counter per collection that serves as the sync token, and tombstones of deleted
members. `MemoryDavAdapter` is a `DavAdapter` on it; several adapters on one server play
several clients (one the bridge, one "another client" editing the server).

Switches for the paths the engine must handle:
- `sync_collection = False`: `changes()` raises UpstreamError (a server without RFC 6578);
- `query_all = False`: `fetch_all()` raises UpstreamError (the engine lists and multigets);
- `expire_tokens()`: every token handed out so far raises SyncTokenInvalid;
- `token_in_listing = False`: `collections()` gives the CTag only and the token is asked
  for by itself (`sync_token()`), as the HTTP adapter does;
- `offline = True`: every call raises ConnectFailed;
- `return_etags = False`: `put()` returns no ETag (the engine must read it back);
- `add_collection(..., writable=False)`: a read-only (shared) collection, PUT/DELETE → 403;
- `unique_uids = False`: accept a second resource with a UID already in the collection
  (real servers refuse it: 409/403 no-uid-conflict, an UpstreamError).

`calls` records every operation (`"fetch <href> <n>"`, `"put <href>"` ...) for assertions.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from bridge.upstream import dav_href
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import (
    ADDRESSBOOK,
    CALENDAR,
    KINDS,
    NOTES,
    TASKS,
    Collection,
    DavAdapter,
    DavSettings,
    Delta,
    Fetched,
    PreconditionFailed,
    Resource,
    ResourceGone,
    SyncTokenInvalid,
)

COMPONENTS = {
    CALENDAR: frozenset({"VEVENT"}),
    TASKS: frozenset({"VTODO"}),
    NOTES: frozenset({"VJOURNAL"}),
    ADDRESSBOOK: frozenset(),
}


@dataclass
class _Item:
    data: bytes
    etag: str
    changed: int  # collection counter at the last write


@dataclass
class _Collection:
    href: str
    name: str
    kind: str
    writable: bool = True
    counter: int = 0
    items: dict[str, _Item] = field(default_factory=dict)  # href → item
    tombstones: dict[str, int] = field(default_factory=dict)  # href → counter at deletion
    expired_below: int = 0  # tokens with a lower counter are refused

    def token(self) -> str:
        return f"mem-sync:{self.href}:{self.counter}"

    def snapshot(self) -> Collection:
        return Collection(
            href=self.href,
            name=self.name,
            kind=self.kind,
            components=COMPONENTS[self.kind],
            ctag=f'"ctag-{self.counter}"',
            sync_token=self.token(),
            writable=self.writable,
        )


def _uid(data: bytes) -> str | None:
    """The first UID property of an iCalendar or vCard object."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\n ", "")
    m = re.search(r"^UID(?:;[^:]*)?:(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


class MemoryDavServer:
    """The account state shared by every adapter made with `adapter()`."""

    def __init__(
        self,
        username: str = "user",
        password: str = "secret",
        *,
        defaults: bool = True,
    ) -> None:
        self.username = username
        self.password = password
        self.home = f"/dav/{dav_href.quote_segment(username)}/"
        self.collections: dict[str, _Collection] = {}
        self.sync_collection = True
        self.query_all = True  # False: fetch_all refused, as by a server without queries
        self.token_in_listing = True
        self.offline = False
        self.return_etags = True
        self.unique_uids = True
        self.calls: list[str] = []
        self._etags = itertools.count(1)
        self._names = itertools.count(1)
        if defaults:
            self.add_collection(CALENDAR, "Calendar", slug="calendar")
            self.add_collection(TASKS, "Tasks", slug="tasks")
            self.add_collection(ADDRESSBOOK, "Contacts", slug="contacts")

    def adapter(self, settings: DavSettings | None = None) -> MemoryDavAdapter:
        return MemoryDavAdapter(
            self,
            settings
            or DavSettings(
                url="mem://" + self.home, username=self.username, password=self.password
            ),
        )

    def add_collection(
        self, kind: str, name: str, *, slug: str | None = None, writable: bool = True
    ) -> Collection:
        if kind not in KINDS:
            raise ValueError(f"unknown collection kind {kind!r}")
        href = dav_href.as_collection(
            self.home + dav_href.quote_segment(slug or f"c{next(self._names)}")
        )
        if href in self.collections:
            raise ValueError(f"collection {href} exists")
        c = _Collection(href, name, kind, writable)
        self.collections[href] = c
        return c.snapshot()

    def expire_tokens(self) -> None:
        """Every sync token handed out so far becomes invalid (SyncTokenInvalid)."""
        for c in self.collections.values():
            c.counter += 1
            c.expired_below = c.counter

    def data(self, href: str) -> bytes | None:
        """A resource's data as the server holds it (None when absent)."""
        for c in self.collections.values():
            if href in c.items:
                return c.items[href].data
        return None

    def new_etag(self) -> str:
        return f'"e{next(self._etags)}"'


class MemoryDavAdapter(DavAdapter):
    def __init__(self, server: MemoryDavServer, settings: DavSettings) -> None:
        self.server = server
        self.settings = settings
        self.connected = False

    def _check(self, op: str) -> None:
        self.server.calls.append(op)
        if self.server.offline:
            raise ConnectFailed("memory DAV server: offline")
        if not self.connected:
            raise UpstreamError("memory DAV adapter: not connected")

    def _coll(self, href: str) -> _Collection:
        c = self.server.collections.get(dav_href.as_collection(href))
        if c is None:
            raise ResourceGone(f"collection {href} not found (404)")
        return c

    def _owner(self, href: str) -> _Collection | None:
        for c in self.server.collections.values():
            if href.startswith(c.href):
                return c
        return None

    async def connect(self) -> None:
        self.server.calls.append("connect")
        if self.server.offline:
            raise ConnectFailed("memory DAV server: offline")
        if (self.settings.username, self.settings.password) != (
            self.server.username,
            self.server.password,
        ):
            raise AuthFailed("memory DAV server: 401 Unauthorized")
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def collections(self, *, first_sync: bool = False) -> list[Collection]:
        self._check("collections")  # CTags always: `first_sync` allows, never requires, less
        listed = [c.snapshot() for c in self.server.collections.values()]
        if self.server.token_in_listing:
            return listed
        return [dataclasses.replace(c, sync_token=None) for c in listed]

    async def sync_token(self, collection: Collection) -> str | None:
        self._check(f"sync_token {collection.href}")
        return self._coll(collection.href).token()

    async def create_collection(self, kind: str, name: str) -> Collection:
        self._check(f"create_collection {kind} {name}")
        if kind not in KINDS:
            raise UpstreamError(f"unknown collection kind {kind!r}")
        return self.server.add_collection(kind, name)

    async def rename_collection(self, href: str, name: str) -> None:
        self._check(f"rename_collection {href}")
        c = self._coll(href)
        c.name = name
        c.counter += 1

    async def delete_collection(self, href: str) -> None:
        self._check(f"delete_collection {href}")
        self.server.collections.pop(dav_href.as_collection(href), None)

    async def changes(self, collection: Collection, token: str | None) -> Delta:
        self._check(f"changes {collection.href}")
        c = self._coll(collection.href)
        if not self.server.sync_collection:
            raise UpstreamError(f"REPORT sync-collection on {c.href}: 501 Not Implemented")
        if token is None:
            return Delta(c.token(), [Resource(h, i.etag) for h, i in sorted(c.items.items())], [])
        prefix = f"mem-sync:{c.href}:"
        if not token.startswith(prefix) or not token[len(prefix) :].isdigit():
            raise SyncTokenInvalid(f"sync token {token!r} is not valid for {c.href}")
        since = int(token[len(prefix) :])
        if since < c.expired_below or since > c.counter:
            raise SyncTokenInvalid(f"sync token {token!r} has expired")
        changed = [Resource(h, i.etag) for h, i in sorted(c.items.items()) if i.changed > since]
        removed = sorted(h for h, n in c.tombstones.items() if n > since and h not in c.items)
        return Delta(c.token(), changed, removed)

    async def listing(self, collection: Collection) -> list[Resource]:
        self._check(f"listing {collection.href}")
        c = self._coll(collection.href)
        return [Resource(h, i.etag) for h, i in sorted(c.items.items())]

    async def fetch_all(self, collection: Collection) -> list[Fetched]:
        self._check(f"fetch_all {collection.href}")
        c = self._coll(collection.href)
        if not self.server.query_all:
            raise UpstreamError(f"REPORT query on {c.href}: 501 Not Implemented")
        if sum(len(i.data) for i in c.items.values()) > self.settings.query_all_bytes:
            raise UpstreamError(f"REPORT query on {c.href}: the answer is over the limit")
        return [Fetched(h, i.etag, i.data) for h, i in sorted(c.items.items())]

    async def fetch(self, collection: Collection, hrefs: Iterable[str]) -> AsyncIterator[Fetched]:
        wanted = list(hrefs)
        self._check(f"fetch {collection.href} {len(wanted)}")
        c = self._coll(collection.href)
        batch = max(1, self.settings.multiget_batch)
        for start in range(0, len(wanted), batch):
            self.server.calls.append(
                f"multiget {collection.href} {len(wanted[start : start + batch])}"
            )
            for href in wanted[start : start + batch]:
                item = c.items.get(dav_href.normalize(href))
                if item is None:
                    yield Fetched(href, None, None, error="404")
                else:
                    yield Fetched(href, item.etag, item.data)

    async def put(
        self,
        collection: Collection,
        name: str,
        data: bytes,
        *,
        etag: str | None = None,
        create: bool = False,
    ) -> Resource:
        href = dav_href.member(collection.href, name)
        self._check(f"put {href}")
        c = self._coll(collection.href)
        if not c.writable:
            raise UpstreamError(f"PUT {href}: 403 Forbidden (read-only collection)")
        current = c.items.get(href)
        if create and current is not None:
            raise PreconditionFailed(f"PUT {href}: 412 Precondition Failed (exists)")
        if etag is not None and (current is None or current.etag != etag):
            raise PreconditionFailed(f"PUT {href}: 412 Precondition Failed (changed)")
        uid = _uid(data)
        if self.server.unique_uids and uid is not None:
            for other, item in c.items.items():
                if other != href and _uid(item.data) == uid:
                    raise UpstreamError(f"PUT {href}: 409 (no-uid-conflict, {other})")
        c.counter += 1
        new = self.server.new_etag()
        c.items[href] = _Item(bytes(data), new, c.counter)
        c.tombstones.pop(href, None)
        return Resource(href, new if self.server.return_etags else None)

    async def delete(self, href: str, *, etag: str | None = None) -> None:
        href = dav_href.normalize(href)
        self._check(f"delete {href}")
        c = self._owner(href)
        if c is None or href not in c.items:
            return
        if not c.writable:
            raise UpstreamError(f"DELETE {href}: 403 Forbidden (read-only collection)")
        if etag is not None and c.items[href].etag != etag:
            raise PreconditionFailed(f"DELETE {href}: 412 Precondition Failed (changed)")
        c.counter += 1
        del c.items[href]
        c.tombstones[href] = c.counter
