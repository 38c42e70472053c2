"""Item writes: create (in bulk), set and delete properties, recipients; attachments and
moves come from their own modules. Each method is one transaction of the store core
(journal + change numbers + notifications)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.formats.mime import message_texts
from bridge.model import classes, flags, tags
from bridge.model.named import NamedProp
from bridge.store import conversation, texts
from bridge.store import props as P
from bridge.store.blobs import SourcePart
from bridge.store.core import LOCAL, UPSTREAM, Tx
from bridge.store.errors import Conflict, InvalidValue
from bridge.store.item_attachments import AttachmentWrites
from bridge.store.item_base import ItemsBase, NewItem, PropChange
from bridge.store.item_moves import RelocationWrites
from bridge.store.item_prep import rows_of
from bridge.store.item_rows import (
    SLICE,
    Rows,
    adjust_counts,
    count_senders,
    python_view,
    recipient_row,
    refuse_search_folder,
)

__all__ = ["Items", "ItemsBase", "NewItem", "PropChange"]


class Items(AttachmentWrites, RelocationWrites):
    async def create_many(
        self, folder_id: int, new_items: list[NewItem], *, origin: str = LOCAL
    ) -> list[int]:
        """Create items in one transaction; returns their ids in order.

        Rows are prepared in slices; each slice's inserts are queued to the database thread
        before the next slice is prepared, so Python and SQLite work side by side."""
        async with self.core.write(origin) as tx:
            return await self.create_in(tx, folder_id, new_items)

    async def create_in(self, tx: Tx, folder_id: int, new_items: list[NewItem]) -> list[int]:
        """`create_many` inside a transaction the caller holds. The folder is looked up
        while the first slice is prepared, and checked before any row is inserted."""
        for item in new_items:
            if item.prepared is None:  # (`prepare` checked those it prepared)
                P.check_writable(item.props, P.COMPUTED_ITEM)
        folder: asyncio.Future[Any] | None = asyncio.ensure_future(
            self.folders._get_in(tx.conn, folder_id)
        )
        first_id = tx.alloc("next_item", len(new_items))
        # content kept in a pack is written and synced beside all that follows
        spots = [tx.pack(item.source) for item in new_items]
        tx.start_pack_writes()
        queued: list[asyncio.Future[Any]] = []
        unread = assoc = 0
        try:
            for start in range(0, len(new_items), SLICE):
                rows = Rows()
                for offset, item in enumerate(new_items[start : start + SLICE], start):
                    iid = first_id + offset
                    read = await self.prepare_rows(tx, rows, folder_id, iid, item, spots[offset])
                    unread += not read and not item.associated
                    assoc += item.associated
                if folder is not None:
                    refuse_search_folder(await folder)
                    folder = None
                queued += rows.queue(tx.conn, tx.journaled)
                await asyncio.sleep(0)  # let the queued inserts reach the database thread
            if folder is not None:  # no items
                refuse_search_folder(await folder)
        finally:
            if folder is not None and not folder.done():
                folder.cancel()
            elif folder is not None and not folder.cancelled():
                folder.exception()  # failed before it was awaited: reported by the caller
        await asyncio.gather(*queued)
        if new_items:
            await count_senders(tx.conn, first_id, first_id + len(new_items) - 1)
        await adjust_counts(tx, folder_id, len(new_items) - assoc, unread, assoc)
        return list(range(first_id, first_id + len(new_items)))

    async def prepare_rows(
        self,
        tx: Tx,
        rows: Rows,
        folder_id: int,
        iid: int,
        item: NewItem,
        spot: tuple[int, int] | None,
    ) -> bool:
        """Add one item's rows; returns whether it is read. `spot` is where `tx.pack` put
        its source (None: its source, if any, goes into SQLite)."""
        cn = tx.cn()
        texts_in_source = item.texts_in_source and item.source is not None
        keep_texts = texts_in_source and spot is None  # its source goes into SQLite
        prep = item.prepared
        if prep is None or item.named or keep_texts:
            props = dict(item.props)
            props.update(await self.resolve_named(tx, item.named))
            if keep_texts:  # then its texts go into the document
                assert item.source is not None
                props.update(message_texts(item.source))
                texts_in_source = False
            prep = rows_of(item, props, self.named_tags)
        source_blob = None
        if item.source is not None:
            source_blob = tx.alloc("next_blob")
            if spot is None:
                rows.add_blob(source_blob, item.source)
            else:
                rows.add_packed(source_blob, len(item.source), spot)
        for (_, data), att in zip(item.attachments, prep.attachments, strict=True):
            bid = tx.alloc("next_blob")
            if isinstance(data, SourcePart):
                if source_blob is None or item.source is None or data.end > len(item.source):
                    raise InvalidValue("an attachment is a part of a source the item lacks")
                rows.add_blob_part(bid, source_blob, data)
            else:
                rows.add_blob(bid, data)
            rows.attachments.append((iid, *att[:7], bid, att[7]))
        rows.recipients.extend((iid, *r) for r in prep.recipients)
        size = (
            len(item.source)
            if item.source is not None
            else len(prep.doc.decode("utf-8")) + prep.attach_size  # the stored text's length
        )
        upstream = P.dumps(item.upstream) if item.upstream else None
        mflags = prep.hot[-1]
        rows.items.append(
            (
                iid,
                folder_id,
                item.message_class,
                *prep.hot,
                size,
                int(prep.has_attach),
                int(item.associated),
                tx.now,
                tx.now,
                cn,
                cn,
                prep.doc,
                source_blob,
                item.source_type,
                upstream,
                prep.conversation_id,
                prep.sender_name_prop,
                int(texts_in_source),
            )
        )
        rows.categories.extend((iid, c) for c in prep.categories)
        rows.journal.append((tx.now, "item_create", "item", iid, folder_id, cn, "{}"))
        tx.emit(
            "object_created",
            kind="item",
            id=iid,
            folder_id=folder_id,
            message_class=item.message_class,
        )
        if (
            tx.origin != LOCAL
            and folder_id == self.folders.roles.get("inbox")
            and not item.associated
        ):
            tx.emit(
                "new_mail",
                id=iid,
                folder_id=folder_id,
                message_class=item.message_class,
                flags=mflags,
            )
        return bool(mflags & flags.MSGFLAG_READ)

    async def create(self, folder_id: int, item: NewItem, *, origin: str = LOCAL) -> int:
        return (await self.create_many(folder_id, [item], origin=origin))[0]

    async def settle_conflict(
        self,
        item_id: int,
        *,
        copy_to: int | None,
        move_to: int | None,
        unlink: bool = False,
        forget: bool = True,
        change: PropChange | None = None,
        origin: str,
    ) -> int | None:
        """A conflict settled in one transaction, so that a run stopped midway neither
        keeps a second copy nor leaves the item half settled: a copy of the item (its
        local version) goes to `copy_to`, pointing at it through PidTagConflictEntryId;
        the item goes to `move_to`; with `unlink` it loses its upstream link; with
        `forget` its pending journal entries are dropped; `change` is then made to it (the
        winner's state). Returns the copy's id."""
        checked = {} if change is None else self._writable(change.set_props, change.delete_tags)
        async with self.core.write(origin) as tx:
            copy_id = None
            if copy_to is not None:
                copy_id = await self.copy_in(tx, item_id, copy_to)
                entry = P.encode({tags.CONFLICT_ENTRYID: self.core.ids.entry_id("item", item_id)})
                async with tx.conn.execute(
                    "SELECT props FROM items WHERE id = ?", (copy_id,)
                ) as cur:
                    (props,) = await cur.fetchone() or ("{}",)
                await tx.conn.execute(
                    "UPDATE items SET props = ? WHERE id = ?",
                    (P.dumps({**json.loads(props), **entry}), copy_id),
                )
            row = await self.row_in(tx.conn, item_id)
            if move_to is not None and row["folder_id"] != move_to:
                await self.move_in(tx, row, move_to)
            if unlink:
                await tx.conn.execute("UPDATE items SET upstream = NULL WHERE id = ?", (item_id,))
            if forget:
                await tx.conn.execute(
                    "DELETE FROM journal WHERE kind = 'item' AND object_id = ?", (item_id,)
                )
            if change is not None:
                await self.update_in(tx, item_id, checked, change.delete_tags, named=change.named)
            return copy_id

    async def record_sent(
        self,
        item_id: int,
        sent_folder: int,
        change: PropChange,
        *,
        upload: bool,
        link: dict[str, Any] | None = None,
        reports: list[NewItem] | None = None,
        reports_folder: int | None = None,
    ) -> None:
        """A submitted message the server accepted, recorded in one transaction, so that a
        run stopped midway neither sends it again once any of it is recorded nor leaves it
        half filed: it is no longer submitted nor unsent but read, `change` is made to it,
        and it moves to `sent_folder` (journaled with `upload`, so that the journal replay
        uploads the copy); its upstream link becomes `link` (given: the server files the
        copy); `reports` (of refused recipients) are created in `reports_folder`. Only the
        move is a local change."""
        outcome = _Outcome(
            self._writable(change.set_props, change.delete_tags), change, reports, reports_folder
        )
        async with self.core.write(LOCAL if upload else UPSTREAM) as tx:
            refuse_search_folder(await self.folders._get_in(tx.conn, sent_folder))
            sent = flags.MSGFLAG_SUBMITTED | flags.MSGFLAG_UNSENT
            row = await self._record(tx, item_id, outcome, sent, flags.MSGFLAG_READ)
            if row["folder_id"] != sent_folder:
                await self.move_in(tx, await self.row_in(tx.conn, item_id), sent_folder)
            if link is not None:
                await tx.conn.execute(
                    "UPDATE items SET upstream = ? WHERE id = ?", (P.dumps(link), item_id)
                )

    async def record_rejected(
        self,
        item_id: int,
        change: PropChange,
        *,
        reports: list[NewItem] | None = None,
        reports_folder: int | None = None,
    ) -> None:
        """A submitted message that cannot leave, recorded in one transaction: no longer
        submitted but unsent, `change` made to it (the server's answer), and `reports` (its
        non-delivery report) created in `reports_folder`. None of it is a local change."""
        outcome = _Outcome(
            self._writable(change.set_props, change.delete_tags), change, reports, reports_folder
        )
        async with self.core.write(UPSTREAM) as tx:
            await self._record(tx, item_id, outcome, flags.MSGFLAG_SUBMITTED, flags.MSGFLAG_UNSENT)

    async def _record(
        self, tx: Tx, item_id: int, outcome: _Outcome, clear: int, add: int
    ) -> aiosqlite.Row:
        """The outcome of a submission, as the upstream's doing: the item's flags `clear`ed
        and `add`ed, its change made, its reports created. Returns the item's row before."""
        row = await self.row_in(tx.conn, item_id)
        checked = dict(outcome.checked)
        checked[tags.MESSAGE_FLAGS] = (row["flags"] & ~clear) | add  # the read state too
        with tx.as_origin(UPSTREAM):
            change = outcome.change
            await self.update_in(tx, item_id, checked, list(change.delete_tags), named=change.named)
            if outcome.reports and outcome.reports_folder is not None:
                await self.create_in(tx, outcome.reports_folder, outcome.reports)
        return row

    async def update(
        self,
        item_id: int,
        set_props: Mapping[int, Any] | None = None,
        delete_tags: list[int] | None = None,
        *,
        named: Mapping[NamedProp, Any] | None = None,
        origin: str = LOCAL,
        if_cn: int | None = None,
    ) -> list[int]:
        """Set and delete properties; returns the tags that changed. With `if_cn`, only
        if the item's change number is still that (Conflict otherwise)."""
        checked = self._writable(set_props or {}, delete_tags or [])
        async with self.core.write(origin) as tx:
            if if_cn is not None and (await self.row_in(tx.conn, item_id))["cn"] != if_cn:
                raise Conflict("the item has changed since it was read")
            return await self.update_in(tx, item_id, checked, delete_tags, named=named)

    @staticmethod
    def _writable(set_props: Mapping[int, Any], delete_tags: list[int]) -> dict[int, Any]:
        """A copy of `set_props`, refused (InvalidValue) if it or `delete_tags` hold what
        no client may write."""
        checked = dict(set_props)
        P.check_writable(checked, P.COMPUTED_ITEM)
        P.check_writable(dict.fromkeys(delete_tags), P.COMPUTED_ITEM)
        new_class = checked.get(tags.MESSAGE_CLASS)
        if new_class is not None and not (
            isinstance(new_class, str) and classes.is_valid_message_class(new_class)
        ):
            raise InvalidValue("PidTagMessageClass must be a printable ASCII class name")
        return checked

    async def update_in(
        self,
        tx: Tx,
        item_id: int,
        set_props: Mapping[int, Any],
        delete_tags: list[int] | None = None,
        *,
        named: Mapping[NamedProp, Any] | None = None,
    ) -> list[int]:
        """`update` inside a transaction the caller holds, of properties it checked."""
        set_props = dict(set_props)
        read = set_props.pop(tags.READ, None)
        row = await self.row_in(tx.conn, item_id)
        set_props.update(await self.resolve_named(tx, named or {}))
        doc = json.loads(row["props"])
        in_source = bool(row["texts_in_source"])
        if in_source and not texts.TEXT_TAGS.isdisjoint([*set_props, *(delete_tags or [])]):
            # texts about to change: the document takes those of the source first
            doc.update(await texts.from_source(tx.conn, row["source_blob"]))
            in_source = False
        # read lives in the flags column; a copy kept in the document (from an import)
        # would otherwise undo a later change of the read state
        doc.pop(P.key(tags.READ), None)
        encoded = P.encode(set_props)
        changed = [t for t in set_props if doc.get(P.key(t)) != encoded[P.key(t)]]
        doc.update(encoded)
        for tag in delete_tags or []:
            if doc.pop(P.key(tag), None) is not None:
                changed.append(tag)
        view = python_view(doc)
        if tags.MESSAGE_FLAGS not in set_props:
            view[tags.MESSAGE_FLAGS] = row["flags"]
        if read is not None:
            view[tags.READ] = read
        message_class = view.get(tags.MESSAGE_CLASS) or row["message_class"]
        if not isinstance(message_class, str):
            raise InvalidValue("PidTagMessageClass must be a non-empty string")
        hot = self._hot(view, bool(row["has_attach"]))
        doc[P.key(tags.MESSAGE_FLAGS)] = hot["flags"]
        if hot["flags"] != row["flags"]:
            changed += [t for t in (tags.MESSAGE_FLAGS, tags.READ) if t not in changed]
        if not changed:
            return []
        cn = tx.cn()
        await tx.conn.execute(
            "UPDATE items SET message_class = ?, subject = ?, sender_name = ?, "
            "sender_email = ?, received = ?, sent = ?, importance = ?, sensitivity = ?, "
            "start_time = ?, end_time = ?, due_time = ?, flags = ?, props = ?, modified = ?, "
            "cn = ?, conversation_id = ?, texts_in_source = ? WHERE id = ?",
            (
                message_class,
                *hot.values(),
                P.dumps(doc),
                tx.now,
                cn,
                conversation.conversation_id(view),
                int(in_source),
                item_id,
            ),
        )
        if self._keywords in changed:
            await tx.conn.execute("DELETE FROM item_categories WHERE item_id = ?", (item_id,))
            await tx.conn.executemany(
                "INSERT OR IGNORE INTO item_categories (item_id, category) VALUES (?, ?)",
                [(item_id, c) for c in self._categories(view)],
            )
        was_unread = not row["flags"] & flags.MSGFLAG_READ
        now_unread = not hot["flags"] & flags.MSGFLAG_READ
        if was_unread != now_unread and not row["associated"]:
            await adjust_counts(tx, row["folder_id"], 0, now_unread - was_unread, 0)
        names = [P.key(t) for t in changed]
        tx.emit("object_modified", kind="item", id=item_id, folder_id=row["folder_id"], tags=names)
        await self.journal_update(tx, item_id, row["folder_id"], cn, changed)
        return changed

    async def set_recipients(
        self, item_id: int, recipients: list[dict[int, Any]], *, origin: str = LOCAL
    ) -> None:
        async with self.core.write(origin) as tx:
            row = await self.row_in(tx.conn, item_id)
            await tx.conn.execute("DELETE FROM recipients WHERE item_id = ?", (item_id,))
            await tx.conn.executemany(
                "INSERT INTO recipients (item_id, row_id, type, display_name, email, props) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [recipient_row(item_id, n, r) for n, r in enumerate(recipients)],
            )
            doc = json.loads(row["props"])
            doc.update(P.encode(P.display_lists(recipients)))
            await self._touch(
                tx,
                row,
                doc,
                [tags.MESSAGE_RECIPIENTS, tags.DISPLAY_TO, tags.DISPLAY_CC, tags.DISPLAY_BCC],
            )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What records the outcome of a submission besides its flags (checked properties)."""

    checked: dict[int, Any]
    change: PropChange
    reports: list[NewItem] | None
    reports_folder: int | None

    def __post_init__(self) -> None:
        if self.reports and self.reports_folder is None:
            raise ValueError("reports need the folder they go to")
