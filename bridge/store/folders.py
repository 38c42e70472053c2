"""Folders: the hierarchy, its default set, and every folder write (create, rename, move,
set properties, delete to Deleted Items or for good)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import LOCAL, SYSTEM, StoreCore, Tx
from bridge.store.defaults import DEFAULT_FOLDERS
from bridge.store.errors import Conflict, Forbidden, InvalidValue, NotFound

MAX_NAME = 255
_FOLDER_COLUMNS = (
    "id, parent_id, role, display_name, container_class, folder_type, props, content_count, "
    "unread_count, assoc_count, created, modified, cn, upstream, "
    "EXISTS (SELECT 1 FROM folders c WHERE c.parent_id = folders.id) AS has_children"
)


@dataclass(slots=True)
class Folder:
    id: int
    parent_id: int | None
    role: str | None
    display_name: str
    container_class: str | None
    folder_type: int
    props: P.JsonProps
    content_count: int
    unread_count: int
    assoc_count: int
    created: int
    modified: int
    cn: int
    upstream: dict[str, Any] | None
    has_children: bool

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Folder:
        return cls(
            id=row["id"],
            parent_id=row["parent_id"],
            role=row["role"],
            display_name=row["display_name"],
            container_class=row["container_class"],
            folder_type=row["folder_type"],
            props=P.decode_doc(row["props"]),
            content_count=row["content_count"],
            unread_count=row["unread_count"],
            assoc_count=row["assoc_count"],
            created=row["created"],
            modified=row["modified"],
            cn=row["cn"],
            upstream=json.loads(row["upstream"]) if row["upstream"] else None,
            has_children=bool(row["has_children"]),
        )


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("a folder name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidValue(f"a folder name may have at most {MAX_NAME} characters")
    if any(ord(c) < 0x20 for c in name):
        raise InvalidValue("a folder name may not contain control characters")
    if name != name.strip():
        raise InvalidValue("a folder name may not start or end with a space")
    return name


class Folders:
    """Folder reads and writes of one store."""

    def __init__(self, core: StoreCore) -> None:
        self.core = core
        self.roles: dict[str, int] = {}

    async def load(self) -> None:
        if self.core.fresh:
            await self._create_defaults()
        async with self.core.reader.execute(
            "SELECT role, id FROM folders WHERE role IS NOT NULL"
        ) as cur:
            self.roles = {row["role"]: row["id"] for row in await cur.fetchall()}
        missing = [f.role for f in DEFAULT_FOLDERS if f.role not in self.roles]
        if missing:
            await self._create_defaults(only=set(missing))
            await self.load()

    async def _create_defaults(self, only: set[str] | None = None) -> None:
        async with self.core.write(SYSTEM) as tx:
            by_role: dict[str, int] = {}
            async with tx.conn.execute("SELECT role, id FROM folders WHERE role IS NOT NULL") as c:
                by_role = {row["role"]: row["id"] for row in await c.fetchall()}
            for spec in DEFAULT_FOLDERS:
                if only is not None and spec.role not in only:
                    continue
                parent = by_role.get(spec.parent) if spec.parent else None
                name = spec.name
                if spec.parent and await self._name_taken(tx.conn, parent, name, None):
                    name = await self._unique_name(tx.conn, parent, name)
                by_role[spec.role], _ = await self._insert(
                    tx,
                    parent,
                    name,
                    spec.container_class,
                    {},
                    role=spec.role,
                    folder_type=spec.folder_type,
                )

    # -- reads ------------------------------------------------------------------------

    async def get(self, folder_id: int) -> Folder:
        async with self.core.reader.execute(
            f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE id = ?", (folder_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("folder", self.core.ids.api_id("folder", folder_id))
        return Folder.from_row(row)

    async def all(self) -> list[Folder]:
        async with self.core.reader.execute(
            f"SELECT {_FOLDER_COLUMNS} FROM folders ORDER BY parent_id IS NOT NULL, parent_id, "
            "display_name COLLATE NOCASE"
        ) as cur:
            return [Folder.from_row(row) for row in await cur.fetchall()]

    async def _refuse_changed_since(self, tx: Tx, folder_id: int, mark: int) -> None:
        """Conflict if the folder, a folder below it, or an item in them was changed here
        after the journal's `mark`."""
        tree = await self.descendants(folder_id, tx.conn)
        marks = ",".join("?" * len(tree))
        async with tx.conn.execute(
            f"SELECT 1 FROM journal WHERE id > ? AND (folder_id IN ({marks}) "
            f"OR (kind = 'folder' AND object_id IN ({marks}))) LIMIT 1",
            (mark, *tree, *tree),
        ) as cur:
            if await cur.fetchone() is not None:
                raise Conflict("the folder or its content was changed here since it was read")

    async def descendants(
        self, folder_id: int, conn: aiosqlite.Connection | None = None
    ) -> list[int]:
        """The folder and every folder below it."""
        async with (conn or self.core.reader).execute(
            "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
            "SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub",
            (folder_id,),
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    # -- writes -----------------------------------------------------------------------

    async def create(
        self,
        parent_id: int,
        name: str,
        container_class: str | None = None,
        props: dict[int, Any] | None = None,
        *,
        origin: str = LOCAL,
        upstream: dict[str, Any] | None = None,
    ) -> int:
        check_name(name)
        async with self.core.write(origin) as tx:
            parent = await self._get_in(tx.conn, parent_id)
            if parent["folder_type"] == flags.FOLDER_SEARCH:
                raise Conflict("a search folder cannot have subfolders")
            if await self._name_taken(tx.conn, parent_id, name, None):
                raise Conflict(f"a folder named '{name}' already exists there")
            if container_class is None:
                container_class = parent["container_class"] or "IPF.Note"
            fid, cn = await self._insert(
                tx, parent_id, name, container_class, props or {}, upstream=upstream
            )
            await tx.journal("folder_create", "folder", fid, parent_id, cn)
        return fid

    async def _insert(
        self,
        tx: Tx,
        parent_id: int | None,
        name: str,
        container_class: str | None,
        props: dict[int, Any],
        *,
        role: str | None = None,
        folder_type: int = flags.FOLDER_GENERIC,
        upstream: dict[str, Any] | None = None,
    ) -> tuple[int, int]:
        P.check_writable(props, P.COMPUTED_FOLDER)
        fid = tx.alloc("next_folder")
        cn = tx.cn()
        await tx.conn.execute(
            "INSERT INTO folders (id, parent_id, role, display_name, container_class, folder_type,"
            " props, created, modified, cn, upstream) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                parent_id,
                role,
                name,
                container_class,
                folder_type,
                P.dumps(P.encode(_stored_folder_props(props))),
                tx.now,
                tx.now,
                cn,
                json.dumps(upstream) if upstream else None,
            ),
        )
        tx.emit("object_created", kind="folder", id=fid, parent_id=parent_id)
        return fid, cn

    async def update(
        self,
        folder_id: int,
        *,
        name: str | None = None,
        parent_id: int | None = None,
        set_props: dict[int, Any] | None = None,
        delete_props: list[int] | None = None,
        origin: str = LOCAL,
    ) -> None:
        """Rename, move and/or change properties in one transaction."""
        set_props = dict(set_props or {})
        if tags.DISPLAY_NAME in set_props:
            name = set_props.pop(tags.DISPLAY_NAME)
        P.check_writable(set_props, P.COMPUTED_FOLDER)
        P.check_writable(dict.fromkeys(delete_props or []), P.COMPUTED_FOLDER)
        async with self.core.write(origin) as tx:
            row = await self._get_in(tx.conn, folder_id)
            role = row["role"]
            changed: list[int] = []
            new_parent = row["parent_id"]
            if parent_id is not None and parent_id != row["parent_id"]:
                if role:
                    raise Forbidden(f"the default folder '{row['display_name']}' cannot be moved")
                if (await self._get_in(tx.conn, parent_id))["folder_type"] == flags.FOLDER_SEARCH:
                    raise Conflict("a search folder cannot have subfolders")
                if parent_id in await self.descendants(folder_id, tx.conn):
                    raise Conflict("a folder cannot be moved into itself or below itself")
                new_parent = parent_id
            new_name = row["display_name"]
            if name is not None and name != row["display_name"]:
                if role in ("root", "ipm_subtree"):
                    raise Forbidden("the root folders cannot be renamed")
                new_name = check_name(name)
                changed.append(tags.DISPLAY_NAME)
            if (new_name != row["display_name"] or new_parent != row["parent_id"]) and (
                await self._name_taken(tx.conn, new_parent, new_name, folder_id)
            ):
                raise Conflict(f"a folder named '{new_name}' already exists there")
            doc = json.loads(row["props"])
            container_class = row["container_class"]
            for tag, value in _stored_folder_props(set_props).items():
                doc.update(P.encode({tag: value}))
                changed.append(tag)
            if tags.CONTAINER_CLASS in set_props:
                container_class = set_props[tags.CONTAINER_CLASS]
            for tag in delete_props or []:
                if doc.pop(P.key(tag), None) is not None:
                    changed.append(tag)
            cn = tx.cn()
            await tx.conn.execute(
                "UPDATE folders SET display_name = ?, parent_id = ?, props = ?, "
                "container_class = ?, modified = ?, cn = ? WHERE id = ?",
                (new_name, new_parent, P.dumps(doc), container_class, tx.now, cn, folder_id),
            )
            payload: dict[str, Any] = {"tags": [P.key(t) for t in changed]}
            if new_parent != row["parent_id"]:
                payload["old_parent_id"] = row["parent_id"]
                tx.emit(
                    "object_moved",
                    kind="folder",
                    id=folder_id,
                    parent_id=new_parent,
                    old_parent_id=row["parent_id"],
                )
            if changed:
                tx.emit(
                    "object_modified",
                    kind="folder",
                    id=folder_id,
                    parent_id=new_parent,
                    tags=payload["tags"],
                )
            await tx.journal("folder_update", "folder", folder_id, new_parent, cn, payload)

    async def delete(
        self,
        folder_id: int,
        *,
        hard: bool = False,
        origin: str = LOCAL,
        unchanged_since: int | None = None,
    ) -> None:
        """Soft delete moves the folder into Deleted Items; a folder already there (or
        `hard`) is removed with everything in it. With `unchanged_since` (a journal mark,
        `SyncState.journal_mark`), only if nothing in it, or of it, was changed here since
        (Conflict otherwise)."""
        deleted_items = self.roles["deleted"]
        async with self.core.write(origin) as tx:
            row = await self._get_in(tx.conn, folder_id)
            if unchanged_since is not None:
                await self._refuse_changed_since(tx, folder_id, unchanged_since)
            if row["role"]:
                raise Forbidden(f"the default folder '{row['display_name']}' cannot be deleted")
            in_trash = folder_id in await self.descendants(deleted_items, tx.conn)
            # A search folder holds only links: deleting it removes it (never its items).
            if hard or in_trash or row["folder_type"] == flags.FOLDER_SEARCH:
                await self._remove_tree(tx, folder_id, row["parent_id"])
                return
            name = await self._unique_name(tx.conn, deleted_items, row["display_name"])
            cn = tx.cn()
            await tx.conn.execute(
                "UPDATE folders SET parent_id = ?, display_name = ?, modified = ?, cn = ? "
                "WHERE id = ?",
                (deleted_items, name, tx.now, cn, folder_id),
            )
            tx.emit(
                "object_moved",
                kind="folder",
                id=folder_id,
                parent_id=deleted_items,
                old_parent_id=row["parent_id"],
            )
            await tx.journal(
                "folder_update",
                "folder",
                folder_id,
                deleted_items,
                cn,
                {"old_parent_id": row["parent_id"], "tags": []},
            )

    async def _remove_tree(self, tx: Tx, folder_id: int, parent_id: int | None) -> None:
        tree = await self.descendants(folder_id, tx.conn)
        cn = tx.cn()
        marks = ",".join("?" * len(tree))
        async with tx.conn.execute(
            f"SELECT upstream FROM folders WHERE id IN ({marks}) AND upstream IS NOT NULL", tree
        ) as cur:
            refs = [json.loads(r[0]) for r in await cur.fetchall()]
        blob_ids = await _blob_ids_of_folders(tx.conn, tree)
        await tx.conn.execute(f"DELETE FROM items WHERE folder_id IN ({marks})", tree)
        if blob_ids:
            await blobs.delete_many(tx.conn, blob_ids)
        await tx.conn.execute(f"DELETE FROM tombstones WHERE folder_id IN ({marks})", tree)
        for fid in reversed(tree):
            await tx.conn.execute("DELETE FROM folders WHERE id = ?", (fid,))
            await tx.conn.execute(
                "INSERT OR REPLACE INTO folder_tombstones (folder_id, parent_id, cn) "
                "VALUES (?, ?, ?)",
                (fid, parent_id, cn),
            )
        tx.emit("object_deleted", kind="folder", id=folder_id, parent_id=parent_id)
        await tx.journal("folder_delete", "folder", folder_id, parent_id, cn, {"upstream": refs})

    # -- helpers ----------------------------------------------------------------------

    async def _get_in(self, conn: aiosqlite.Connection, folder_id: int) -> aiosqlite.Row:
        async with conn.execute("SELECT * FROM folders WHERE id = ?", (folder_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("folder", self.core.ids.api_id("folder", folder_id))
        return row

    @staticmethod
    async def _name_taken(
        conn: aiosqlite.Connection, parent_id: int | None, name: str, except_id: int | None
    ) -> bool:
        async with conn.execute(
            "SELECT id FROM folders WHERE parent_id IS ? AND display_name = ? COLLATE NOCASE "
            "AND id IS NOT ?",
            (parent_id, name, except_id),
        ) as cur:
            return await cur.fetchone() is not None

    async def _unique_name(
        self, conn: aiosqlite.Connection, parent_id: int | None, name: str
    ) -> str:
        candidate, n = name, 1
        while await self._name_taken(conn, parent_id, candidate, None):
            n += 1
            candidate = f"{name} ({n})"
        return candidate


def _stored_folder_props(props: dict[int, Any]) -> dict[int, Any]:
    return {t: v for t, v in props.items() if t != tags.DISPLAY_NAME}


async def _blob_ids_of_folders(conn: aiosqlite.Connection, folder_ids: list[int]) -> list[int]:
    marks = ",".join("?" * len(folder_ids))
    async with conn.execute(
        f"SELECT source_blob FROM items WHERE folder_id IN ({marks}) AND source_blob IS NOT NULL "
        f"UNION ALL SELECT a.blob_id FROM attachments a JOIN items i ON i.id = a.item_id "
        f"WHERE i.folder_id IN ({marks}) AND a.blob_id IS NOT NULL",
        folder_ids + folder_ids,
    ) as cur:
        return [r[0] for r in await cur.fetchall()]
