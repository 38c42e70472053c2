"""Search folders (MAPI FOLDER_SEARCH): a folder that holds search criteria (a restriction
and the folders it searches, recursively or not: IMAPIContainer::SetSearchCriteria) and,
as its contents, links to the items of those folders that match.

Membership is materialized in `search_members` and kept up to date inside the transaction of
every write: before it commits, `maintain()` re-evaluates, in SQL through the table
compiler, the items the transaction touched (or, after a folder moved or went away, every
item of the scope), adds and removes links, and turns the membership log into
notifications: `object_created` / `object_deleted` / `object_modified` of the linked item
with `folder_id` = the search folder (and `search_folder: true`), plus one
`object_modified` of the search folder with its new counts. Counts are kept by triggers
(migration 0007). Search folders are local: they are never journaled for the upstream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.model.proptypes import PropType
from bridge.model.restrictions import Restriction, RestrictionError, parse
from bridge.store import props as P
from bridge.store import render, texts
from bridge.store.core import LOCAL, SYSTEM, StoreCore, Tx
from bridge.store.errors import Conflict, Forbidden, InvalidValue, NotFound
from bridge.store.folders import Folders, check_name
from bridge.store.queries import MAX_PAGE, Changes, ItemView, Queries
from bridge.store.tables.compile import Compiler, Plan, install_functions, log_plan
from bridge.store.tables.spec import resolver

MAX_SCOPE = 1024
# More link changes than this in one transaction give only the folder notification.
MAX_LINK_EVENTS = 256
REMINDERS_EXCLUDED = (
    "deleted",
    "junk",
    "drafts",
    "outbox",
    "sync_issues",
    "conflicts",
    "local_failures",
    "server_failures",
)
_UNREAD = f"((i.flags & {flags.MSGFLAG_READ}) = 0)"


@dataclass(frozen=True, slots=True)
class Criteria:
    """GetSearchCriteria: the restriction (JSON tree), the folders, recursive or not."""

    restriction: Any
    scope: tuple[int, ...]
    recursive: bool


def reminders_restriction(ids: Any, roles: Mapping[str, int]) -> dict[str, Any]:
    """The Reminders folder's criteria (MAPI.md §8): a reminder is set, and the item is not
    in Deleted Items, Junk E-mail, Drafts, the Outbox or Sync Issues and its subfolders. The
    restriction names the folders themselves; their subfolders are left out of the scope
    (`SearchFolders._evaluate`)."""

    def eid(role: str) -> str:
        return base64.b64encode(ids.entry_id("folder", roles[role])).decode("ascii")

    excluded = [
        {"property": {"prop": "PidTagParentEntryId", "op": "eq", "value": eid(role)}}
        for role in REMINDERS_EXCLUDED
        if role in roles
    ]
    return {
        "and": [
            {"property": {"prop": "PidLidReminderSet", "op": "eq", "value": True}},
            {"not": {"or": excluded}},
        ]
    }


class SearchFolders:
    """Search folder criteria, membership upkeep and contents of one store."""

    def __init__(self, core: StoreCore, folders: Folders, queries: Queries) -> None:
        self.core = core
        self.folders = folders
        self.queries = queries
        keywords = core.named.tag_for(P.KEYWORDS, PropType.UNICODE | 0x1000)
        self.compiler = Compiler(core.ids, keywords)
        self.item_compiler = Compiler(core.ids, keywords, fts=False)  # a few touched items

    async def start(self) -> None:
        """At open: the SQL functions of compiled restrictions on the writer connection, the
        upkeep hook, and the Reminders criteria when the store has none yet."""
        await install_functions(self.core.writer, self.core.ids)
        await self.core.writer.execute(
            "CREATE TEMP TABLE IF NOT EXISTS search_match "
            "(id INTEGER PRIMARY KEY, unread INTEGER NOT NULL)"
        )
        self.core.before_commit.append(self.maintain)
        reminders = self.folders.roles.get("reminders")
        if reminders is not None:
            async with self.core.reader.execute(
                "SELECT 1 FROM search_criteria WHERE folder_id = ?", (reminders,)
            ) as cur:
                known = await cur.fetchone() is not None
            if not known:
                criteria = Criteria(
                    reminders_restriction(self.core.ids, self.folders.roles),
                    (self.folders.roles["ipm_subtree"],),
                    True,
                )
                async with self.core.write(SYSTEM) as tx:
                    await self._store_criteria(tx, reminders, criteria, self._parse(criteria))

    # -- criteria ---------------------------------------------------------------------

    def _parse(self, criteria: Criteria) -> Restriction:
        return parse(criteria.restriction, resolver(self.core.named))

    async def _check_scope(self, tx: Tx, scope: Sequence[int]) -> None:
        if not scope:
            raise InvalidValue("the search needs at least one folder in its scope")
        if len(scope) > MAX_SCOPE:
            raise InvalidValue(f"at most {MAX_SCOPE} folders in a search scope")
        for fid in scope:
            async with tx.conn.execute(
                "SELECT folder_type FROM folders WHERE id = ?", (fid,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                api = self.core.ids.api_id("folder", fid)
                raise InvalidValue(f"scope: folder {api} does not exist")
            if row[0] == flags.FOLDER_SEARCH:
                api = self.core.ids.api_id("folder", fid)
                raise InvalidValue(f"scope: {api} is a search folder; search real folders")

    def check(self, criteria: Criteria) -> Restriction:
        """Validate a restriction (RestrictionError) before anything is written."""
        restriction = self._parse(criteria)
        plan = Plan()
        self.compiler.where(restriction, plan)  # refuses what SQL cannot evaluate
        return restriction

    async def create(
        self,
        parent_id: int,
        name: str,
        criteria: Criteria,
        container_class: str | None = None,
        props: dict[int, Any] | None = None,
    ) -> int:
        """CreateFolder(FOLDER_SEARCH) + SetSearchCriteria in one transaction."""
        check_name(name)
        restriction = self.check(criteria)
        async with self.core.write(LOCAL) as tx:
            parent = await self.folders._get_in(tx.conn, parent_id)
            if parent["folder_type"] == flags.FOLDER_SEARCH:
                raise Conflict("a search folder cannot have subfolders")
            if await self.folders._name_taken(tx.conn, parent_id, name, None):
                raise Conflict(f"a folder named '{name}' already exists there")
            await self._check_scope(tx, criteria.scope)
            fid, _ = await self.folders._insert(
                tx,
                parent_id,
                name,
                container_class or parent["container_class"] or "IPF.Note",
                props or {},
                folder_type=flags.FOLDER_SEARCH,
            )
            await self._store_criteria(tx, fid, criteria, restriction)
        return fid

    async def get_criteria(self, folder_id: int) -> Criteria:
        """GetSearchCriteria (scope folders that were deleted have left it)."""
        folder = await self.folders.get(folder_id)
        if folder.folder_type != flags.FOLDER_SEARCH:
            raise Conflict("this is not a search folder (it has no search criteria)")
        async with self.core.reader.execute(
            "SELECT restriction, recursive FROM search_criteria WHERE folder_id = ?",
            (folder_id,),
        ) as cur:
            row = await cur.fetchone()
        async with self.core.reader.execute(
            "SELECT scope_id FROM search_scope WHERE folder_id = ? ORDER BY scope_id",
            (folder_id,),
        ) as cur:
            scope = tuple(r[0] for r in await cur.fetchall())
        if row is None:
            raise Conflict("this search folder has no criteria yet (MAPI_E_NOT_INITIALIZED)")
        return Criteria(json.loads(row[0]), scope, bool(row[1]))

    async def set_criteria(
        self,
        folder_id: int,
        restriction: Any = None,
        scope: Sequence[int] | None = None,
        recursive: bool | None = None,
    ) -> Criteria:
        """SetSearchCriteria: what is None keeps its current value; the contents are
        re-evaluated at once."""
        current = await self.get_criteria(folder_id)
        folder = await self.folders.get(folder_id)
        if folder.role:
            raise Forbidden(f"the criteria of '{folder.display_name}' belong to the store")
        criteria = Criteria(
            current.restriction if restriction is None else restriction,
            current.scope if scope is None else tuple(scope),
            current.recursive if recursive is None else recursive,
        )
        parsed = self.check(criteria)
        async with self.core.write(LOCAL) as tx:
            await self._store_criteria(tx, folder_id, criteria, parsed)
            cn = tx.cn()
            await tx.conn.execute(
                "UPDATE folders SET modified = ?, cn = ? WHERE id = ?", (tx.now, cn, folder_id)
            )
        return criteria

    async def _store_criteria(
        self, tx: Tx, folder_id: int, criteria: Criteria, restriction: Restriction
    ) -> None:
        await self._check_scope(tx, criteria.scope)
        await tx.conn.execute(
            "INSERT OR REPLACE INTO search_criteria (folder_id, restriction, recursive) "
            "VALUES (?, ?, ?)",
            (folder_id, json.dumps(criteria.restriction), int(criteria.recursive)),
        )
        await tx.conn.execute("DELETE FROM search_scope WHERE folder_id = ?", (folder_id,))
        await tx.conn.executemany(
            "INSERT OR IGNORE INTO search_scope (folder_id, scope_id) VALUES (?, ?)",
            [(folder_id, s) for s in criteria.scope],
        )
        await self._evaluate(tx, folder_id, restriction, bool(criteria.recursive), None)
        tx.emit("search_complete", kind="folder", id=folder_id, folder_id=folder_id)

    # -- upkeep -----------------------------------------------------------------------

    async def maintain(self, tx: Tx) -> None:
        """Bring every search folder up to date with the changes of `tx` (before commit)."""
        if not tx.events:
            return  # nothing changed that a search folder could show
        touched: set[int] = set()
        modified: dict[int, list[str]] = {}
        rebuild = False
        for etype, data in tx.events:
            if data.get("search_folder"):
                continue
            kind = data.get("kind")
            if kind == "item" and isinstance(data.get("id"), int):
                touched.add(data["id"])
                if etype == "object_modified":
                    modified.setdefault(data["id"], []).extend(data.get("tags") or [])
            elif kind == "folder" and etype in ("object_moved", "object_deleted"):
                rebuild = True
        if touched or rebuild:
            async with tx.conn.execute(
                "SELECT folder_id, restriction, recursive FROM search_criteria"
            ) as cur:
                searches = list(await cur.fetchall())
            for folder_id, text, recursive in searches:
                try:
                    restriction = parse(json.loads(text), resolver(self.core.named))
                except RestrictionError:
                    continue  # cannot happen for stored criteria; never block a write
                await self._evaluate(
                    tx, folder_id, restriction, bool(recursive), None if rebuild else touched
                )
        await self._drain(tx, modified)

    async def _evaluate(
        self,
        tx: Tx,
        folder_id: int,
        restriction: Restriction,
        recursive: bool,
        only: set[int] | None,
    ) -> None:
        """Re-evaluate the search folder's links: of the items in `only`, or of all."""
        conn = tx.conn
        plan = Plan()
        compiler = self.compiler if only is None else self.item_compiler
        where, params = compiler.where(restriction, plan)
        step = (
            " UNION SELECT f.id FROM folders f JOIN sc ON f.parent_id = sc.id" if recursive else ""
        )
        if recursive and folder_id == self.folders.roles.get("reminders"):
            # The Reminders folder leaves out whole subtrees (a folder inside Deleted Items
            # too), which its restriction on the parent folder alone cannot say.
            roles = ", ".join(f"'{role}'" for role in REMINDERS_EXCLUDED)
            step += f" WHERE f.role IS NULL OR f.role NOT IN ({roles})"
        scope = (
            f"WITH RECURSIVE sc(id) AS (SELECT scope_id FROM search_scope "
            f"WHERE folder_id = ?{step}) "
        )
        args: list[Any] = [folder_id]
        source = "items i"
        if only is not None:
            # the touched items drive the query (CROSS JOIN keeps that order): its cost
            # follows the size of the change, not of the folders searched
            source = "json_each(?) t CROSS JOIN items i ON i.id = t.value"
            args.append(json.dumps(sorted(only)))
        sql = (
            f"{scope}INSERT INTO temp.search_match (id, unread) SELECT i.id, {_UNREAD} "
            f"FROM {source} WHERE i.folder_id IN (SELECT id FROM sc) AND i.associated = 0 "
            f"AND {where}"
        )
        await conn.execute("DELETE FROM temp.search_match")
        log_plan(f"search folder {folder_id}", sql, [*args, *params], plan)
        await conn.execute(sql, [*args, *params])
        limit, limit_args = "", []
        if only is not None:
            limit = " AND item_id IN (SELECT value FROM json_each(?))"
            limit_args = [json.dumps(sorted(only))]
        await conn.execute(
            f"DELETE FROM search_members WHERE folder_id = ?{limit} "
            "AND item_id NOT IN (SELECT id FROM temp.search_match)",
            [folder_id, *limit_args],
        )
        await conn.execute(
            "UPDATE search_members SET unread = "
            "(SELECT m.unread FROM temp.search_match m WHERE m.id = search_members.item_id) "
            "WHERE folder_id = ? AND item_id IN (SELECT id FROM temp.search_match) AND unread <> "
            "(SELECT m.unread FROM temp.search_match m WHERE m.id = search_members.item_id)",
            (folder_id,),
        )
        async with conn.execute(
            "SELECT count(*) FROM temp.search_match WHERE id NOT IN "
            "(SELECT item_id FROM search_members WHERE folder_id = ?)",
            (folder_id,),
        ) as cur:
            new = int((await cur.fetchone() or [0])[0])
        if new:
            first = tx.alloc("next_cn", new)
            await conn.execute(
                "INSERT INTO search_members (folder_id, item_id, unread, cn) "
                "SELECT ?, id, unread, ? + row_number() OVER (ORDER BY id) - 1 "
                "FROM temp.search_match WHERE id NOT IN "
                "(SELECT item_id FROM search_members WHERE folder_id = ?)",
                (folder_id, first, folder_id),
            )

    async def _drain(self, tx: Tx, modified: dict[int, list[str]]) -> None:
        """The membership log of this transaction → tombstones and notifications."""
        conn = tx.conn
        async with conn.execute(
            "SELECT l.folder_id, l.item_id, l.added FROM search_log l "
            "JOIN folders f ON f.id = l.folder_id ORDER BY l.seq"
        ) as cur:
            log = list(await cur.fetchall())
        await conn.execute("DELETE FROM search_log")  # also the rows of deleted folders
        first: dict[tuple[int, int], bool] = {}
        last: dict[tuple[int, int], bool] = {}
        for folder_id, item_id, added in log:
            first.setdefault((folder_id, item_id), bool(added))
            last[(folder_id, item_id)] = bool(added)
        changes: dict[int, list[tuple[str, int]]] = {}
        gone: list[tuple[int, int, int]] = []
        back: list[tuple[int, int]] = []
        for pair, was_added in first.items():
            before, now = not was_added, last[pair]
            folder_id, item_id = pair
            if before and not now:
                changes.setdefault(folder_id, []).append(("object_deleted", item_id))
                gone.append((folder_id, item_id, tx.cn()))
            elif now and not before:
                changes.setdefault(folder_id, []).append(("object_created", item_id))
                back.append(pair)
            elif now:
                changes.setdefault(folder_id, []).append(("object_modified", item_id))
        if gone:
            await conn.executemany(
                "INSERT OR REPLACE INTO search_tombstones (folder_id, item_id, cn) "
                "VALUES (?, ?, ?)",
                gone,
            )
        if back:
            await conn.executemany(
                "DELETE FROM search_tombstones WHERE folder_id = ? AND item_id = ?", back
            )
        if modified:
            async with conn.execute(
                "SELECT folder_id, item_id FROM search_members "
                "WHERE item_id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(modified)),),
            ) as cur:
                for folder_id, item_id in await cur.fetchall():
                    if (folder_id, item_id) not in first:
                        changes.setdefault(folder_id, []).append(("object_modified", item_id))
        for folder_id, events in changes.items():
            if len(events) <= MAX_LINK_EVENTS:
                for etype, item_id in events:
                    data: dict[str, Any] = {
                        "kind": "item",
                        "id": item_id,
                        "folder_id": folder_id,
                        "search_folder": True,
                    }
                    if etype == "object_modified":
                        data["tags"] = modified.get(item_id, ["*"])
                    tx.emit(etype, **data)
            async with conn.execute(
                "SELECT parent_id, content_count, unread_count FROM folders WHERE id = ?",
                (folder_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                continue
            tx.emit(
                "object_modified",
                kind="folder",
                id=folder_id,
                parent_id=row[0],
                folder_id=folder_id,
                search_folder=True,
                tags=[P.key(tags.CONTENT_COUNT), P.key(tags.CONTENT_UNREAD)],
                total=row[1],
                unread=row[2],
            )

    # -- contents ---------------------------------------------------------------------

    async def is_search(self, folder_id: int) -> bool:
        async with self.core.reader.execute(
            "SELECT folder_type FROM folders WHERE id = ?", (folder_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("folder", self.core.ids.api_id("folder", folder_id))
        return bool(row[0] == flags.FOLDER_SEARCH)

    async def list(
        self,
        folder_id: int,
        *,
        sort: list[tuple[int, bool]] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[ItemView], int]:
        """A page of a search folder's contents (the linked items, each with its real
        folder as `folder_id`); `sort` is [(tag, descending)]."""
        if not 0 < limit <= MAX_PAGE:
            raise InvalidValue(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise InvalidValue("offset must not be negative")
        order = [f"{self.queries.sort_expr(t)} {'DESC' if d else 'ASC'}" for t, d in sort or []]
        order.append("id DESC" if sort and sort[0][1] else "id ASC")
        async with self.core.reader.execute(
            "SELECT * FROM items WHERE id IN "
            "(SELECT item_id FROM search_members WHERE folder_id = ?) "
            f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            (folder_id, limit, offset),
        ) as cur:
            rows = await cur.fetchall()
        folder = await self.folders.get(folder_id)
        ids = self.core.ids
        found = await texts.of_rows(self.core.reader, rows)
        views = [
            ItemView(r["id"], r["folder_id"], render.item_props(ids, r, found.get(r["id"])))
            for r in rows
        ]
        return views, folder.content_count

    async def changes(self, folder_id: int, since: str | None, limit: int = 1000) -> Changes:
        """The change feed of a search folder: links added (created), linked items changed
        (modified) and links gone (deleted) after `since`."""
        return await self.queries.feed(
            "SELECT i.*, m.cn AS joined, max(m.cn, i.cn) AS eff FROM search_members m "
            "JOIN items i ON i.id = m.item_id WHERE m.folder_id = ? AND max(m.cn, i.cn) > ? "
            "AND max(m.cn, i.cn) <= ? ORDER BY eff LIMIT ?",
            "search_tombstones",
            folder_id,
            self.queries.parse_state(since),
            limit,
            mark="eff",
            born="joined",
        )


async def members(conn: aiosqlite.Connection, folder_id: int) -> list[int]:
    """Ids of the items a search folder links to."""
    async with conn.execute(
        "SELECT item_id FROM search_members WHERE folder_id = ? ORDER BY item_id", (folder_id,)
    ) as cur:
        return [r[0] for r in await cur.fetchall()]
