"""The category counts by sender (schema 0012, item_sender_counts) stay equal to what
grouping the items gives, whatever items come, change, move and go; and a view categorized
by sender (then by delivery time), which reads its groups from them, shows the same rows
paged as in memory."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.model import flags, tags
from bridge.store import db
from bridge.store.items import NewItem
from bridge.store.tables import spec as S
from bridge.store.tables.compile import install_functions
from bridge.store.tables.manager import ViewManager
from tests.tables.conftest import LoopStore
from tests.tables.test_paged import _open, _same

SENDERS = st.sampled_from([None, "", "Ann", "ann", "Bob", "Zoë"])
TIMES = st.sampled_from([None, *(dt.datetime(2024, 1, d, tzinfo=dt.UTC) for d in (1, 2, 3))])
_names = itertools.count()

RECOUNT = """
SELECT folder_id, associated, sender_name_prop IS NOT NULL, lower(coalesce(sender_name_prop, '')),
       count(*), sum((flags & 1) = 0), count(DISTINCT received) + max(received IS NULL)
FROM items WHERE folder_id IN ({0})
GROUP BY 1, 2, 3, 4
"""
KEPT = """
SELECT folder_id, associated, has_sender, lower(sender), count, unread, times
FROM item_sender_counts WHERE count > 0 AND folder_id IN ({0})
"""


@st.composite
def items(draw: st.DrawFn) -> NewItem:
    props: dict[int, Any] = {}
    sender, when = draw(SENDERS), draw(TIMES)
    if sender is not None:
        props[tags.SENDER_NAME] = sender
    if when is not None:
        props[tags.MESSAGE_DELIVERY_TIME] = when
    if draw(st.booleans()):
        props[tags.MESSAGE_FLAGS] = flags.MSGFLAG_READ
    return NewItem(props=props, associated=draw(st.sampled_from([False, False, True])))


CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["sender", "time", "read", "subject", "move", "delete", "copy"]),
        st.integers(0, 100),
        SENDERS,
        TIMES,
    ),
    max_size=12,
)


async def _table(ls: LoopStore, sql: str, folders: list[int]) -> list[tuple[Any, ...]]:
    async with ls.store.core.reader.execute(sql.format(",".join(map(str, folders)))) as cur:
        return sorted(tuple(r) for r in await cur.fetchall())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(items(), min_size=1, max_size=12), changes=CHANGES)
def test_counts_follow_every_change(
    loop_store: LoopStore, data: list[NewItem], changes: list[tuple[str, int, Any, Any]]
) -> None:
    loop_store.run(_check_counts(loop_store, data, changes))


async def _check_counts(
    ls: LoopStore, data: list[NewItem], changes: list[tuple[str, int, Any, Any]]
) -> None:
    store = ls.store
    inbox = store.folders.roles["inbox"]
    a = await store.folders.create(inbox, f"c{next(_names)}")
    b = await store.folders.create(inbox, f"c{next(_names)}")
    ids = await store.items.create_many(a, data)
    for what, pick, sender, when in changes:
        if not ids:
            break
        iid = ids[pick % len(ids)]
        if what == "sender":
            if sender is None:
                await store.items.update(iid, delete_tags=[tags.SENDER_NAME])
            else:
                await store.items.update(iid, {tags.SENDER_NAME: sender})
        elif what == "time":
            if when is None:
                await store.items.update(iid, delete_tags=[tags.MESSAGE_DELIVERY_TIME])
            else:
                await store.items.update(iid, {tags.MESSAGE_DELIVERY_TIME: when})
        elif what == "subject":
            await store.items.update(iid, {tags.SUBJECT: f"s{pick}"})
        elif what == "read":
            await store.items.update(iid, {tags.MESSAGE_FLAGS: pick % 2})
        elif what == "move":
            await store.items.move(iid, b if pick % 2 else a)
        elif what == "copy":
            ids.append(await store.items.copy(iid, b))
        else:
            await store.items.delete(iid, hard=True)
            ids.remove(iid)
    assert await _table(ls, KEPT, [a, b]) == await _table(ls, RECOUNT, [a, b])


@pytest.fixture(scope="module")
def manager(loop_store: LoopStore) -> Iterator[ViewManager]:
    async def make() -> ViewManager:
        store = loop_store.store
        conn = await db.connect(store.core.path, readonly=True)
        await install_functions(conn, store.ids)
        return ViewManager(store, conn)

    mgr = loop_store.run(make())
    try:
        yield mgr
    finally:
        loop_store.run(mgr.close())


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.lists(items(), min_size=1, max_size=14),
    orders=st.tuples(st.sampled_from(["asc", "desc"]), st.sampled_from(["asc", "desc"])),
    depth=st.integers(1, 2),
    expanded=st.one_of(st.none(), st.integers(0, 2)),
    toggles=st.lists(st.integers(0, 50), max_size=3),
)
def test_view_by_sender_paged_equals_in_memory(
    loop_store: LoopStore,
    manager: ViewManager,
    data: list[NewItem],
    orders: tuple[str, str],
    depth: int,
    expanded: int | None,
    toggles: list[int],
) -> None:
    loop_store.run(_check_view(loop_store, manager, data, orders, depth, expanded, toggles))


async def _check_view(
    ls: LoopStore,
    mgr: ViewManager,
    data: list[NewItem],
    orders: tuple[str, str],
    depth: int,
    expanded: int | None,
    toggles: list[int],
) -> None:
    from bridge.store.tables import view as V

    store = ls.store
    fid = await store.folders.create(store.folders.roles["inbox"], f"v{next(_names)}")
    await store.items.create_many(fid, data)
    keys = [(tags.SENDER_NAME, orders[0]), (tags.MESSAGE_DELIVERY_TIME, orders[1])]
    spec = S.build([], None, keys, depth, None if expanded is None else min(expanded, depth))
    mem = await _open(mgr, fid, spec, paged=False)
    paged = await _open(mgr, fid, spec, paged=True)
    rows = await _same(mem, paged)
    for pick in toggles:
        headers = [e for e in rows if isinstance(e, V.Header)]
        if not headers:
            break
        h = headers[pick % len(headers)]
        mkey = mem._header_ids[paged._header_paths[h.key]]
        before = await mem.set_expanded(mkey, not h.expanded)
        assert await mem.rebuild_after_toggle(before) == await paged.rebuild_after_toggle(
            await paged.set_expanded(h.key, not h.expanded)
        )
        rows = await _same(mem, paged)
