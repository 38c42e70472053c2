"""The results of a full-text search: the page of matching items newest (received) first
and their total.

The matches that pass the other conditions are counted (the total), then the index is
walked in key order (search_keys: received second, then item id), newest first, until the
page is full; the page's last second is read whole and sorted exactly, so the order is the
sort by delivery time. Then only the rows of the page are read and rendered. Totals are
reused while the database is unchanged (`_Counts`), so the next page of a search, or the
same search again, only walks."""

from __future__ import annotations

import json
import sqlite3
import weakref
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.store import render, search_keys, texts
from bridge.store.ids import IdCodec
from bridge.store.queries import ItemView
from bridge.store.search_query import QueryError, SearchQuery

# Up to this many associated items, the total looks each of them up in the index.
FEW_ASSOCIATED = 500
_ORDER = "ORDER BY i.received DESC, i.id DESC"
_ITEM = search_keys.item_id_sql("search_fts.rowid")
# The matches in key order, newest first, joined to their items.
_WALK = (
    "SELECT i.id, i.received, search_fts.rowid FROM search_fts "
    f"CROSS JOIN items i ON i.id = {_ITEM} WHERE search_fts MATCH ? AND {{where}}"
)


@dataclass(slots=True)
class Filter:
    """The conditions of a search besides its text, on items `i`."""

    where: str
    params: list[Any]
    only_text: bool  # nothing but `i.associated = 0`


def conditions(query: SearchQuery, folder_id: int | None, visible: set[int] | None) -> Filter:
    conds = ["i.associated = 0"]
    params: list[Any] = []
    if folder_id is not None:
        conds.append("i.folder_id = ?")
        params.append(folder_id)
    if visible is not None:
        conds.append("i.folder_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(sorted(visible)))
    if query.has_attachment:
        conds.append("i.has_attach = 1")
    if query.before is not None:
        conds.append("i.received < ?")
        params.append(query.before)
    if query.after is not None:
        conds.append("i.received >= ?")
        params.append(query.after)
    return Filter(" AND ".join(conds), params, len(conds) == 1)


async def _all(
    conn: aiosqlite.Connection, sql: str, params: list[Any] | tuple[Any, ...]
) -> list[Any]:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def page_ids(
    conn: aiosqlite.Connection, query: SearchQuery, f: Filter, offset: int, limit: int
) -> tuple[list[int], int]:
    """(ids of the page in order, total)."""
    if query.match is None:
        rows = await _all(
            conn,
            f"SELECT i.id FROM items i WHERE {f.where} {_ORDER} LIMIT ? OFFSET ?",
            [*f.params, limit, offset],
        )
        count = await _all(conn, f"SELECT count(*) FROM items i WHERE {f.where}", f.params)
        return [r[0] for r in rows], int(count[0][0])
    match = query.match
    counts = await _counts(conn)
    key = (match, f.where, *f.params)
    total = counts.get(key)
    if total is None:
        total = counts[key] = await _total(conn, match, f)
    return (await _walk(conn, match, f, offset + limit))[offset:], total


async def _total(conn: aiosqlite.Connection, match: str, f: Filter) -> int:
    """How many items match and pass the other conditions."""
    matching = f"i.id IN (SELECT {_ITEM} FROM search_fts WHERE search_fts MATCH ?)"
    if f.only_text:
        # Every indexed item but the associated ones: count those apart.
        sql = "SELECT count(*) FROM search_fts WHERE search_fts MATCH ?"
        matches = int((await _all(conn, sql, [match]))[0][0])
        return matches - await _associated_matches(conn, match, matching)
    sql = f"SELECT count(*) FROM items i WHERE {f.where} AND {matching}"
    return int((await _all(conn, sql, [*f.params, match]))[0][0])


async def _associated_matches(conn: aiosqlite.Connection, match: str, matching: str) -> int:
    """How many associated items match. When they are few, each is looked up in the index
    by its key, so that the matches are not collected a second time (after the count)."""
    sql = "SELECT count(*) FROM items WHERE associated = 1"
    associated = int((await _all(conn, sql, []))[0][0])
    if associated == 0:
        return 0
    if associated <= FEW_ASSOCIATED:
        key = search_keys.key_sql("i.received", "i.id")
        matching = (
            "EXISTS (SELECT 1 FROM search_fts WHERE search_fts MATCH ? "
            f"AND search_fts.rowid = {key})"
        )
    sql = f"SELECT count(*) FROM items i WHERE i.associated = 1 AND {matching}"
    return int((await _all(conn, sql, [match]))[0][0])


def _newest_first(row: Any) -> tuple[bool, int, int]:
    """Sort key of (id, received, …) rows for the order of `_ORDER`, reversed."""
    return row[1] is not None, row[1] or 0, row[0]


async def _walk(conn: aiosqlite.Connection, match: str, f: Filter, count: int) -> list[int]:
    """The ids of the first `count` matching items in the order of `_ORDER`."""
    walk = _WALK.format(where=f.where)
    rows = await _all(
        conn, f"{walk} ORDER BY search_fts.rowid DESC LIMIT ?", [match, *f.params, count]
    )
    if len(rows) == count and rows:
        # Every match of a later second is in `rows`; the last second may go on beyond
        # them, and within it the key order is not the delivery-time order: read it whole.
        last = search_keys.key_second(rows[-1][2])
        low, high = search_keys.second_range(last)
        rows = [r for r in rows if search_keys.key_second(r[2]) != last]
        rows += await _all(
            conn,
            f"{walk} AND search_fts.rowid >= ? AND search_fts.rowid < ?",
            [match, *f.params, low, high],
        )
    rows.sort(key=_newest_first, reverse=True)
    return [r[0] for r in rows[:count]]


class _Counts:
    """Counts of one connection's searches while the database stays as it was (its
    `PRAGMA data_version` unchanged: no other connection has committed since), so that the
    pages of one search, and the same search again, read the index once more, not three
    times."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.known: dict[tuple[Any, ...], int] = {}


_COUNTS: weakref.WeakKeyDictionary[aiosqlite.Connection, _Counts] = weakref.WeakKeyDictionary()
MAX_COUNTS = 256


async def _counts(conn: aiosqlite.Connection) -> dict[tuple[Any, ...], int]:
    """The counts known for the database as it is now."""
    version = int((await _all(conn, "PRAGMA data_version", []))[0][0])
    counts = _COUNTS.get(conn)
    if counts is None:
        counts = _COUNTS[conn] = _Counts()
    if counts.version != version or len(counts.known) > MAX_COUNTS:
        counts.version = version
        counts.known = {}
    return counts.known


async def run(
    conn: aiosqlite.Connection,
    ids: IdCodec,
    query: SearchQuery,
    *,
    folder_id: int | None,
    visible: set[int] | None,
    offset: int,
    limit: int,
) -> tuple[list[ItemView], int]:
    """The page of items and the total."""
    try:
        found, total = await page_ids(
            conn, query, conditions(query, folder_id, visible), offset, limit
        )
    except sqlite3.OperationalError as exc:
        if query.match is not None and "fts5" in str(exc).lower():
            raise QueryError(f"the search query cannot be run: {exc}") from None
        raise
    if not found:
        return [], total
    rows = await _all(
        conn,
        f"SELECT {texts.ITEM_COLUMNS} FROM items WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(found)],
    )
    by_id = {r["id"]: r for r in rows}
    items = [
        ItemView(iid, by_id[iid]["folder_id"], render.item_props(ids, by_id[iid]))
        for iid in found
        if iid in by_id
    ]
    return items, total
