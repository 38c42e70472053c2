"""The SQL compiler and the reference evaluator return the same rows in the same order, for
random items (missing properties, multi-valued categories, recipients, attachments), random
restriction trees and random sort orders."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge.model import evaluate, flags, tags
from bridge.model.codec import to_json
from bridge.model.proptypes import PropType, hex_tag, make_tag
from bridge.model.restrictions import parse
from bridge.store import props as P
from bridge.store.items import NewItem
from bridge.store.tables import compile as C
from bridge.store.tables import contents, spec
from tests.tables.conftest import LoopStore

BODY = tags.BODY
LONG = make_tag(0x6701, PropType.LONG)
FLAG = make_tag(0x6702, PropType.BOOLEAN)
TIME = make_tag(0x6703, PropType.SYSTIME)
BIN = make_tag(0x6704, PropType.BINARY)
MVS = make_tag(0x6705, PropType.UNICODE | 0x1000)
I8 = make_tag(0x6706, PropType.I8)

TEXT = st.text(alphabet="aAbBzß K.éﬁẘfiw", max_size=5)
TIMES = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2020, 1, 3), timezones=st.just(dt.UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 250000 * 250000))
VALUES: dict[int, st.SearchStrategy[Any]] = {
    tags.SUBJECT: TEXT,
    tags.IMPORTANCE: st.integers(0, 2),
    tags.MESSAGE_DELIVERY_TIME: TIMES,
    BODY: TEXT,
    LONG: st.integers(-3, 300),
    FLAG: st.booleans(),
    TIME: TIMES,
    BIN: st.binary(max_size=4),
    MVS: st.lists(TEXT, max_size=3),
    I8: st.integers(-(2**40), 2**40),
}
SCALARS = [t for t in VALUES if t != MVS]
KEYWORDS = "PidNameKeywords"
RCPT = st.fixed_dictionaries(
    {tags.DISPLAY_NAME: TEXT, tags.RECIPIENT_TYPE: st.sampled_from([1, 2])},
    optional={tags.SMTP_ADDRESS: TEXT},
)


@st.composite
def items(draw: st.DrawFn) -> NewItem:
    props = draw(st.fixed_dictionaries({}, optional=VALUES))
    if draw(st.booleans()):
        props[tags.MESSAGE_FLAGS] = flags.MSGFLAG_READ
    named = {}
    cats = draw(st.lists(st.sampled_from(["Red", "red", "Blue", "Ärger"]), max_size=3))
    if cats or draw(st.booleans()):
        named[P.KEYWORDS] = cats
    recipients = draw(st.lists(RCPT, max_size=2))
    names = draw(st.lists(TEXT, max_size=2))
    attachments = [({tags.ATTACH_LONG_FILENAME: n}, b"x" * len(n)) for n in names]
    return NewItem(props=props, named=named, recipients=recipients, attachments=attachments)


def _json(tag: int, value: Any) -> Any:
    return to_json(tag & 0xFFFF, value)


@st.composite
def leaf(draw: st.DrawFn, sub: bool = False) -> dict[str, Any]:
    if sub:
        tag = draw(
            st.sampled_from([tags.DISPLAY_NAME, tags.SMTP_ADDRESS, tags.ATTACH_LONG_FILENAME])
        )
        name = hex_tag(tag)
        value = draw(TEXT)
    else:
        tag = draw(st.sampled_from([*VALUES, tags.MESSAGE_FLAGS, tags.READ, tags.ENTRYID, -1]))
        if tag == -1:
            name, tag, value = KEYWORDS, MVS, draw(st.sampled_from(["Red", "RED", "Blue", "ärger"]))
        else:
            name = hex_tag(tag)
            strat = VALUES.get(tag, TEXT)
            if tag == MVS:
                strat = TEXT
            elif tag in (tags.MESSAGE_FLAGS,):
                strat = st.integers(0, 3)
            elif tag == tags.READ:
                strat = st.booleans()
            elif tag == tags.ENTRYID:
                strat = st.binary(max_size=30)
            value = draw(strat)
    base = tag & 0x0FFF
    op = draw(st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]))
    kinds = ["property", "exist"]
    if base in (PropType.UNICODE, PropType.BINARY):
        kinds += ["content", "size"]
    if base in (PropType.LONG, PropType.I8):
        kinds += ["bitmask", "size"]
    kind = draw(st.sampled_from(kinds))
    if kind == "exist":
        return {"exist": name}
    if kind == "size":
        return {"size": {"prop": name, "op": op, "size": draw(st.integers(0, 6))}}
    if kind == "bitmask":
        return {
            "bitmask": {
                "prop": name,
                "mask": draw(st.integers(0, 7)),
                "nonzero": draw(st.booleans()),
            }
        }
    jvalue = _json(tag & ~0x1000, value)
    if kind == "content":
        return {
            "content": {
                "prop": name,
                "value": jvalue,
                "match": draw(st.sampled_from(["full", "substring", "prefix"])),
                "ignore_case": draw(st.booleans()),
            }
        }
    return {"property": {"prop": name, "op": op, "value": jvalue}}


def restrictions(sub: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    compare = st.builds(
        lambda a, op, b: {"compare": {"prop1": hex_tag(a), "op": op, "prop2": hex_tag(b)}},
        st.sampled_from([tags.SUBJECT, BODY]),
        st.sampled_from(["lt", "eq", "ge", "ne"]),
        st.sampled_from([tags.SUBJECT, BODY]),
    )
    base = st.one_of(leaf(sub), compare) if not sub else leaf(True)
    if not sub:
        base = st.one_of(
            base,
            st.builds(
                lambda o, r: {"sub": {"object": o, "restriction": r}},
                st.sampled_from(["recipients", "attachments"]),
                restrictions(True),
            ),
        )
    return st.recursive(
        base,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda c: {"and": c}),
            st.lists(children, max_size=3).map(lambda c: {"or": c}),
            children.map(lambda c: {"not": c}),
            children.map(lambda c: {"comment": {"props": {"x": 1}, "restriction": c}}),
        ),
        max_leaves=6,
    )


SORT_TAGS = [*SCALARS, tags.MESSAGE_SIZE, tags.MESSAGE_FLAGS, tags.READ]
SORTS = st.lists(st.tuples(st.sampled_from(SORT_TAGS), st.booleans()), max_size=3)
_names = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.lists(items(), max_size=12),
    restriction=st.one_of(st.none(), restrictions()),
    sort=SORTS,
    count=st.one_of(st.none(), st.integers(0, 5)),
)
def test_sql_and_evaluator_agree(
    loop_store: LoopStore,
    data: list[NewItem],
    restriction: dict[str, Any] | None,
    sort: list[tuple[int, bool]],
    count: int | None,
) -> None:
    loop_store.run(_check(loop_store, data, restriction, sort, count))


async def _check(
    ls: LoopStore,
    data: list[NewItem],
    doc: dict[str, Any] | None,
    sort: list[tuple[int, bool]],
    count: int | None,
) -> None:
    store = ls.store
    fid = await store.folders.create(store.folders.roles["inbox"], f"t{next(_names)}")
    ids = await store.items.create_many(fid, data)
    if len(data) % 2:  # half the examples run with the full-text index up to date
        assert await store.search.wait_current()
    if doc is not None and count is not None:
        doc = {"count": {"max": count, "restriction": doc}}
    r = parse(doc, spec.resolver(store.core.named)) if doc is not None else None
    view = spec.build([], r, [(t, "desc" if d else "asc") for t, d in sort])
    kw = store.core.named.tag_for(P.KEYWORDS, PropType.UNICODE | 0x1000)
    compiler = C.Compiler(store.ids, kw)
    conn = store.core.reader
    await C.install_functions(conn, store.ids)
    got = [
        leaf.id
        for leaf in await contents.leaves(
            conn, compiler, fid, False, view, r and evaluate.limit_of(r)
        )
    ]
    rows = {}
    for iid in ids:
        item = await store.queries.get(iid)
        rows[iid] = evaluate.Row(
            item.props,
            await store.queries.recipients(iid),
            await store.queries.attachments(iid),
        )
    want = evaluate.restrict_and_sort(rows, r, view.keys)
    event(f"rows: {min(len(want), 3)} of {min(len(ids), 3)}")
    assert got == want, (doc, sort)


def test_folds_to_ascii_lists_every_such_character() -> None:
    import sys

    from bridge.store.tables.compile import FOLDS_TO_ASCII

    found = "".join(
        chr(c)
        for c in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= c < 0xE000 and any(ch.isascii() for ch in chr(c).casefold())
    )
    assert found == FOLDS_TO_ASCII
