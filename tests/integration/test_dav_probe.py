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
