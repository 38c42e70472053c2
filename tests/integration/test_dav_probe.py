"""One DAV session over several runs against a real Radicale: between full listings a run
asks for the collections' last-modified instead of their CTags (upstream/dav_marks.py),
and still sees every change another client makes, and its own pushes come back as
nothing new."""

from __future__ import annotations

import asyncio

from bridge.store.store import Store
from bridge.upstream.dav import HttpDavAdapter
from tests.integration.test_dav_sync import (  # noqa: F401 (fixtures)
    Other,
    appointment,
    ical,
    other,
    radicale,
    runner,
    seed,
    subjects,
    vcard,
    vevent,
)

SETTLE = 2.2  # s: a collection's last-modified is trusted 2 s after it


async def test_changes_between_full_listings(store: Store, other: Other) -> None:  # noqa: F811
    await seed(other)
    r = runner(store, other)
    try:
        await r.run(strict=True)
        assert await subjects(store, "calendar") == ["Review", "Standup"]
        adapters = [a for a in r._adapters.values() if isinstance(a, HttpDavAdapter)]
        assert adapters and all(a.marks.probing() for a in adapters)

        await asyncio.sleep(SETTLE)
        await r.run(strict=True)  # nothing changed: the marks are read and settle
        await asyncio.sleep(SETTLE)
        await r.run(strict=True)
        assert all(s["last_run"]["fetched"] == 0 for s in r.status().values()), r.status()
        settled = [m for a in adapters for m in a.marks.seen.values() if m.settled]
        assert len(settled) >= 4  # calendar, tasks, notes, contacts

        # another client: a new event, an edited contact, a deleted event
        await other.put("calendar", "new.ics", ical(vevent("new", "Planning")))
        await other.put("contacts", "ann.vcf", vcard("ann", "Ann Renamed"))
        await other.delete("calendar", "review.ics")
        await r.run(strict=True)
        assert await subjects(store, "calendar") == ["Planning", "Standup"]
        assert await subjects(store, "contacts") == ["Ann Renamed", "Bob Example"]

        # a local change goes up; the next runs find nothing new to fetch
        await store.items.create_many(store.folders.roles["calendar"], [appointment("Local")])
        await r.run(strict=True)
        assert "Local" in await other.summaries("calendar")
        await asyncio.sleep(SETTLE)
        await r.run(strict=True)
        await r.run(strict=True)
        assert await subjects(store, "calendar") == ["Local", "Planning", "Standup"]
        assert all(s["last_run"]["fetched"] == 0 for s in r.status().values()), r.status()
    finally:
        await r.close()


async def test_a_first_sync_reads_no_ctag_and_misses_no_change(
    store: Store,
    other: Other,  # noqa: F811
) -> None:
    """A first sync takes each collection's settled last-modified as its change mark
    instead of the CTag; runs after it see every change; the next session's full listing
    reads the CTags and checks each collection once by listing it."""
    await seed(other)
    await asyncio.sleep(SETTLE)  # the collections' last-modified is settled
    r = runner(store, other)
    try:
        await r.run(strict=True)
        refs = (await store.dav_refs.folder_refs()).values()
        assert len(refs) >= 4
        assert all(ref["modified"] and not ref["ctag"] and not ref["token"] for ref in refs)
        assert await subjects(store, "contacts") == ["Ann Example", "Bob Example"]

        await other.put("calendar", "new.ics", ical(vevent("new", "Planning")))
        await other.delete("contacts", "bob.vcf")
        await r.run(strict=True)
        assert await subjects(store, "calendar") == ["Planning", "Review", "Standup"]
        assert await subjects(store, "contacts") == ["Ann Example"]
        paths = r.status()["caldav"]["last_run"]["paths"]
        assert paths[other.href("calendar")].startswith("listing"), paths
        assert paths[other.href("tasks")] == "unchanged", paths
    finally:
        await r.close()

    r = runner(store, other)  # a new session: CTags, and one check of each first mark
    try:
        await r.run(strict=True)
        runs = [s["last_run"] for s in r.status().values()]
        assert all(run["fetched"] == 0 for run in runs), runs
        assert r.status()["caldav"]["last_run"]["paths"][other.href("tasks")] == "listing"
        refs = (await store.dav_refs.folder_refs()).values()
        # the CTag read before the check is the mark; the check read no sync token
        assert all(ref["ctag"] and not ref["token"] for ref in refs), list(refs)
        await r.run(strict=True)
        paths = [
            p for run in (s["last_run"] for s in r.status().values()) for p in run["paths"].values()
        ]
        assert set(paths) == {"unchanged"}, paths
        assert await subjects(store, "calendar") == ["Planning", "Review", "Standup"]
    finally:
        await r.close()
