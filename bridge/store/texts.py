"""A message's texts kept only in its source: its header block and its bodies
(PidTagTransportMessageHeaders, PidTagBody, PidTagHtml).

They are as large as the message's text and can be had from its source again at any
time, so an item pulled whole from the upstream (its source packed: `store/packs.py`)
keeps them out of its property document (`items.texts_in_source`, schema 21). Written
into the document, they were 304 MB of the benchmark's 20,000 messages beside their 545 MB
of sources, written twice by SQLite (WAL, then checkpoint), and the parsing worker decoded
and sent them. Leaving them out took the pull from 7.8-10.5 to 7.1-7.5 s in three pairs of
alternating runs (a slow hour of the machine), and the process's CPU time from 6.9-8.7 to
6.2-6.4 s, the worker's from 4.9-6.3 to 3.8-3.9 s. Reading them costs a parse of the
source's header block and body parts (about 0.15 ms a message of the benchmark): the
search index of a first pull, which reads every body, took 12-15 s after the pull instead
of about 12 s.

They are read back by the SQL function `kb_texts(pack, offset, size)`, which gives them
as a property document of their own (JSON text) and which every connection of the store
has (`install`). SQL reaches it through `sql_of`:
- a row read for its properties carries the document as the column `texts`
  (`ITEM_COLUMNS`), which `render.item_props` merges; a query that sorts its rows before
  it takes a page of them reads the documents of that page in a second query instead
  (`of_rows`): SQLite computes every selected column of the rows it sorts;
- a restriction, a sort or the search index reads a property of TEXT_TAGS through
  `doc_sql`, the texts' document for such an item and the item's own for the others.
An item whose texts are about to change (a client sets or deletes one) gets them back
into its document first (`Items.update_in`). A source that cannot be read (a damaged
pack) or parsed gives the item without its texts, and says so in the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from bridge.formats import mime_parse
from bridge.formats.mime import message_texts
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.packs import Packs

log = logging.getLogger(__name__)

TEXT_TAGS = frozenset(mime_parse.TEXT_TAGS)


def sql_of(alias: str) -> str:
    """SQL of the texts' document of the item row `alias` (NULL: in its own document)."""
    return (
        f"(CASE WHEN {alias}.texts_in_source THEN (SELECT kb_texts(b.pack, b.pack_offset, "
        f"b.size) FROM blobs b WHERE b.id = {alias}.source_blob) END)"
    )


def doc_sql(alias: str) -> str:
    """SQL of the document that holds the item row `alias`'s properties of TEXT_TAGS."""
    return f"coalesce({sql_of(alias)}, {alias}.props)"


# What a query selects to render items (`render.item_props`): every column, and `texts`.
ITEM_COLUMNS = f"*, {sql_of('items')} AS texts"
_OF_IDS = (
    f"SELECT id, {sql_of('items')} FROM items "
    "WHERE id IN (SELECT value FROM json_each(?)) AND texts_in_source"
)


async def of_rows(conn: aiosqlite.Connection, rows: Iterable[Any]) -> dict[int, str]:
    """Item id -> the texts' document, of the item rows (all columns) that keep theirs in
    their source."""
    return await of_ids(conn, [r["id"] for r in rows if r["texts_in_source"]])


async def of_ids(conn: aiosqlite.Connection, item_ids: list[int]) -> dict[int, str]:
    """Item id -> the texts' document, of those of the items that keep theirs in their
    source."""
    if not item_ids:
        return {}
    async with conn.execute(_OF_IDS, (json.dumps(item_ids),)) as cur:
        return {r[0]: r[1] for r in await cur.fetchall() if r[1] is not None}


async def from_source(conn: aiosqlite.Connection, blob_id: int) -> dict[str, Any]:
    """The texts of the source kept in the blob `blob_id`, as a property document."""
    return texts_doc(await blobs.read_all(conn, blob_id))


def texts_doc(raw: bytes) -> dict[str, Any]:
    """The texts of a message's source as a property document."""
    return P.encode(message_texts(raw))


def _reader(packs: Packs | None) -> Callable[[Any, Any, Any], str | None]:
    def kb_texts(pack: Any, offset: Any, size: Any) -> str | None:
        if packs is None or not all(isinstance(v, int) for v in (pack, offset, size)):
            return None
        try:
            raw = packs.read(pack, offset, size)
        except Exception as exc:  # a damaged cache: the item shows without its texts
            log.error("the texts of a message cannot be read: %s", exc)
            return None
        try:
            return P.dumps(texts_doc(raw))
        except Exception:  # (an exception here would fail the whole query)
            log.warning("the texts of a message cannot be parsed", exc_info=True)
            return None

    return kb_texts


async def install(conn: aiosqlite.Connection, packs: Packs | None) -> None:
    """Give a connection of the store the SQL function `kb_texts`."""
    await conn.create_function("kb_texts", 3, _reader(packs))


def install_sync(conn: sqlite3.Connection, packs: Packs | None) -> None:
    conn.create_function("kb_texts", 3, _reader(packs))
