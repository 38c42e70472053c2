"""The views of one store: sources (contents in SQL; hierarchy, recipients and attachments
in the reference evaluator), per-token limits and idle expiry, and table notifications
(`table_modified` events on the store's bus) when the rows of an open view change."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from bridge.model import evaluate, tags
from bridge.model.proptypes import PropType
from bridge.model.restrictions import Restriction
from bridge.store import db, render, texts
from bridge.store import props as P
from bridge.store.events import Event, Subscription
from bridge.store.store import Store
from bridge.store.tables import contents
from bridge.store.tables.compile import Compiler, install_functions
from bridge.store.tables.contents import Leaf
from bridge.store.tables.spec import ViewSpec, is_mvi, mv_tag
from bridge.store.tables.view import View

log = logging.getLogger(__name__)

MAX_VIEWS_PER_TOKEN = 256
IDLE_SECONDS = 30 * 60


class ContentsSource:
    def __init__(
        self, mgr: ViewManager, folder_id: int, associated: bool, search: bool = False
    ) -> None:
        self.mgr = mgr
        self.folder_id: int | None = folder_id
        self.item_id: int | None = None
        self.associated = associated
        self.search = search  # a search folder: its linked items

    async def leaves(self, spec: ViewSpec) -> list[Leaf]:
        assert self.folder_id is not None
        limit = evaluate.limit_of(spec.restriction)
        return await contents.leaves(
            self.mgr.conn,
            self.mgr.compiler,
            self.folder_id,
            self.associated,
            spec,
            limit,
            self.search,
        )

    def paged(self, spec: ViewSpec) -> contents.ContentsQuery | None:
        """The SQL that reads this view on demand, when its sort order allows it."""
        assert self.folder_id is not None
        if not contents.pageable(spec):
            return None
        return contents.ContentsQuery(
            self.mgr.conn, self.mgr.compiler, self.folder_id, self.associated, spec, self.search
        )

    async def props(self, ids: list[int]) -> dict[int, dict[int, Any]]:
        return await contents.item_props(self.mgr.conn, self.mgr.store.ids, ids)

    async def find(self, restriction: Restriction) -> set[int]:
        assert self.folder_id is not None
        return await contents.matching_ids(
            self.mgr.conn,
            self.mgr.compiler,
            self.folder_id,
            self.associated,
            restriction,
            self.search,
        )


class ListSource:
    """Small tables filtered and sorted by the reference evaluator."""

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[int, evaluate.Row]]],
        folder_id: int | None = None,
        item_id: int | None = None,
    ) -> None:
        self.load = load
        self.folder_id = folder_id
        self.item_id = item_id

    async def leaves(self, spec: ViewSpec) -> list[Leaf]:
        rows = await self.load()
        r = spec.restriction
        out: list[tuple[Any, Leaf]] = []
        for rid, row in rows.items():
            if r is not None and not evaluate.matches(r, row):
                continue
            instances: list[tuple[int, Any]] = [(0, None)]
            if spec.mvi is not None:
                mv = evaluate.values_of(row.props, mv_tag(spec.mvi))
                instances = list(enumerate(mv)) if mv else [(0, None)]
            for inst, mvalue in instances:
                values = tuple(
                    mvalue if is_mvi(t) else evaluate.first_value(row.props, t)
                    for t in [*(t for t, _ in spec.keys), *spec.aggregates]
                )
                key = evaluate.sort_key(values[: len(spec.keys)], spec.keys, rid, inst)
                unread = bool(row.props.get(tags.CONTENT_UNREAD))
                out.append((key, Leaf(rid, inst, unread, values)))
        out.sort(key=lambda pair: pair[0])
        limit = evaluate.limit_of(r)
        return [leaf for _, leaf in (out if limit is None else out[:limit])]

    async def props(self, ids: list[int]) -> dict[int, dict[int, Any]]:
        rows = await self.load()
        return {i: dict(rows[i].props) for i in ids if i in rows}

    async def find(self, restriction: Restriction) -> set[int]:
        rows = await self.load()
        return {rid for rid, row in rows.items() if evaluate.matches(restriction, row)}


class ViewManager:
    def __init__(self, store: Store, conn: aiosqlite.Connection) -> None:
        self.store = store
        self.conn = conn
        keywords = store.core.named.tag_for(P.KEYWORDS, PropType.UNICODE | 0x1000)
        self.compiler = Compiler(store.ids, keywords)
        self.views: dict[str, View] = {}
        self._by_owner: dict[int, collections.OrderedDict[str, None]] = {}
        self._sub: Subscription = store.bus.subscribe()
        self._seen = store.bus.last_seq
        self._lock = asyncio.Lock()
        self._applied = asyncio.Condition(self._lock)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, store: Store) -> ViewManager:
        conn = await db.connect(store.core.path, readonly=True)
        await install_functions(conn, store.ids)
        await texts.install(conn, store.core.packs)
        mgr = cls(store, conn)
        mgr._task = asyncio.ensure_future(mgr._watch())
        return mgr

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sub.close()
        await self.conn.close()

    # -- sources ----------------------------------------------------------------------

    def contents(self, folder_id: int, associated: bool, search: bool = False) -> ContentsSource:
        return ContentsSource(self, folder_id, associated, search)

    def hierarchy(self, folder_id: int, recursive: bool, visible: set[int] | None) -> ListSource:
        store = self.store

        async def load() -> dict[int, evaluate.Row]:
            wanted = await store.folders.descendants(folder_id) if recursive else None
            out = {}
            for f in await store.folders.all():
                inside = f.id in wanted if wanted is not None else f.parent_id == folder_id
                if not inside or f.id == folder_id or (visible is not None and f.id not in visible):
                    continue
                out[f.id] = evaluate.Row(render.folder_props(store.ids, store.folders.roles, f))
            return out

        return ListSource(load, folder_id=folder_id)

    def sub_objects(self, item_id: int, folder_id: int, kind: str) -> ListSource:
        queries = self.store.queries

        async def load() -> dict[int, evaluate.Row]:
            if kind == "recipients":
                docs = await queries.recipients(item_id)
                return {int(d.get(tags.ROWID, n)): evaluate.Row(d) for n, d in enumerate(docs)}
            docs = await queries.attachments(item_id)
            return {int(d.get(tags.ATTACH_NUM, n)): evaluate.Row(d) for n, d in enumerate(docs)}

        return ListSource(load, folder_id=folder_id, item_id=item_id)

    # -- views ------------------------------------------------------------------------

    async def create(self, owner: int, source: Any, spec: ViewSpec) -> View:
        await self.catch_up()
        self._expire()
        view = View(secrets.token_urlsafe(12), owner, source, spec)
        await view.refresh()
        view.used = time.monotonic()
        owned = self._by_owner.setdefault(owner, collections.OrderedDict())
        while len(owned) >= MAX_VIEWS_PER_TOKEN:
            oldest, _ = owned.popitem(last=False)
            self.views.pop(oldest, None)
        owned[view.id] = None
        self.views[view.id] = view
        return view

    async def get(self, vid: str, owner: int) -> View | None:
        await self.catch_up()
        view = self.views.get(vid)
        if view is None or view.owner != owner:
            return None
        if view.dirty:
            await view.refresh()
        view.used = time.monotonic()
        self._by_owner[owner].move_to_end(vid)
        return view

    def release(self, vid: str, owner: int) -> bool:
        view = self.views.get(vid)
        if view is None or view.owner != owner:
            return False
        del self.views[vid]
        self._by_owner[owner].pop(vid, None)
        return True

    def _expire(self) -> None:
        limit = time.monotonic() - IDLE_SECONDS
        for vid in [v.id for v in self.views.values() if v.used < limit]:
            self.release(vid, self.views[vid].owner)

    # -- notifications ----------------------------------------------------------------

    async def catch_up(self) -> None:
        """Apply every event published so far (a read right after a write sees it)."""
        target = self.store.bus.last_seq
        # Only the watcher reads the subscription (two readers of one queue could leave
        # this one waiting for an event the other took); wait until it has applied them.
        async with self._applied:
            await self._applied.wait_for(lambda: self._seen >= target)

    async def _watch(self) -> None:
        while True:
            event = await self._sub.get()
            async with self._applied:
                self._seen = max(self._seen, event.seq)
                await self._apply([event])
                self._applied.notify_all()

    async def _apply(self, events: list[Event]) -> None:
        affected: dict[str, set[int]] = {}
        for event in events:
            if event.type == "table_modified":
                continue
            for view in self.views.values():
                if _touches(view, event):
                    ids = affected.setdefault(view.id, set())
                    if isinstance(event.data.get("id"), int):
                        ids.add(event.data["id"])
        out: list[tuple[str, dict[str, Any]]] = []
        for vid, modified in affected.items():
            view = self.views[vid]
            try:
                changes = await view.refresh(modified)
            except Exception:
                log.exception("view %s could not be refreshed", vid)
                continue
            for change in changes:
                data = {"view": vid, **change, "folder_id": view.source.folder_id}
                for k in ("instance_key", "prior"):
                    if k in data:
                        data[k] = _b64(data[k])
                out.append(("table_modified", data))
        if out:
            self.store.bus.publish(out)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _touches(view: View, event: Event) -> bool:
    src = view.source
    if event.type == "resync":
        return True
    data = event.data
    if src.item_id is not None:
        return data.get("id") == src.item_id
    if isinstance(src, ListSource):
        return data.get("kind") == "folder"
    return src.folder_id in (data.get("folder_id"), data.get("old_folder_id"))
