"""Rows of new and changed items, and the small helpers every item write shares."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.model.codec import from_json
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.blobs import SourcePart
from bridge.store.core import Tx
from bridge.store.errors import Conflict

SLICE = 200  # items prepared per slice of a bulk create

# Each insert: its head and the placeholders of one row. A slice's rows of a table go in
# statements of several rows (`_statements`): SQLite then takes one step per statement,
# not per row, so the database thread gives the GIL up and waits to take it back (from the
# event loop's thread) once per statement, and binds with less overhead.
# props comes as UTF-8 bytes (props.dumps_utf8), stored as the same text.
# sender_name_prop is given (schema 0017): what json_extract gives for PidTagSenderName.
_INSERT_ITEM = (
    "INSERT INTO items (id, folder_id, message_class, subject, sender_name, sender_email, "
    "received, sent, importance, sensitivity, start_time, end_time, due_time, flags, size, "
    "has_attach, associated, created, modified, created_cn, cn, props, source_blob, "
    "source_type, upstream, conversation_id, sender_name_prop, texts_in_source)",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), "
    "?, ?, ?, ?, ?, ?)",
)
_SENDER_NAME_KEY = P.key(tags.SENDER_NAME)
_INSERT_BLOB = ("INSERT INTO blobs (id, size)", "(?, ?)")
_INSERT_BLOB_PART = (
    "INSERT INTO blobs (id, size, base, base_start, base_end, base_encoding)",
    "(?, ?, ?, ?, ?, ?)",
)
_INSERT_PACKED = ("INSERT INTO blobs (id, size, pack, pack_offset)", "(?, ?, ?, ?)")
_INSERT_CHUNK = ("INSERT INTO blob_chunks (id, data)", "(?, ?)")
_INSERT_RECIPIENT = (
    "INSERT INTO recipients (item_id, row_id, type, display_name, email, props)",
    "(?, ?, ?, ?, ?, ?)",
)
_INSERT_ATTACHMENT = (
    "INSERT INTO attachments (item_id, num, filename, mime_tag, size, content_id, method, "
    "hidden, blob_id, props)",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
)
_INSERT_CATEGORY = ("INSERT OR IGNORE INTO item_categories (item_id, category)", "(?, ?)")
_INSERT_JOURNAL = (
    "INSERT INTO journal (ts, op, kind, object_id, folder_id, cn, payload)",
    "(?, ?, ?, ?, ?, ?, ?)",
)
# Rows per statement, largest first. A prepared statement keeps its last bound values
# until it runs again, so there are few shapes of it, and blob chunks go one per statement.
GROUPS = (32, 8, 1)
_CHUNK_GROUPS = (1,)


@functools.lru_cache(maxsize=32)
def _sql(head: str, row: str, count: int) -> str:
    return f"{head} VALUES {', '.join([row] * count)}"


def _statements(
    conn: aiosqlite.Connection,
    insert: tuple[str, str],
    rows: list[tuple[Any, ...]],
    groups: tuple[int, ...] = GROUPS,
) -> list[asyncio.Future[Any]]:
    """Start the inserts of `rows`, in their order: as many statements of the largest
    group as they fill, then of the next one, and so on."""
    head, row = insert
    started: list[asyncio.Future[Any]] = []
    at = 0
    for per in groups:
        end = at + (len(rows) - at) // per * per
        if end > at:
            params = [
                [value for r in rows[start : start + per] for value in r]
                for start in range(at, end, per)
            ]
            started.append(asyncio.ensure_future(conn.executemany(_sql(head, row, per), params)))
            at = end
    return started


@dataclass(slots=True)
class Rows:
    """The rows of a slice of new items, table by table."""

    blobs: list[tuple[int, int]] = field(default_factory=list)
    blob_parts: list[tuple[int, int, int, int, int, str]] = field(default_factory=list)
    packed: list[tuple[int, int, int, int]] = field(default_factory=list)
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    items: list[tuple[Any, ...]] = field(default_factory=list)
    recipients: list[tuple[Any, ...]] = field(default_factory=list)
    attachments: list[tuple[Any, ...]] = field(default_factory=list)
    categories: list[tuple[int, str]] = field(default_factory=list)
    journal: list[tuple[int, str, str, int, int | None, int, str]] = field(default_factory=list)

    def add_blob(self, blob_id: int, data: bytes) -> None:
        row, chunks = blobs.blob_rows(blob_id, data)
        self.blobs.append(row)
        self.chunks.extend(chunks)

    def add_packed(self, blob_id: int, size: int, where: tuple[int, int]) -> None:
        self.packed.append((blob_id, size, *where))

    def add_blob_part(self, blob_id: int, base: int, part: SourcePart) -> None:
        self.blob_parts.append((blob_id, part.size, base, part.start, part.end, blobs.BASE64))

    def queue(self, conn: aiosqlite.Connection, journaled: bool) -> list[asyncio.Future[Any]]:
        """Start the inserts in table order (blobs before the items that point at them)."""
        tables: list[tuple[tuple[str, str], list[Any], tuple[int, ...]]] = [
            (_INSERT_BLOB, self.blobs, GROUPS),
            (_INSERT_BLOB_PART, self.blob_parts, GROUPS),
            (_INSERT_PACKED, self.packed, GROUPS),
            (_INSERT_CHUNK, self.chunks, _CHUNK_GROUPS),
            (_INSERT_ITEM, self.items, GROUPS),
            (_INSERT_RECIPIENT, self.recipients, GROUPS),
            (_INSERT_ATTACHMENT, self.attachments, GROUPS),
            (_INSERT_CATEGORY, self.categories, GROUPS),
        ]
        if journaled:
            tables.append((_INSERT_JOURNAL, self.journal, GROUPS))
        return [
            started
            for insert, rows, groups in tables
            for started in _statements(conn, insert, rows, groups)
        ]


def sender_name_prop(doc: Mapping[str, Any]) -> str | None:
    """The sender_name_prop column of an item with the stored document `doc`."""
    value = doc.get(_SENDER_NAME_KEY)
    return value if isinstance(value, str) else None


# The sender counts (schema 0012) of the items with ids first..last, just inserted: as
# the insert trigger of 0012 counted them one by one. Item ids only grow, so the items
# inserted before one of them are exactly those with a smaller id: an item adds a distinct
# delivery time to its sender's group when none of those has the same folder, sender and
# time. (A SELECT under an upsert needs its WHERE clause.)
_COUNT_SENDERS = """
INSERT INTO item_sender_counts (folder_id, associated, has_sender, sender, count, unread, times)
SELECT folder_id, associated, name IS NOT NULL, coalesce(name, '') COLLATE NOCASE, count(*),
       sum((flags & 1) = 0), sum(first_time)
FROM (
    SELECT n.folder_id, n.associated, n.sender_name_prop AS name, n.flags,
           NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = n.folder_id
               AND o.associated = n.associated
               AND o.sender_name_prop COLLATE NOCASE IS n.sender_name_prop
               AND o.received IS n.received AND o.id < n.id) AS first_time
    FROM items n WHERE n.id BETWEEN ? AND ?
)
WHERE true
GROUP BY folder_id, associated, name IS NOT NULL, coalesce(name, '') COLLATE NOCASE
ON CONFLICT DO UPDATE SET count = count + excluded.count,
    unread = unread + excluded.unread, times = times + excluded.times
"""


async def count_senders(conn: aiosqlite.Connection, first: int, last: int) -> None:
    """Add the items with ids first..last, just inserted, to the sender counts."""
    await conn.execute(_COUNT_SENDERS, (first, last))


async def adjust_counts(tx: Tx, folder_id: int, count: int, unread: int, assoc: int) -> None:
    if count or unread or assoc:
        await tx.conn.execute(
            "UPDATE folders SET content_count = content_count + ?, unread_count = unread_count + ?,"
            " assoc_count = assoc_count + ? WHERE id = ?",
            (count, unread, assoc, folder_id),
        )


def recipient_row(item_id: int, row_id: int, props: Mapping[int, Any]) -> tuple[Any, ...]:
    rtype = props.get(tags.RECIPIENT_TYPE, flags.MAPI_TO)
    email = props.get(tags.SMTP_ADDRESS) or props.get(tags.EMAIL_ADDRESS)
    stored = {**props, tags.ROWID: row_id}
    return (item_id, row_id, rtype, props.get(tags.DISPLAY_NAME), email, P.dumps(P.encode(stored)))


def attachment_row(
    item_id: int, num: int, props: Mapping[int, Any], blob_id: int, size: int
) -> tuple[Any, ...]:
    stored = {t: v for t, v in props.items() if t != tags.ATTACH_DATA_BIN}
    stored[tags.ATTACH_NUM] = num
    stored[tags.ATTACH_SIZE] = size
    stored.setdefault(tags.ATTACH_METHOD, flags.ATTACH_BY_VALUE)
    filename = (
        props.get(tags.ATTACH_LONG_FILENAME)
        or props.get(tags.ATTACH_FILENAME)
        or props.get(tags.DISPLAY_NAME)
    )
    return (
        item_id,
        num,
        filename,
        props.get(tags.ATTACH_MIME_TAG),
        size,
        props.get(tags.ATTACH_CONTENT_ID),
        stored[tags.ATTACH_METHOD],
        int(bool(props.get(tags.ATTACHMENT_HIDDEN))),
        blob_id,
        P.dumps(P.encode(stored)),
    )


def refuse_search_folder(folder: aiosqlite.Row) -> None:
    """Items live in real folders; a search folder only links to them (MAPI_E_NO_SUPPORT)."""
    if folder["folder_type"] == flags.FOLDER_SEARCH:
        raise Conflict(
            "a search folder only shows items of other folders; create, move or copy the "
            "item into a real folder"
        )


def upstream_of(row: aiosqlite.Row) -> Any:
    return json.loads(row["upstream"]) if row["upstream"] else None


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def python_view(doc: Mapping[str, Any]) -> dict[int, Any]:
    """Decode a stored document back to Python values (for recomputing hot columns)."""
    return {int(k, 16): from_json(int(k, 16) & 0xFFFF, v) for k, v in doc.items()}
