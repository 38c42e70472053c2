"""Item attachments: add (in memory or streamed in beforehand), delete."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import LOCAL, SYSTEM, Tx
from bridge.store.errors import InvalidValue, NotFound
from bridge.store.item_base import ItemsBase
from bridge.store.item_rows import attachment_row

STREAM_BATCH = 16  # chunks per transaction while streaming a blob in


class AttachmentWrites(ItemsBase):
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
        row = await self.row_in(tx.conn, item_id)
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
            attachment_row(item_id, num, props, blob_id, size),
        )
        await self._after_attachments(tx, row)
        return num

    async def delete_attachment(self, item_id: int, num: int, *, origin: str = LOCAL) -> None:
        async with self.core.write(origin) as tx:
            row = await self.row_in(tx.conn, item_id)
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

    async def stream_blob(
        self, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> int:
        """Store streamed content without holding it in memory; returns the blob id.

        Chunks are committed in small transactions so other writers are not held up; the
        blob stays in `pending_blobs` until attached, and a pending one is removed at the
        next start."""
        size = 0
        async with self.core.write(SYSTEM) as tx:
            blob_id = tx.alloc("next_blob")
            await tx.conn.execute("INSERT INTO blobs (id, size) VALUES (?, 0)", (blob_id,))
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
                size += len(data)
                if max_size is not None and size > max_size:
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
            await tx.conn.execute("UPDATE blobs SET size = ? WHERE id = ?", (size, blob_id))
        return blob_id
