"""The full-text index follows the items (create, update, move, delete) and the query syntax."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.model import tags
from bridge.store.items import NewItem
from bridge.store.search_query import QueryError, parse
from bridge.store.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


def _day(d: int) -> dt.datetime:
    return dt.datetime(2024, 3, d, 12, tzinfo=dt.UTC)


def mail(subject: str, body: str = "", day: int = 1, **extra: Any) -> NewItem:
    props: dict[int, Any] = {
        tags.SUBJECT: subject,
        tags.BODY: body,
        tags.MESSAGE_DELIVERY_TIME: _day(day),
        tags.SENDER_NAME: extra.pop("sender_name", "Alice Example"),
        tags.SENDER_SMTP_ADDRESS: extra.pop("sender", "alice@example.com"),
    }
    recipients = [
        {tags.DISPLAY_NAME: name, tags.SMTP_ADDRESS: addr}
        for name, addr in extra.pop("to", [("Bob Builder", "bob@example.org")])
    ]
    return NewItem(props=props, recipients=recipients, **extra)


async def ids(store: Store, q: str, **kw: Any) -> list[int]:
    page = await store.search.search(parse(q), **kw)
    assert page.complete
    return [i.id for i in page.items]


async def test_create_update_move_delete(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    a, b = await store.items.create_many(
        inbox, [mail("Quarterly report", "numbers inside", 1), mail("Lunch", "Straße Café", 2)]
    )
    assert await ids(store, "report") == [a]
    assert await ids(store, "strasse cafe") == [b]  # case folding and diacritics
    assert await ids(store, "STRASSE") == [b]
    await store.items.update(a, {tags.SUBJECT: "Annual summary"})
    assert await ids(store, "report") == []
    assert await ids(store, "annual") == [a]
    archive = await store.folders.create(inbox, "Archive")
    await store.items.move(a, archive)
    assert await ids(store, "annual", folder_id=archive) == [a]
    assert await ids(store, "annual", folder_id=inbox) == []
    await store.items.delete(a, hard=True)
    assert await ids(store, "annual") == []
    async with store.core.reader.execute("SELECT count(*) FROM search_docs") as cur:
        assert (await cur.fetchone())[0] == 1
    await store.folders.delete(archive, hard=True)
    await store.items.set_recipients(
        b, [{tags.DISPLAY_NAME: "Carol", tags.SMTP_ADDRESS: "c@x.test"}]
    )
    assert await ids(store, "to:carol") == [b]
    assert await ids(store, "to:bob") == []


async def test_attachments_are_indexed(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    txt = ({tags.ATTACH_LONG_FILENAME: "notes.txt", tags.ATTACH_MIME_TAG: "text/plain"}, b"zebra")
    pdf = (
        {tags.ATTACH_LONG_FILENAME: "plan.pdf", tags.ATTACH_MIME_TAG: "application/pdf"},
        b"giraffe",
    )
    with_att, plain = await store.items.create_many(
        inbox, [mail("one", attachments=[txt, pdf]), mail("two")]
    )
    assert await ids(store, "zebra") == [with_att]
    assert await ids(store, "giraffe") == []  # only text/* content is indexed
    assert await ids(store, "filename:plan.pdf") == [with_att]
    assert await ids(store, "has:attachment") == [with_att]
    assert set(await ids(store, "alice")) == {with_att, plain}


async def test_query_syntax(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    m1, m2, m3 = await store.items.create_many(
        inbox,
        [
            mail("Budget meeting", "the budget for next year", 1),
            mail("Re: meeting notes", "budget year next", 5, sender_name="Zoe", sender="z@q.test"),
            mail("Holiday", "meeting on the beach", 9, to=[("Dan", "dan@example.org")]),
        ],
    )
    assert await ids(store, "meeting") == [m3, m2, m1]  # received, newest first
    assert await ids(store, '"budget for next"') == [m1]
    assert await ids(store, "budget -holiday") == [m2, m1]
    assert await ids(store, "subject:meeting") == [m2, m1]
    assert await ids(store, 'subject:"meeting notes"') == [m2]
    assert await ids(store, "from:zoe") == [m2]
    assert await ids(store, "from:z@q.test") == [m2]
    assert await ids(store, "to:dan@example.org") == [m3]
    assert await ids(store, "budg*") == [m2, m1]
    assert await ids(store, "meeting before:2024-03-05") == [m1]
    assert await ids(store, "meeting after:2024-03-05") == [m3, m2]
    assert await ids(store, "after:2024-03-02 before:2024-03-09") == [m2]
    assert await ids(store, "budget", offset=1, limit=1) == [m1]
    assert await ids(store, "x:y") == []  # unknown operator: plain text
    assert await ids(store, 'near "*" ^ OR AND NOT') == []  # FTS5 syntax is only text


@pytest.mark.parametrize(
    "q",
    [
        "",
        "   ",
        '"unbalanced',
        "-only -negative",
        "has:pizza",
        "before:2024-13-01",
        "after:yesterday",
        "wo*rd",
        '"phrase"*',
        "x" * 1001,
        " ".join(["w"] * 65),
    ],
)
def test_malformed_queries(q: str) -> None:
    with pytest.raises(QueryError):
        parse(q)


async def test_consistent_after_bulk_create(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    created = await store.items.create_many(
        inbox, [mail(f"bulk message {n}", f"serial{n}") for n in range(3000)]
    )
    page = await store.search.search(parse("bulk"), limit=10)
    assert page.complete and page.total == 3000
    assert await ids(store, "serial2999") == [created[-1]]


async def test_reopen_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s = await Store.open(path)
    inbox = s.folders.roles["inbox"]
    (iid,) = await s.items.create_many(inbox, [mail("persistent words")])
    await s.close()
    s = await Store.open(path)
    try:
        assert await ids(s, "persistent") == [iid]
        await s.core.writer.execute("UPDATE search_state SET cn = 0")  # as a migrated store
        await s.core.writer.commit()
    finally:
        await s.close()
    s = await Store.open(path)
    try:
        assert await ids(s, "persistent") == [iid]
    finally:
        await s.close()


async def test_bulk_write_defers_indexing_but_not_searches(store: Store) -> None:
    """During a bulk write (a sync's pull) the index waits for its end, unless a search
    needs it; after the end it catches up by itself."""
    inbox = store.folders.roles["inbox"]
    with store.search.bulk():
        (a,) = await store.items.create_many(inbox, [mail("Held back", "", 1)])
        await asyncio.sleep(0.3)
        assert store.search.indexed < store.search.target  # deferred
        assert await ids(store, "held") == [a]  # a search gets it indexed all the same
        (b,) = await store.items.create_many(inbox, [mail("Second batch", "", 2)])
    for _ in range(100):  # no search needed after the end
        if store.search.indexed >= store.search.target:
            break
        await asyncio.sleep(0.05)
    assert store.search.indexed >= store.search.target
    assert await ids(store, "second") == [b]


@pytest.mark.parametrize("few_associated", [500, 0])  # FAI looked up by key, or counted
async def test_pages_and_totals_follow_changes(
    store: Store, monkeypatch: pytest.MonkeyPatch, few_associated: int
) -> None:
    from bridge.store import search_results

    monkeypatch.setattr(search_results, "FEW_ASSOCIATED", few_associated)
    inbox = store.folders.roles["inbox"]
    other = await store.folders.create(inbox, "other")
    made = await store.items.create_many(
        inbox, [mail(f"paging {n}", day=1 + n % 9) for n in range(8)]
    )
    (fai,) = await store.items.create_many(inbox, [mail("paging fai", associated=True)])
    newest_first = sorted(made, key=lambda i: (1 + made.index(i) % 9, i), reverse=True)
    pages = [await store.search.search(parse("paging"), offset=o, limit=3) for o in (0, 3, 6)]
    assert [p.total for p in pages] == [8, 8, 8]
    assert [i.id for p in pages for i in p.items] == newest_first
    assert fai not in newest_first
    # a change is seen at once, although the counts of the same search were known
    (late,) = await store.items.create_many(other, [mail("paging late", day=20)])
    page = await store.search.search(parse("paging"), limit=2)
    assert page.total == 9 and page.items[0].id == late
    assert (await store.search.search(parse("paging"), folder_id=other)).total == 1
    await store.items.delete(made[0], hard=True)
    page = await store.search.search(parse("paging"), offset=8, limit=5)
    assert page.total == 8 and page.items == []


@pytest.mark.parametrize("seed", range(3))
async def test_walk_in_key_order_matches_the_exact_order(store: Store, seed: int) -> None:
    """The index is walked by (received second, id); within a second, and for items
    without a delivery time, the page must still follow the exact delivery-time order."""
    import random

    rng = random.Random(seed)
    inbox = store.folders.roles["inbox"]
    base = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    received: list[dt.datetime | None] = []
    for _ in range(40):
        if rng.random() < 0.15:
            received.append(None)
        else:  # few seconds, many items within each, in no particular order
            offset = dt.timedelta(seconds=rng.randrange(4), microseconds=rng.randrange(10**6))
            received.append(base + offset)
    items = []
    for n, when in enumerate(received):
        item = mail(f"walking {n}")
        if when is None:
            del item.props[tags.MESSAGE_DELIVERY_TIME]
        else:
            item.props[tags.MESSAGE_DELIVERY_TIME] = when
        items.append(item)
    made = await store.items.create_many(inbox, items)
    when_of = dict(zip(made, received, strict=True))
    expected = sorted(
        made,
        key=lambda i: (when_of[i] is not None, when_of[i] or base, i),
        reverse=True,
    )
    for limit in (1, 7, 40):
        got: list[int] = []
        for offset in range(0, 40, limit):
            page = await store.search.search(parse("walking"), offset=offset, limit=limit)
            assert page.total == 40
            got += [i.id for i in page.items]
        assert got == expected, limit
    # a new delivery time moves the item (its entry is keyed anew)
    last = expected[-1]
    await store.items.update(last, {tags.MESSAGE_DELIVERY_TIME: base + dt.timedelta(hours=1)})
    assert (await ids(store, "walking", limit=1)) == [last]


async def test_windows_cut_by_text_size_skip_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window ends early once its text passes WINDOW_BYTES; the items after the cut are
    indexed by the next windows, none skipped."""
    from bridge.store import search

    monkeypatch.setattr(search, "WINDOW_BYTES", 40)
    inbox = store.folders.roles["inbox"]
    made = await store.items.create_many(
        inbox, [mail(f"cutting {n}", body="a fairly long body text " * 3) for n in range(30)]
    )
    page = await store.search.search(parse("cutting"), limit=100)
    assert page.complete and sorted(i.id for i in page.items) == sorted(made)
    assert store.search.indexed == store.search.target
