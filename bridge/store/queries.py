"""Item reads: one item, its recipients and attachments, a paged listing, the change feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosqlite

from bridge.model import tags
from bridge.model.proptypes import PropType
from bridge.store import blobs, render, texts
from bridge.store import props as P
from bridge.store.core import StoreCore
from bridge.store.errors import InvalidValue, NotFound, StaleState

MAX_PAGE = 1000
# Properties with a real column: sort (and later restrict) in SQL on it.
SORT_COLUMNS: dict[int, str] = {
    tags.SUBJECT: "subject COLLATE NOCASE",
    tags.SENDER_NAME: "sender_name COLLATE NOCASE",
    tags.SENDER_EMAIL_ADDRESS: "sender_email COLLATE NOCASE",
    tags.SENDER_SMTP_ADDRESS: "sender_email COLLATE NOCASE",
    tags.MESSAGE_DELIVERY_TIME: "received",
    tags.CLIENT_SUBMIT_TIME: "sent",
    tags.MESSAGE_SIZE: "size",
    tags.MESSAGE_SIZE_EXTENDED: "size",
    tags.MESSAGE_FLAGS: "flags",
    tags.IMPORTANCE: "importance",
    tags.SENSITIVITY: "sensitivity",
    tags.HASATTACH: "has_attach",
    tags.MESSAGE_CLASS: "message_class",
    tags.CREATION_TIME: "created",
    tags.LAST_MODIFICATION_TIME: "modified",
    tags.CHANGE_NUMBER: "cn",
    tags.START_DATE: "start_time",
    tags.END_DATE: "end_time",
    tags.CONVERSATION_ID: "conversation_id",
}


@dataclass(slots=True)
class ItemView:
    id: int
    folder_id: int
    props: P.JsonProps


@dataclass(slots=True)
class Changes:
    created: list[ItemView]
    modified: list[ItemView]
    deleted: list[int]
    state: str
    more: bool


class Queries:
    def __init__(self, core: StoreCore) -> None:
        self.core = core
        named = core.named
        self.sort_columns = dict(SORT_COLUMNS)
        for np, col in (
            (P.APPT_START, "start_time"),
            (P.APPT_END, "end_time"),
            (P.TASK_DUE, "due_time"),
        ):
            tag = named.tag_for(np, PropType.SYSTIME)
            if tag is not None:
                self.sort_columns[tag] = col

    async def row_in(self, item_id: int, columns: str = "*") -> aiosqlite.Row:
        async with self.core.reader.execute(
            f"SELECT {columns} FROM items WHERE id = ?", (item_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        return row

    async def get(self, item_id: int) -> ItemView:
        row = await self.row_in(item_id, texts.ITEM_COLUMNS)
        return ItemView(row["id"], row["folder_id"], render.item_props(self.core.ids, row))

    async def folder_of(self, item_id: int) -> int:
        async with self.core.reader.execute(
            "SELECT folder_id FROM items WHERE id = ?", (item_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        return int(row[0])

    async def recipients(self, item_id: int) -> list[P.JsonProps]:
        await self.row_in(item_id)
        async with self.core.reader.execute(
            "SELECT props FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
        ) as cur:
            return [P.decode_doc(r[0]) for r in await cur.fetchall()]

    async def attachments(self, item_id: int) -> list[P.JsonProps]:
        await self.row_in(item_id)
        async with self.core.reader.execute(
            "SELECT props FROM attachments WHERE item_id = ? ORDER BY num", (item_id,)
        ) as cur:
            return [P.decode_doc(r[0]) for r in await cur.fetchall()]

    async def attachment(self, item_id: int, num: int) -> tuple[P.JsonProps, int | None, int]:
        """(properties, blob id, size) of one attachment."""
        async with self.core.reader.execute(
            "SELECT props, blob_id, size FROM attachments WHERE item_id = ? AND num = ?",
            (item_id, num),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            await self.row_in(item_id)
            raise NotFound("attachment", f"{num} of {self.core.ids.api_id('item', item_id)}")
        return P.decode_doc(row["props"]), row["blob_id"], int(row["size"])

    async def source(self, item_id: int) -> tuple[int | None, str | None, int]:
        """(blob id, content type, size) of the raw source; blob id None if there is none."""
        row = await self.row_in(item_id)
        if row["source_blob"] is None:
            return None, None, 0
        size = await blobs.size_of(self.core.reader, row["source_blob"])
        return row["source_blob"], row["source_type"], size or 0

    def read_blob(self, blob_id: int) -> AsyncIterator[bytes]:
        return blobs.read(self.core.reader, blob_id)

    def sort_expr(self, tag: int) -> str:
        col = self.sort_columns.get(tag)
        if col:
            return col
        doc = texts.doc_sql("items") if tag in texts.TEXT_TAGS else "props"
        return f"json_extract({doc}, '$.\"{P.key(tag)}\"')"

    async def list(
        self,
        folder_id: int,
        *,
        sort: list[tuple[int, bool]] | None = None,
        offset: int = 0,
        limit: int = 50,
        associated: bool = False,
    ) -> tuple[list[ItemView], int]:
        """A page of a folder's contents; `sort` is [(tag, descending)]."""
        if not 0 < limit <= MAX_PAGE:
            raise InvalidValue(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise InvalidValue("offset must not be negative")
        order = [f"{self.sort_expr(tag)} {'DESC' if desc else 'ASC'}" for tag, desc in sort or []]
        order.append("id DESC" if sort and sort[0][1] else "id ASC")
        async with self.core.reader.execute(
            f"SELECT * FROM items WHERE folder_id = ? AND associated = ? "
            f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            (folder_id, int(associated), limit, offset),
        ) as cur:
            rows = await cur.fetchall()
        found = await texts.of_rows(self.core.reader, rows)
        async with self.core.reader.execute(
            f"SELECT {'assoc_count' if associated else 'content_count'} FROM folders WHERE id = ?",
            (folder_id,),
        ) as cur:
            total = int((await cur.fetchone() or [0])[0])
        ids = self.core.ids
        views = [
            ItemView(r["id"], r["folder_id"], render.item_props(ids, r, found.get(r["id"])))
            for r in rows
        ]
        return views, total

    # -- change feed ------------------------------------------------------------------

    def state_for(self, cn: int) -> str:
        return f"{self.core.ids.store_guid.hex[:12]}.{cn}"

    def parse_state(self, state: str | None) -> int:
        if not state:
            return 0
        prefix, _, number = state.partition(".")
        if prefix != self.core.ids.store_guid.hex[:12] or not number.isdigit():
            raise StaleState(
                "this state belongs to another store or is malformed; start again without "
                "'since' to get a full listing"
            )
        return int(number)

    async def changes(self, folder_id: int, since: str | None, limit: int = 1000) -> Changes:
        """Items created, modified and deleted in a folder after `since`."""
        return await self.feed(
            "SELECT * FROM items WHERE folder_id = ? AND cn > ? AND cn <= ? ORDER BY cn LIMIT ?",
            "tombstones",
            folder_id,
            self.parse_state(since),
            limit,
            mark="cn",
            born="created_cn",
        )

    async def feed(
        self,
        rows_sql: str,
        tombstones: str,
        folder_id: int,
        base: int,
        limit: int,
        *,
        mark: str,
        born: str,
    ) -> Changes:
        """One page of a change feed after change number `base`. `rows_sql` takes (folder,
        base, top, limit + 1) and yields item rows ordered by the column `mark`; a row whose
        `born` is above `base` is new to the reader. Deletions come from `tombstones`."""
        top = self.core.counters["next_cn"] - 1
        async with self.core.reader.execute(rows_sql, (folder_id, base, top, limit + 1)) as cur:
            rows = list(await cur.fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        upto = rows[-1][mark] if more else top
        async with self.core.reader.execute(
            f"SELECT item_id FROM {tombstones} WHERE folder_id = ? AND cn > ? AND cn <= ? "
            "ORDER BY cn",
            (folder_id, base, upto),
        ) as cur:
            deleted = [r[0] for r in await cur.fetchall()]
        ids = self.core.ids
        found = await texts.of_rows(self.core.reader, rows)
        created: list[ItemView] = []
        modified: list[ItemView] = []
        for r in rows:
            view = ItemView(r["id"], r["folder_id"], render.item_props(ids, r, found.get(r["id"])))
            (created if r[born] > base else modified).append(view)
        return Changes(created, modified, deleted, self.state_for(upto), more)

    async def journal_pending(self) -> int:
        """Local changes not yet confirmed by the upstream."""
        async with self.core.reader.execute("SELECT count(*) FROM journal") as cur:
            return int((await cur.fetchone() or [0])[0])
