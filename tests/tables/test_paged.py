"""A large view read from SQL on demand (view.Paged) shows exactly the rows of the same
view built in memory: random items, sort orders with up to two category levels, expand and
collapse, positions, and the cursor and bookmarks after the folder changes."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.model import flags, tags
from bridge.model.proptypes import PropType, hex_tag, make_tag
from bridge.model.restrictions import parse
from bridge.store import db
from bridge.store.items import NewItem
from bridge.store.tables import spec as S
from bridge.store.tables import view as V
from bridge.store.tables.compile import install_functions
from bridge.store.tables.manager import ViewManager
from tests.tables.conftest import LoopStore

LONG = make_tag(0x6701, PropType.LONG)
TIMES = st.sampled_from(
    [dt.datetime(2024, 1, d, tzinfo=dt.UTC) for d in (1, 2, 3)]
)  # few values: ties and groups
VALUES: dict[int, st.SearchStrategy[Any]] = {
    tags.SUBJECT: st.sampled_from(["a", "A", "b", "B c", ""]),
    tags.SENDER_NAME: st.sampled_from(["Ann", "ann", "Bob", "Zoë"]),
    tags.IMPORTANCE: st.integers(0, 2),
    tags.MESSAGE_DELIVERY_TIME: TIMES,
    LONG: st.integers(-1, 1),
}
KEYS = [*VALUES, tags.MESSAGE_FLAGS]


@st.composite
def items(draw: st.DrawFn) -> NewItem:
    props = draw(st.fixed_dictionaries({}, optional=VALUES))
    if draw(st.booleans()):
        props[tags.MESSAGE_FLAGS] = flags.MSGFLAG_READ
    return NewItem(props=props)


@st.composite
def specs(draw: st.DrawFn) -> tuple[list[tuple[int, str]], int, int | None]:
    tags_ = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=3, unique=True))
    keys = [(t, draw(st.sampled_from(["asc", "desc"]))) for t in tags_]
    categories = draw(st.integers(0, min(2, len(keys))))
    levels = categories
    if categories == 2 and draw(st.booleans()):
        keys[1] = (keys[1][0], "combine")  # one level of two keys
        levels = 1
    if categories and draw(st.booleans()):
        # the groups of the last level ordered by an aggregate (conversation views)
        kind = draw(st.sampled_from(["categ_max", "categ_min"]))
        keys.insert(categories, (draw(st.sampled_from(list(VALUES))), kind))
    expanded = draw(st.one_of(st.none(), st.integers(0, levels)))
    return keys, categories, expanded


RESTRICTIONS = st.sampled_from(
    [
        None,
        {"exist": hex_tag(tags.SUBJECT)},
        {"property": {"prop": hex_tag(tags.IMPORTANCE), "op": "ge", "value": 1}},
    ]
)
_names = itertools.count()


def _shape(view: V.View, entries: list[V.Entry]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in entries:
        if isinstance(e, V.Header):
            path = view._header_paths[e.key]
            out.append((path, e.level, e.count, e.unread, e.first.id, e.expanded))
        else:
            out.append((e.id, e.inst))
    return out


async def _open(mgr: ViewManager, fid: int, spec: S.ViewSpec, paged: bool) -> V.View:
    saved = V.PAGED_ABOVE
    V.PAGED_ABOVE = -1 if paged else 10**9
    try:
        view = V.View(f"v{next(_names)}", 1, mgr.contents(fid, False), spec)
        await view.refresh()
    finally:
        V.PAGED_ABOVE = saved
    assert (view.paged is not None) == paged
    return view


async def _same(mem: V.View, paged: V.View) -> list[V.Entry]:
    assert paged.total == mem.total
    rows = await paged.entries(0, paged.total)
    assert _shape(paged, rows) == _shape(mem, mem.rows)
    for n in (1, 3):  # pages that start and end inside groups
        for start in range(0, paged.total, n):
            part = await paged.entries(start, start + n)
            assert _shape(paged, part) == _shape(mem, mem.rows[start : start + n])
    for i, entry in enumerate(rows):
        assert await paged.position(V.key_of(entry)) == i
    return rows


async def _refresh(view: V.View, paged: bool) -> None:
    saved = V.PAGED_ABOVE
    V.PAGED_ABOVE = -1 if paged else 10**9
    try:
        events = await view.refresh(set())
        if view.dirty:  # a paged view is re-read when next used (ViewManager.get)
            assert events == [{"event": "table_changed"}]
            await view.refresh()
    finally:
        V.PAGED_ABOVE = saved


@pytest.fixture(scope="module")
def manager(loop_store: LoopStore) -> Iterator[ViewManager]:
    """A view manager that does not follow the store's events (the test refreshes)."""

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
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.lists(items(), min_size=1, max_size=14),
    sort=specs(),
    restriction=RESTRICTIONS,
    toggles=st.lists(st.integers(0, 50), max_size=3),
    cursor=st.integers(0, 40),
    extra=items(),
)
def test_paged_view_equals_the_view_in_memory(
    loop_store: LoopStore,
    manager: ViewManager,
    data: list[NewItem],
    sort: tuple[list[tuple[int, str]], int, int | None],
    restriction: dict[str, Any] | None,
    toggles: list[int],
    cursor: int,
    extra: NewItem,
) -> None:
    loop_store.run(_check(loop_store, manager, data, sort, restriction, toggles, cursor, extra))


async def _check(
    ls: LoopStore,
    mgr: ViewManager,
    data: list[NewItem],
    sort: tuple[list[tuple[int, str]], int, int | None],
    doc: dict[str, Any] | None,
    toggles: list[int],
    cursor: int,
    extra: NewItem,
) -> None:
    store = ls.store
    fid = await store.folders.create(store.folders.roles["inbox"], f"p{next(_names)}")
    await store.items.create_many(fid, data)
    keys, categories, expanded = sort
    r = parse(doc, S.resolver(store.core.named)) if doc is not None else None
    spec = S.build([], r, keys, categories, expanded)
    mem = await _open(mgr, fid, spec, paged=False)
    paged = await _open(mgr, fid, spec, paged=True)
    rows = await _same(mem, paged)
    for pick in toggles:
        headers = [e for e in rows if isinstance(e, V.Header)]
        if not headers:
            break
        h = headers[pick % len(headers)]
        path = paged._header_paths[h.key]
        mkey = mem._header_ids[path]
        before = await mem.set_expanded(mkey, not h.expanded)
        assert await mem.rebuild_after_toggle(before) == await paged.rebuild_after_toggle(
            await paged.set_expanded(h.key, not h.expanded)
        )
        rows = await _same(mem, paged)
    # The cursor and a bookmark stay on their row when the folder changes.
    for view in (mem, paged):
        view.seek("beginning", cursor)
    assert _shape(mem, (await mem.query(1, advance=False))[0]) == _shape(
        paged, (await paged.query(1, advance=False))[0]
    )
    mark_mem, mark_paged = await mem.create_bookmark(), await paged.create_bookmark()
    await store.items.create_many(fid, [extra])
    await _refresh(mem, paged=False)
    await _refresh(paged, paged=True)
    await _same(mem, paged)
    assert mem.pos == paged.pos
    assert mem.bookmark_pos(mark_mem) == paged.bookmark_pos(mark_paged)
