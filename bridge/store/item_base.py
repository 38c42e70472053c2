"""What every part of the item writes shares: the store core, the item row, the hot columns
mirrored from properties, named-property resolution, and the "item changed" step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from bridge.model import tags
from bridge.model.named import KNOWN, NamedProp
from bridge.model.proptypes import PropType, make_tag
from bridge.store import props as P
from bridge.store.blobs import SourcePart
from bridge.store.core import StoreCore, Tx
from bridge.store.errors import NotFound
from bridge.store.folders import Folders
from bridge.store.item_prep import HOT_COLUMNS, NamedTags, Prepared, categories_of, hot_columns

# What a message's MIME does not carry (its IMAP flags do): a change of only these, or of
# the categories, leaves an item's raw source as true as it was.
FLAG_TAGS = frozenset({tags.READ, tags.MESSAGE_FLAGS, tags.FLAG_STATUS, tags.LAST_VERB_EXECUTED})


@dataclass(slots=True)
class NewItem:
    """An item to create. `props` use store tags; `named` is resolved in the transaction."""

    message_class: str = "IPM.Note"
    props: dict[int, Any] = field(default_factory=dict)
    named: dict[NamedProp, Any] = field(default_factory=dict)
    recipients: list[dict[int, Any]] = field(default_factory=list)
    # content as bytes, or (an item with a source) as a part of its source
    attachments: list[tuple[dict[int, Any], bytes | SourcePart]] = field(default_factory=list)
    source: bytes | None = None
    source_type: str | None = None
    upstream: dict[str, Any] | None = None
    associated: bool = False
    # The source's texts (`texts.TEXT_TAGS`) are left out of `props`: the store reads them
    # from the source when they are asked for.
    texts_in_source: bool = False
    # Its rows, computed away from the store (`item_prep.prepare`); they must be what its
    # fields give: a change of them after `prepare` needs `prepared` set to None.
    prepared: Prepared | None = None


@dataclass(frozen=True, slots=True)
class PropChange:
    """Properties to set on an item and tags to delete from it (`Items.update`), named
    properties by name."""

    set_props: Mapping[int, Any] = field(default_factory=dict)
    delete_tags: list[int] = field(default_factory=list)
    named: Mapping[NamedProp, Any] = field(default_factory=dict)


class ItemsBase:
    def __init__(self, core: StoreCore, folders: Folders) -> None:
        self.core = core
        self.folders = folders
        named = core.named
        self._keywords = named.tag_for(P.KEYWORDS, PropType.UNICODE | 0x1000)
        self.named_tags = NamedTags(
            named.tag_for(P.APPT_START, PropType.SYSTIME),
            named.tag_for(P.APPT_END, PropType.SYSTIME),
            named.tag_for(P.TASK_DUE, PropType.SYSTIME),
            self._keywords,
        )

    # -- create -----------------------------------------------------------------------

    async def resolve_named(self, tx: Tx, named: Mapping[NamedProp, Any]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        known_tag = self.core.named.known_tag
        for np, value in named.items():
            tag = known_tag(np)
            if tag is not None:  # the common case, in one look-up
                out[tag] = value
                continue
            known = self.core.named.lookup(np)
            ptype = (known and known[1]) or (KNOWN[np].ptype if np in KNOWN else None)
            if ptype is None:
                ptype = P.infer_type(value)
            out[make_tag(await tx.named_id(np, ptype), ptype)] = value
        return out

    def _hot(self, props: Mapping[int, Any], has_attach: bool) -> dict[str, Any]:
        return dict(zip(HOT_COLUMNS, hot_columns(props, has_attach, self.named_tags), strict=True))

    def _categories(self, props: Mapping[int, Any]) -> list[str]:
        return categories_of(props, self.named_tags)

    # -- modify -----------------------------------------------------------------------

    @staticmethod
    async def changed_since(tx: Tx, item_id: int, mark: int) -> bool:
        """Whether a change of the item made here was journaled after the journal's `mark`
        (`SyncState.journal_mark`), and waits to go up."""
        async with tx.conn.execute(
            "SELECT 1 FROM journal WHERE kind = 'item' AND object_id = ? AND id > ? LIMIT 1",
            (item_id, mark),
        ) as cur:
            return await cur.fetchone() is not None

    async def row_in(self, conn: aiosqlite.Connection, item_id: int) -> aiosqlite.Row:
        async with conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        return row

    async def _touch(
        self, tx: Tx, row: aiosqlite.Row, doc: dict[str, Any], changed: list[int]
    ) -> None:
        cn = tx.cn()
        await tx.conn.execute(
            "UPDATE items SET props = ?, modified = ?, cn = ? WHERE id = ?",
            (P.dumps(doc), tx.now, cn, row["id"]),
        )
        names = [P.key(t) for t in changed]
        tx.emit(
            "object_modified", kind="item", id=row["id"], folder_id=row["folder_id"], tags=names
        )
        await self.journal_update(tx, row["id"], row["folder_id"], cn, changed)

    async def journal_update(
        self, tx: Tx, item_id: int, folder_id: int, cn: int, changed: list[int]
    ) -> None:
        """Journal a change of an item's properties; a local change of its content (more
        than flags and categories) marks its raw source stale."""
        await tx.journal(
            "item_update", "item", item_id, folder_id, cn, {"tags": [P.key(t) for t in changed]}
        )
        keywords = self.core.named.known_tag(P.KEYWORDS)
        if tx.journaled and any(t not in FLAG_TAGS and t != keywords for t in changed):
            await tx.conn.execute(
                "UPDATE items SET source_stale = 1 WHERE id = ? AND source_blob IS NOT NULL",
                (item_id,),
            )
