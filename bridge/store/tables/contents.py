"""The contents table of a folder: a view's leaf rows selected and ordered in SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import aiosqlite

from bridge.model import flags, tags
from bridge.model.evaluate import sort_value
from bridge.model.proptypes import base_type, prop_type
from bridge.model.restrictions import STRING_TYPES, Comparable, Count, Restriction
from bridge.store import props as P
from bridge.store import render, texts
from bridge.store.ids import IdCodec
from bridge.store.tables.compile import Compiler, Plan, _convert, log_plan
from bridge.store.tables.spec import ViewSpec, is_mvi, mv_tag


@dataclass(frozen=True, slots=True)
class Leaf:
    """One leaf row: item (or sub-object) id, MVI instance number, unread, and the values
    of the ordering keys followed by those of the aggregate columns."""

    id: int
    inst: int
    unread: bool
    values: tuple[Comparable | None, ...]


def folder_filter(search: bool) -> str:
    """The condition (one parameter: the folder id) that selects a folder's items; a search
    folder's are the items it links to (bridge/store/search_folders.py)."""
    if search:
        return "i.id IN (SELECT item_id FROM search_members WHERE folder_id = ?)"
    return "i.folder_id = ?"


def leaves_sql(
    compiler: Compiler, folder_id: int, associated: bool, spec: ViewSpec, search: bool = False
) -> tuple[str, list[Any], Plan]:
    plan = Plan()
    where, params = compiler.where(spec.restriction, plan)
    join, inst = "", "0"
    if spec.mvi is not None:
        key = P.key(mv_tag(spec.mvi))
        join = f" LEFT JOIN json_each(i.props, '$.\"{key}\"') mv"
        inst = "coalesce(mv.key, 0)"
        plan.note(f"MVI expansion of {key}")

    def value(tag: int) -> str:
        if is_mvi(tag):
            return _convert(prop_type(tag), "mv.value")
        return compiler.scalar(tag, plan)[0]

    selected = [value(t) for t, _ in spec.keys] + [value(t) for t in spec.aggregates]
    order = []
    for tag, desc in spec.keys:
        expr = _mvi_sort(tag, value(tag)) if is_mvi(tag) else compiler.sort_expr(tag, plan)
        order.append(f"{expr} {'DESC' if desc else 'ASC'}")
    last_desc = bool(spec.keys) and spec.keys[-1][1]
    order += [f"i.id {'DESC' if last_desc else 'ASC'}", "2"]
    sql = (
        f"SELECT i.id, {inst}, i.flags{''.join(', ' + s for s in selected)} FROM items i{join} "
        f"WHERE {folder_filter(search)} AND i.associated = ? AND {where} "
        f"ORDER BY {', '.join(order)}"
    )
    return sql, [folder_id, int(associated), *params], plan


def _mvi_sort(tag: int, expr: str) -> str:
    return f"{expr} COLLATE NOCASE" if base_type(prop_type(tag)) in STRING_TYPES else expr


async def leaves(
    conn: aiosqlite.Connection,
    compiler: Compiler,
    folder_id: int,
    associated: bool,
    spec: ViewSpec,
    limit: int | None = None,
    search: bool = False,
) -> list[Leaf]:
    sql, params, plan = leaves_sql(compiler, folder_id, associated, spec, search)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    log_plan(f"contents of folder {folder_id}", sql, params, plan)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [Leaf(r[0], r[1], not r[2] & flags.MSGFLAG_READ, tuple(r[3:])) for r in rows]


async def matching_ids(
    conn: aiosqlite.Connection,
    compiler: Compiler,
    folder_id: int,
    associated: bool,
    restriction: Restriction,
    search: bool = False,
) -> set[int]:
    """Ids of the folder's items that pass a restriction (FindRow)."""
    plan = Plan()
    where, params = compiler.where(restriction, plan)
    sql = f"SELECT i.id FROM items i WHERE {folder_filter(search)} AND i.associated = ? AND {where}"
    log_plan(f"find in folder {folder_id}", sql, params, plan)
    async with conn.execute(sql, [folder_id, int(associated), *params]) as cur:
        return {r[0] for r in await cur.fetchall()}


async def item_props(
    conn: aiosqlite.Connection, ids: IdCodec, item_ids: Sequence[int]
) -> dict[int, P.JsonProps]:
    """Rendered properties of items, by id."""
    out: dict[int, P.JsonProps] = {}
    unique = list(dict.fromkeys(item_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {texts.ITEM_COLUMNS} FROM items WHERE id IN ({marks})"
        async with conn.execute(sql, chunk) as cur:
            for row in await cur.fetchall():
                out[row["id"]] = render.item_props(ids, row)
    return out


# -- large views: rows read from SQL on demand ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """A category group: the values of the sort keys up to its level (as SQL returns them),
    its number of leaves, and how many rows show below its header when it is expanded and
    everything under it is in its default state (levels after `ViewSpec.expanded`
    collapsed)."""

    values: tuple[Comparable | None, ...]
    count: int
    below: int
    unread: int | None = None  # when the query that found the group counted them
    first_id: int | None = None  # the item id of the group's first leaf, when known


class LazyGroups(Sequence[Group]):
    """Groups made from the rows of a GROUP BY (values, count, first id) when first read: a
    group can have thousands of groups below it, of which a page shows a few."""

    def __init__(self, rows: Sequence[Any], n: int) -> None:
        self.rows = rows
        self.n = n
        self.made: list[Group | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Group: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Group]: ...

    def __getitem__(self, index: int | slice) -> Group | Sequence[Group]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.rows)))]
        group = self.made[index]
        if group is None:
            r, n = self.rows[index], self.n
            group = self.made[index] = Group(tuple(r[:n]), r[n], r[n], first_id=r[n + 1])
        return group


def _by_sender(spec: ViewSpec) -> bool:
    """Whether the groups of level 0 are those of item_sender_counts: categorized by sender
    name alone, and below that at most by delivery time alone as the last level."""
    levels, keys = spec.levels, spec.keys
    if spec.aggregates or not levels or levels[0].keys != (0,) or keys[0][0] != tags.SENDER_NAME:
        return False
    if len(levels) == 1:
        return True
    return len(levels) == 2 and levels[1].keys == (1,) and keys[1][0] == tags.MESSAGE_DELIVERY_TIME


def pageable(spec: ViewSpec) -> bool:
    """Whether a view's rows can be read from SQL on demand: not with an MVI column or a
    `count` restriction."""
    return spec.mvi is None and not isinstance(spec.restriction, Count)


class ContentsQuery:
    """The SQL of one contents view over one folder: counts, pages of leaves, category
    groups and positions, each an indexed query with LIMIT where the sort allows it.

    A `path` is the values of the first len(path) sort keys: the rows of one category."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        compiler: Compiler,
        folder_id: int,
        associated: bool,
        spec: ViewSpec,
        search: bool = False,
    ) -> None:
        assert spec.mvi is None
        self.conn = conn
        self.folder_id = folder_id
        self.associated = associated
        self.spec = spec
        plan = Plan()
        where, params = compiler.where(spec.restriction, plan)
        # Folder counts answer for a whole real folder; anything else is counted.
        self.counted = spec.restriction is not None or search
        self.base = f"FROM items i WHERE {folder_filter(search)} AND i.associated = ? AND {where}"
        self.params: list[Any] = [folder_id, int(associated), *params]
        self.values = [compiler.scalar(t, plan)[0] for t, _ in spec.keys]
        self.sorts = [compiler.sort_expr(t, plan) for t, _ in spec.keys]
        self.desc = [d for _, d in spec.keys]
        # CATEG_MAX / CATEG_MIN: per aggregate, (SQL value, SQL sort expression)
        self.aggregates = [
            (compiler.scalar(t, plan)[0], compiler.sort_expr(t, plan)) for t in spec.aggregates
        ]
        self.last_desc = bool(spec.keys) and spec.keys[-1][1]
        self.by_sender = not self.counted and _by_sender(spec)
        log_plan(f"paged contents of folder {folder_id}", self.base, self.params, plan)

    def _order(self, upto: int | None = None) -> str:
        n = len(self.sorts) if upto is None else upto
        terms = [
            f"{s} {'DESC' if d else 'ASC'}"
            for s, d in zip(self.sorts[:n], self.desc[:n], strict=True)
        ]
        if upto is None:
            terms.append(f"i.id {'DESC' if self.last_desc else 'ASC'}")
        return ", ".join(terms)

    def _path(self, path: Sequence[Comparable | None], params: list[Any]) -> str:
        conds = []
        for k, value in enumerate(path):
            sort = self.sorts[k]
            if value is None:
                conds.append(f"{self.values[k]} IS NULL")
            else:
                conds.append(f"{sort} = ?")
                params.append(value)
        return "".join(f" AND {c}" for c in conds)

    async def _one(self, sql: str, params: Sequence[Any]) -> Any:
        async with self.conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def count(self, path: Sequence[Comparable | None] = ()) -> int:
        """Leaves of the view (of one category with `path`)."""
        if not self.counted and not path:
            column = "assoc_count" if self.associated else "content_count"
            sql = f"SELECT {column} FROM folders WHERE id = ?"
            return int(await self._one(sql, [self.folder_id]) or 0)
        params = list(self.params)
        cond = self._path(path, params)
        return int(await self._one(f"SELECT count(*) {self.base}{cond}", params))

    async def unread(self, path: Sequence[Comparable | None]) -> int:
        params = list(self.params)
        cond = self._path(path, params)
        sql = f"SELECT count(*) {self.base}{cond} AND i.flags & {flags.MSGFLAG_READ} = 0"
        return int(await self._one(sql, params))

    async def page(
        self, offset: int, limit: int, path: Sequence[Comparable | None] = ()
    ) -> list[Leaf]:
        """`limit` leaves (of the category `path`) from `offset`, in sort order."""
        params = list(self.params)
        cond = self._path(path, params)
        selected = "".join(", " + v for v in self.values)
        sql = (
            f"SELECT i.id, i.flags{selected} {self.base}{cond} ORDER BY {self._order()} "
            "LIMIT ? OFFSET ?"
        )
        async with self.conn.execute(sql, [*params, limit, offset]) as cur:
            rows = await cur.fetchall()
        return [Leaf(r[0], 0, not r[1] & flags.MSGFLAG_READ, tuple(r[2:])) for r in rows]

    async def groups(self, level: int, path: Sequence[Comparable | None] = ()) -> Sequence[Group]:
        """The groups of category `level` inside the category `path` (of level - 1), in
        order, with their counts and default sizes (one GROUP BY per level shown below)."""
        spec = self.spec
        aggregate = spec.levels[level].aggregate
        if level == 0 and self.by_sender and aggregate is None:
            return await self._sender_groups()
        last = level == len(spec.levels) - 1
        if level and last and spec.levels[level].keys[-1] == len(spec.keys) - 1 and not aggregate:
            return await self._last_groups(level, path)
        end = [lv.keys[-1] + 1 for lv in spec.levels]
        n = end[level]
        params = list(self.params)
        cond = self._path(path, params)
        shown = [
            m for m in range(level + 1, len(spec.levels)) if m == level + 1 or m <= spec.expanded
        ]
        leaves = level == len(spec.levels) - 1 or spec.expanded >= len(spec.levels)
        selected = ", ".join(self.values[:n])
        sql = (
            f"SELECT {selected}, count(*) {self.base}{cond} GROUP BY {', '.join(self.sorts[:n])} "
            f"ORDER BY {self._aggregate_order(level)}{self._order(n)}"
        )
        outer_group = ", ".join(f"g{k}{self._collate(k)}" for k in range(n))
        async with self.conn.execute(sql, params) as cur:
            base = [(tuple(r[:n]), int(r[n])) for r in await cur.fetchall()]
        below = {self._gkey(v, n): (c if leaves else 0) for v, c in base}
        for m in shown:
            inner_n = end[m]
            inner_sel = ", ".join(f"{self.values[k]} AS g{k}" for k in range(inner_n))
            sql = (
                f"SELECT {', '.join(f'g{k}' for k in range(n))}, count(*) FROM (SELECT "
                f"{inner_sel} {self.base}{cond} GROUP BY {', '.join(self.sorts[:inner_n])}) "
                f"GROUP BY {outer_group}"
            )
            async with self.conn.execute(sql, params) as cur:
                for r in await cur.fetchall():
                    key = self._gkey(tuple(r[:n]), n)
                    below[key] = below.get(key, 0) + int(r[n])
        return [Group(v, c, below[self._gkey(v, n)]) for v, c in base]

    async def _sender_groups(self) -> list[Group]:
        """The groups of a view categorized by sender name (then by delivery time), from
        the counts that triggers keep (schema 0012) instead of grouping the folder."""
        spec = self.spec
        order = "DESC" if self.desc[0] else "ASC"
        sql = (
            "SELECT has_sender, sender, count, unread, times FROM item_sender_counts "
            "WHERE folder_id = ? AND associated = ? AND count > 0 "
            f"ORDER BY has_sender {order}, sender COLLATE NOCASE {order}"
        )
        leaves = len(spec.levels) == 1 or spec.expanded >= len(spec.levels)
        out = []
        async with self.conn.execute(sql, [self.folder_id, int(self.associated)]) as cur:
            for has, sender, count, unread, times in await cur.fetchall():
                below = count if len(spec.levels) == 1 else (count if leaves else 0) + times
                out.append(Group((sender if has else None,), count, below, unread))
        return out

    async def _last_groups(self, level: int, path: Sequence[Comparable | None]) -> Sequence[Group]:
        """The groups of the last category level when it ends with the last sort key: all
        leaves of a group have the same values, so its first leaf is the one with the lowest
        (highest) id, found with the counts in one GROUP BY on the sort index (the unread
        counts, which need the rows, are read for the groups a page shows: `first_leaves`)."""
        n = len(self.sorts)
        params = list(self.params)
        cond = self._path(path, params)
        first = "max" if self.last_desc else "min"
        sql = (
            f"SELECT {', '.join(self.values)}, count(*), {first}(i.id) "
            f"{self.base}{cond} GROUP BY {', '.join(self.sorts)} ORDER BY {self._order(n)}"
        )
        async with self.conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return LazyGroups(list(rows), n)

    async def first_leaves(self, groups: Sequence[Group]) -> dict[int, Leaf]:
        """The first leaves of groups found by `_last_groups`, by item id."""
        wanted = {g.first_id: g.values for g in groups if g.first_id is not None}
        if not wanted:
            return {}
        sql = "SELECT id, flags FROM items WHERE id IN (SELECT value FROM json_each(?))"
        async with self.conn.execute(sql, [json.dumps(list(wanted))]) as cur:
            rows = await cur.fetchall()
        return {r[0]: Leaf(r[0], 0, not r[1] & flags.MSGFLAG_READ, wanted[r[0]]) for r in rows}

    def _aggregate_order(self, level: int) -> str:
        """The ORDER BY term of the groups of a level ordered by CATEG_MAX / CATEG_MIN, as
        the view in memory orders them (bridge/store/tables/view.py, `View._group`): by the
        highest value of the group (absent only when every leaf lacks it), or the lowest
        (absent when any leaf lacks it); ties keep the order of the category keys."""
        aggregate = self.spec.levels[level].aggregate
        if aggregate is None:
            return ""
        index, kind = aggregate
        value, sort = self.aggregates[index]
        if kind == "max":
            return f"max({sort}) DESC, "
        return f"CASE WHEN count({value}) < count(*) THEN NULL ELSE min({sort}) END ASC, "

    def _collate(self, k: int) -> str:
        return " COLLATE NOCASE" if self.sorts[k].endswith(" COLLATE NOCASE") else ""

    def _gkey(self, values: Sequence[Comparable | None], n: int) -> tuple[Any, ...]:
        keys = self.spec.keys
        return tuple(sort_value(keys[k][0], values[k]) for k in range(n))

    async def values_of(self, item_id: int) -> tuple[Comparable | None, ...] | None:
        """The sort key values of an item, None when it is not in the view."""
        params = [*self.params, item_id]
        selected = ", ".join(["i.id", *self.values])
        async with self.conn.execute(f"SELECT {selected} {self.base} AND i.id = ?", params) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row[1:])

    async def rank(
        self,
        values: Sequence[Comparable | None],
        item_id: int,
        path: Sequence[Comparable | None] = (),
    ) -> int:
        """How many leaves (of the category `path`) sort before the item with `values`."""
        params = list(self.params)
        cond = self._path(path, params)
        terms: list[str] = []
        equal: list[str] = []
        eq_params: list[Any] = []
        before_params: list[Any] = []
        for k, value in enumerate(values):
            expr, sort = self.values[k], self.sorts[k]
            lt: str | None
            if self.desc[k]:
                lt = f"{expr} IS NOT NULL" if value is None else f"{sort} > ?"
            else:
                lt = None if value is None else f"({expr} IS NULL OR {sort} < ?)"
            if lt is not None:
                terms.append("(" + " AND ".join([*equal, lt]) + ")")
                before_params += [*eq_params, *([] if value is None else [value])]
            if value is None:
                equal.append(f"{expr} IS NULL")
            else:
                equal.append(f"{sort} = ?")
                eq_params.append(value)
        terms.append("(" + " AND ".join([*equal, f"i.id {'>' if self.last_desc else '<'} ?"]) + ")")
        before_params += [*eq_params, item_id]
        lead = ""
        if values and values[0] is not None:
            # A range on the first key, so that the count reads the index from one end.
            lead = f" AND {self.sorts[0]} {'>=' if self.desc[0] else '<='} ?"
            if not self.desc[0]:
                lead = f" AND ({self.values[0]} IS NULL OR {self.sorts[0]} <= ?)"
            before_params.insert(0, values[0])
        sql = f"SELECT count(*) {self.base}{cond}{lead} AND ({' OR '.join(terms)})"
        return int(await self._one(sql, [*params, *before_params]))
