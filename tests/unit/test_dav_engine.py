"""The DAV sync engine against the in-memory CalDAV/CardDAV server: pull paths, push with
preconditions, conflicts, hierarchy both ways, journal exclusivity with the mail side."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.model import classes, tags
from bridge.store.items import NewItem
from bridge.store.search_folders import Criteria
from bridge.store.store import Store
from bridge.sync.dav_engine import DavEngine
from bridge.sync.dav_parse import ParserPool
from bridge.sync.dav_report import DavReport
from bridge.sync.dav_scope import CALDAV_KINDS, CARDDAV_KINDS, dav_entry_ids
from bridge.upstream import dav_href
from bridge.upstream.dav_base import ADDRESSBOOK, CALENDAR, NOTES, TASKS
from tests.fakes.dav_memory import MemoryDavServer


def event(uid: str, summary: str, start: str = "20300101T100000Z", extra: str = "") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{start}\r\n"
        f"DTEND:{start[:9]}110000Z\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def todo(uid: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:{summary}\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def card(uid: str, name: str) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"
    ).encode()


class Setup:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.server = MemoryDavServer()
        self.bridge = self.server.adapter()
        self.other = self.server.adapter()  # a second client editing the server

    async def connect(self) -> None:
        await self.bridge.connect()
        await self.other.connect()

    def engine(self, service: str = "caldav", **kw: Any) -> DavEngine:
        kinds = CALDAV_KINDS if service == "caldav" else CARDDAV_KINDS
        return DavEngine(self.store, self.bridge, service, kinds, **kw)

    async def run(self, **kw: Any) -> DavReport:
        report = await self.engine("caldav", **kw).run()
        card_report = await self.engine("carddav", **kw).run()
        for name in ("fetched", "updated", "deleted", "conflicts", "pushed", "outside_window"):
            setattr(report, name, getattr(report, name) + getattr(card_report, name))
        report.malformed += card_report.malformed
        report.failed += card_report.failed
        report.paths.update(card_report.paths)
        return report

    def coll(self, kind: str) -> str:
        return next(h for h, c in self.server.collections.items() if c.kind == kind)

    async def put(self, kind: str, name: str, data: bytes, etag: str | None = None) -> str:
        c = next(c for c in await self.other.collections() if c.kind == kind)
        res = await self.other.put(c, name, data, etag=etag)
        return str(res.etag)

    async def subjects(self, role: str) -> list[str]:
        fid = self.store.folders.roles[role]
        async with self.store.core.reader.execute(
            "SELECT subject FROM items WHERE folder_id = ? ORDER BY subject", (fid,)
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def item_id(self, role: str, subject: str) -> int:
        fid = self.store.folders.roles[role]
        async with self.store.core.reader.execute(
            "SELECT id FROM items WHERE folder_id = ? AND subject = ?", (fid, subject)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None, subject
        return int(row[0])

    def server_summaries(self, kind: str) -> list[str]:
        out = []
        for item in self.server.collections[self.coll(kind)].items.values():
            for line in item.data.decode().splitlines():
                if line.startswith(("SUMMARY:", "FN:")):
                    out.append(line.split(":", 1)[1])
        return sorted(out)


@pytest.fixture
async def s(store: Store) -> Setup:
    setup = Setup(store)
    await setup.connect()
    return setup


async def test_initial_pull_links_default_folders(s: Setup) -> None:
    s.server.add_collection(NOTES, "Notes", slug="notes")
    await s.put(CALENDAR, "a.ics", event("a", "Standup"))
    await s.put(TASKS, "t.ics", todo("t", "Write report"))
    await s.put(ADDRESSBOOK, "c.vcf", card("c", "Ann Example"))
    await s.put(
        NOTES,
        "n.ics",
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VJOURNAL\r\nUID:n\r\nSUMMARY:Idea\r\n"
        b"END:VJOURNAL\r\nEND:VCALENDAR\r\n",
    )
    report = await s.run()
    assert report.fetched == 4 and not report.failed and not report.malformed
    assert await s.subjects("calendar") == ["Standup"]
    assert await s.subjects("tasks") == ["Write report"]
    assert await s.subjects("contacts") == ["Ann Example"]
    assert await s.subjects("notes") == ["Idea"]
    links = await s.store.dav_refs.folder_refs()
    assert links[s.store.folders.roles["calendar"]]["href"] == s.coll(CALENDAR)
    assert links[s.store.folders.roles["contacts"]]["dav"] == "carddav"
    # Nothing pulled is journaled back.
    assert await s.store.queries.journal_pending() == 0
    # A second run with no change touches nothing but the collection list.
    s.server.calls.clear()
    again = await s.run()
    assert again.fetched == 0 and set(again.paths.values()) == {"unchanged"}
    assert not [c for c in s.server.calls if c.startswith(("changes", "listing", "fetch"))]


async def test_extra_collection_becomes_its_own_folder_and_renames_follow(s: Setup) -> None:
    s.server.add_collection(CALENDAR, "Work", slug="work")
    await s.run()
    names = {f.display_name: f for f in await s.store.folders.all()}
    assert names["Work"].container_class == classes.IPF_APPOINTMENT
    work = s.server.collections[dav_href.as_collection(s.server.home + "work")]
    work.name = "Office"
    work.counter += 1
    await s.run()
    names = {f.display_name: f for f in await s.store.folders.all()}
    assert "Office" in names and "Work" not in names
    # Renamed here → PROPPATCH displayname.
    await s.store.folders.update(names["Office"].id, name="Desk")
    await s.run()
    assert work.name == "Desk"
    # Deleted on the server → gone here.
    del s.server.collections[work.href]
    await s.run()
    assert "Desk" not in {f.display_name for f in await s.store.folders.all()}


async def test_local_folder_becomes_collection_and_deletion_goes_up(s: Setup) -> None:
    top = s.store.folders.roles["ipm_subtree"]
    fid = await s.store.folders.create(top, "Trips", classes.IPF_APPOINTMENT)
    await s.store.items.create(fid, NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "Flight"}))
    report = await s.run()
    assert not report.failed, report.failed
    made = [c for c in s.server.collections.values() if c.name == "Trips"]
    assert len(made) == 1 and made[0].kind == CALENDAR
    assert len(made[0].items) == 1
    assert await s.store.queries.journal_pending() == 0
    await s.store.folders.delete(fid)  # into Deleted Items: the collection goes
    await s.run()
    assert not [c for c in s.server.collections.values() if c.name == "Trips"]
    assert await s.store.queries.journal_pending() == 0


async def test_offline_edits_reach_the_server(s: Setup) -> None:
    await s.put(CALENDAR, "a.ics", event("a", "Keep"))
    await s.put(CALENDAR, "b.ics", event("b", "Remove"))
    await s.put(ADDRESSBOOK, "c.vcf", card("c", "Bob"))
    await s.run()
    cal = s.store.folders.roles["calendar"]
    new_id = await s.store.items.create(
        cal, NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "Lunch"})
    )
    await s.store.items.update(await s.item_id("calendar", "Keep"), {tags.SUBJECT: "Kept"})
    await s.store.items.delete(await s.item_id("calendar", "Remove"), hard=True)
    await s.store.items.create(
        s.store.folders.roles["contacts"],
        NewItem(classes.IPM_CONTACT, {tags.SUBJECT: "Cy", tags.DISPLAY_NAME: "Cy"}),
    )
    report = await s.run()
    assert not report.failed, report.failed
    assert s.server_summaries(CALENDAR) == ["Kept", "Lunch"]
    assert s.server_summaries(ADDRESSBOOK) == ["Bob", "Cy"]
    assert await s.store.queries.journal_pending() == 0
    ref = (await s.store.dav_refs.item(new_id)).upstream  # type: ignore[union-attr]
    assert ref is not None and ref["href"].endswith(".ics") and not ref.get("pending")
    assert s.server.data(ref["href"]) is not None
    # Idempotent: the next run pushes and fetches nothing.
    again = await s.run()
    assert again.pushed == 0 and again.fetched == 0 and again.updated == 0


async def test_move_between_collections_is_put_then_delete(s: Setup) -> None:
    s.server.add_collection(CALENDAR, "Work", slug="work")
    await s.put(CALENDAR, "a.ics", event("a", "Review"))
    await s.run()
    work = next(f for f in await s.store.folders.all() if f.display_name == "Work")
    await s.store.items.move(await s.item_id("calendar", "Review"), work.id)
    report = await s.run()
    assert not report.failed
    assert s.server_summaries(CALENDAR) == []
    work_coll = s.server.collections[dav_href.as_collection(s.server.home + "work")]
    assert len(work_coll.items) == 1
    assert await s.store.queries.journal_pending() == 0
    # The next run neither duplicates nor loses it.
    await s.run()
    async with s.store.core.reader.execute(
        "SELECT count(*) FROM items WHERE subject = 'Review'"
    ) as cur:
        assert (await cur.fetchone())[0] == 1  # type: ignore[index]


async def test_server_edits_appear(s: Setup) -> None:
    etag = await s.put(CALENDAR, "a.ics", event("a", "One"))
    await s.put(CALENDAR, "b.ics", event("b", "Two"))
    await s.run()
    await s.put(CALENDAR, "a.ics", event("a", "One changed"), etag=etag)
    await s.other.delete(dav_href.member(s.coll(CALENDAR), "b.ics"))
    await s.put(CALENDAR, "c.ics", event("c", "Three"))
    report = await s.run()
    assert report.paths[s.coll(CALENDAR)] == "sync-collection"
    assert await s.subjects("calendar") == ["One changed", "Three"]
    assert await s.store.queries.journal_pending() == 0


@pytest.mark.parametrize("query_all", [True, False])
async def test_first_pull_in_one_query_else_listing_and_multiget(s: Setup, query_all: bool) -> None:
    for n in range(5):
        await s.put(CALENDAR, f"e{n}.ics", event(f"e{n}", f"Event {n}"))
    s.server.query_all = query_all
    s.server.calls.clear()
    report = await s.run()
    cal = s.coll(CALENDAR)
    calls = [c for c in s.server.calls if cal in c]
    if query_all:
        assert report.paths[cal] == "initial (query)"
        assert calls == [f"fetch_all {cal}"]  # each member read once, no listing
    else:
        assert report.paths[cal] == "initial"
        assert calls == [
            f"fetch_all {cal}",
            f"listing {cal}",
            f"fetch {cal} 5",
            f"multiget {cal} 5",
        ]
    assert report.fetched == 5 and not report.malformed
    assert await s.subjects("calendar") == [f"Event {n}" for n in range(5)]
    # An empty answer is checked with a listing (a server may read the empty address book
    # filter as "match nothing").
    assert f"listing {s.coll(ADDRESSBOOK)}" in s.server.calls
    # Later pulls ask for changes only, never everything again.
    await s.put(CALENDAR, "new.ics", event("new", "New one"))
    s.server.calls.clear()
    again = await s.run()
    assert again.paths[cal] == "sync-collection" and again.fetched == 1
    assert not [c for c in s.server.calls if c.startswith(("fetch_all", "listing"))]


async def test_first_pull_in_one_query_reads_no_token_when_the_ctag_marks_it(s: Setup) -> None:
    """As over HTTP (the listing gives CTags, the token costs a request of its own): a
    first pull in one query leaves the token out, as the CTag read before it marks the
    data. The next change is found by an ETag listing (which reads the token), the one
    after by sync-collection; nothing is fetched twice, nothing is missed."""
    s.server.token_in_listing = False
    for n in range(3):
        await s.put(CALENDAR, f"e{n}.ics", event(f"e{n}", f"Event {n}"))
    cal = s.coll(CALENDAR)
    s.server.calls.clear()
    report = await s.run()
    assert report.paths[cal] == "initial (query)"
    assert [c for c in s.server.calls if cal in c] == [f"fetch_all {cal}"]
    # Nothing changed: the CTag says so, the server is not asked.
    s.server.calls.clear()
    assert (await s.run()).paths[cal] == "unchanged"
    assert not [c for c in s.server.calls if cal in c]
    await s.put(CALENDAR, "new.ics", event("new", "New one"))
    s.server.calls.clear()
    report = await s.run()
    assert report.paths[cal] == "listing" and report.fetched == 1
    assert [c for c in s.server.calls if cal in c] == [
        f"sync_token {cal}",
        f"listing {cal}",
        f"fetch {cal} 1",
        f"multiget {cal} 1",
    ]
    await s.other.delete(dav_href.member(cal, "e0.ics"))
    report = await s.run()
    assert report.paths[cal] == "sync-collection" and report.deleted == 1
    assert await s.subjects("calendar") == ["Event 1", "Event 2", "New one"]


@pytest.mark.parametrize("sync_collection", [True, False])
async def test_expired_token_or_no_sync_collection_full_resync(
    s: Setup, sync_collection: bool
) -> None:
    for n in range(5):
        await s.put(CALENDAR, f"e{n}.ics", event(f"e{n}", f"Event {n}"))
    s.server.sync_collection = sync_collection
    await s.run()
    await s.put(CALENDAR, "new.ics", event("new", "New one"))
    await s.other.delete(dav_href.member(s.coll(CALENDAR), "e0.ics"))
    s.server.expire_tokens()
    s.server.calls.clear()
    report = await s.run()
    assert report.paths[s.coll(CALENDAR)].startswith("listing")
    fetches = [c for c in s.server.calls if c.startswith("multiget")]
    assert fetches == [f"multiget {s.coll(CALENDAR)} 1"]  # only the new one
    assert await s.subjects("calendar") == ["Event 1", "Event 2", "Event 3", "Event 4", "New one"]


async def test_upload_cut_short_is_linked_not_duplicated(s: Setup) -> None:
    await s.run()
    cal = s.store.folders.roles["calendar"]
    iid = await s.store.items.create(cal, NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "X"}))
    # The previous attempt wrote its intent and the server stored the resource, then the
    # process died before the reference was confirmed.
    await s.run()  # uploads normally
    ref = dict((await s.store.dav_refs.item(iid)).upstream or {})  # type: ignore[union-attr]
    await s.store.sync.set_item_links({iid: {**ref, "etag": None, "pending": True}})
    await s.store.items.update(iid, {tags.SUBJECT: "X2"})
    s.server.expire_tokens()
    report = await s.run()
    assert not report.failed, report.failed
    assert await s.subjects("calendar") == ["X2"]
    assert s.server_summaries(CALENDAR) == ["X2"]


async def test_create_412_links_by_uid(s: Setup) -> None:
    await s.run()
    cal = s.store.folders.roles["calendar"]
    data = event("dup-1", "Same")
    iid = await s.store.items.create(
        cal,
        NewItem(
            classes.IPM_APPOINTMENT,
            {tags.SUBJECT: "Same"},
            source=data,
            source_type="text/calendar",
        ),
    )
    # The server already has it (uploaded before a crash) but the pull has not seen it.
    await s.put(CALENDAR, "dup-1.ics", data)
    s.server.collections[s.coll(CALENDAR)].counter += 0
    engine = s.engine()
    report = DavReport()
    from bridge.sync.dav_hierarchy import DavHierarchy
    from bridge.sync.dav_push import DavPusher

    h = DavHierarchy(s.store, s.bridge, "caldav", CALDAV_KINDS, engine.enabled)
    entries = await s.store.sync.journal()
    synced = await h.sync([], report)
    await DavPusher(s.store, s.bridge, "caldav", CALDAV_KINDS, "keep-both").run(
        [e for e in entries if e.kind == "item"], synced, h, report
    )
    assert not report.failed, report.failed
    ref = (await s.store.dav_refs.item(iid)).upstream  # type: ignore[union-attr]
    assert ref is not None and ref["href"].endswith("dup-1.ics")
    await s.run()
    assert await s.subjects("calendar") == ["Same"]


async def test_local_item_with_the_uid_of_a_server_item_is_linked(s: Setup) -> None:
    """Made here (e.g. a WebDAV PUT of an .ics) before the first sync, and present on the
    server under another name: one item on each side, not two."""
    data = event("shared-uid", "Imported twice")
    await s.store.items.create(
        s.store.folders.roles["calendar"],
        NewItem(
            classes.IPM_APPOINTMENT,
            {tags.SUBJECT: "Imported twice"},
            source=data,
            source_type="text/calendar",
        ),
    )
    await s.put(CALENDAR, "other-name.ics", data)
    report = await s.run()
    assert not report.failed, report.failed
    assert await s.subjects("calendar") == ["Imported twice"]
    assert s.server_summaries(CALENDAR) == ["Imported twice"]
    assert await s.store.queries.journal_pending() == 0


@pytest.mark.parametrize("policy", ["keep-both", "server-wins", "local-wins", "newer-wins"])
async def test_conflict_policies(s: Setup, policy: str) -> None:
    etag = await s.put(CALENDAR, "a.ics", event("a", "Base"))
    await s.run(policy=policy)
    iid = await s.item_id("calendar", "Base")
    await s.store.items.update(iid, {tags.SUBJECT: "Local"})
    await s.put(CALENDAR, "a.ics", event("a", "Server"), etag=etag)
    report = await s.run(policy=policy)
    assert report.conflicts == 1
    assert await s.store.queries.journal_pending() == 0
    conflicts = await s.subjects("conflicts")
    if policy == "local-wins":
        assert await s.subjects("calendar") == ["Local"]
        assert s.server_summaries(CALENDAR) == ["Local"]
    else:  # newer-wins: the server change was observed after the local one
        assert await s.subjects("calendar") == ["Server"]
        assert s.server_summaries(CALENDAR) == ["Server"]
    assert conflicts == (["Local"] if policy == "keep-both" else [])


async def test_push_412_is_a_conflict(s: Setup) -> None:
    """The server changes between the pull and the PUT: If-Match fails."""
    etag = await s.put(CALENDAR, "a.ics", event("a", "Base"))
    await s.run()
    iid = await s.item_id("calendar", "Base")
    await s.store.items.update(iid, {tags.SUBJECT: "Local"})
    real_collections = s.bridge.collections

    async def list_then_edit(*, first_sync: bool = False) -> Any:
        listed = await real_collections(first_sync=first_sync)
        s.bridge.collections = real_collections  # type: ignore[method-assign]
        await s.put(CALENDAR, "a.ics", event("a", "Server"), etag=etag)
        return listed

    s.bridge.collections = list_then_edit  # type: ignore[method-assign]
    report = await s.run()
    assert report.conflicts == 1
    assert await s.subjects("calendar") == ["Server"]
    assert await s.subjects("conflicts") == ["Local"]
    assert await s.store.queries.journal_pending() == 0


async def test_deleted_on_server_changed_here_is_kept(s: Setup) -> None:
    await s.put(CALENDAR, "a.ics", event("a", "Base"))
    await s.run()
    await s.store.items.update(await s.item_id("calendar", "Base"), {tags.SUBJECT: "Mine"})
    await s.other.delete(dav_href.member(s.coll(CALENDAR), "a.ics"))
    report = await s.run()
    assert report.conflicts == 1
    assert await s.subjects("calendar") == []
    assert await s.subjects("conflicts") == ["Mine"]


async def test_malformed_resource_is_reported_and_the_rest_continues(s: Setup) -> None:
    await s.put(CALENDAR, "good.ics", event("g", "Good"))
    await s.put(CALENDAR, "bad.ics", b"BEGIN:VCALENDAR\r\nthis is not ical\x00\r\n")
    await s.put(CALENDAR, "bin.ics", b"\xff\xfe\x00garbage")
    report = await s.run()
    assert await s.subjects("calendar") == ["Good"]
    assert len(report.malformed) == 2
    assert any("bad.ics" in m for m in report.malformed)
    # Not fetched again while unchanged.
    s.server.expire_tokens()
    s.server.calls.clear()
    again = await s.run()
    assert not again.malformed
    assert not [c for c in s.server.calls if c.startswith("multiget")]


async def test_calendar_window_skips_old_events(s: Setup) -> None:
    await s.put(CALENDAR, "old.ics", event("old", "Old", start="20100101T100000Z"))
    await s.put(CALENDAR, "new.ics", event("new", "New", start="20990101T100000Z"))
    await s.put(
        CALENDAR,
        "rec.ics",
        event("rec", "Weekly since 2010", start="20100101T100000Z", extra="RRULE:FREQ=WEEKLY\r\n"),
    )
    report = await s.run(calendar_window_days=30)
    assert report.outside_window == 1
    assert await s.subjects("calendar") == ["New", "Weekly since 2010"]
    # Unchanged: not fetched again. A wider window brings it in.
    s.server.calls.clear()
    await s.run(calendar_window_days=30)
    assert not [c for c in s.server.calls if c.startswith("multiget")]
    report = await s.run(calendar_window_days=None)
    assert report.fetched == 1
    assert await s.subjects("calendar") == ["New", "Old", "Weekly since 2010"]


async def test_folder_mode_off_is_left_alone(s: Setup) -> None:
    from bridge.config.model import FolderSync

    s.server.add_collection(CALENDAR, "Private", slug="private")
    await s.put(CALENDAR, "a.ics", event("a", "A"))
    await s.run(folders={"Private": FolderSync("off", None, None)})
    assert "Private" not in {f.display_name for f in await s.store.folders.all()}


async def test_offline_keeps_the_journal(s: Setup) -> None:
    await s.run()
    cal = s.store.folders.roles["calendar"]
    await s.store.items.create(cal, NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "Off"}))
    s.server.offline = True
    from bridge.upstream.base import ConnectFailed

    with pytest.raises(ConnectFailed):
        await s.run()
    assert await s.store.queries.journal_pending() == 1
    s.server.offline = False
    await s.run()
    assert s.server_summaries(CALENDAR) == ["Off"]
    assert await s.store.queries.journal_pending() == 0


async def test_no_etag_in_put_answer_is_read_back(s: Setup) -> None:
    await s.run()
    s.server.return_etags = False
    cal = s.store.folders.roles["calendar"]
    iid = await s.store.items.create(cal, NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "E"}))
    await s.run()
    ref = (await s.store.dav_refs.item(iid)).upstream  # type: ignore[union-attr]
    assert ref is not None and ref["etag"]


async def test_journal_entries_are_split_between_mail_and_dav(s: Setup) -> None:
    await s.put(CALENDAR, "a.ics", event("a", "Cal"))
    await s.run()
    inbox = s.store.folders.roles["inbox"]
    mail = await s.store.items.create(inbox, NewItem(props={tags.SUBJECT: "Mail"}))
    await s.store.items.update(await s.item_id("calendar", "Cal"), {tags.SUBJECT: "Cal2"})
    cal_item = await s.item_id("calendar", "Cal2")
    entries = await s.store.sync.journal()
    dav = await dav_entry_ids(s.store, entries)
    assert {e.object_id for e in entries if e.id in dav} == {cal_item}
    assert {e.object_id for e in entries if e.id not in dav} == {mail}
    # A calendar item deleted (moved to Deleted Items) still belongs to DAV: DELETE upstream.
    await s.store.items.delete(cal_item)
    entries = await s.store.sync.journal()
    dav = await dav_entry_ids(s.store, entries)
    assert {e.object_id for e in entries if e.id in dav} == {cal_item}
    await s.run()
    assert s.server_summaries(CALENDAR) == []
    pending = await s.store.sync.journal()
    assert {e.object_id for e in pending} == {mail}  # the mail entry is left to IMAP


# -- the service --------------------------------------------------------------------------


async def wait_for(cond: Any, seconds: float = 10.0) -> None:
    import asyncio

    for _ in range(int(seconds / 0.02)):
        if await cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_dav_only_service_states_and_wake_up(store: Store) -> None:
    from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner, DavSyncService
    from bridge.upstream.dav_base import DavSettings

    server = MemoryDavServer()
    settings = DavSettings("mem://dav/", server.username, server.password)
    runner = DavRunner(
        store,
        [DavEndpoint("caldav", settings), DavEndpoint("carddav", settings)],
        DavOptions(),
        adapter_factory=server.adapter,
    )
    service = DavSyncService(store, runner, interval=3600)
    await service.start()
    try:

        async def online() -> bool:
            st = await service.status()
            return bool(st["state"] == "online" and st["last_sync"])

        await wait_for(online)
        st = await service.status()
        assert set(st["upstreams"]) == {"caldav", "carddav"}
        assert st["upstreams"]["caldav"]["state"] == "online"
        # One listing serves both engines on the same account.
        assert server.calls.count("collections") == 1
        # A local change wakes the loop and goes up without waiting for the interval.
        cal = store.folders.roles["calendar"]
        await store.items.create(cal, NewItem(classes.IPM_TASK, {tags.SUBJECT: "Soon"}))

        coll = server.collections[dav_href.as_collection(server.home + "calendar")]

        async def pushed() -> bool:
            return bool(coll.items) and not await store.queries.journal_pending()

        await wait_for(pushed)
        await wait_for(online)
        # The server goes away: offline, with the change kept.
        server.offline = True
        await store.items.create(cal, NewItem(classes.IPM_TASK, {tags.SUBJECT: "Later"}))
        await service.run_now()

        async def offline() -> bool:
            return (await service.status())["state"] == "offline"

        await wait_for(offline)
        assert await store.queries.journal_pending() == 1
        server.offline = False
        await service.run_now()
        await wait_for(pushed)
        assert len(coll.items) == 2
        # The user's switch.
        await service.set_offline(True)
        assert (await service.status())["state"] == "offline"
    finally:
        await service.stop()


async def test_the_config_picks_the_service(store: Store, tmp_path: Any) -> None:
    from bridge.config import load_config
    from bridge.sync.dav_service import DavSyncService
    from bridge.sync.imap_service import ImapSyncService
    from bridge.sync.services import CombinedSyncService, for_config

    dav = 'caldav: {url: "http://127.0.0.1:5232/"}\n  carddav: {url: "http://127.0.0.1:5232/"}'
    only = tmp_path / "dav.yaml"
    only.write_text(f"upstream:\n  username: jane\n  password: pw\n  {dav}\n")
    service = for_config(store, load_config(only))
    assert isinstance(service, DavSyncService)
    assert [ep.service for ep in service.runner.endpoints] == ["caldav", "carddav"]
    both = tmp_path / "both.yaml"
    both.write_text(
        "upstream:\n  username: jane\n  password: pw\n"
        "  imap: {host: 127.0.0.1, tls: none}\n  smtp: {host: 127.0.0.1, tls: none}\n"
        f"  {dav}\n"
    )
    combined = for_config(store, load_config(both))
    assert isinstance(combined, CombinedSyncService)
    assert isinstance(combined.mail, ImapSyncService)
    assert isinstance(combined.dav, DavSyncService)


async def test_associated_items_stay_local(s: Setup) -> None:
    await s.run()
    cal = s.store.folders.roles["calendar"]
    await s.store.items.create(
        cal, NewItem("IPM.Configuration.Calendar", {tags.SUBJECT: "view"}, associated=True)
    )
    report = await s.run()
    assert not report.failed
    assert s.server_summaries(CALENDAR) == []
    assert await s.store.queries.journal_pending() == 0


async def test_dav_look_ups_use_their_indexes(s: Setup) -> None:
    await s.put(CALENDAR, "a.ics", event("uid-a", "A"))
    await s.run()
    cal = s.store.folders.roles["calendar"]
    href = dav_href.member(s.coll(CALENDAR), "a.ics")
    by_href = await s.store.dav_refs.item_by_href(href)
    assert by_href is not None and by_href.uid == "uid-a" and by_href.folder_id == cal
    by_uid = await s.store.dav_refs.items_by_uid(cal, "uid-a")
    assert [i.id for i in by_uid] == [by_href.id]
    assert await s.store.dav_refs.items_by_uid(cal, "other") == []
    reader = s.store.core.reader
    for sql, args in (
        ("SELECT id FROM items WHERE json_extract(upstream, '$.href') = ?", (href,)),
        (
            "SELECT id FROM items WHERE folder_id = ? AND json_extract(upstream, '$.dav_uid') = ?",
            (cal, "uid-a"),
        ),
        (
            "SELECT id FROM items WHERE upstream IS NOT NULL AND "
            "json_extract(upstream, '$.collection') = ?",
            (s.coll(CALENDAR),),
        ),
    ):
        async with reader.execute("EXPLAIN QUERY PLAN " + sql, args) as cur:
            plan = " ".join(str(r[3]) for r in await cur.fetchall())
        assert "USING INDEX items_dav_" in plan, plan


async def test_move_cut_short_between_put_and_delete(s: Setup) -> None:
    from bridge.upstream.base import ConnectFailed

    s.server.add_collection(CALENDAR, "Work", slug="work")
    await s.put(CALENDAR, "a.ics", event("a", "Review"))
    await s.run()
    work = next(f for f in await s.store.folders.all() if f.display_name == "Work")
    await s.store.items.move(await s.item_id("calendar", "Review"), work.id)
    real_delete = s.bridge.delete

    async def drop(href: str, *, etag: str | None = None) -> None:
        s.bridge.delete = real_delete  # type: ignore[method-assign]
        raise ConnectFailed("connection lost")

    s.bridge.delete = drop  # type: ignore[method-assign]
    with pytest.raises(ConnectFailed):
        await s.run()
    # The new copy is on the server, the old one too; the next run finishes the move
    # without pulling the old one back as a new item.
    s.server.expire_tokens()
    report = await s.run()
    assert not report.failed, report.failed
    assert s.server_summaries(CALENDAR) == []
    work_coll = s.server.collections[dav_href.as_collection(s.server.home + "work")]
    assert len(work_coll.items) == 1
    async with s.store.core.reader.execute(
        "SELECT count(*) FROM items WHERE subject = 'Review'"
    ) as cur:
        assert (await cur.fetchone())[0] == 1  # type: ignore[index]
    assert await s.store.queries.journal_pending() == 0


async def test_search_folders_never_become_collections(s: Setup) -> None:
    await s.put(CALENDAR, "a.ics", event("a", "Standup"))
    await s.run()
    roles = s.store.folders.roles
    before = set(s.server.collections)
    found = await s.store.search_folders.create(
        roles["ipm_subtree"],
        "Found",
        Criteria({"exist": "PidTagSubject"}, (roles["calendar"],), False),
        classes.IPF_APPOINTMENT,
    )
    report = await s.run()
    assert not report.failed
    assert set(s.server.collections) == before
    assert found not in await s.store.dav_refs.folder_refs()
    assert await s.store.queries.journal_pending() == 0


class _Pool(ParserPool):
    """Records when the engine starts the run's parse workers (and starts none)."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def start(self) -> None:
        self.calls.append("start parsers")


async def test_parse_workers_start_before_a_first_pull_query_and_only_then(s: Setup) -> None:
    for n in range(3):
        await s.put(CALENDAR, f"e{n}.ics", event(f"e{n}", f"Event {n}"))
    cal = s.coll(CALENDAR)
    s.server.calls.clear()
    pool = _Pool(s.server.calls)
    await s.engine("caldav", parsers=pool).run()
    calls = [c for c in s.server.calls if c.startswith(("start parsers", "fetch_all"))]
    assert f"fetch_all {cal}" in calls
    # Each first pull's query is sent with the workers on their way.
    assert calls == [c for fetch in calls[1::2] for c in ("start parsers", fetch)]
    await s.put(CALENDAR, "new.ics", event("new", "New one"))
    s.server.calls.clear()
    await s.engine("caldav", parsers=pool).run()
    assert "start parsers" not in s.server.calls  # a later pull asks for changes only
    assert await s.subjects("calendar") == ["Event 0", "Event 1", "Event 2", "New one"]
