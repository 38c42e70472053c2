"""Journal replay for a DAV upstream: each item with pending local changes is brought to its
current local state on the server (`dav_plan.plan_push`), oldest change first.

- create: PUT If-None-Match: * at <UID>.ics / <UID>.vcf. The reference is written first,
  marked pending, so that a run cut short after the server stored the resource finds it
  again (by href, or by UID on the next pull) instead of uploading a duplicate. A 412
  means the name is taken: our own earlier upload (same UID) is linked and updated.
- update: PUT If-Match with the stored ETag; a 412 is a conflict, settled by the policy.
- delete: DELETE If-Match; a move between collections is PUT new + DELETE old.

An entry leaves the journal only after the server confirmed what it asked for.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from bridge.store.core import UPSTREAM
from bridge.store.dav_refs import DavItem, is_dav_ref
from bridge.store.errors import Conflict, StoreError
from bridge.store.props import now_filetime
from bridge.store.store import Store
from bridge.store.syncstate import JournalEntry
from bridge.sync import conflicts, crashpoint, dav_content, dav_plan
from bridge.sync.dav_hierarchy import DavHierarchy
from bridge.sync.dav_report import DavReport
from bridge.sync.dav_scope import kind_of
from bridge.upstream import dav_href
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import (
    Collection,
    DavAdapter,
    Fetched,
    PreconditionFailed,
    ResourceGone,
)

log = logging.getLogger(__name__)

Synced = dict[int, tuple[Collection, dict[str, Any]]]


class Postpone(Exception):
    """The item cannot be pushed yet (its folder has no collection yet)."""


class DavPusher:
    def __init__(
        self, store: Store, adapter: DavAdapter, service: str, kinds: frozenset[str], policy: str
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.service = service
        self.kinds = kinds
        self.policy = policy
        self.collections: dict[str, Collection] = {}
        self.synced: Synced = {}
        self.written: set[str] = set()  # collections this run wrote to
        self.relist: set[str] = set()  # collections whose sync token is to go

    async def run(
        self,
        entries: list[JournalEntry],
        synced: Synced,
        hierarchy: DavHierarchy,
        report: DavReport,
    ) -> None:
        self.collections = {c.href: c for c, _ in synced.values()}
        self.synced = synced
        groups: dict[int, list[JournalEntry]] = {}
        for e in entries:
            groups.setdefault(e.object_id, []).append(e)
        try:
            for item_id, group in groups.items():
                try:
                    await self._push(item_id, group, synced, hierarchy, report)
                except Postpone:
                    continue
                except (ConnectFailed, AuthFailed):
                    raise
                except (UpstreamError, dav_content.BadResource, StoreError) as exc:
                    log.warning("item %s not pushed: %s", item_id, exc)
                    report.failed.append(f"{self.store.ids.api_id('item', item_id)}: {exc}")
                    continue
                await self.store.sync.remove_journal([e.id for e in group])
                crashpoint.step(f"DAV journal entries of item {item_id} confirmed")
                report.pushed += 1
        finally:
            await self._drop_marks()

    async def _push(
        self,
        item_id: int,
        group: list[JournalEntry],
        synced: Synced,
        hierarchy: DavHierarchy,
        report: DavReport,
    ) -> None:
        item = await self.store.dav_refs.item(item_id)
        if item is not None and item.associated and not is_dav_ref(item.upstream):
            return  # folder-associated items (views, settings) stay local
        ref_data: dict[str, Any] | None = None
        if item is not None and is_dav_ref(item.upstream):
            ref_data = item.upstream
        elif item is None:
            for e in reversed(group):
                up = e.payload.get("upstream")
                if is_dav_ref(up):
                    ref_data = up
                    break
        target: Collection | None = None
        if item is not None:
            if item.folder_id in synced:
                target = synced[item.folder_id][0]
            else:
                f = hierarchy.folders.get(item.folder_id)
                if (
                    f is not None
                    and item.folder_id not in hierarchy.trash
                    and kind_of(f) in self.kinds
                ):
                    raise Postpone
        ref = _ref(ref_data)
        content = any(e.op in ("item_create", "item_update") for e in group)
        actions = dav_plan.plan_push(
            ref, item is not None, target.href if target else None, content
        )
        for action in actions:
            if isinstance(action, dav_plan.Create):
                self.written.add(dav_href.as_collection(action.collection))
            else:
                self.written.add(_parent(action.href))
        link: dict[str, Any] | None = ref_data
        for action in actions:
            if isinstance(action, dav_plan.Create):
                assert item is not None and target is not None
                link = await self._create(item, target, ref, report)
                if link is None:
                    return  # settled as a conflict
            elif isinstance(action, dav_plan.Update):
                assert item is not None and target is not None and ref is not None
                link = await self._update(item, target, ref, report)
                if link is None:
                    return
            elif isinstance(action, dav_plan.Delete):
                deleted = await self._delete(action, report)
                moved = link is not None and link.get("moved_from") == action.href
                if not deleted and moved and item is not None and link is not None:
                    await self._undo_move(item, link)
                    return
                if link is not None and link.get("moved_from") == action.href:
                    link = {k: v for k, v in link.items() if k not in ("moved_from", "moved_etag")}
                elif link is not None and link.get("href") == action.href:
                    link = None
        if item is not None and link is not ref_data:
            await self.store.sync.set_item_links({item.id: link})

    # -- create -----------------------------------------------------------------------

    async def _create(
        self,
        item: DavItem,
        target: Collection,
        ref: dav_plan.ItemRef | None,
        report: DavReport,
    ) -> dict[str, Any] | None:
        kind = target.kind
        planned = (ref.uid if ref is not None else None) or str(uuid.uuid4())
        data = await dav_content.upload_bytes(self.store, item.id, kind, planned)
        uid = dav_content.uid_of(data) or planned
        name = dav_content.resource_name(uid, kind)
        href = dav_href.member(target.href, name)
        intent: dict[str, Any] = {
            "dav": self.service,
            "href": href,
            "etag": None,
            "dav_uid": uid,
            "collection": target.href,
            "pending": True,
        }
        if ref is not None and ref.moved_from is not None:
            intent["moved_from"], intent["moved_etag"] = ref.moved_from, ref.moved_etag
        elif ref is not None and not ref.pending and ref.collection != target.href:
            intent["moved_from"], intent["moved_etag"] = ref.href, ref.etag
        await self.store.sync.set_item_links({item.id: intent})
        crashpoint.step(f"upload of {href} about to start")
        try:
            res = await self.adapter.put(target, name, data, create=True)
            crashpoint.step(f"{href} created on the server")
        except PreconditionFailed:
            got = await self._get(target, href)
            if got is None or got.data is None:
                raise UpstreamError(f"PUT {href}: 412, but the resource cannot be read") from None
            if dav_content.uid_of(got.data) != uid:
                raise UpstreamError(
                    f"PUT {href}: another resource of the same name exists"
                ) from None
            # Our own upload from a run cut short: link it, then bring it up to date.
            existing = dav_plan.ItemRef(href, got.etag, target.href, uid)
            await self.store.sync.set_item_links({item.id: {**intent, "etag": got.etag}})
            linked = await self._update(item, target, existing, report, data=data)
            if linked is None:
                return None
            return {**linked, **_moved(intent)}
        etag = res.etag or await self._etag(target, res.href)
        return {
            "dav": self.service,
            "href": res.href,
            "etag": etag,
            "dav_uid": uid,
            "collection": target.href,
            **_moved(intent),
        }

    # -- update -----------------------------------------------------------------------

    async def _update(
        self,
        item: DavItem,
        target: Collection,
        ref: dav_plan.ItemRef,
        report: DavReport,
        *,
        data: bytes | None = None,
    ) -> dict[str, Any] | None:
        """PUT If-Match; returns the new reference, or None when a conflict settled the
        item otherwise (its entries are then gone from the journal)."""
        kind = target.kind
        if data is None:
            data = await dav_content.upload_bytes(self.store, item.id, kind, ref.uid or "")
        name = dav_href.last_segment(ref.href)
        try:
            res = await self.adapter.put(target, name, data, etag=ref.etag)
            crashpoint.step(f"{ref.href} updated on the server")
        except PreconditionFailed:
            return await self._conflict(item, target, ref, data, report)
        etag = res.etag or await self._etag(target, res.href)
        return {
            "dav": self.service,
            "href": res.href,
            "etag": etag,
            "dav_uid": ref.uid or dav_content.uid_of(data),
            "collection": target.href,
        }

    async def _conflict(
        self,
        item: DavItem,
        target: Collection,
        ref: dav_plan.ItemRef,
        data: bytes,
        report: DavReport,
    ) -> dict[str, Any] | None:
        """412 on an update: the server's version changed since the last sync."""
        report.conflicts += 1
        got = await self._get(target, ref.href)
        dirty = await self.store.sync.dirty_times()
        known = dav_plan.KnownItem(item.id, ref.href, ref.etag, True, dirty.get(item.id))
        wins = dav_plan.local_wins(self.policy, known, now_filetime())
        if got is None or got.data is None:
            # Deleted on the server meanwhile.
            if wins:
                res = await self.adapter.put(
                    target, dav_href.last_segment(ref.href), data, create=True
                )
                etag = res.etag or await self._etag(target, res.href)
                return {**_base(self.service, ref, target), "href": res.href, "etag": etag}
            if self.policy == "keep-both":
                await conflicts.keep_aside(
                    self.store,
                    item.id,
                    "deleted on the server, changed here",
                    collection=target.href,
                )
                return None
            await self.store.sync.set_item_links({item.id: None})
            await self.store.items.delete(item.id, hard=True, origin=UPSTREAM)
            await self.store.sync.forget_item(item.id)
            return None
        if wins:
            res = await self.adapter.put(
                target, dav_href.last_segment(ref.href), data, etag=got.etag
            )
            etag = res.etag or await self._etag(target, res.href)
            return {**_base(self.service, ref, target), "href": res.href, "etag": etag}
        new = dav_content.item_from_resource(target.kind, got.data)
        for attempt in range(1, conflicts.WRITE_ATTEMPTS + 1):
            mark = await self.store.sync.journal_mark()  # (read first)
            await conflicts.settle(  # the local version aside, its changes dropped: one step
                self.store,
                item.id,
                "changed here and on the server",
                keep=self.policy == "keep-both",
                back_to=item.folder_id,
                collection=target.href,
            )
            try:
                await self.store.dav.replace(item.id, new, origin=UPSTREAM, unchanged_since=mark)
            except Conflict:  # changed here again since it was settled: settled again
                if attempt == conflicts.WRITE_ATTEMPTS:
                    raise
                continue
            break
        await self.store.sync.set_item_links(
            {item.id: {**_base(self.service, ref, target), "etag": got.etag}}
        )
        self.store.bus.publish(
            [
                (
                    "sync_conflict",
                    {
                        "id": item.id,
                        "folder_id": item.folder_id,
                        "collection": target.href,
                        "reason": "changed here and on the server: the server's version wins",
                    },
                )
            ]
        )
        return None

    # -- delete -----------------------------------------------------------------------

    async def _delete(self, action: dav_plan.Delete, report: DavReport) -> bool:
        """DELETE If-Match; False when the server's newer version stays (a 412)."""
        try:
            await self.adapter.delete(action.href, etag=action.etag)
            crashpoint.step(f"{action.href} deleted on the server")
        except ResourceGone:
            return True
        except PreconditionFailed:
            report.conflicts += 1
            if self.policy == "local-wins":
                await self.adapter.delete(action.href)
                return True
            # The server's newer version stays and comes back on the next pull, which
            # lists the collection: the pull before skipped it (a delete was owed).
            self.relist.add(_parent(action.href))
            return False
        return True

    async def _undo_move(self, item: DavItem, link: dict[str, Any]) -> None:
        """A move whose original changed on the server meanwhile (its DELETE met a 412):
        the server's version stays where it is (and comes back with the next pull), so
        the copy just made in the other collection goes, lest the UID be in both; the
        local version is kept in Sync Issues/Conflicts (keep-both) or dropped."""
        with contextlib.suppress(ResourceGone, PreconditionFailed):
            await self.adapter.delete(str(link["href"]), etag=link.get("etag"))
        if self.policy == "keep-both":
            await conflicts.keep_aside(
                self.store,
                item.id,
                "moved here and changed on the server",
                collection=str(link.get("collection")),
            )
            return
        await self.store.sync.set_item_links({item.id: None})
        await self.store.sync.forget_item(item.id)
        with contextlib.suppress(StoreError):
            await self.store.items.delete(item.id, hard=True, origin=UPSTREAM)

    async def _drop_marks(self) -> None:
        """The change marks the pull kept for the collections written to are from before
        the writes: a server whose CTag or last-modified follows the members' content
        (Radicale's) gives the old one again when another client undoes a write (deletes
        a resource made here), and the next pull would skip the collection. They are
        dropped, and so is the sync token of a collection to list again."""
        if not self.written and not self.relist:
            return
        refs = await self.store.dav_refs.folder_refs()
        for fid, (collection, _) in self.synced.items():
            ref = refs.get(fid)
            href = dav_href.as_collection(collection.href)
            if ref is None or (href not in self.written and href not in self.relist):
                continue
            marks: dict[str, Any] = {"ctag": None, "modified": None}
            if href in self.relist:
                marks["token"] = None
            await self.store.sync.set_folder_link(fid, {**ref, **marks})

    # -- helpers ----------------------------------------------------------------------

    async def _get(self, collection: Collection, href: str) -> Fetched | None:
        async for got in self.adapter.fetch(collection, [href]):
            if got.data is not None:
                return got
        return None

    async def _etag(self, collection: Collection, href: str) -> str | None:
        """The ETag of a resource whose PUT answer carried none."""
        got = await self._get(collection, href)
        return got.etag if got is not None else None


def _parent(href: str) -> str:
    """The collection of a resource."""
    return dav_href.as_collection(href.rstrip("/").rsplit("/", 1)[0])


def _moved(ref: dict[str, Any]) -> dict[str, Any]:
    return {k: ref[k] for k in ("moved_from", "moved_etag") if k in ref}


def _base(service: str, ref: dav_plan.ItemRef, target: Collection) -> dict[str, Any]:
    return {
        "dav": service,
        "href": ref.href,
        "etag": ref.etag,
        "dav_uid": ref.uid,
        "collection": target.href,
    }


def _ref(data: dict[str, Any] | None) -> dav_plan.ItemRef | None:
    if not data or not data.get("href"):
        return None
    return dav_plan.ItemRef(
        href=str(data["href"]),
        etag=data.get("etag"),
        collection=str(data.get("collection") or ""),
        uid=data.get("dav_uid"),
        pending=bool(data.get("pending")),
        moved_from=data.get("moved_from"),
        moved_etag=data.get("moved_etag"),
    )
