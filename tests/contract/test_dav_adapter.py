"""What every CalDAV/CardDAV adapter must do: the same tests against the in-memory adapter,
a real Radicale and a real Cyrus (fixtures `dav_server`, `account` and `dav` in
dav_fixtures.py, registered by conftest.py)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.upstream.base import AuthFailed, UpstreamError
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import (
    ADDRESSBOOK,
    CALENDAR,
    KINDS,
    NOTES,
    TASKS,
    Collection,
    DavAdapter,
    PreconditionFailed,
    ResourceGone,
    SyncTokenInvalid,
)
from tests.contract.dav_fixtures import Account, event, journal, todo, unfold, vcard

SAMPLE = {CALENDAR: event, TASKS: todo, NOTES: journal, ADDRESSBOOK: vcard}
EXT = {CALENDAR: ".ics", TASKS: ".ics", NOTES: ".ics", ADDRESSBOOK: ".vcf"}


async def _collection(dav: DavAdapter, kind: str = CALENDAR, name: str = "Work") -> Collection:
    return await dav.create_collection(kind, name)


async def _fresh(dav: DavAdapter, c: Collection) -> Collection:
    """The collection as `collections()` lists it now (new ctag and sync token)."""
    return next(x for x in await dav.collections() if x.href == c.href)


async def test_connect_and_list(dav: DavAdapter) -> None:
    found = await dav.collections()
    assert all(c.kind in KINDS and c.href.startswith("/") and c.href.endswith("/") for c in found)


async def test_wrong_password_is_auth_failed(account: Account) -> None:
    a = account.adapter(password="wrong")
    with pytest.raises(AuthFailed):
        await a.connect()
    await a.close()


@pytest.mark.parametrize("start", [".well-known/caldav", ".well-known/carddav"])
async def test_discovery_from_a_well_known_url(account: Account, start: str) -> None:
    a = account.adapter(url=account.settings.url.rstrip("/") + "/" + start)
    await a.connect()
    try:
        c = await a.create_collection(CALENDAR, "found")
        assert c.href in {x.href for x in await a.collections()}
    finally:
        await a.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_collection_create_rename_delete(dav: DavAdapter, kind: str) -> None:
    c = await dav.create_collection(kind, "Projekte für 2024 ✓")
    assert c.kind == kind and c.name == "Projekte für 2024 ✓" and c.writable
    listed = await _fresh(dav, c)
    assert (listed.kind, listed.name) == (kind, "Projekte für 2024 ✓")
    assert listed.ctag and await dav.sync_token(listed)
    await dav.rename_collection(c.href, "Erledigt <&> ü")
    assert (await _fresh(dav, c)).name == "Erledigt <&> ü"
    await dav.delete_collection(c.href)
    assert c.href not in {x.href for x in await dav.collections()}
    await dav.delete_collection(c.href)  # already gone: fine
    with pytest.raises(ResourceGone):
        await dav.listing(c)
    with pytest.raises(ResourceGone):
        await dav.changes(c, None)


@pytest.mark.parametrize("kind", KINDS)
async def test_put_fetch_each_kind(dav: DavAdapter, kind: str) -> None:
    c = await dav.create_collection(kind, f"kind {kind}")
    r = await dav.put(c, "one" + EXT[kind], SAMPLE[kind](f"uid-{kind}", "Zürich"), create=True)
    assert r.href.startswith(c.href)
    [got] = [f async for f in dav.fetch(c, [r.href])]
    assert got.error is None and got.data is not None and got.etag
    assert f"UID:uid-{kind}" in unfold(got.data) and "Zürich" in unfold(got.data)


async def test_put_create_twice_is_412(dav: DavAdapter) -> None:
    c = await _collection(dav)
    r = await dav.put(c, "a.ics", event("a", "first"), create=True)
    with pytest.raises(PreconditionFailed):
        await dav.put(c, "a.ics", event("a", "second"), create=True)
    [got] = [f async for f in dav.fetch(c, [r.href])]
    assert got.data is not None and "SUMMARY:first" in unfold(got.data)


async def _etag(dav: DavAdapter, c: Collection, href: str, etag: str | None) -> str:
    if etag is not None:
        return etag
    found = {x.href: x.etag for x in await dav.listing(c)}
    assert found[href] is not None
    return str(found[href])


async def test_put_if_match(dav: DavAdapter) -> None:
    c = await _collection(dav)
    r1 = await dav.put(c, "b.ics", event("b", "v1"), create=True)
    e1 = await _etag(dav, c, r1.href, r1.etag)
    r2 = await dav.put(c, "b.ics", event("b", "v2"), etag=e1)
    e2 = await _etag(dav, c, r2.href, r2.etag)
    assert r2.href == r1.href and e2 != e1
    with pytest.raises(PreconditionFailed):
        await dav.put(c, "b.ics", event("b", "stale"), etag=e1)
    [got] = [f async for f in dav.fetch(c, [r1.href])]
    assert got.data is not None and "SUMMARY:v2" in unfold(got.data) and got.etag == e2


async def test_delete(dav: DavAdapter) -> None:
    c = await _collection(dav)
    r1 = await dav.put(c, "c.ics", event("c", "v1"), create=True)
    e1 = await _etag(dav, c, r1.href, r1.etag)
    r2 = await dav.put(c, "c.ics", event("c", "v2"), etag=e1)
    with pytest.raises(PreconditionFailed):
        await dav.delete(r1.href, etag=e1)
    await dav.delete(r2.href, etag=await _etag(dav, c, r2.href, r2.etag))
    assert await dav.listing(c) == []
    await dav.delete(r2.href)  # already gone: fine
    r3 = await dav.put(c, "d.ics", event("d", "x"), create=True)
    await dav.delete(r3.href)
    assert await dav.listing(c) == []


async def test_changes_initial_and_incremental(account: Account, dav: DavAdapter) -> None:
    c = await _collection(dav)
    first = await dav.changes(c, None)
    assert first.changed == [] and first.removed == []
    a = await dav.put(c, "a.ics", event("a", "a"), create=True)
    b = await dav.put(c, "b.ics", event("b", "b"), create=True)
    d1 = await dav.changes(c, first.token)
    assert {r.href for r in d1.changed} == {a.href, b.href} and d1.removed == []
    assert all(r.etag for r in d1.changed)
    etags = {r.href: r.etag for r in d1.changed}

    # another client edits the server
    other = account.adapter()
    await other.connect()
    try:
        await other.put(c, "a.ics", event("a", "changed"), etag=etags[a.href])
        await other.delete(b.href)
        new = await other.put(c, "n.ics", event("n", "new"), create=True)
    finally:
        await other.close()
    d2 = await dav.changes(c, d1.token)
    assert {r.href for r in d2.changed} == {a.href, new.href}
    assert d2.removed == [b.href]
    assert next(r.etag for r in d2.changed if r.href == a.href) != etags[a.href]
    assert d2.token != d1.token

    d3 = await dav.changes(c, d2.token)
    assert d3.changed == [] and d3.removed == []
    full = await dav.changes(c, None)
    assert {r.href for r in full.changed} == {a.href, new.href} and full.removed == []


async def test_invalid_token(dav: DavAdapter) -> None:
    c = await _collection(dav)
    with pytest.raises(SyncTokenInvalid):
        await dav.changes(c, "http://example.org/ns/sync/not-a-token")
    with pytest.raises(SyncTokenInvalid):
        await dav.changes(c, "data:,1-1")
    assert (await dav.changes(c, None)).token  # still usable


async def test_listing(dav: DavAdapter) -> None:
    c = await _collection(dav, ADDRESSBOOK, "People")
    assert await dav.listing(c) == []
    put = [
        await dav.put(c, f"p{i}.vcf", vcard(f"p{i}", f"Person {i}"), create=True) for i in range(3)
    ]
    listed = await dav.listing(c)
    assert {r.href for r in listed} == {r.href for r in put}
    assert all(r.etag for r in listed)
    assert c.href not in {r.href for r in listed}


@pytest.mark.parametrize("kind", KINDS)
async def test_fetch_all_is_listing_and_fetch_in_one(dav: DavAdapter, kind: str) -> None:
    c = await dav.create_collection(kind, f"all {kind}")
    assert await dav.fetch_all(c) == []
    put = [
        await dav.put(
            c, f"a{i}{EXT[kind]}", SAMPLE[kind](f"all-{kind}-{i}", f"Zürich {i}"), create=True
        )
        for i in range(4)
    ]
    got = {f.href: f for f in await dav.fetch_all(c)}
    assert set(got) == {r.href for r in put}  # the members, not the collection itself
    assert {h: f.etag for h, f in got.items()} == {r.href: r.etag for r in await dav.listing(c)}
    fetched = {f.href: f.data async for f in dav.fetch(c, list(got))}
    for i, r in enumerate(put):
        f = got[r.href]
        assert f.error is None and f.data is not None
        assert f.data == fetched[r.href]
        assert f"UID:all-{kind}-{i}" in unfold(f.data) and f"Zürich {i}" in unfold(f.data)


async def test_fetch_all_over_its_size_limit_is_an_upstream_error(account: Account) -> None:
    dav = account.adapter(query_all_bytes=4096)
    await dav.connect()
    try:
        c = await _collection(dav)
        for i in range(3):
            await dav.put(c, f"b{i}.ics", event(f"b{i}", "big", "x" * 3000), create=True)
        with pytest.raises(UpstreamError):
            await dav.fetch_all(c)
        assert len([f async for f in dav.fetch(c, [r.href for r in await dav.listing(c)])]) == 3
    finally:
        await dav.close()


async def test_fetch_in_batches_with_a_missing_href(account: Account) -> None:
    dav = account.adapter(multiget_batch=2, max_in_flight=2)
    await dav.connect()
    try:
        c = await _collection(dav)
        hrefs = [
            (await dav.put(c, f"e{i}.ics", event(f"e{i}", f"event {i}"), create=True)).href
            for i in range(7)
        ]
        missing = c.href + "missing.ics"
        wanted = [*hrefs[:3], missing, *hrefs[3:]]
        got = [f async for f in dav.fetch(c, wanted)]
        assert [f.href for f in got] == wanted
        for f in got:
            if f.href == missing:
                assert f.error is not None and f.data is None
            else:
                i = hrefs.index(f.href)
                assert f.error is None and f.data is not None
                assert f"SUMMARY:event {i}" in unfold(f.data)
        listed = {r.href: r.etag for r in await dav.listing(c)}
        assert {f.href: f.etag for f in got if f.href != missing} == listed
        # a consumer that stops early leaves nothing running and the adapter usable
        async for _f in dav.fetch(c, hrefs):
            break
        assert len([f async for f in dav.fetch(c, hrefs)]) == 7
    finally:
        await dav.close()


async def test_large_item(dav: DavAdapter) -> None:
    c = await _collection(dav)
    description = ("0123456789abcdef" * 64 * 1024)[: 1024 * 1024]
    r = await dav.put(c, "big.ics", event("big", "big", description), create=True)
    [got] = [f async for f in dav.fetch(c, [r.href])]
    assert got.data is not None and len(got.data) > 1024 * 1024
    assert f"DESCRIPTION:{description}" in unfold(got.data)


async def test_unicode_names(dav: DavAdapter) -> None:
    c = await _collection(dav, CALENDAR, "Kalender äöü 日本")
    r = await dav.put(c, "Café ü 日本+x.ics", event("unicode-1", "Grüße"), create=True)
    assert r.href.startswith(c.href) and r.href.endswith(".ics")
    delta = await dav.changes(c, None)
    assert [x.href for x in delta.changed] == [r.href]
    assert [x.href for x in await dav.listing(c)] == [r.href]
    [got] = [f async for f in dav.fetch(c, [r.href])]
    assert got.data is not None and "SUMMARY:Grüße" in unfold(got.data)
    assert (await _fresh(dav, c)).name == "Kalender äöü 日本"
    await dav.delete(r.href)
    assert (await dav.changes(c, delta.token)).removed == [r.href]


async def test_uid_conflict_is_an_upstream_error(dav: DavAdapter) -> None:
    c = await _collection(dav)
    first = await dav.put(c, "one.ics", event("same-uid", "one"), create=True)
    with pytest.raises(UpstreamError) as info:
        await dav.put(c, "two.ics", event("same-uid", "two"), create=True)
    assert not isinstance(info.value, PreconditionFailed)
    assert [r.href for r in await dav.listing(c)] == [first.href]


async def test_a_first_sync_listing_marks_every_collection(
    account: Account, dav: DavAdapter
) -> None:
    """A first sync's listing may leave the CTags out, and the HTTP adapter does where the
    server names a settled last-modified; every collection still carries a change mark,
    the same while nothing changes and another after a change by another client."""
    c = await _collection(dav, CALENDAR, "first")
    await dav.put(c, "a.ics", event("a", "a"), create=True)
    await asyncio.sleep(2.2)  # the collection's last-modified settles
    first = next(x for x in await dav.collections(first_sync=True) if x.href == c.href)
    assert first.ctag or first.modified
    if isinstance(dav, HttpDavAdapter):
        assert first.modified and not first.ctag  # Radicale's and Cyrus's are settled
    again = await _fresh(dav, c)
    assert (again.ctag, again.modified) == (first.ctag, first.modified)
    other = account.adapter()
    await other.connect()
    try:
        await other.put(c, "b.ics", event("b", "b"), create=True)
    finally:
        await other.close()
    after = await _fresh(dav, c)
    assert (after.ctag or after.modified) and (after.ctag, after.modified) != (
        first.ctag,
        first.modified,
    )


async def test_changes_seen_between_full_listings(account: Account, dav: DavAdapter) -> None:
    """Between full listings the HTTP adapter asks the home sets for last-modified only
    (dav_marks); a change by another client must still show as a new CTag, whether an
    edit, a new member or a removal, and so must no change as the same CTag."""
    c = await _collection(dav, CALENDAR, "probed")
    a = await dav.put(c, "a.ics", event("a", "a"), create=True)
    await dav.collections()  # a full listing (or not the first)
    other = account.adapter()
    await other.connect()
    try:
        for change in ("edit", "new", "remove"):
            await asyncio.sleep(2.2)  # the collection's last-modified settles
            before = await _fresh(dav, c)
            if isinstance(dav, HttpDavAdapter):
                assert dav.marks.probing()
                settled = dav.marks.seen.get(c.href)
                probed = settled is not None and settled.settled
            assert (await _fresh(dav, c)).ctag == before.ctag  # nothing changed
            if change == "edit":
                a = await other.put(c, "a.ics", event("a", "edited"), etag=None)
            elif change == "new":
                await other.put(c, "b.ics", event("b", "b"), create=True)
            else:
                await other.delete(a.href)
            assert (await _fresh(dav, c)).ctag != before.ctag, change
    finally:
        await other.close()
    if isinstance(dav, HttpDavAdapter):
        assert probed  # Radicale and Cyrus name a last-modified for their collections
