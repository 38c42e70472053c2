"""Item moves, copies, submission and deletion."""

from __future__ import annotations

import json

import aiosqlite

from bridge.model import flags, tags
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import LOCAL, Tx
from bridge.store.errors import Conflict, InvalidValue
from bridge.store.item_base import ItemsBase
from bridge.store.item_rows import adjust_counts, count_senders, refuse_search_folder, upstream_of


class RelocationWrites(ItemsBase):
    # -- move, copy, delete -----------------------------------------------------------

    async def move(self, item_id: int, folder_id: int, *, origin: str = LOCAL) -> None:
        async with self.core.write(origin) as tx:
            row = await self.row_in(tx.conn, item_id)
            refuse_search_folder(await self.folders._get_in(tx.conn, folder_id))
            if row["folder_id"] == folder_id:
                return
            await self.move_in(tx, row, folder_id)

    async def move_in(self, tx: Tx, row: aiosqlite.Row, folder_id: int) -> None:
        cn = tx.cn()
        old = row["folder_id"]
        await tx.conn.execute(
            "UPDATE items SET folder_id = ?, created_cn = ?, cn = ?, modified = ? WHERE id = ?",
            (folder_id, cn, cn, tx.now, row["id"]),
        )
        await tx.conn.execute(
            "INSERT OR REPLACE INTO tombstones (folder_id, item_id, cn) VALUES (?, ?, ?)",
            (old, row["id"], cn),
        )
        await tx.conn.execute(
            "DELETE FROM tombstones WHERE folder_id = ? AND item_id = ?", (folder_id, row["id"])
        )
        unread = int(not row["flags"] & flags.MSGFLAG_READ and not row["associated"])
        normal, assoc = (0, 1) if row["associated"] else (1, 0)
        await adjust_counts(tx, old, -normal, -unread, -assoc)
        await adjust_counts(tx, folder_id, normal, unread, assoc)
        tx.emit("object_moved", kind="item", id=row["id"], folder_id=folder_id, old_folder_id=old)
        await tx.journal(
            "item_move",
            "item",
            row["id"],
            folder_id,
            cn,
            {"from_folder_id": old, "upstream": upstream_of(row)},
        )

    async def copy(self, item_id: int, folder_id: int, *, origin: str = LOCAL) -> int:
        async with self.core.write(origin) as tx:
            return await self.copy_in(tx, item_id, folder_id)

    async def copy_in(self, tx: Tx, item_id: int, folder_id: int) -> int:
        """`copy` inside a transaction the caller holds."""
        row = await self.row_in(tx.conn, item_id)
        refuse_search_folder(await self.folders._get_in(tx.conn, folder_id))
        new_id = tx.alloc("next_item")
        cn = tx.cn()
        source_blob = None
        if row["source_blob"] is not None:
            source_blob = tx.alloc("next_blob")
            await blobs.copy(tx.conn, row["source_blob"], source_blob)
        await tx.conn.execute(
            "INSERT INTO items (id, folder_id, message_class, subject, sender_name, "
            "sender_email, received, sent, size, flags, importance, sensitivity, has_attach, "
            "associated, start_time, end_time, due_time, created, modified, created_cn, cn, "
            "props, source_blob, source_type, source_stale, upstream, conversation_id, "
            "sender_name_prop, texts_in_source) "
            "SELECT ?, ?, message_class, subject, sender_name, sender_email, received, sent, "
            "size, flags, importance, sensitivity, has_attach, associated, start_time, "
            "end_time, due_time, ?, ?, ?, ?, props, ?, source_type, source_stale, NULL, "
            "conversation_id, sender_name_prop, texts_in_source FROM items WHERE id = ?",
            (new_id, folder_id, tx.now, tx.now, cn, cn, source_blob, item_id),
        )
        await count_senders(tx.conn, new_id, new_id)
        await tx.conn.execute(
            "INSERT INTO recipients (item_id, row_id, type, display_name, email, props) "
            "SELECT ?, row_id, type, display_name, email, props FROM recipients "
            "WHERE item_id = ?",
            (new_id, item_id),
        )
        await tx.conn.execute(
            "INSERT INTO item_categories (item_id, category) SELECT ?, category "
            "FROM item_categories WHERE item_id = ?",
            (new_id, item_id),
        )
        async with tx.conn.execute(
            "SELECT num, blob_id FROM attachments WHERE item_id = ?", (item_id,)
        ) as cur:
            atts = await cur.fetchall()
        for att in atts:
            new_blob = None
            if att["blob_id"] is not None:
                new_blob = tx.alloc("next_blob")
                await blobs.copy(tx.conn, att["blob_id"], new_blob)
            await tx.conn.execute(
                "INSERT INTO attachments (item_id, num, filename, mime_tag, size, content_id, "
                "method, hidden, blob_id, props) SELECT ?, num, filename, mime_tag, size, "
                "content_id, method, hidden, ?, props FROM attachments "
                "WHERE item_id = ? AND num = ?",
                (new_id, new_blob, item_id, att["num"]),
            )
        unread = int(not row["flags"] & flags.MSGFLAG_READ and not row["associated"])
        normal, assoc = (0, 1) if row["associated"] else (1, 0)
        await adjust_counts(tx, folder_id, normal, unread, assoc)
        tx.emit(
            "object_copied",
            kind="item",
            id=new_id,
            folder_id=folder_id,
            old_id=item_id,
            old_folder_id=row["folder_id"],
        )
        await tx.journal("item_create", "item", new_id, folder_id, cn, {"copied_from": item_id})
        return new_id

    async def submit(self, item_id: int) -> None:
        """Queue an item for sending: into the Outbox, marked submitted, journaled."""
        outbox = self.folders.roles["outbox"]
        async with self.core.write(LOCAL) as tx:
            row = await self.row_in(tx.conn, item_id)
            if not str(row["message_class"]).startswith(("IPM.Note", "IPM.Schedule", "IPM.Post")):
                raise InvalidValue(f"a {row['message_class']} item cannot be sent")
            if row["flags"] & flags.MSGFLAG_SUBMITTED:
                raise Conflict("this item is already queued for sending")
            if row["folder_id"] not in (outbox, self.folders.roles["drafts"]):
                raise Conflict("only items in Drafts or the Outbox can be sent")
            async with tx.conn.execute(
                "SELECT count(*) FROM recipients WHERE item_id = ?", (item_id,)
            ) as cur:
                if not (await cur.fetchone() or [0])[0]:
                    raise InvalidValue("the item has no recipients")
            if row["folder_id"] != outbox:
                await self.move_in(tx, row, outbox)
            mflags = (row["flags"] | flags.MSGFLAG_SUBMITTED | flags.MSGFLAG_UNSENT) & ~(
                flags.MSGFLAG_UNMODIFIED
            )
            doc = json.loads(row["props"])
            doc[P.key(tags.MESSAGE_FLAGS)] = mflags
            cn = tx.cn()
            await tx.conn.execute(
                "UPDATE items SET flags = ?, props = ?, cn = ?, modified = ? WHERE id = ?",
                (mflags, P.dumps(doc), cn, tx.now, item_id),
            )
            tx.emit(
                "object_modified",
                kind="item",
                id=item_id,
                folder_id=outbox,
                tags=[P.key(tags.MESSAGE_FLAGS)],
            )
            await tx.journal("item_submit", "item", item_id, outbox, cn)

    async def delete(
        self,
        item_id: int,
        *,
        hard: bool = False,
        origin: str = LOCAL,
        unchanged_since: int | None = None,
    ) -> None:
        """Soft delete moves the item to Deleted Items; an item already there (or `hard`)
        is removed for good. With `unchanged_since` (a journal mark), only if it was not
        changed here since (Conflict otherwise)."""
        async with self.core.write(origin) as tx:
            if unchanged_since is not None and await self.changed_since(
                tx, item_id, unchanged_since
            ):
                raise Conflict("the item was changed here since it was read")
            await self.delete_in(tx, item_id, hard=hard)

    async def delete_in(self, tx: Tx, item_id: int, *, hard: bool = False) -> None:
        """`delete` inside a transaction the caller holds."""
        trash = self.folders.roles["deleted"]
        row = await self.row_in(tx.conn, item_id)
        if not hard and row["folder_id"] not in await self.folders.descendants(trash, tx.conn):
            await self.move_in(tx, row, trash)
            return
        cn = tx.cn()
        async with tx.conn.execute(
            "SELECT blob_id FROM attachments WHERE item_id = ? AND blob_id IS NOT NULL",
            (item_id,),
        ) as cur:
            blob_ids = [r[0] for r in await cur.fetchall()]
        if row["source_blob"] is not None:
            blob_ids.append(row["source_blob"])
        await tx.conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
        await blobs.delete_many(tx.conn, blob_ids)
        await tx.conn.execute(
            "INSERT OR REPLACE INTO tombstones (folder_id, item_id, cn) VALUES (?, ?, ?)",
            (row["folder_id"], item_id, cn),
        )
        unread = int(not row["flags"] & flags.MSGFLAG_READ and not row["associated"])
        normal, assoc = (0, 1) if row["associated"] else (1, 0)
        await adjust_counts(tx, row["folder_id"], -normal, -unread, -assoc)
        tx.emit("object_deleted", kind="item", id=item_id, folder_id=row["folder_id"])
        # the Message-ID finds the upstream copy again if its mailbox is reset meanwhile
        msgid = json.loads(row["props"] or "{}").get(P.key(tags.INTERNET_MESSAGE_ID))
        payload = {"upstream": upstream_of(row), "message_id": msgid}
        await tx.journal("item_delete", "item", item_id, row["folder_id"], cn, payload)
