"""Item writes: create (in bulk), set and delete properties, recipients, attachments, move,
copy, delete. Each method is one transaction of the store core (journal + change numbers +
notifications)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from bridge.model import classes, flags, tags
from bridge.model.codec import from_json
from bridge.model.named import KNOWN, NamedProp
from bridge.model.proptypes import PropType, make_tag
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import LOCAL, SYSTEM, StoreCore, Tx
from bridge.store.errors import Conflict, InvalidValue, NotFound
from bridge.store.folders import Folders

STREAM_BATCH = 16  # chunks per transaction while streaming a blob in
SLICE = 200  # items prepared per slice of a bulk create

_INSERT_ITEM = (
    "INSERT INTO items (id, folder_id, message_class, subject, sender_name, sender_email, "
    "received, sent, importance, sensitivity, start_time, end_time, due_time, flags, size, "
    "has_attach, associated, created, modified, created_cn, cn, props, source_blob, "
    "source_type, upstream) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RECIPIENT = (
    "INSERT INTO recipients (item_id, row_id, type, display_name, email, props) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_ATTACHMENT = (
    "INSERT INTO attachments (item_id, num, filename, mime_tag, size, content_id, method, "
    "hidden, blob_id, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CATEGORY = "INSERT OR IGNORE INTO item_categories (item_id, category) VALUES (?, ?)"
_INSERT_JOURNAL = (
    "INSERT INTO journal (ts, op, kind, object_id, folder_id, cn, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class _Rows:
    """The rows of a slice of new items, table by table."""

    blobs: list[tuple[int, int, str]] = field(default_factory=list)
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

    def queue(self, conn: aiosqlite.Connection, journaled: bool) -> list[asyncio.Future[Any]]:
        """Start the inserts in table order (blobs before the items that point at them)."""
        statements: list[tuple[str, list[Any]]] = [
            ("INSERT INTO blobs (id, size, sha256) VALUES (?, ?, ?)", self.blobs),
            ("INSERT INTO blob_chunks (id, data) VALUES (?, ?)", self.chunks),
            (_INSERT_ITEM, self.items),
            (_INSERT_RECIPIENT, self.recipients),
            (_INSERT_ATTACHMENT, self.attachments),
            (_INSERT_CATEGORY, self.categories),
        ]
        if journaled:
            statements.append((_INSERT_JOURNAL, self.journal))
        return [
            asyncio.ensure_future(conn.executemany(sql, rows)) for sql, rows in statements if rows
        ]


@dataclass(slots=True)
class NewItem:
    """An item to create. `props` use store tags; `named` is resolved in the transaction."""

    message_class: str = "IPM.Note"
    props: dict[int, Any] = field(default_factory=dict)
    named: dict[NamedProp, Any] = field(default_factory=dict)
    recipients: list[dict[int, Any]] = field(default_factory=list)
    attachments: list[tuple[dict[int, Any], bytes]] = field(default_factory=list)
    source: bytes | None = None
    source_type: str | None = None
    upstream: dict[str, Any] | None = None
    associated: bool = False


class Items:
    def __init__(self, core: StoreCore, folders: Folders) -> None:
        self.core = core
        self.folders = folders
        named = core.named
        self._start = named.tag_for(P.APPT_START, PropType.SYSTIME)
        self._end = named.tag_for(P.APPT_END, PropType.SYSTIME)
        self._due = named.tag_for(P.TASK_DUE, PropType.SYSTIME)
        self._keywords = named.tag_for(P.KEYWORDS, PropType.UNICODE | 0x1000)

    # -- create -----------------------------------------------------------------------

    async def resolve_named(self, tx: Tx, named: Mapping[NamedProp, Any]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for np, value in named.items():
            known = self.core.named.lookup(np)
            ptype = (known and known[1]) or (KNOWN[np].ptype if np in KNOWN else None)
            if ptype is None:
                ptype = P.infer_type(value)
            out[make_tag(await tx.named_id(np, ptype), ptype)] = value
        return out

    async def create_many(
        self, folder_id: int, new_items: list[NewItem], *, origin: str = LOCAL
    ) -> list[int]:
        """Create items in one transaction; returns their ids in order.

        Rows are prepared in slices; each slice's inserts are queued to the database thread
        before the next slice is prepared, so Python and SQLite work side by side."""
        async with self.core.write(origin) as tx:
            return await self.create_in(tx, folder_id, new_items)

    async def create_in(self, tx: Tx, folder_id: int, new_items: list[NewItem]) -> list[int]:
        """`create_many` inside a transaction the caller holds."""
        for item in new_items:
            P.check_writable(item.props, P.COMPUTED_ITEM)
        await self.folders._get_in(tx.conn, folder_id)
        first_id = tx.alloc("next_item", len(new_items))
        queued: list[asyncio.Future[Any]] = []
        unread = assoc = 0
        for start in range(0, len(new_items), SLICE):
            rows = _Rows()
            for offset, item in enumerate(new_items[start : start + SLICE], start):
                read = await self._prepare(tx, rows, folder_id, first_id + offset, item)
                unread += not read and not item.associated
                assoc += item.associated
            queued += rows.queue(tx.conn, tx.journaled)
            await asyncio.sleep(0)  # let the queued inserts reach the database thread
        await asyncio.gather(*queued)
        await _adjust_counts(tx, folder_id, len(new_items) - assoc, unread, assoc)
        return list(range(first_id, first_id + len(new_items)))

    async def _prepare(self, tx: Tx, rows: _Rows, folder_id: int, iid: int, item: NewItem) -> bool:
        """Add one item's rows; returns whether it is read."""
        cn = tx.cn()
        props = dict(item.props)
        props.update(await self.resolve_named(tx, item.named))
        props[tags.MESSAGE_CLASS] = item.message_class
        props.update(P.display_lists(item.recipients))
        source_blob = None
        if item.source is not None:
            source_blob = tx.alloc("next_blob")
            rows.add_blob(source_blob, item.source)
        att_size = 0
        for num, (aprops, data) in enumerate(item.attachments):
            bid = tx.alloc("next_blob")
            rows.add_blob(bid, data)
            rows.attachments.append(_attachment_row(iid, num, aprops, bid, len(data)))
            att_size += len(data)
        for row_id, rprops in enumerate(item.recipients):
            rows.recipients.append(_recipient_row(iid, row_id, rprops))
        doc = P.dumps(P.encode(props))
        size = len(item.source) if item.source is not None else len(doc) + att_size
        has_attach = any(not a[0].get(tags.ATTACHMENT_HIDDEN) for a in item.attachments)
        hot = self._hot(props, has_attach)
        upstream = json.dumps(item.upstream) if item.upstream else None
        rows.items.append(
            (
                iid,
                folder_id,
                item.message_class,
                *hot.values(),
                size,
                int(has_attach),
                int(item.associated),
                tx.now,
                tx.now,
                cn,
                cn,
                doc,
                source_blob,
                item.source_type,
                upstream,
            )
        )
        rows.categories.extend((iid, c) for c in self._categories(props))
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
                flags=hot["flags"],
            )
        return bool(hot["flags"] & flags.MSGFLAG_READ)

    async def create(self, folder_id: int, item: NewItem, *, origin: str = LOCAL) -> int:
        return (await self.create_many(folder_id, [item], origin=origin))[0]

    def _hot(self, props: Mapping[int, Any], has_attach: bool) -> dict[str, Any]:
        sender_name, sender_email = P.sender_columns(props)
        subject = props.get(tags.SUBJECT)
        return {
            "subject": subject if isinstance(subject, str) else None,
            "sender_name": sender_name,
            "sender_email": sender_email,
            "received": P.filetime(props.get(tags.MESSAGE_DELIVERY_TIME)),
            "sent": P.filetime(props.get(tags.CLIENT_SUBMIT_TIME)),
            "importance": _int_or_none(props.get(tags.IMPORTANCE)),
            "sensitivity": _int_or_none(props.get(tags.SENSITIVITY)),
            "start_time": P.filetime(props.get(self._start or -1) or props.get(tags.START_DATE)),
            "end_time": P.filetime(props.get(self._end or -1) or props.get(tags.END_DATE)),
            "due_time": P.filetime(props.get(self._due or -1)),
            "flags": P.message_flags(props, has_attach),
        }

    def _categories(self, props: Mapping[int, Any]) -> list[str]:
        value = props.get(self._keywords or -1)
        return [c for c in value if isinstance(c, str)] if isinstance(value, list) else []

    # -- modify -----------------------------------------------------------------------

    async def update(
        self,
        item_id: int,
        set_props: Mapping[int, Any] | None = None,
        delete_tags: list[int] | None = None,
        *,
        named: Mapping[NamedProp, Any] | None = None,
        origin: str = LOCAL,
    ) -> list[int]:
        """Set and delete properties; returns the tags that changed."""
        set_props = dict(set_props or {})
        P.check_writable(set_props, P.COMPUTED_ITEM)
        P.check_writable(dict.fromkeys(delete_tags or []), P.COMPUTED_ITEM)
        new_class = set_props.get(tags.MESSAGE_CLASS)
        if new_class is not None and not (
            isinstance(new_class, str) and classes.is_valid_message_class(new_class)
        ):
            raise InvalidValue("PidTagMessageClass must be a printable ASCII class name")
        read = set_props.pop(tags.READ, None)
        async with self.core.write(origin) as tx:
            row = await self._row(tx.conn, item_id)
            set_props.update(await self.resolve_named(tx, named or {}))
            doc = json.loads(row["props"])
            encoded = P.encode(set_props)
            changed = [t for t in set_props if doc.get(P.key(t)) != encoded[P.key(t)]]
            doc.update(encoded)
            for tag in delete_tags or []:
                if doc.pop(P.key(tag), None) is not None:
                    changed.append(tag)
            view = _python_view(doc)
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
                "cn = ? WHERE id = ?",
                (message_class, *hot.values(), P.dumps(doc), tx.now, cn, item_id),
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
                await _adjust_counts(tx, row["folder_id"], 0, now_unread - was_unread, 0)
            names = [P.key(t) for t in changed]
            tx.emit(
                "object_modified", kind="item", id=item_id, folder_id=row["folder_id"], tags=names
            )
            await tx.journal("item_update", "item", item_id, row["folder_id"], cn, {"tags": names})
        return changed

    async def set_recipients(
        self, item_id: int, recipients: list[dict[int, Any]], *, origin: str = LOCAL
    ) -> None:
        async with self.core.write(origin) as tx:
            row = await self._row(tx.conn, item_id)
            await tx.conn.execute("DELETE FROM recipients WHERE item_id = ?", (item_id,))
            await tx.conn.executemany(
                "INSERT INTO recipients (item_id, row_id, type, display_name, email, props) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [_recipient_row(item_id, n, r) for n, r in enumerate(recipients)],
            )
            doc = json.loads(row["props"])
            doc.update(P.encode(P.display_lists(recipients)))
            await self._touch(
                tx,
                row,
                doc,
                [tags.MESSAGE_RECIPIENTS, tags.DISPLAY_TO, tags.DISPLAY_CC, tags.DISPLAY_BCC],
            )

    async def add_attachment(
        self,
        item_id: int,
        props: dict[int, Any],
        *,
        data: bytes | None = None,
        blob_id: int | None = None,
        origin: str = LOCAL,
    ) -> int:
        """Attach `data`, or a blob streamed in beforehand with `stream_blob`."""
        async with self.core.write(origin) as tx:
            return await self.attach_in(tx, item_id, props, data=data, blob_id=blob_id)

    async def attach_in(
        self,
        tx: Tx,
        item_id: int,
        props: dict[int, Any],
        *,
        data: bytes | None = None,
        blob_id: int | None = None,
    ) -> int:
        """`add_attachment` inside a transaction the caller holds."""
        row = await self._row(tx.conn, item_id)
        async with tx.conn.execute(
            "SELECT coalesce(max(num) + 1, 0) FROM attachments WHERE item_id = ?", (item_id,)
        ) as cur:
            num = int((await cur.fetchone() or [0])[0])
        if data is not None:
            blob_id = tx.alloc("next_blob")
            brow, crows = blobs.blob_rows(blob_id, data)
            await blobs.insert_many(tx.conn, [brow], crows)
        if blob_id is None:
            raise InvalidValue("an attachment needs content")
        await tx.conn.execute("DELETE FROM pending_blobs WHERE blob_id = ?", (blob_id,))
        size = await blobs.size_of(tx.conn, blob_id)
        if size is None:
            raise NotFound("blob", str(blob_id))
        await tx.conn.execute(
            "INSERT INTO attachments (item_id, num, filename, mime_tag, size, content_id, "
            "method, hidden, blob_id, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _attachment_row(item_id, num, props, blob_id, size),
        )
        await self._after_attachments(tx, row)
        return num

    async def delete_attachment(self, item_id: int, num: int, *, origin: str = LOCAL) -> None:
        async with self.core.write(origin) as tx:
            row = await self._row(tx.conn, item_id)
            async with tx.conn.execute(
                "SELECT blob_id FROM attachments WHERE item_id = ? AND num = ?", (item_id, num)
            ) as cur:
                att = await cur.fetchone()
            if att is None:
                raise NotFound("attachment", f"{num} of m{item_id}")
            await tx.conn.execute(
                "DELETE FROM attachments WHERE item_id = ? AND num = ?", (item_id, num)
            )
            if att["blob_id"] is not None:
                await blobs.delete_many(tx.conn, [att["blob_id"]])
            await self._after_attachments(tx, row)

    async def _after_attachments(self, tx: Tx, row: aiosqlite.Row) -> None:
        async with tx.conn.execute(
            "SELECT count(*) FILTER (WHERE NOT hidden), coalesce(sum(size), 0) "
            "FROM attachments WHERE item_id = ?",
            (row["id"],),
        ) as cur:
            visible, total = await cur.fetchone() or (0, 0)
        mflags = (
            row["flags"] | flags.MSGFLAG_HASATTACH
            if visible
            else row["flags"] & ~flags.MSGFLAG_HASATTACH
        )
        await tx.conn.execute(
            "UPDATE items SET has_attach = ?, flags = ?, size = ? WHERE id = ?",
            (
                int(bool(visible)),
                mflags,
                len(row["props"]) + int(total) if row["source_blob"] is None else row["size"],
                row["id"],
            ),
        )
        doc = json.loads(row["props"])
        doc[P.key(tags.MESSAGE_FLAGS)] = mflags
        await self._touch(tx, row, doc, [tags.MESSAGE_ATTACHMENTS, tags.HASATTACH])

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
        await tx.journal("item_update", "item", row["id"], row["folder_id"], cn, {"tags": names})

    async def stream_blob(
        self, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> int:
        """Store streamed content without holding it in memory; returns the blob id.

        Chunks are committed in small transactions so other writers are not held up; the
        blob stays in `pending_blobs` until attached, and a pending one is removed at the
        next start."""
        hasher = blobs.Hasher()
        async with self.core.write(SYSTEM) as tx:
            blob_id = tx.alloc("next_blob")
            await tx.conn.execute(
                "INSERT INTO blobs (id, size, sha256) VALUES (?, 0, '')", (blob_id,)
            )
            await tx.conn.execute("INSERT INTO pending_blobs (blob_id) VALUES (?)", (blob_id,))
        seq, buffer = 0, b""
        pending: list[tuple[int, bytes]] = []

        async def flush() -> None:
            if pending:
                async with self.core.write(SYSTEM) as tx:
                    await tx.conn.executemany(
                        "INSERT INTO blob_chunks (id, data) VALUES (?, ?)", pending
                    )
                pending.clear()

        try:
            async for data in chunks:
                hasher.update(data)
                if max_size is not None and hasher.size > max_size:
                    raise InvalidValue(f"content larger than {max_size} bytes")
                buffer += data
                while len(buffer) >= blobs.CHUNK_SIZE:
                    pending.append((blobs.chunk_key(blob_id, seq), buffer[: blobs.CHUNK_SIZE]))
                    buffer = buffer[blobs.CHUNK_SIZE :]
                    seq += 1
                    if len(pending) >= STREAM_BATCH:
                        await flush()
            if buffer or seq == 0:
                pending.append((blobs.chunk_key(blob_id, seq), buffer))
            await flush()
        except BaseException:
            async with self.core.write(SYSTEM) as tx:
                await blobs.delete_many(tx.conn, [blob_id])
            raise
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "UPDATE blobs SET size = ?, sha256 = ? WHERE id = ?",
                (hasher.size, hasher.hexdigest(), blob_id),
            )
        return blob_id

    # -- move, copy, delete -----------------------------------------------------------

    async def move(self, item_id: int, folder_id: int, *, origin: str = LOCAL) -> None:
        async with self.core.write(origin) as tx:
            row = await self._row(tx.conn, item_id)
            await self.folders._get_in(tx.conn, folder_id)
            if row["folder_id"] == folder_id:
                return
            await self._move_in(tx, row, folder_id)

    async def _move_in(self, tx: Tx, row: aiosqlite.Row, folder_id: int) -> None:
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
        await _adjust_counts(tx, old, -normal, -unread, -assoc)
        await _adjust_counts(tx, folder_id, normal, unread, assoc)
        tx.emit("object_moved", kind="item", id=row["id"], folder_id=folder_id, old_folder_id=old)
        await tx.journal(
            "item_move",
            "item",
            row["id"],
            folder_id,
            cn,
            {"from_folder_id": old, "upstream": _upstream(row)},
        )

    async def copy(self, item_id: int, folder_id: int, *, origin: str = LOCAL) -> int:
        async with self.core.write(origin) as tx:
            return await self.copy_in(tx, item_id, folder_id)

    async def copy_in(self, tx: Tx, item_id: int, folder_id: int) -> int:
        """`copy` inside a transaction the caller holds."""
        row = await self._row(tx.conn, item_id)
        await self.folders._get_in(tx.conn, folder_id)
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
            "props, source_blob, source_type, upstream) SELECT ?, ?, message_class, subject, "
            "sender_name, sender_email, received, sent, size, flags, importance, sensitivity, "
            "has_attach, associated, start_time, end_time, due_time, ?, ?, ?, ?, props, ?, "
            "source_type, NULL FROM items WHERE id = ?",
            (new_id, folder_id, tx.now, tx.now, cn, cn, source_blob, item_id),
        )
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
        await _adjust_counts(tx, folder_id, normal, unread, assoc)
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
            row = await self._row(tx.conn, item_id)
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
                await self._move_in(tx, row, outbox)
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

    async def delete(self, item_id: int, *, hard: bool = False, origin: str = LOCAL) -> None:
        """Soft delete moves the item to Deleted Items; an item already there (or `hard`)
        is removed for good."""
        async with self.core.write(origin) as tx:
            await self.delete_in(tx, item_id, hard=hard)

    async def delete_in(self, tx: Tx, item_id: int, *, hard: bool = False) -> None:
        """`delete` inside a transaction the caller holds."""
        trash = self.folders.roles["deleted"]
        row = await self._row(tx.conn, item_id)
        if not hard and row["folder_id"] not in await self.folders.descendants(trash, tx.conn):
            await self._move_in(tx, row, trash)
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
        await _adjust_counts(tx, row["folder_id"], -normal, -unread, -assoc)
        tx.emit("object_deleted", kind="item", id=item_id, folder_id=row["folder_id"])
        await tx.journal(
            "item_delete", "item", item_id, row["folder_id"], cn, {"upstream": _upstream(row)}
        )

    async def _row(self, conn: aiosqlite.Connection, item_id: int) -> aiosqlite.Row:
        async with conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("item", self.core.ids.api_id("item", item_id))
        return row


async def _adjust_counts(tx: Tx, folder_id: int, count: int, unread: int, assoc: int) -> None:
    if count or unread or assoc:
        await tx.conn.execute(
            "UPDATE folders SET content_count = content_count + ?, unread_count = unread_count + ?,"
            " assoc_count = assoc_count + ? WHERE id = ?",
            (count, unread, assoc, folder_id),
        )


def _recipient_row(item_id: int, row_id: int, props: Mapping[int, Any]) -> tuple[Any, ...]:
    rtype = props.get(tags.RECIPIENT_TYPE, flags.MAPI_TO)
    email = props.get(tags.SMTP_ADDRESS) or props.get(tags.EMAIL_ADDRESS)
    stored = {**props, tags.ROWID: row_id}
    return (item_id, row_id, rtype, props.get(tags.DISPLAY_NAME), email, P.dumps(P.encode(stored)))


def _attachment_row(
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


def _upstream(row: aiosqlite.Row) -> Any:
    return json.loads(row["upstream"]) if row["upstream"] else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _python_view(doc: Mapping[str, Any]) -> dict[int, Any]:
    """Decode a stored document back to Python values (for recomputing hot columns)."""
    return {int(k, 16): from_json(int(k, 16) & 0xFFFF, v) for k, v in doc.items()}
