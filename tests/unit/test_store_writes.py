"""The store's write path: every write is one transaction with journal, change number and
notification; counters stay right; failures change nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.model import flags, tags
from bridge.model.named import NamedProp, PSETID_Appointment
from bridge.store import blobs
from bridge.store.core import UPSTREAM
from bridge.store.errors import Conflict, Forbidden, InvalidValue, NotFound, StaleState
from bridge.store.items import NewItem
from bridge.store.props import KEYWORDS
from bridge.store.store import Store

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def mail(subject: str, *, read: bool = False, **extra: object) -> NewItem:
    props: dict[int, object] = {
        tags.SUBJECT: subject,
        tags.MESSAGE_DELIVERY_TIME: NOW,
        tags.MESSAGE_FLAGS: flags.MSGFLAG_READ if read else 0,
    }
    return NewItem(props=props, **extra)  # type: ignore[arg-type]


async def journal(store: Store) -> list[tuple[str, int]]:
    async with store.core.reader.execute("SELECT op, object_id FROM journal ORDER BY id") as cur:
        return [(r[0], r[1]) for r in await cur.fetchall()]


def dump(store: Store) -> list[str]:
    conn = sqlite3.connect(store.core.path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def test_create_counts_journal_and_event(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    sub = store.bus.subscribe()
    ids = await store.items.create_many(inbox, [mail("a"), mail("b", read=True), mail("c")])
    folder = await store.folders.get(inbox)
    assert (folder.content_count, folder.unread_count) == (3, 2)
    assert await journal(store) == [("item_create", i) for i in ids]
    events = [await sub.get() for _ in ids]
    assert [e.type for e in events] == ["object_created"] * 3
    assert [e.data["id"] for e in events] == ids
    sub.close()


async def test_upstream_changes_are_not_journaled_and_raise_new_mail(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    sub = store.bus.subscribe()
    iid = await store.items.create(inbox, mail("from server"), origin=UPSTREAM)
    assert await journal(store) == []
    types = [(await sub.get()).type for _ in range(2)]
    assert types == ["object_created", "new_mail"]
    sub.close()
    assert (await store.queries.get(iid)).props[tags.SUBJECT] == "from server"


async def test_read_flag_updates_unread_count_once(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, mail("x"))
    assert (await store.folders.get(inbox)).unread_count == 1
    changed = await store.items.update(iid, {tags.READ: True})
    assert tags.MESSAGE_FLAGS in changed
    assert (await store.folders.get(inbox)).unread_count == 0
    assert await store.items.update(iid, {tags.READ: True}) == []
    assert (await store.folders.get(inbox)).unread_count == 0
    view = await store.queries.get(iid)
    assert view.props[tags.READ] is True


async def test_update_mirrors_hot_columns_and_categories(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, mail("old"))
    await store.items.update(iid, {tags.SUBJECT: "new"}, named={KEYWORDS: ["Red", "Blue"]})
    async with store.core.reader.execute("SELECT subject FROM items WHERE id = ?", (iid,)) as c:
        assert (await c.fetchone())[0] == "new"
    async with store.core.reader.execute(
        "SELECT category FROM item_categories WHERE item_id = ? ORDER BY 1", (iid,)
    ) as c:
        assert [r[0] for r in await c.fetchall()] == ["Blue", "Red"]
    await store.items.update(iid, delete_tags=[tags.SUBJECT])
    assert tags.SUBJECT not in (await store.queries.get(iid)).props


async def test_named_properties_get_stable_store_ids(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    custom = NamedProp(PSETID_Appointment, name="X-Custom")
    item = mail("n")
    item.named[custom] = "value"
    iid = await store.items.create(inbox, item)
    mapped = store.core.named.lookup(custom)
    assert mapped is not None and mapped[0] >= 0x8000
    tag = (mapped[0] << 16) | 0x001F
    assert (await store.queries.get(iid)).props[tag] == "value"


async def test_a_named_mapping_rolled_back_is_forgotten_with_its_tag(store: Store) -> None:
    """The tag cache of the named-property map follows a rolled-back mapping: the next
    item with that property gets a mapping that exists in the database."""
    inbox = store.folders.roles["inbox"]
    custom = NamedProp(PSETID_Appointment, name="X-Rolled-Back")
    bad = mail("bad")
    bad.named[custom] = "value"
    bad.props[tags.IMPORTANCE] = "very"  # fails inside the transaction, after the mapping
    with pytest.raises(ValueError):
        await store.items.create_many(inbox, [bad])
    assert store.core.named.lookup(custom) is None
    assert store.core.named.known_tag(custom) is None
    good = mail("good")
    good.named[custom] = "kept"
    iid = await store.items.create(inbox, good)
    mapped = store.core.named.lookup(custom)
    assert mapped is not None
    tag = (mapped[0] << 16) | 0x001F
    assert store.core.named.known_tag(custom) == tag
    assert (await store.queries.get(iid)).props[tag] == "kept"
    async with store.core.reader.execute(
        "SELECT id FROM named_props WHERE name = ?", ("X-Rolled-Back",)
    ) as cur:
        assert [r[0] for r in await cur.fetchall()] == [mapped[0]]


async def test_computed_properties_are_refused(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    before = dump(store)
    with pytest.raises(InvalidValue, match="read-only"):
        await store.items.create(inbox, NewItem(props={tags.ENTRYID: b"x"}))
    assert dump(store) == before


async def test_failed_batch_changes_nothing(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    before = dump(store)
    counters = dict(store.core.counters)
    bad = mail("bad")
    bad.props[tags.IMPORTANCE] = "very"  # not an int: encoding fails inside the transaction
    with pytest.raises(ValueError):
        await store.items.create_many(inbox, [mail("good"), bad])
    assert dump(store) == before
    assert store.core.counters == counters


async def test_move_copy_delete_and_change_feed(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    other = await store.folders.create(inbox, "Other")
    a, b, c = await store.items.create_many(inbox, [mail("a"), mail("b"), mail("c")])
    first = await store.queries.changes(inbox, None)
    assert sorted(v.id for v in first.created) == [a, b, c]
    await store.items.update(a, {tags.SUBJECT: "a2"})
    await store.items.move(b, other)
    await store.items.delete(c, hard=True)
    d = await store.items.copy(a, other)
    second = await store.queries.changes(inbox, first.state)
    assert [v.id for v in second.modified] == [a]
    assert second.created == []
    assert sorted(second.deleted) == sorted([b, c])
    feed_other = await store.queries.changes(other, None)
    assert sorted(v.id for v in feed_other.created) == sorted([b, d])
    assert (await store.folders.get(inbox)).content_count == 1
    assert (await store.folders.get(other)).content_count == 2
    third = await store.queries.changes(inbox, second.state)
    assert (third.created, third.modified, third.deleted) == ([], [], [])


async def test_change_feed_pages(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    ids = await store.items.create_many(inbox, [mail(str(n)) for n in range(7)])
    seen: list[int] = []
    state = None
    while True:
        page = await store.queries.changes(inbox, state, limit=3)
        seen += [v.id for v in page.created]
        state = page.state
        if not page.more:
            break
    assert seen == ids


async def test_foreign_state_is_stale(store: Store) -> None:
    with pytest.raises(StaleState):
        await store.queries.changes(store.folders.roles["inbox"], "0123456789ab.5")


async def test_soft_delete_goes_to_deleted_items(store: Store) -> None:
    inbox, trash = store.folders.roles["inbox"], store.folders.roles["deleted"]
    iid = await store.items.create(inbox, mail("x"))
    await store.items.delete(iid)
    assert await store.queries.folder_of(iid) == trash
    await store.items.delete(iid)
    with pytest.raises(NotFound):
        await store.queries.get(iid)


async def test_folder_rules(store: Store) -> None:
    roles = store.folders.roles
    with pytest.raises(Forbidden):
        await store.folders.delete(roles["inbox"])
    with pytest.raises(Forbidden):
        await store.folders.update(roles["calendar"], parent_id=roles["inbox"])
    a = await store.folders.create(roles["inbox"], "A")
    b = await store.folders.create(a, "B")
    with pytest.raises(Conflict):
        await store.folders.create(roles["inbox"], "a")  # names are case-insensitive
    with pytest.raises(Conflict):
        await store.folders.update(a, parent_id=b)
    await store.folders.delete(a)
    assert (await store.folders.get(a)).parent_id == roles["deleted"]
    inside = await store.items.create(b, mail("inside"))
    await store.folders.delete(a)  # already in Deleted Items: removed for good
    for fid in (a, b):
        with pytest.raises(NotFound):
            await store.folders.get(fid)
    with pytest.raises(NotFound):
        await store.queries.get(inside)


async def test_hard_folder_delete_removes_items_and_blobs(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    fid = await store.folders.create(inbox, "Gone")
    item = mail("with blob")
    item.source = b"raw" * 1000
    item.attachments = [({tags.ATTACH_LONG_FILENAME: "a.bin"}, b"\x00" * 10)]
    await store.items.create(fid, item)
    await store.folders.delete(fid, hard=True)
    async with store.core.reader.execute("SELECT count(*) FROM blobs") as cur:
        assert (await cur.fetchone())[0] == 0


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_streamed_attachment_round_trip(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, mail("att"))
    data = bytes(range(256)) * (3 * blobs.CHUNK_SIZE // 256 + 7)
    blob_id = await store.items.stream_blob(chunks(data, 70_000))
    num = await store.items.add_attachment(
        iid, {tags.ATTACH_LONG_FILENAME: "x.bin"}, blob_id=blob_id
    )
    props, bid, size = await store.queries.attachment(iid, num)
    assert size == len(data) and props[tags.ATTACH_SIZE] == len(data)
    assert bid is not None
    assert b"".join([c async for c in store.queries.read_blob(bid)]) == data
    view = await store.queries.get(iid)
    assert view.props[tags.HASATTACH] is True
    await store.items.delete_attachment(iid, num)
    assert (await store.queries.get(iid)).props[tags.HASATTACH] is False


async def test_streamed_blob_over_limit_is_dropped(store: Store) -> None:
    with pytest.raises(InvalidValue):
        await store.items.stream_blob(chunks(b"x" * 1000, 100), max_size=500)
    async with store.core.reader.execute("SELECT count(*) FROM blobs") as cur:
        assert (await cur.fetchone())[0] == 0


async def test_orphan_blobs_removed_at_open(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    first = await Store.open(path)
    await first.items.stream_blob(chunks(b"never attached", 4))
    await first.close()
    reopened = await Store.open(path)
    try:
        async with reopened.core.reader.execute("SELECT count(*) FROM blobs") as cur:
            assert (await cur.fetchone())[0] == 0
    finally:
        await reopened.close()


async def test_submit_moves_to_outbox(store: Store) -> None:
    drafts, outbox = store.folders.roles["drafts"], store.folders.roles["outbox"]
    item = mail("send me")
    item.recipients = [{tags.SMTP_ADDRESS: "bob@example.com", tags.RECIPIENT_TYPE: flags.MAPI_TO}]
    iid = await store.items.create(drafts, item)
    await store.items.submit(iid)
    view = await store.queries.get(iid)
    assert view.folder_id == outbox
    assert view.props[tags.MESSAGE_FLAGS] & flags.MSGFLAG_SUBMITTED
    assert ("item_submit", iid) in await journal(store)
    with pytest.raises(Conflict):
        await store.items.submit(iid)


async def test_sender_name_column_as_the_document_says(store: Store) -> None:
    """create_many gives sender_name_prop itself (schema 0014), a copy leaves it to the
    trigger: either way it is what the document holds, and the sender counts agree."""
    inbox = store.folders.roles["inbox"]
    names = [None, "", "Ann", 'Zoë "Z" \\ O\'Brien', "x\u2028y"]
    new = []
    for name in names:
        item = mail(f"from {name!r}")
        if name is not None:
            item.props[tags.SENDER_NAME] = name
        new.append(item)
    ids = await store.items.create_many(inbox, new, origin=UPSTREAM)
    copy = await store.items.copy(ids[2], inbox)
    async with store.core.reader.execute(
        "SELECT id, sender_name_prop, json_extract(props, '$.\"0x0C1A001F\"') FROM items "
        "WHERE folder_id = ? ORDER BY id",
        (inbox,),
    ) as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    assert [r[0] for r in rows] == [*ids, copy]
    assert [r[1] for r in rows] == [*names, "Ann"]
    assert all(r[1] == r[2] or r[1] is r[2] is None for r in rows)
    async with store.core.reader.execute(
        "SELECT has_sender, sender, count FROM item_sender_counts "
        "WHERE folder_id = ? AND count > 0",
        (inbox,),
    ) as cur:
        counts = [tuple(r) for r in await cur.fetchall()]
    expected = [(0, "", 1), (1, "", 1), (1, "Ann", 2), *[(1, n, 1) for n in names[3:]]]
    assert sorted(counts) == sorted(expected)


async def test_create_checks_the_folder_before_any_row(store: Store) -> None:
    """The folder is looked up while the rows are prepared: a search folder or a missing
    folder still refuses the whole batch (an empty one too), and nothing is written."""
    from bridge.store.search_folders import Criteria

    inbox = store.folders.roles["inbox"]
    search = await store.search_folders.create(
        store.folders.roles["ipm_subtree"],
        "found",
        Criteria({"exist": "PidTagSubject"}, (inbox,), False),
    )
    before = dump(store)
    for folder, batch, error in [
        (search, [mail("a"), mail("b")], Conflict),
        (search, [], Conflict),
        (10**6, [mail("c")], NotFound),
    ]:
        with pytest.raises(error):
            await store.items.create_many(folder, batch, origin=UPSTREAM)
    assert dump(store) == before
    assert await store.items.create_many(inbox, []) == []


async def test_a_local_edit_of_content_makes_the_source_stale(store: Store) -> None:
    """Flags and categories leave the raw source true; any other local change (or one of
    the recipients) does not: then the source to upload or send is built from properties.
    A copy keeps the mark; changes from the upstream set none."""
    raw = b"From: a@x\r\nTo: b@x\r\nSubject: as received\r\nMessage-ID: <s@x>\r\n\r\nbody\r\n"
    from bridge.store.rfc822 import item_from_rfc822

    inbox = store.folders.roles["inbox"]
    item = await store.items.create(inbox, item_from_rfc822(raw))
    await store.items.update(item, {tags.READ: True, tags.FLAG_STATUS: 2})
    await store.items.update(item, {}, named={KEYWORDS: ["Red Category"]})
    assert await store.sync.source(item) == raw
    await store.items.update(item, {tags.SUBJECT: "as the server has it"}, origin=UPSTREAM)
    assert await store.sync.source(item) == raw
    await store.items.update(item, {tags.SUBJECT: "edited"})
    rebuilt = await store.sync.source(item)
    assert b"Subject: edited" in rebuilt and rebuilt != raw
    copy = await store.items.copy(item, inbox)
    assert b"Subject: edited" in await store.sync.source(copy)
    other = await store.items.create(inbox, item_from_rfc822(raw))
    await store.items.set_recipients(
        other, [{tags.RECIPIENT_TYPE: 1, tags.SMTP_ADDRESS: "c@x", tags.DISPLAY_NAME: "C"}]
    )
    assert b"c@x" in await store.sync.source(other)
