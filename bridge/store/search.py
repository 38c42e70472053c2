"""Full-text search: the background indexer and the search query.

The index (migration 0005) trails the items by change number. After each commit the store
wakes the indexer, which catches up in small SYSTEM transactions: the items whose change
number lies in the next window are re-indexed (old entry out, new one in) and
`search_state.cn` moves to the end of the window. Deleted items leave the index in their
own transaction (a trigger). So an item whose change number is at most `search_state.cn`
has an entry that matches its current text; a search waits (bounded) until the index has
reached the last commit before it runs.

Indexed text is case-folded (`str.casefold`), then tokenized by FTS5's unicode61."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.model import tags
from bridge.store import blobs, search_keys, search_results, texts
from bridge.store import props as P
from bridge.store.core import SYSTEM, StoreCore
from bridge.store.queries import ItemView
from bridge.store.search_query import SearchQuery

log = logging.getLogger(__name__)

# Change numbers per indexing transaction at most, and the text it holds in memory: the
# window ends early (at a change number) once its items' text passes WINDOW_BYTES. Larger
# transactions make fewer, larger index segments to merge.
WINDOW = 2000
WINDOW_BYTES = 4 << 20
DEBOUNCE = 0.05  # s between a wake-up and indexing, so bulk writes come in batches
# While other writers keep committing, indexing waits until they pause this long (unless a
# search is waiting for it, or it has waited MAX_DEFER already): a bulk import is not slowed
# down by its own indexing, and a steady trickle of writes cannot starve the index. During a
# bulk write (`bulk()`: the pull of a sync run) it waits for its end, unless a search waits.
YIELD_TO_WRITERS = 1.0
MAX_DEFER = 10.0
WAIT = 10.0  # s a search waits for the index at most
TEXT_ATTACHMENT_MAX = 64 * 1024  # text/* attachments up to this size are indexed
COLUMNS = ("subject", "body", "sender", "recipients", "attachments")
BODY_PATH = f'$."{P.key(tags.BODY)}"'
_BODY_KEY = P.key(tags.BODY)

# The body of an item whose texts are in its source (`store/texts.py`) is read only for the
# rows a window takes (`_with_bodies`): the sort by cn reads every row of the range first.
# Such a row counts its source's size towards WINDOW_BYTES.
_ITEMS_IN_WINDOW = (
    "SELECT id, subject, sender_name, sender_email, CASE WHEN texts_in_source THEN NULL "
    f"ELSE json_extract(props, '{BODY_PATH}') END, received, cn, "
    "CASE WHEN texts_in_source THEN (SELECT size FROM blobs WHERE id = source_blob) END "
    "FROM items WHERE folder_id IN (SELECT id FROM folders) AND cn > ? AND cn <= ? "
    "ORDER BY cn"
)
_FTS_DELETE = (
    "INSERT INTO search_fts (search_fts, rowid, subject, body, sender, recipients, "
    "attachments) SELECT 'delete', id, subject, body, sender, recipients, attachments "
    "FROM search_docs WHERE item_id IN (SELECT value FROM json_each(?)) ORDER BY id"
)


@dataclass(slots=True)
class SearchPage:
    items: list[ItemView]
    total: int
    complete: bool  # False when the index had not caught up within the wait


def _indexable(rows: list[Any]) -> list[Any]:
    """The rows whose item id fits in a search key (see search_keys)."""
    fit = [r for r in rows if r[0] <= search_keys.MAX_ITEM_ID]
    if len(fit) < len(rows):
        log.error("%d items have ids beyond the search index's range", len(rows) - len(fit))
    return fit


async def _with_bodies(conn: Any, rows: list[Any]) -> list[tuple[Any, ...]]:
    """The rows of a window with the bodies read from their sources filled in."""
    docs = await texts.of_ids(conn, [r[0] for r in rows if r[7] is not None])
    bodies = {iid: json.loads(doc).get(_BODY_KEY) for iid, doc in docs.items()}
    return [(*r[:4], bodies.get(r[0], r[4]), *r[5:7]) for r in rows]


def _text(*parts: object) -> str:
    return " ".join(p for p in parts if isinstance(p, str) and p).casefold()


class SearchIndex:
    def __init__(self, core: StoreCore) -> None:
        self.core = core
        self.indexed = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._own_write = False
        self._last_foreign_commit = 0.0
        self._searches_waiting = 0
        self._bulk = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        async with self.core.reader.execute("SELECT cn FROM search_state") as cur:
            row = await cur.fetchone()
        self.indexed = int(row[0]) if row else 0
        self.core.on_commit.append(self.wake)
        self._task = asyncio.ensure_future(self._run())
        self.wake()

    async def close(self) -> None:
        if self.wake in self.core.on_commit:
            self.core.on_commit.remove(self.wake)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Hold indexing back while a bulk write runs (a search still gets it indexed)."""
        self._bulk += 1
        try:
            yield
        finally:
            self._bulk -= 1
            self.wake()

    def wake(self) -> None:
        if not self._own_write:
            self._last_foreign_commit = time.monotonic()
        self._wake.set()

    @property
    def target(self) -> int:
        return self.core.counters["next_cn"] - 1

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            await asyncio.sleep(DEBOUNCE)
            try:
                deferred_since = time.monotonic()
                while not self._closing and self.indexed < self.target:
                    now = time.monotonic()
                    busy = YIELD_TO_WRITERS - (now - self._last_foreign_commit)
                    if self._bulk:
                        deferred_since = now
                        busy = max(busy, 0.1)
                    urgent = self._searches_waiting or now - deferred_since > MAX_DEFER
                    if busy > 0 and not urgent:
                        await asyncio.sleep(min(busy, 0.1))
                        continue
                    self._own_write = True
                    try:
                        await self._index_window()
                    finally:
                        self._own_write = False
                    await asyncio.sleep(0)  # let other writers in between windows
            except sqlite3.Error:
                log.exception("search indexing failed; retrying after the next change")

    async def wait_current(self, max_wait: float = WAIT) -> bool:
        """Wait until the index covers every commit made before the call."""
        target = self.target
        if self.indexed >= target:
            return True
        self._searches_waiting += 1
        self._wake.set()
        try:
            async with self._progress:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self.indexed >= target or self._closing),
                    max_wait,
                )
        except TimeoutError:
            pass
        finally:
            self._searches_waiting -= 1
        return self.indexed >= target

    # -- indexing --------------------------------------------------------------------

    async def _index_window(self) -> None:
        async with self.core.write(SYSTEM) as tx:
            conn = tx.conn
            upto = min(self.indexed + WINDOW, self.core.counters["next_cn"] - 1)
            rows: list[Any] = []
            size = 0
            async with conn.execute(_ITEMS_IN_WINDOW, (self.indexed, upto)) as cur:
                async for row in cur:
                    if size > WINDOW_BYTES and row[6] != rows[-1][6]:
                        upto = rows[-1][6]  # the rest is the next window's
                        break
                    rows.append(row)
                    size += sum(len(v) for v in row[1:5] if isinstance(v, str)) + (row[7] or 0)
            rows = _indexable(await _with_bodies(conn, rows))
            if rows:
                ids = [r[0] for r in rows]
                # In key order: FTS5 flushes what it holds whenever a rowid is not above
                # the one before.
                docs = sorted(await self._documents(conn, rows))
                id_list = json.dumps(ids)
                await conn.execute(_FTS_DELETE, (id_list,))
                await conn.execute(
                    "DELETE FROM search_docs WHERE item_id IN (SELECT value FROM json_each(?))",
                    (id_list,),
                )
                await conn.executemany(
                    "INSERT INTO search_docs (id, item_id, subject, body, sender, recipients, "
                    "attachments) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    docs,
                )
                await conn.executemany(
                    "INSERT INTO search_fts (rowid, subject, body, sender, recipients, "
                    "attachments) VALUES (?, ?, ?, ?, ?, ?)",
                    [(d[0], *d[2:]) for d in docs],
                )
            await conn.execute("UPDATE search_state SET cn = ?", (upto,))
        self.indexed = upto
        async with self._progress:
            self._progress.notify_all()

    async def _documents(self, conn: Any, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        id_list = json.dumps([r[0] for r in rows])
        recipients: dict[int, list[str]] = {}
        async with conn.execute(
            "SELECT item_id, display_name, email FROM recipients "
            "WHERE item_id IN (SELECT value FROM json_each(?))",
            (id_list,),
        ) as cur:
            for item_id, name, email in await cur.fetchall():
                recipients.setdefault(item_id, []).append(_text(name, email))
        attachments: dict[int, list[str]] = {}
        async with conn.execute(
            "SELECT item_id, filename, mime_tag, size, blob_id FROM attachments "
            "WHERE item_id IN (SELECT value FROM json_each(?))",
            (id_list,),
        ) as cur:
            atts = list(await cur.fetchall())
        for item_id, filename, mime, size, blob_id in atts:
            parts = [_text(filename)]
            if (
                blob_id is not None
                and isinstance(mime, str)
                and mime.lower().startswith("text/")
                and size <= TEXT_ATTACHMENT_MAX
            ):
                data = b"".join([c async for c in blobs.read(conn, blob_id)])
                parts.append(data.decode("utf-8", "replace").casefold())
            attachments.setdefault(item_id, []).append(" ".join(parts))
        return [
            (
                search_keys.key(received, iid),
                iid,
                _text(subject),
                _text(body),
                _text(sender_name, sender_email),
                " ".join(recipients.get(iid, [])),
                " ".join(attachments.get(iid, [])),
            )
            for iid, subject, sender_name, sender_email, body, received, _cn in rows
        ]

    # -- searching -------------------------------------------------------------------

    async def search(
        self,
        query: SearchQuery,
        *,
        folder_id: int | None = None,
        visible: set[int] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> SearchPage:
        """Items matching `query`, newest (received) first. `visible` limits the folders."""
        complete = await self.wait_current()
        items, total = await search_results.run(
            self.core.reader,
            self.core.ids,
            query,
            folder_id=folder_id,
            visible=visible,
            offset=offset,
            limit=limit,
        )
        return SearchPage(items, total, complete)
