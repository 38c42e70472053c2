"""What the sync engine sees of a CalDAV / CardDAV upstream: collections, their changes,
and resources (one .ics or .vcf each).

The pull path the engine prefers is `changes()` (sync-collection, RFC 6578); when a
collection has no sync token, or the server refuses the one given, it falls back to
`listing()` (href + ETag of every member, compared with the CTag first) and fetches only
what changed with `fetch()` (multiget in batches). Writes carry If-Match / If-None-Match so
that a change made by another client is never overwritten silently.

Errors are the classes of `upstream.base` plus the three below.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from bridge.upstream.base import UpstreamError

# Collection kinds, as folders of these container classes hold them.
CALENDAR = "calendar"  # VEVENT -> IPF.Appointment
TASKS = "tasks"  # VTODO -> IPF.Task
NOTES = "notes"  # VJOURNAL -> IPF.StickyNote
ADDRESSBOOK = "addressbook"  # vCard -> IPF.Contact
KINDS = (CALENDAR, TASKS, NOTES, ADDRESSBOOK)


class PreconditionFailed(UpstreamError):
    """412: the resource changed (If-Match) or already exists (If-None-Match: *)."""


class SyncTokenInvalid(UpstreamError):
    """403/409 valid-sync-token: the token expired; list the collection in full."""


class ResourceGone(UpstreamError):
    """404/410: the resource or collection is no longer on the server."""


@dataclass(frozen=True, slots=True)
class DavSettings:
    url: str  # base URL or a /.well-known/ URL; discovery starts here
    username: str
    password: str
    verify_tls: bool = True
    timeout: float = 60.0
    multiget_batch: int = 500  # Radicale refuses REPORT answers of > 10,000 components
    max_response_bytes: int = 64 * 1024 * 1024  # a larger answer is refused (split multiget)
    max_in_flight: int = 2  # multiget batches requested at once
    query_all_bytes: int = 32 * 1024 * 1024  # first pull in one query up to this answer size
    probe_modified: bool = True  # between full listings, getlastmodified (see dav_marks)
    full_listing_every: float = 600.0  # s: CTags of every collection read at least this often
    ca_file: str | None = None  # certificates trusted besides the system's


@dataclass(frozen=True, slots=True)
class Collection:
    href: str  # server path, ending in "/"
    name: str  # display name, else the last path segment
    kind: str  # one of KINDS
    components: frozenset[str] = frozenset()  # VEVENT, VTODO, VJOURNAL (calendars)
    ctag: str | None = None  # getctag, else the collection's sync token as a change mark
    sync_token: str | None = None  # DAV:sync-token, when known (see DavAdapter.sync_token)
    writable: bool = True
    # Listed without its CTag (a first sync, see `collections`): the collection's settled
    # DAV:getlastmodified, which stands in for the CTag as its change mark until the next
    # listing that reads CTags.
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    href: str
    etag: str | None


@dataclass(frozen=True, slots=True)
class Delta:
    """What sync-collection reported since a token."""

    token: str
    changed: list[Resource] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # hrefs


@dataclass(frozen=True, slots=True)
class Fetched:
    href: str
    etag: str | None
    data: bytes | None  # None when the server sent no data for this href
    error: str | None = None  # e.g. "404" for a member gone between listing and fetch


class DavAdapter(abc.ABC):
    """One CalDAV or CardDAV account (one HTTP session)."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Discover the principal and the home sets; raises AuthFailed or ConnectFailed."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def collections(self, *, first_sync: bool = False) -> list[Collection]:
        """Every calendar / address book in the home sets, with ctag and sync token.

        `first_sync`: the cache holds nothing of the account yet, so the listing is only
        the base of a first pull. An adapter may then give a collection, instead of its
        CTag (which a server such as Radicale computes by reading every member), a change
        mark that is cheaper to produce: `modified`, a last-modified that a later change of
        the collection changes too."""

    @abc.abstractmethod
    async def create_collection(self, kind: str, name: str) -> Collection:
        """MKCALENDAR (with the component set of `kind`) or extended MKCOL."""

    @abc.abstractmethod
    async def rename_collection(self, href: str, name: str) -> None:
        """PROPPATCH displayname (hrefs stay stable)."""

    @abc.abstractmethod
    async def delete_collection(self, href: str) -> None: ...

    @abc.abstractmethod
    async def changes(self, collection: Collection, token: str | None) -> Delta:
        """sync-collection since `token` (None: initial, everything). Raises
        SyncTokenInvalid for an expired token, UpstreamError when unsupported."""

    async def sync_token(self, collection: Collection) -> str | None:
        """The collection's current DAV:sync-token (None: it has none). `collections()`
        may leave it out where it is costly to produce."""
        return collection.sync_token

    @abc.abstractmethod
    async def listing(self, collection: Collection) -> list[Resource]:
        """href and ETag of every member (PROPFIND depth 1)."""

    @abc.abstractmethod
    def fetch(self, collection: Collection, hrefs: Iterable[str]) -> AsyncIterator[Fetched]:
        """The members' data, by multiget in batches of `multiget_batch`."""

    @abc.abstractmethod
    async def fetch_all(self, collection: Collection) -> list[Fetched]:
        """Every member with its ETag and data in one query (calendar-query /
        addressbook-query), for a first pull: the server reads each member once, where a
        listing and multigets read it twice. Raises UpstreamError when the server refuses
        (Radicale, by default, any answer of more than 10,000 VEVENTs) or the answer is over
        `query_all_bytes`; the caller then lists and multigets."""

    @abc.abstractmethod
    async def put(
        self,
        collection: Collection,
        name: str,
        data: bytes,
        *,
        etag: str | None = None,
        create: bool = False,
    ) -> Resource:
        """PUT `data` at `collection.href + name`: with `create`, If-None-Match: *; with
        `etag`, If-Match. Returns the href and the new ETag (None when the server sent
        none; the engine then reads it back). Raises PreconditionFailed on 412."""

    @abc.abstractmethod
    async def delete(self, href: str, *, etag: str | None = None) -> None:
        """DELETE (with If-Match when `etag` is given); a resource already gone is fine."""
