"""The CalDAV / CardDAV side of the sync bookkeeping: look-ups of items by their upstream
href and by UID within a folder, where pending journal entries stand, and the resources
set aside on purpose (outside the calendar window, or malformed).

The references themselves are the `upstream` JSON columns that `syncstate` reads and
writes. A DAV folder reference is `{"dav": "caldav"|"carddav", "href", "kind", "name",
"token", "ctag"}`; a DAV item reference is `{"dav", "href", "etag", "dav_uid",
"collection"}`, plus `"pending": true` while an upload is on its way (written before the
PUT, so that an upload cut short by a crash is recognised instead of duplicated). Like all
references they are bookkeeping: no change number, no journal entry, no notification.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

from bridge.store import blobs
from bridge.store.core import SYSTEM, StoreCore

_ITEM_COLUMNS = "id, folder_id, message_class, upstream, start_time, end_time, modified, associated"


@dataclass(frozen=True, slots=True)
class DavItem:
    id: int
    folder_id: int
    message_class: str
    upstream: dict[str, Any] | None
    start_time: int | None
    end_time: int | None
    modified: int
    associated: bool = False

    @property
    def href(self) -> str | None:
        href = (self.upstream or {}).get("href")
        return str(href) if href else None

    @property
    def etag(self) -> str | None:
        etag = (self.upstream or {}).get("etag")
        return str(etag) if etag else None

    @property
    def uid(self) -> str | None:
        uid = (self.upstream or {}).get("dav_uid")
        return str(uid) if uid else None


def _item(row: Any) -> DavItem:
    return DavItem(
        id=row["id"],
        folder_id=row["folder_id"],
        message_class=row["message_class"],
        upstream=json.loads(row["upstream"]) if row["upstream"] else None,
        start_time=row["start_time"],
        end_time=row["end_time"],
        modified=row["modified"],
        associated=bool(row["associated"]),
    )


def is_dav_ref(ref: object) -> TypeGuard[dict[str, Any]]:
    """Whether an upstream reference (of a folder or an item) points into a DAV server."""
    return isinstance(ref, dict) and "dav" in ref and "href" in ref


class DavRefs:
    def __init__(self, core: StoreCore) -> None:
        self.core = core

    # -- folders ----------------------------------------------------------------------

    async def folder_refs(self) -> dict[int, dict[str, Any]]:
        """Folder id → its DAV reference, for every folder linked to a collection."""
        async with self.core.reader.execute(
            "SELECT id, upstream FROM folders WHERE upstream IS NOT NULL"
        ) as cur:
            rows = await cur.fetchall()
        out: dict[int, dict[str, Any]] = {}
        for fid, raw in rows:
            ref = json.loads(raw)
            if is_dav_ref(ref):
                out[fid] = ref
        return out

    # -- items ------------------------------------------------------------------------

    async def item(self, item_id: int) -> DavItem | None:
        async with self.core.reader.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _item(row)

    async def item_by_href(self, href: str) -> DavItem | None:
        async with self.core.reader.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE json_extract(upstream, '$.href') = ? "
            "ORDER BY id LIMIT 1",
            (href,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _item(row)

    async def items_by_uid(self, folder_id: int, uid: str) -> list[DavItem]:
        async with self.core.reader.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE folder_id = ? AND "
            "json_extract(upstream, '$.dav_uid') = ? ORDER BY id",
            (folder_id, uid),
        ) as cur:
            return [_item(row) for row in await cur.fetchall()]

    async def items_in(self, folder_id: int) -> list[DavItem]:
        """Every item of a folder (linked or not), associated ones excepted."""
        async with self.core.reader.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE folder_id = ? AND associated = 0",
            (folder_id,),
        ) as cur:
            return [_item(row) for row in await cur.fetchall()]

    async def unlinked_uids(
        self, folder_id: int, uid_of: Callable[[bytes], str | None]
    ) -> dict[str, int]:
        """UID → id of the items of a folder that have a raw source but no reference yet
        (made here and not uploaded), read from their sources with `uid_of`."""
        async with self.core.reader.execute(
            "SELECT id, source_blob FROM items WHERE folder_id = ? AND upstream IS NULL "
            "AND source_blob IS NOT NULL AND associated = 0",
            (folder_id,),
        ) as cur:
            rows = await cur.fetchall()
        out: dict[str, int] = {}
        for item_id, blob_id in rows:
            uid = uid_of(await blobs.read_all(self.core.reader, blob_id))
            if uid is not None:
                out.setdefault(uid, item_id)
        return out

    async def linked_to(self, collection: str) -> list[DavItem]:
        """Items whose reference points into a collection, wherever they are now."""
        async with self.core.reader.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE upstream IS NOT NULL AND "
            "json_extract(upstream, '$.collection') = ?",
            (collection,),
        ) as cur:
            return [_item(row) for row in await cur.fetchall()]

    async def places(self, item_ids: Iterable[int]) -> dict[int, tuple[int, dict[str, Any] | None]]:
        """Item id → (its folder, its reference), for the items that still exist."""
        ids = sorted(set(item_ids))
        out: dict[int, tuple[int, dict[str, Any] | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self.core.reader.execute(
                f"SELECT id, folder_id, upstream FROM items WHERE id IN ({marks})", chunk
            ) as cur:
                for row in await cur.fetchall():
                    out[row[0]] = (row[1], json.loads(row[2]) if row[2] else None)
        return out

    # -- journal ----------------------------------------------------------------------

    async def set_journal_payload(self, entry_id: int, payload: dict[str, Any]) -> None:
        """Rewrite a pending entry's payload (a folder deletion whose DAV part is done
        keeps only the part the mail side still has to carry out)."""
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "UPDATE journal SET payload = ? WHERE id = ?", (json.dumps(payload), entry_id)
            )

    # -- resources set aside ----------------------------------------------------------

    async def skipped(self, collection: str) -> dict[str, tuple[str | None, str]]:
        """href → (ETag, reason) of the members of a collection not kept in the cache."""
        async with self.core.reader.execute(
            "SELECT href, etag, reason FROM dav_skipped WHERE collection = ?", (collection,)
        ) as cur:
            return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}

    async def set_skipped(
        self, collection: str, add: dict[str, tuple[str | None, str]], remove: Iterable[str] = ()
    ) -> None:
        gone = list(remove)
        if not add and not gone:
            return
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.executemany(
                "DELETE FROM dav_skipped WHERE href = ?", [(h,) for h in gone]
            )
            await tx.conn.executemany(
                "INSERT OR REPLACE INTO dav_skipped (href, collection, etag, reason) "
                "VALUES (?, ?, ?, ?)",
                [(h, collection, etag, reason) for h, (etag, reason) in add.items()],
            )

    async def unskip(self, collection: str, reason: str) -> None:
        """Forget the members of a collection set aside for `reason`."""
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute(
                "DELETE FROM dav_skipped WHERE collection = ? AND reason = ?", (collection, reason)
            )

    async def forget_collection(self, collection: str) -> None:
        async with self.core.write(SYSTEM) as tx:
            await tx.conn.execute("DELETE FROM dav_skipped WHERE collection = ?", (collection,))
