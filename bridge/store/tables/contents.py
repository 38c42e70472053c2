"""The contents table of a folder: a view's leaf rows selected and ordered in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.model import flags
from bridge.model.proptypes import base_type, prop_type
from bridge.model.restrictions import STRING_TYPES, Comparable, Restriction
from bridge.store import props as P
from bridge.store import render
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


def leaves_sql(
    compiler: Compiler, folder_id: int, associated: bool, spec: ViewSpec
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
        f"WHERE i.folder_id = ? AND i.associated = ? AND {where} ORDER BY {', '.join(order)}"
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
) -> list[Leaf]:
    sql, params, plan = leaves_sql(compiler, folder_id, associated, spec)
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
) -> set[int]:
    """Ids of the folder's items that pass a restriction (FindRow)."""
    plan = Plan()
    where, params = compiler.where(restriction, plan)
    sql = f"SELECT i.id FROM items i WHERE i.folder_id = ? AND i.associated = ? AND {where}"
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
        async with conn.execute(f"SELECT * FROM items WHERE id IN ({marks})", chunk) as cur:
            for row in await cur.fetchall():
                out[row["id"]] = render.item_props(ids, row)
    return out
