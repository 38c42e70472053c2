"""Store writes of the WebDAV view: items under client-chosen names, content replaced in
place (also a partly stored message's, made whole: `complete_message`), dead properties
and the lock store. Each method is one transaction of the store core (journal + change
numbers + notifications), like every other write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bridge.model import flags, tags
from bridge.model.proptypes import PropType
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import LOCAL, SYSTEM, UPSTREAM, StoreCore, Tx
from bridge.store.errors import Conflict, NotFound
from bridge.store.folders import Folders
from bridge.store.item_rows import Rows, adjust_counts, python_view
from bridge.store.items import Items, NewItem

# Column positions in an `items` row tuple built by Items.prepare_rows.
_CREATED, _CREATED_CN, _UPSTREAM = 17, 19, 24
WHOLE = "*"  # the changed keys of an item_update that replaced the whole item


class DavStore:
    def __init__(self, core: StoreCore, folders: Folders, items: Items) -> None:
        self.core = core
        self.folders = folders
        self.items = items

    # -- items ------------------------------------------------------------------------

    async def create(
        self,
        folder_id: int,
        name: str | None,
        item: NewItem,
        attachment: tuple[dict[int, Any], int] | None = None,
    ) -> int:
        """Create an item, optionally with a streamed blob as its attachment, under a name."""
        async with self.core.write(LOCAL) as tx:
            (iid,) = await self.items.create_in(tx, folder_id, [item])
            if attachment is not None:
                await self.items.attach_in(tx, iid, attachment[0], blob_id=attachment[1])
            await _set_name(tx, iid, name)
        return iid

    async def replace(
        self,
        item_id: int,
        item: NewItem,
        attachment: tuple[dict[int, Any], int] | None = None,
        *,
        origin: str = LOCAL,
        unchanged_since: int | None = None,
    ) -> None:
        """Replace an item's content (class, properties, recipients, attachments, source)
        keeping its id, name, creation time and dead properties. With `unchanged_since`
        (a journal mark), only if it was not changed here since (Conflict otherwise)."""
        async with self.core.write(origin) as tx:
            if unchanged_since is not None and await self.items.changed_since(
                tx, item_id, unchanged_since
            ):
                raise Conflict("the item was changed here since it was read")
            await self.replace_in(tx, item_id, item, attachment)

    async def replace_in(
        self,
        tx: Tx,
        item_id: int,
        item: NewItem,
        attachment: tuple[dict[int, Any], int] | None = None,
    ) -> None:
        """`replace` inside a transaction the caller holds."""
        async with tx.conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)) as cur:
            old = await cur.fetchone()
        if old is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        async with tx.conn.execute(
            "SELECT name FROM dav_names WHERE item_id = ?", (item_id,)
        ) as cur:
            name_row = await cur.fetchone()
        async with tx.conn.execute(
            "SELECT blob_id FROM attachments WHERE item_id = ? AND blob_id IS NOT NULL "
            "UNION ALL SELECT source_blob FROM items WHERE id = ? AND source_blob IS NOT NULL",
            (item_id, item_id),
        ) as cur:
            old_blobs = [r[0] for r in await cur.fetchall()]
        async with tx.conn.execute(
            "SELECT object, name, value FROM dav_props WHERE object = ?",
            (self.core.ids.api_id("item", item_id),),
        ) as cur:
            dead = [tuple(r) for r in await cur.fetchall()]
        rows = Rows()
        events = len(tx.events)
        spot = tx.pack(item.source)
        read = await self.items.prepare_rows(tx, rows, old["folder_id"], item_id, item, spot)
        del tx.events[events:]  # an update, not a creation
        cn = rows.journal[0][5]
        row = list(rows.items[0])
        row[_CREATED], row[_CREATED_CN], row[_UPSTREAM] = (
            old["created"],
            old["created_cn"],
            old["upstream"],
        )
        rows.items[0] = tuple(row)
        rows.journal.clear()
        await tx.conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
        await blobs.delete_many(tx.conn, old_blobs)
        await asyncio.gather(*rows.queue(tx.conn, False))
        if attachment is not None:
            await self.items.attach_in(tx, item_id, attachment[0], blob_id=attachment[1])
        if name_row is not None:
            await _set_name(tx, item_id, name_row[0])
        await tx.conn.executemany(
            "INSERT INTO dav_props (object, name, value) VALUES (?, ?, ?)", dead
        )
        if not old["associated"]:
            was_unread = not old["flags"] & flags.MSGFLAG_READ
            await adjust_counts(tx, old["folder_id"], 0, int(not read) - was_unread, 0)
        tx.emit(
            "object_modified",
            kind="item",
            id=item_id,
            folder_id=old["folder_id"],
            tags=["*"],
        )
        await tx.journal("item_update", "item", item_id, old["folder_id"], cn, {"tags": [WHOLE]})

    async def complete_message(
        self,
        item_id: int,
        item: NewItem,
        link: dict[str, Any],
        flag_keys: frozenset[str],
        *,
        cn: int,
    ) -> bool:
        """Give a partly stored item its whole message (`item`, as the server has it, with
        the flags and categories of the item here) and its new upstream `link`, in one
        transaction, keeping what was changed here and is still to go up (the keys of the
        item's pending updates, but `flag_keys`):
        - the changed properties keep their values here; recipients changed here replace
          the message's, and attachments added here join the message's;
        - its source is then stale: the edit goes up built from its properties, in
          place of the server's message (`SyncState.source`);
        - an item whose content was replaced whole here (a WebDAV PUT) keeps it.
        `cn` is the item's change number the caller read its flags at: Conflict if it has
        changed since (the caller reads them again). Returns whether a change made here
        was kept."""
        async with self.core.write(UPSTREAM) as tx:
            row = await self.items.row_in(tx.conn, item_id)
            if row["cn"] != cn:
                raise Conflict("the item changed while its whole message was fetched")
            async with tx.conn.execute(
                "SELECT payload FROM journal WHERE kind = 'item' AND object_id = ? "
                "AND op = 'item_update'",
                (item_id,),
            ) as cur:
                payloads = [json.loads(r[0] or "{}") for r in await cur.fetchall()]
            edited = {str(k) for p in payloads for k in p.get("tags") or []} - flag_keys
            if WHOLE not in edited:
                kept = await self._kept_edit(tx, row, item, edited) if edited else None
                await self.replace_in(tx, item_id, item)
                if kept is not None:
                    await self.items.update_in(tx, item_id, *kept)
                    await tx.conn.execute(
                        "UPDATE items SET source_stale = 1 WHERE id = ? "
                        "AND source_blob IS NOT NULL",
                        (item_id,),
                    )
            await tx.conn.execute(
                "UPDATE items SET upstream = ? WHERE id = ?", (json.dumps(link), item_id)
            )
            return bool(edited)

    async def _kept_edit(
        self, tx: Tx, row: Any, item: NewItem, edited: set[str]
    ) -> tuple[dict[int, Any], list[int]]:
        """Put the recipients and attachments the item (`row`) has here into `item` where
        they were changed here; the properties to set and delete after it replaced the
        item."""
        item_id = row["id"]
        changed = {int(k, 16) for k in edited}
        if tags.MESSAGE_RECIPIENTS in changed:
            async with tx.conn.execute(
                "SELECT props FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
            ) as cur:
                item.recipients = [python_view(json.loads(r[0])) for r in await cur.fetchall()]
        if tags.MESSAGE_ATTACHMENTS in changed:
            async with tx.conn.execute(
                "SELECT props, blob_id FROM attachments WHERE item_id = ? ORDER BY num",
                (item_id,),
            ) as cur:
                added = await cur.fetchall()
            for props, blob_id in added:
                data = b"" if blob_id is None else await blobs.read_all(tx.conn, blob_id)
                item.attachments.append((python_view(json.loads(props)), data))
        here = python_view(json.loads(row["props"]))
        plain = [
            t
            for t in sorted(changed - P.COMPUTED_ITEM)
            if t & 0xFFFF != PropType.OBJECT and t not in (tags.MESSAGE_FLAGS, tags.READ)
        ]
        return {t: here[t] for t in plain if t in here}, [t for t in plain if t not in here]

    async def move(
        self, item_id: int, folder_id: int, name: str | None, *, replace: int | None = None
    ) -> None:
        """Move and/or rename an item (removing the item `replace` it takes the place of)."""
        async with self.core.write(LOCAL) as tx:
            if replace is not None and replace != item_id:
                await self.items.delete_in(tx, replace, hard=True)
            row = await self.items.row_in(tx.conn, item_id)
            await self.folders._get_in(tx.conn, folder_id)
            if row["folder_id"] != folder_id:
                await self.items.move_in(tx, row, folder_id)
            await _set_name(tx, item_id, name)

    async def copy(
        self, item_id: int, folder_id: int, name: str | None, *, replace: int | None = None
    ) -> int:
        """Copy an item with its dead properties, under a name (removing the item `replace`
        it takes the place of)."""
        async with self.core.write(LOCAL) as tx:
            if replace is not None and replace != item_id:
                await self.items.delete_in(tx, replace, hard=True)
            new_id = await self.items.copy_in(tx, item_id, folder_id)
            await tx.conn.execute(
                "INSERT INTO dav_props (object, name, value) SELECT ?, name, value "
                "FROM dav_props WHERE object = ?",
                (self.core.ids.api_id("item", new_id), self.core.ids.api_id("item", item_id)),
            )
            await _set_name(tx, new_id, name)
        return new_id

    # -- dead properties and locks ------------------------------------------------------

    async def set_dead_props(self, obj: str, changes: list[tuple[str, str | None]]) -> None:
        """Set (value) or remove (None) dead properties of an object (`f12`, `m345`)."""
        async with self.core.write(SYSTEM) as tx:
            for name, value in changes:
                if value is None:
                    await tx.conn.execute(
                        "DELETE FROM dav_props WHERE object = ? AND name = ?", (obj, name)
                    )
                else:
                    await tx.conn.execute(
                        "INSERT OR REPLACE INTO dav_props (object, name, value) VALUES (?, ?, ?)",
                        (obj, name, value),
                    )

    async def copy_dead_props(self, src: str, dst: str) -> None:
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "INSERT OR REPLACE INTO dav_props (object, name, value) SELECT ?, name, value "
                "FROM dav_props WHERE object = ?",
                (dst, src),
            )

    async def put_lock_entry(self, key: str, value: str | None) -> None:
        """Store (or with None remove) one entry of the lock store."""
        async with self.core.write(SYSTEM) as tx:
            if value is None:
                await tx.conn.execute("DELETE FROM dav_locks WHERE key = ?", (key,))
            else:
                await tx.conn.execute(
                    "INSERT OR REPLACE INTO dav_locks (key, value) VALUES (?, ?)", (key, value)
                )


async def _set_name(tx: Tx, item_id: int, name: str | None) -> None:
    if name is None:
        await tx.conn.execute("DELETE FROM dav_names WHERE item_id = ?", (item_id,))
    else:
        await tx.conn.execute(
            "INSERT OR REPLACE INTO dav_names (item_id, name) VALUES (?, ?)", (item_id, name)
        )
