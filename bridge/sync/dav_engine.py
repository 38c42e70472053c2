"""One sync run against a CalDAV or CardDAV upstream: collections ↔ folders, then each
collection pulled (sync-collection with the stored token; an expired token or a server
without it → full ETag listing, skipped when the CTag is unchanged; only what changed is
fetched), then the journal of local changes pushed, oldest first. Decisions come from
`dav_plan`; this module carries them out and records the outcome.

Changes from the server are written with origin UPSTREAM, so they are not journaled back.
A resource that cannot be read is reported in the run's report and set aside (it is
fetched again only when its ETag changes); the rest of the collection continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Set
from typing import Any

from bridge.config.model import FolderSync
from bridge.store.core import UPSTREAM
from bridge.store.dav_refs import DavItem, is_dav_ref
from bridge.store.errors import Conflict, NotFound, StoreError
from bridge.store.item_base import NewItem
from bridge.store.props import now_filetime
from bridge.store.store import Store
from bridge.store.syncstate import JournalEntry
from bridge.sync import conflicts, crashpoint, dav_content, dav_plan
from bridge.sync.dav_hierarchy import DavHierarchy
from bridge.sync.dav_parse import Parsed, ParserPool, ResourceParser
from bridge.sync.dav_push import DavPusher
from bridge.sync.dav_report import DavReport
from bridge.sync.dav_scope import dav_entry_ids, kind_of
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import CALENDAR, Collection, DavAdapter, Fetched, SyncTokenInvalid

log = logging.getLogger(__name__)

CREATE_BATCH = 200
PARSE_CHUNK = 100  # resources parsed at a time (by a worker, for a large pull)
WINDOW_REASON = "outside the calendar window"


class DavEngine:
    def __init__(
        self,
        store: Store,
        adapter: DavAdapter,
        service: str,
        kinds: frozenset[str],
        *,
        policy: str = "keep-both",
        calendar_window_days: int | None = None,
        folders: Mapping[str, FolderSync] | None = None,
        server_turn: asyncio.Lock | None = None,
        parsers: ParserPool | None = None,
    ) -> None:
        self.store = store
        self.parsers = parsers  # the run's shared parse workers (started for a first pull)
        # Held while a pull asks the server what to fetch (and, at a first pull, for all
        # of it): engines run side by side share it, so that the server answers one at a
        # time (a threaded server such as Radicale slows down for all when asked twice at
        # once) while each stores what it was sent beside the other.
        self.server_turn = server_turn or asyncio.Lock()
        self.adapter = adapter
        self.service = service
        self.kinds = kinds
        self.policy = policy
        self.calendar_window_days = calendar_window_days
        self.folder_settings = dict(folders or {})

    def enabled(self, path: str) -> bool:
        own = self.folder_settings.get(path)
        return own is None or own.mode != "off"

    def window_days(self, path: str) -> int | None:
        return self.calendar_window_days

    async def run(self, listed: list[Collection] | None = None) -> DavReport:
        """One run; `listed`: the server's collections when the caller already has them
        (one listing serves a CalDAV and a CardDAV engine on the same account)."""
        report = DavReport()
        hierarchy = DavHierarchy(self.store, self.adapter, self.service, self.kinds, self.enabled)
        await hierarchy.reload()
        entries = await self.store.sync.journal()
        mine = await self._my_entries(entries, hierarchy)
        synced = await hierarchy.sync([e for e in mine if e.kind == "folder"], report, listed)
        items = [e for e in mine if e.kind == "item"]
        ignore = await self._owed_deletes(items, synced, hierarchy)
        for fid, (collection, ref) in synced.items():
            try:
                await self.pull(fid, collection, ref, ignore, report, hierarchy.path(fid))
            except (ConnectFailed, AuthFailed):
                raise
            except UpstreamError as exc:
                log.warning("DAV %s: pull of %s failed: %s", self.service, collection.href, exc)
                report.failed.append(f"{collection.href}: {exc}")
        # A conflict settled by the pull has dropped its entries: push only what is left.
        alive = {e.id for e in await self.store.sync.journal()}
        items = [e for e in items if e.id in alive]
        pusher = DavPusher(self.store, self.adapter, self.service, self.kinds, self.policy)
        await pusher.run(items, synced, hierarchy, report)
        return report

    async def _my_entries(
        self, entries: list[JournalEntry], hierarchy: DavHierarchy
    ) -> list[JournalEntry]:
        """The pending entries this engine carries out (DAV ones of its service)."""
        dav = await dav_entry_ids(self.store, entries)
        places = await self.store.dav_refs.places(
            e.object_id for e in entries if e.kind == "item" and e.id in dav
        )
        made_in: dict[int, set[str | None]] = {}  # an item's kinds of the folders of its entries
        for e in entries:
            if e.kind == "item" and e.id in dav:
                f = hierarchy.folders.get(e.folder_id or 0)
                made_in.setdefault(e.object_id, set()).add(kind_of(f) if f else None)
        mine: list[JournalEntry] = []
        for e in entries:
            if e.id not in dav:
                continue
            if e.kind == "folder":
                if e.op == "folder_delete":
                    refs = e.payload.get("upstream") or []
                    ok = any(is_dav_ref(r) and r.get("dav") == self.service for r in refs)
                else:
                    ok = hierarchy.owns_folder(e.object_id)
            elif e.object_id in places:
                folder_id, ref = places[e.object_id]
                if is_dav_ref(ref):
                    ok = (ref or {}).get("dav") == self.service
                elif folder_id in hierarchy.trash:  # deleted before it went up
                    ok = bool(made_in[e.object_id] & self.kinds)
                else:
                    f = hierarchy.folders.get(folder_id)
                    ok = f is not None and kind_of(f) in self.kinds
            else:
                ref = e.payload.get("upstream")
                if is_dav_ref(ref):
                    ok = ref.get("dav") == self.service
                else:
                    f = hierarchy.folders.get(e.folder_id or 0)
                    ok = f is not None and kind_of(f) in self.kinds
            if ok:
                mine.append(e)
        return mine

    async def _owed_deletes(
        self,
        entries: list[JournalEntry],
        synced: Mapping[int, tuple[Collection, dict[str, Any]]],
        hierarchy: DavHierarchy,
    ) -> set[str]:
        """Resources the push is about to delete (items deleted here, or moved out of the
        synced folders, into Deleted Items for one; the old place of a move), which a pull
        must neither fetch again nor count as new."""
        hrefs: set[str] = set()
        ids = {e.object_id for e in entries}
        places = await self.store.dav_refs.places(ids)
        for e in entries:
            ref = e.payload.get("upstream")
            if e.object_id not in places and is_dav_ref(ref):
                hrefs.add(str(ref["href"]))
        for fid, ref in places.values():
            moved = (ref or {}).get("moved_from")
            if moved:
                hrefs.add(str(moved))
            if is_dav_ref(ref) and ref.get("dav") == self.service and fid not in synced:
                # Left for a folder that is no collection of this upstream: the push
                # deletes it there (unless the folder waits for its collection).
                f = hierarchy.folders.get(fid)
                if f is None or fid in hierarchy.trash or kind_of(f) not in self.kinds:
                    hrefs.add(str(ref["href"]))
        return hrefs

    # -- pull -------------------------------------------------------------------------

    async def pull(
        self,
        fid: int,
        collection: Collection,
        ref: dict[str, Any],
        ignore: set[str],
        report: DavReport,
        path: str = "",
    ) -> None:
        token = ref.get("token")
        window = self.window_days(path) if collection.kind == CALENDAR else None
        if ref.get("window") != window:
            # A new calendar window: what it set aside is listed and looked at again.
            await self.store.dav_refs.unskip(collection.href, WINDOW_REASON)
            token = None
        elif (ref.get("ctag") and collection.ctag == ref.get("ctag")) or (
            # a first sync's mark (no CTag was read): good until a listing reads the CTag
            collection.ctag is None
            and collection.modified
            and collection.modified == ref.get("modified")
        ):
            report.paths[collection.href] = "unchanged"
            return
        observed_at = now_filetime()
        async with self.server_turn:
            # A first sync's mark now listed with a CTag: the collection is listed once to
            # check it, and the CTag (read before) is its mark from then on; no token.
            checking = bool(ref.get("modified")) and not ref.get("ctag") and bool(collection.ctag)
            members, removed, new_token, prefetched, linked = await self._survey(
                collection, token, report, need_token=not checking
            )
        members = [m for m in members if m.href not in ignore]
        if removed is not None:
            removed = [h for h in removed if h not in ignore]
        mark = await self.store.sync.journal_mark()  # (read first)
        dirty = await self._changed_here(fid, (i.id for i in linked))
        known = [
            dav_plan.KnownItem(
                item_id=i.id,
                href=str(i.href),
                etag=i.etag,
                dirty=i.id in dirty,
                changed_at=dirty.get(i.id),
                pending=bool((i.upstream or {}).get("pending")),
            )
            for i in linked
            if i.href is not None and i.href not in ignore
        ]
        skipped = {
            h: etag for h, (etag, _) in (await self.store.dav_refs.skipped(collection.href)).items()
        }
        actions = dav_plan.plan_pull(known, members, removed, skipped, self.policy, observed_at)
        by_id = {i.id: i for i in linked}
        await self._apply(
            fid, collection, actions, by_id, report, path, prefetched, (mark, set(dirty))
        )
        await self.store.sync.set_folder_link(
            fid,
            {
                **ref,
                "token": new_token,
                "ctag": collection.ctag,
                "modified": collection.modified,
                "window": window,
            },
        )
        crashpoint.step(f"{collection.href} pulled")

    async def _survey(
        self, collection: Collection, token: str | None, report: DavReport, need_token: bool
    ) -> tuple[
        list[dav_plan.Member],
        list[str] | None,
        str | None,
        dict[str, Fetched] | None,
        list[DavItem],
    ]:
        """What the server has: the members (all of them, or what changed since `token`),
        the removed ones (None: not known, a listing), the token for the next pull, the
        members' data when it came with them, and the cache's linked items."""
        removed: list[str] | None = None
        # Without a token (first pull), the listing is what sync-collection would send,
        # and cheaper to produce; the collection's current token serves the next pull.
        new_token = collection.sync_token
        delta = None
        report.paths[collection.href] = "initial"
        try:
            if token is not None:
                delta = await self.adapter.changes(collection, token)
        except SyncTokenInvalid:
            report.paths[collection.href] = "listing (sync token expired)"
        except (ConnectFailed, AuthFailed):
            raise
        except UpstreamError as exc:
            log.info("%s: no sync-collection (%s); listing", collection.href, exc)
            report.paths[collection.href] = "listing"
        linked = await self.store.dav_refs.linked_to(collection.href)
        if token is None and linked:  # no token kept (see below): what is here is listed
            report.paths[collection.href] = "listing"
        prefetched: dict[str, Fetched] | None = None
        if delta is not None:
            members = [dav_plan.Member(r.href, r.etag) for r in delta.changed]
            removed = list(delta.removed)
            new_token = delta.token
            report.paths[collection.href] = "sync-collection"
        else:
            # A token is asked for before the data, so that what changes after is seen.
            # A first pull in one query does without when the collection has a CTag or a
            # first sync's mark (read before the query): the next pull is skipped while
            # the mark stays, and a change is then found by a listing, which reads the
            # token (a server such as Radicale reads every member to answer either).
            marked = collection.ctag is not None or collection.modified is not None
            if new_token is None and need_token and (linked or not marked):
                new_token = await self._sync_token(collection)
            if not linked:  # everything is to be fetched: one query instead of two passes
                if self.parsers is not None:
                    self.parsers.start()  # ready when the answer is
                prefetched = await self._everything(collection, report)
            if prefetched is not None:
                members = [dav_plan.Member(f.href, f.etag) for f in prefetched.values()]
            else:
                if new_token is None and need_token:
                    new_token = await self._sync_token(collection)
                listed = await self.adapter.listing(collection)
                members = [dav_plan.Member(r.href, r.etag) for r in listed]
        return members, removed, new_token, prefetched, linked

    async def _everything(
        self, collection: Collection, report: DavReport
    ) -> dict[str, Fetched] | None:
        """Every member with its data in one query; None when the server refuses it."""
        try:
            got = await self.adapter.fetch_all(collection)
        except (ConnectFailed, AuthFailed):
            raise
        except UpstreamError as exc:
            log.info("%s: no query for every member (%s); listing", collection.href, exc)
            return None
        if not got:
            # An empty answer is listed again: a server that read the empty address book
            # filter as "match nothing" must not make a full collection look empty.
            return None
        report.paths[collection.href] = "initial (query)"
        return {f.href: f for f in got}

    async def _sync_token(self, collection: Collection) -> str | None:
        try:
            return await self.adapter.sync_token(collection)
        except (ConnectFailed, AuthFailed):
            raise
        except UpstreamError as exc:
            log.info("%s: no sync token (%s)", collection.href, exc)
            return None

    async def _apply(
        self,
        fid: int,
        collection: Collection,
        actions: list[dav_plan.PullAction],
        linked: dict[int, DavItem],
        report: DavReport,
        path: str,
        prefetched: dict[str, Fetched] | None = None,
        planned_at: tuple[int, Set[int]] = (0, frozenset()),
    ) -> None:
        """Apply a pull's plan; `planned_at`: the journal's mark before the plan was
        made, and the items it was made with as changed here."""
        mark, dirty = planned_at
        fetch: dict[str, dav_plan.Fetch] = {}
        unskip: list[str] = []
        links: dict[int, dict[str, Any] | None] = {}
        for action in actions:
            if isinstance(action, dav_plan.DeleteLocal):
                again = await self._delete(action, None if action.item_id in dirty else mark)
                if again is None:
                    crashpoint.step("server deletion applied")
                    report.deleted += 1
                    continue
                action = again
            if isinstance(action, dav_plan.Fetch):
                fetch[action.href] = action
            elif isinstance(action, dav_plan.SetEtag):
                item = linked[action.item_id]
                up = {k: v for k, v in (item.upstream or {}).items() if k != "pending"}
                links[action.item_id] = {**up, "etag": action.etag}
                if action.conflict:
                    report.conflicts += 1
                    conflicts.publish(
                        self.store,
                        action.item_id,
                        None,
                        item.folder_id,
                        "local wins",
                        collection=collection.href,
                    )
            elif isinstance(action, dav_plan.KeepConflict):
                await conflicts.keep_aside(
                    self.store,
                    action.item_id,
                    "deleted on the server, changed here",
                    collection=collection.href,
                )
                report.conflicts += 1
            elif isinstance(action, dav_plan.Unlink):
                links[action.item_id] = None
                report.conflicts += 1
            elif isinstance(action, dav_plan.Unskip):
                unskip.append(action.href)
        await self.store.sync.set_item_links(links)
        await self.store.dav_refs.set_skipped(collection.href, {}, unskip)
        if fetch:
            await self._fetch(fid, collection, fetch, linked, report, path, prefetched)

    async def _delete(
        self, action: dav_plan.DeleteLocal, mark: int | None
    ) -> dav_plan.KeepConflict | dav_plan.Unlink | None:
        """Apply the deletion of a resource on the server to its item: None once done. An
        item that was not changed here when the plan was made (after the journal's `mark`)
        is deleted only if it still is not; if it is, the conflict it then is
        (`conflict_after_plan`) is returned: kept aside (keep-both) or unlinked (its
        version wins and goes up again); under server-wins the deletion is done."""
        try:
            with contextlib.suppress(NotFound):  # deleted here meanwhile
                await self.store.items.delete(
                    action.item_id, hard=True, origin=UPSTREAM, unchanged_since=mark
                )
        except Conflict:  # changed here since the plan
            conflict = dav_plan.conflict_after_plan(self.policy)
            if conflict == "keep-both":
                return dav_plan.KeepConflict(action.item_id)
            if conflict is None:
                return dav_plan.Unlink(action.item_id)
            with contextlib.suppress(NotFound):
                await self.store.items.delete(action.item_id, hard=True, origin=UPSTREAM)
        return None

    async def _fetch(
        self,
        fid: int,
        collection: Collection,
        wanted: dict[str, dav_plan.Fetch],
        linked: dict[int, DavItem],
        report: DavReport,
        path: str,
        prefetched: dict[str, Fetched] | None,
    ) -> None:
        window = self.window_days(path) if collection.kind == CALENDAR else None
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=window) if window is not None else None
        pending_by_uid = {
            i.uid: i
            for i in linked.values()
            if i.uid is not None and (i.upstream or {}).get("pending")
        }
        skipped: dict[str, tuple[str | None, str]] = {}
        # A batch is written while the next one is fetched and parsed.
        writing: asyncio.Task[None] | None = None

        async def write(items: list[NewItem]) -> None:
            nonlocal writing
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(self._create(fid, items, report))

        try:
            source = self._source(collection, list(wanted), prefetched)
            await self._fetch_into(
                fid,
                source,
                collection,
                wanted,
                pending_by_uid,
                cutoff,
                skipped,
                report,
                write,
                all_arrived=prefetched is not None,
            )
        finally:
            if writing is not None:
                await writing
        await self.store.dav_refs.set_skipped(collection.href, skipped)

    async def _source(
        self, collection: Collection, hrefs: list[str], prefetched: dict[str, Fetched] | None
    ) -> AsyncIterator[Fetched]:
        """The members' data: taken from `prefetched` (each let go once handed out), the
        rest by multiget."""
        rest = hrefs
        if prefetched is not None:
            rest = []
            for href in hrefs:
                got = prefetched.pop(href, None)
                if got is None:
                    rest.append(href)
                else:
                    yield got
        if rest:
            async for got in self.adapter.fetch(collection, rest):
                yield got

    async def _fetch_into(
        self,
        fid: int,
        source: AsyncIterator[Fetched],
        collection: Collection,
        wanted: dict[str, dav_plan.Fetch],
        pending_by_uid: dict[str, DavItem],
        cutoff: dt.datetime | None,
        skipped: dict[str, tuple[str | None, str]],
        report: DavReport,
        write: Callable[[list[NewItem]], Awaitable[None]],
        *,
        all_arrived: bool,
    ) -> None:
        batch: list[NewItem] = []
        unlinked: dict[str, int] | None = None

        async def take(got: Fetched, parsed: Parsed) -> None:
            nonlocal batch, unlinked
            action = wanted[got.href]
            if isinstance(parsed, str):
                report.malformed.append(f"{got.href}: {parsed}")
                skipped[got.href] = (got.etag, f"malformed: {parsed}"[:500])
                return
            new = parsed
            assert got.data is not None
            uid = dav_content.uid_of(got.data)
            new.upstream = {
                "dav": self.service,
                "href": got.href,
                "etag": got.etag,
                "dav_uid": uid,
                "collection": collection.href,
            }
            if action.item_id is not None:
                await self._replace(fid, action, new, collection, report)
                return
            mine = pending_by_uid.pop(uid, None) if uid else None
            if mine is not None:
                up = {k: v for k, v in (mine.upstream or {}).items() if k != "pending"}
                await self.store.sync.set_item_links(
                    {mine.id: {**up, "href": got.href, "etag": got.etag}}
                )
                return
            if uid:
                # Made here with this UID and not uploaded yet: the same item, linked (its
                # pending changes then go up over this version).
                if unlinked is None:
                    unlinked = await self.store.dav_refs.unlinked_uids(fid, dav_content.uid_of)
                local_id = unlinked.pop(uid, None)
                if local_id is not None:
                    await self.store.sync.set_item_links({local_id: new.upstream})
                    return
            batch.append(new)
            if len(batch) >= CREATE_BATCH:
                await write(batch)
                batch = []

        # Resources are parsed in chunks; with worker processes, a few chunks at once,
        # taken in the order they came.
        parser = ResourceParser(len(wanted), all_arrived=all_arrived, shared=self.parsers)
        ahead = 2 * parser.workers if parser.parallel else 0
        flight: deque[tuple[list[Fetched], asyncio.Future[list[Parsed]]]] = deque()
        chunk: list[Fetched] = []

        def launch() -> None:
            nonlocal chunk
            datas = [g.data or b"" for g in chunk]
            flight.append((chunk, asyncio.ensure_future(parser.parse(collection.kind, datas))))
            chunk = []

        async def land() -> None:
            done, parsed = flight.popleft()
            for got, one in zip(done, await parsed, strict=True):
                await take(got, one)
            # Parsed here, a chunk holds the loop for a while: let it read the answers
            # coming in and move the store writes on before the next one.
            await asyncio.sleep(0)

        try:
            async for got in source:
                action = wanted.get(got.href)
                if action is None:
                    continue
                if got.data is None:
                    log.info("%s: no data from the server (%s)", got.href, got.error or "absent")
                    continue
                if cutoff is not None and action.item_id is None:
                    end = dav_content.series_end(got.data)
                    if end is not None and end < cutoff:
                        skipped[got.href] = (got.etag, WINDOW_REASON)
                        report.outside_window += 1
                        continue
                chunk.append(got)
                if len(chunk) >= PARSE_CHUNK:
                    launch()
                    while len(flight) > ahead:
                        await land()
            if chunk:
                launch()
            while flight:
                await land()
        finally:
            for _, parsed in flight:
                parsed.cancel()
            if flight:
                await asyncio.gather(*(p for _, p in flight), return_exceptions=True)
            parser.close()
        if batch:
            await write(batch)

    async def _create(self, fid: int, batch: list[NewItem], report: DavReport) -> None:
        try:
            await self.store.items.create_many(fid, batch, origin=UPSTREAM)
            report.fetched += len(batch)
            crashpoint.step(f"{len(batch)} new items stored")
            return
        except StoreError:
            pass
        for new in batch:  # one refused item must not cost the others
            try:
                await self.store.items.create(fid, new, origin=UPSTREAM)
                report.fetched += 1
            except StoreError as exc:
                href = (new.upstream or {}).get("href")
                report.malformed.append(f"{href}: not stored: {exc}")

    async def _changed_here(self, fid: int, item_ids: Iterable[int]) -> dict[int, int]:
        """Of the items (linked to the collection of folder `fid`), those with local
        changes → the FILETIME of the latest. One whose only pending changes are moves that
        left it in `fid` (away and back) has none."""
        dirty = await self.store.sync.dirty_times()
        ids = set(item_ids) & set(dirty)
        if not ids:
            return {}
        ops: dict[int, set[str]] = {}
        for e in await self.store.sync.journal():
            if e.kind == "item" and e.object_id in ids:
                ops.setdefault(e.object_id, set()).add(e.op)
        moved_only = {i for i in ids if ops.get(i) == {"item_move"}}
        home = await self.store.dav_refs.places(moved_only) if moved_only else {}
        back = {i for i, (folder_id, _) in home.items() if folder_id == fid}
        return {i: dirty[i] for i in ids - back}

    async def _local_wins(
        self, item_id: int, new: NewItem, collection: Collection, report: DavReport
    ) -> None:
        """Keep the local version of an item over the server's `new` one: its reference
        takes the server's ETag, so the push writes it over that version (If-Match)."""
        item = await self.store.sync.item(item_id)
        if item is None or item.upstream is None or new.upstream is None:
            return
        up = {k: v for k, v in item.upstream.items() if k != "pending"}
        await self.store.sync.set_item_links({item_id: {**up, "etag": new.upstream["etag"]}})
        report.conflicts += 1
        conflicts.publish(
            self.store, item_id, None, item.folder_id, "local wins", collection=collection.href
        )

    async def _replace(
        self,
        fid: int,
        action: dav_plan.Fetch,
        new: NewItem,
        collection: Collection,
        report: DavReport,
    ) -> None:
        assert action.item_id is not None
        item_id = action.item_id
        for attempt in range(1, conflicts.WRITE_ATTEMPTS + 1):
            mark = await self.store.sync.journal_mark()  # (read first)
            if action.conflict is None and (
                attempt > 1 or item_id in await self._changed_here(fid, [item_id])
            ):
                # changed here since the plan (while the server's version was on its way)
                conflict = dav_plan.conflict_after_plan(self.policy)
                if conflict is None:
                    await self._local_wins(item_id, new, collection, report)
                    return
                action = dataclasses.replace(action, conflict=conflict)
            if action.conflict is not None:
                # The server's version wins in place: in the collection's folder, where a
                # local move (dropped with the rest of the local changes) may have taken it.
                await conflicts.settle(
                    self.store,
                    item_id,
                    "changed here and on the server",
                    keep=action.conflict == "keep-both",
                    back_to=fid,
                    collection=collection.href,
                )
                crashpoint.step(f"{action.href}: conflict settled")
            try:
                # (Conflict if it was changed here since it was looked at, or since its
                # conflict was settled: it is settled again)
                await self.store.dav.replace(item_id, new, origin=UPSTREAM, unchanged_since=mark)
            except Conflict:
                if attempt == conflicts.WRITE_ATTEMPTS:
                    raise
                action = dataclasses.replace(action, conflict=None)
                continue
            except StoreError as exc:
                report.malformed.append(f"{action.href}: not stored: {exc}")
                return
            break
        await self.store.sync.set_item_links({item_id: new.upstream})
        crashpoint.step(f"{action.href}: server change applied")
        if action.conflict is not None:
            report.conflicts += 1
            if action.conflict != "keep-both":
                folder = await self.store.queries.folder_of(item_id)
                conflicts.publish(
                    self.store,
                    item_id,
                    None,
                    folder,
                    "changed here and on the server",
                    collection=collection.href,
                )
        else:
            report.updated += 1
