"""What the sync engine keeps in the store besides the items themselves: the upstream
references of folders and items (UIDVALIDITY, UID, flags as last seen, MODSEQ), the
journal as a queue, and look-ups by upstream identity.

References are bookkeeping: writing them is not a change a client sees (no change number,
no journal entry, no notification).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.formats.mime import build_message
from bridge.model import flags, tags
from bridge.model.codec import from_json
from bridge.store import blobs, texts
from bridge.store import props as P
from bridge.store.core import SYSTEM, StoreCore
from bridge.store.errors import NotFound
from bridge.store.item_base import FLAG_TAGS


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    op: str
    kind: str
    object_id: int
    folder_id: int | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LocalItem:
    """An item as the sync engine sees it: where it is, its mail flags, its reference."""

    id: int
    folder_id: int
    read: bool
    flag_status: int | None
    last_verb: int | None
    categories: frozenset[str]
    message_id: str | None
    upstream: dict[str, Any] | None
    has_source: bool
    cn: int = 0  # its change number: what it was changed by last, here or by a sync


REPLACES = "replaces"  # in an item's link: its old server copy (after an edit), until expunged
MOVING = "moving"  # in an item's link: the mailbox a MOVE of it was sent to, until answered
# An item's whole link while the server's copy of it is not known (schema 0019):
# - {LOST: mailbox}: moved out here of a mailbox that is gone since; a pull that meets a
#   new message with its Message-ID, in any mailbox, takes that for it; until then it is
#   uploaded, as an unlinked item is;
# - {AWAITS: mailbox}: sent, by a server that files sent mail itself, and its copy not
#   seen yet; a pull of that mailbox takes the copy for it; nothing is uploaded.
LOST = "lost"
AWAITS = "awaits"
_FLAG_KEYS = frozenset(P.key(t) for t in FLAG_TAGS)
_ITEM_SQL = (
    "SELECT id, folder_id, flags, upstream, source_blob, cn, "
    f"json_extract(props, '$.\"{P.key(tags.FLAG_STATUS)}\"') AS flag_status, "
    f"json_extract(props, '$.\"{P.key(tags.LAST_VERB_EXECUTED)}\"') AS last_verb, "
    f"json_extract(props, '$.\"{P.key(tags.INTERNET_MESSAGE_ID)}\"') AS message_id, "
    "(SELECT json_group_array(category) FROM item_categories c WHERE c.item_id = items.id) "
    "AS categories FROM items"
)


def _local(row: Any) -> LocalItem:
    return LocalItem(
        id=row["id"],
        folder_id=row["folder_id"],
        read=bool(row["flags"] & flags.MSGFLAG_READ),
        flag_status=row["flag_status"],
        last_verb=row["last_verb"],
        categories=frozenset(json.loads(row["categories"] or "[]")),
        message_id=row["message_id"],
        upstream=json.loads(row["upstream"]) if row["upstream"] else None,
        has_source=row["source_blob"] is not None,
        cn=row["cn"],
    )


class SyncState:
    def __init__(self, core: StoreCore) -> None:
        self.core = core

    # -- folders ----------------------------------------------------------------------

    async def folder_links(self) -> dict[int, dict[str, Any]]:
        """Folder id → its upstream reference, for every linked folder."""
        async with self.core.reader.execute(
            "SELECT id, upstream FROM folders WHERE upstream IS NOT NULL"
        ) as cur:
            return {row[0]: json.loads(row[1]) for row in await cur.fetchall()}

    async def set_folder_link(self, folder_id: int, ref: dict[str, Any] | None) -> None:
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "UPDATE folders SET upstream = ? WHERE id = ?",
                (json.dumps(ref) if ref is not None else None, folder_id),
            )

    # -- items ------------------------------------------------------------------------

    async def linked_items(self, mailbox: str) -> list[LocalItem]:
        """Items whose reference points into an upstream mailbox (wherever they are now)."""
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE upstream IS NOT NULL AND json_extract(upstream, '$.mailbox') = ?",
            (mailbox,),
        ) as cur:
            return [_local(row) for row in await cur.fetchall()]

    async def replaced_uids(self, mailbox: str, uidvalidity: int) -> set[int]:
        """UIDs of old copies in a mailbox that edited items replace (noted in their links
        under REPLACES until the old copy is expunged)."""
        async with self.core.reader.execute(
            f"SELECT json_extract(upstream, '$.{REPLACES}.uid') FROM items "
            f"WHERE json_extract(upstream, '$.{REPLACES}.mailbox') = ? "
            f"AND json_extract(upstream, '$.{REPLACES}.uidvalidity') = ?",
            (mailbox, uidvalidity),
        ) as cur:
            return {int(row[0]) for row in await cur.fetchall() if row[0] is not None}

    async def item(self, item_id: int) -> LocalItem | None:
        async with self.core.reader.execute(f"{_ITEM_SQL} WHERE id = ?", (item_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _local(row)

    async def items_by_message_id(self, folder_id: int, message_id: str) -> list[LocalItem]:
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE folder_id = ? AND "
            f"json_extract(props, '$.\"{P.key(tags.INTERNET_MESSAGE_ID)}\"') = ?",
            (folder_id, message_id),
        ) as cur:
            return [_local(row) for row in await cur.fetchall()]

    async def items_in(self, folder_ids: list[int]) -> list[LocalItem]:
        """Every item of the folders (linked or not), associated ones excepted."""
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE folder_id IN (SELECT value FROM json_each(?)) AND associated = 0",
            (json.dumps(folder_ids),),
        ) as cur:
            return [_local(row) for row in await cur.fetchall()]

    async def unlinked_items(self, folder_id: int) -> list[LocalItem]:
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE folder_id = ? AND upstream IS NULL AND associated = 0",
            (folder_id,),
        ) as cur:
            return [_local(row) for row in await cur.fetchall()]

    async def awaited_items(self, mailbox: str) -> list[LocalItem]:
        """Items whose copy a new message of `mailbox` may be: linked as {LOST: any
        mailbox} or {AWAITS: mailbox}."""
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE json_extract(upstream, '$.{LOST}') IS NOT NULL",
        ) as cur:
            lost = [_local(row) for row in await cur.fetchall()]
        async with self.core.reader.execute(
            f"{_ITEM_SQL} WHERE json_extract(upstream, '$.{AWAITS}') = ?", (mailbox,)
        ) as cur:
            return lost + [_local(row) for row in await cur.fetchall()]

    async def set_item_links(self, links: dict[int, dict[str, Any] | None]) -> None:
        if not links:
            return
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.executemany(
                "UPDATE items SET upstream = ? WHERE id = ?",
                [(json.dumps(r) if r is not None else None, i) for i, r in links.items()],
            )

    # -- journal ----------------------------------------------------------------------

    async def rename_mailbox(self, old: str, new: str, delimiter: str) -> None:
        """Point the references of a renamed mailbox (and those below it) at the new name:
        those of folders and items, the old copies edited items replace, and those the
        pending deletions of items carry."""
        where = (
            ("folders", "upstream", "$.mailbox"),
            ("items", "upstream", "$.mailbox"),
            ("items", "upstream", f"$.{REPLACES}.mailbox"),
            ("journal", "payload", "$.upstream.mailbox"),
        )
        async with self.core.write(SYSTEM) as tx:
            for table, column, path in where:
                await tx.conn.execute(
                    f"UPDATE {table} SET {column} = json_set({column}, '{path}', ? || "
                    f"substr(json_extract({column}, '{path}'), ?)) WHERE {column} IS NOT NULL "
                    f"AND (json_extract({column}, '{path}') = ? OR "
                    f"substr(json_extract({column}, '{path}'), 1, ?) = ?)",
                    (new, len(old) + 1, old, len(old) + len(delimiter), old + delimiter),
                )

    async def journal(self, limit: int = 10000) -> list[JournalEntry]:
        """Pending local changes, oldest first."""
        async with self.core.reader.execute(
            "SELECT id, op, kind, object_id, folder_id, payload FROM journal ORDER BY id LIMIT ?",
            (limit,),
        ) as cur:
            rows = await cur.fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}")) for r in rows]

    async def journal_mark(self) -> int:
        """The journal's mark: every change journaled after this call has a greater one
        (`Items.changed_since`; ids of the journal are never used twice)."""
        async with self.core.reader.execute("SELECT coalesce(max(id), 0) FROM journal") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    async def dirty_items(self) -> set[int]:
        """Items with local changes still waiting for the upstream."""
        async with self.core.reader.execute(
            "SELECT DISTINCT object_id FROM journal WHERE kind = 'item'"
        ) as cur:
            return {row[0] for row in await cur.fetchall()}

    async def dirty_times(self) -> dict[int, int]:
        """Items with local changes still waiting for the upstream → the FILETIME of the
        latest of those changes."""
        async with self.core.reader.execute(
            "SELECT object_id, MAX(ts) FROM journal WHERE kind = 'item' GROUP BY object_id"
        ) as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}

    async def has_changes(self, item_id: int) -> bool:
        """Whether the item has local changes waiting for the upstream."""
        async with self.core.reader.execute(
            "SELECT 1 FROM journal WHERE kind = 'item' AND object_id = ? LIMIT 1", (item_id,)
        ) as cur:
            return await cur.fetchone() is not None

    async def remove_journal(self, entry_ids: list[int]) -> None:
        """Forget entries the upstream has confirmed."""
        if not entry_ids:
            return
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.executemany("DELETE FROM journal WHERE id = ?", [(i,) for i in entry_ids])

    def not_content_keys(self) -> frozenset[str]:
        """The property keys, in journal entries, of an item's flags and categories:
        a change of anything else is a change of its content."""
        keywords = self.core.named.known_tag(P.KEYWORDS)  # (a tag, not an id)
        extra = {P.key(keywords)} if keywords is not None else set()
        return _FLAG_KEYS | extra

    async def forget_item(self, item_id: int) -> None:
        """Drop an item's pending entries (its local version was kept aside)."""
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "DELETE FROM journal WHERE kind = 'item' AND object_id = ?", (item_id,)
            )

    # -- content ----------------------------------------------------------------------

    async def source(self, item_id: int, *, rebuild: bool = False) -> bytes:
        """The RFC 5322 bytes to upload or send: the stored source, or (when there is
        none, when it is stale after a local edit, or on `rebuild`) a message built from
        the item's properties."""
        async with self.core.reader.execute(
            "SELECT props, source_blob, source_stale, texts_in_source FROM items WHERE id = ?",
            (item_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        if row["source_blob"] is not None and not rebuild and not row["source_stale"]:
            return await blobs.read_all(self.core.reader, row["source_blob"])
        doc = json.loads(row["props"])
        if row["texts_in_source"]:
            doc.update(await texts.from_source(self.core.reader, row["source_blob"]))
        props = _python(doc)
        async with self.core.reader.execute(
            "SELECT props FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
        ) as cur:
            recipients = [_python(json.loads(r[0])) for r in await cur.fetchall()]
        async with self.core.reader.execute(
            "SELECT props, blob_id FROM attachments WHERE item_id = ? ORDER BY num", (item_id,)
        ) as cur:
            atts = await cur.fetchall()
        attachments = []
        for att in atts:
            data = b""
            if att["blob_id"] is not None:
                data = await blobs.read_all(self.core.reader, att["blob_id"])
            attachments.append((_python(json.loads(att["props"])), data))
        return build_message(props, recipients, attachments)


def _python(doc: dict[str, Any]) -> dict[int, Any]:
    return {int(k, 16): from_json(int(k, 16) & 0xFFFF, v) for k, v in doc.items()}
