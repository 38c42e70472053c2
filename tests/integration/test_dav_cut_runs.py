"""CalDAV and CardDAV sync runs cut at every step, against a real Radicale, judged
against the same run uncut (as `test_cut_runs.py` does for mail).

Events, tasks and contacts are changed here while offline, and by another client
meanwhile. A reference account runs that once, uncut; then, for every step N of the run, a
fresh account runs it cut after step N (the step raises an exception no handler takes; the
store is closed and opened again, as after a restart) and a restarted run finishes the
job. The server's collections and the cache's folders must end as the reference's did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.model import classes, tags
from bridge.store.items import NewItem
from bridge.store.store import Store
from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import DavSettings
from tests.integration.cuts import collect_leftovers, every_cut  # noqa: F401
from tests.integration.test_dav_sync import (  # noqa: F401 (fixtures)
    Other,
    appointment,
    ical,
    item_id,
    radicale,
    vcard,
    vevent,
    vtodo,
)
from tests.servers import radicale as rad

MAX_STEPS = 60  # far more than one run of this scenario takes
# A cut run leaves what a killed process would leave behind (tasks and coroutines it
# never finished), which the garbage collector reports: not a failure of the bridge.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def run(store: Store, other: Other, service: str = "caldav") -> dict[str, Any]:
    """One run of one engine (a cut stops the whole run: nothing goes on beside it)."""
    settings = DavSettings(other.base + "/", other.user, other.password)
    r = DavRunner(
        store,
        [DavEndpoint(service, settings)],
        DavOptions(policy="keep-both"),
        adapter_factory=HttpDavAdapter,
    )
    try:
        await r.run(strict=True)
        return r.status()
    finally:
        await r.close()


async def account(server: rad.Radicale) -> Other:
    other = Other(server, *server.add_user())
    await other.mkcalendar("calendar", "Calendar", "VEVENT")
    await other.mkcalendar("work", "Work", "VEVENT")
    await other.mkcalendar("tasks", "Tasks", "VTODO")
    await other.mkaddressbook("contacts", "Contacts")
    await other.mkaddressbook("friends", "Friends")
    return other


async def events_and_tasks(store: Store, other: Other) -> None:
    """Events and tasks changed here (made, edited, moved, deleted) and, some of them,
    by another client."""
    for name, summary in (("standup", "Standup"), ("review", "Review"), ("lunch", "Lunch")):
        await other.put("calendar", f"{name}.ics", ical(vevent(name, summary)))
    await other.put("calendar", "demo.ics", ical(vevent("demo", "Demo")))
    await other.put("work", "w1.ics", ical(vevent("w1", "Workshop")))
    await other.put("tasks", "report.ics", vtodo("report", "Write report"))
    await other.put("tasks", "taxes.ics", vtodo("taxes", "File taxes"))
    await run(store, other)
    roles = store.folders.roles
    work = next(f.id for f in await store.folders.all() if f.display_name == "Work")
    await store.items.create(roles["calendar"], appointment("Planning"))
    await store.items.update(await item_id(store, "calendar", "Standup"), {tags.SUBJECT: "Daily"})
    await store.items.move(await item_id(store, "calendar", "Review"), work)
    await store.items.delete(await item_id(store, "calendar", "Lunch"), hard=True)
    await store.items.move(await item_id(store, "calendar", "Demo"), work)
    await store.items.delete(await item_id(store, "tasks", "Write report"))  # Deleted Items
    await store.items.create(roles["tasks"], NewItem(classes.IPM_TASK, {tags.SUBJECT: "Call"}))
    # meanwhile, another client:
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Standup v2")), etag)
    _, etag = await other.get(other.href("calendar", "demo.ics"))
    await other.put("calendar", "demo.ics", ical(vevent("demo", "Demo v2")), etag)
    await other.delete("work", "w1.ics")
    await other.put("calendar", "party.ics", ical(vevent("party", "Party")))
    _, etag = await other.get(other.href("tasks", "taxes.ics"))
    await other.put("tasks", "taxes.ics", vtodo("taxes", "File taxes now"), etag)


async def collections_changed(store: Store, other: Other) -> None:
    """Calendars made, renamed and deleted here, with events moved between them; a
    calendar made and one deleted by another client, which held an event moved here."""
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Standup")))
    await other.put("work", "w1.ics", ical(vevent("w1", "Workshop")))
    await other.put("work", "w2.ics", ical(vevent("w2", "Retro")))
    await other.mkcalendar("old", "Old", "VEVENT")
    await other.put("old", "o1.ics", ical(vevent("o1", "Offsite")))
    await other.put("old", "o2.ics", ical(vevent("o2", "Kickoff")))
    await run(store, other)
    folders = {f.display_name: f.id for f in await store.folders.all()}
    top = store.folders.roles["ipm_subtree"]
    trips = await store.folders.create(top, "Trips", classes.IPF_APPOINTMENT)
    await store.items.move(await subject_id(store, "Workshop"), trips)
    await store.items.create(trips, appointment("Flight"))
    await store.folders.update(folders["Work"], name="Office")
    await store.items.move(await subject_id(store, "Offsite"), store.folders.roles["calendar"])
    await store.items.move(await subject_id(store, "Standup"), folders["Old"])
    await other.mkcalendar("games", "Games", "VEVENT")
    await other.put("games", "g1.ics", ical(vevent("g1", "Chess")))
    await other.request("DELETE", other.href("old"))


async def subject_id(store: Store, subject: str) -> int:
    async with store.core.reader.execute(
        "SELECT id FROM items WHERE subject = ?", (subject,)
    ) as cur:
        row = await cur.fetchone()
    assert row is not None, subject
    return int(row[0])


async def server_collections(other: Other) -> dict[str, list[str]]:
    """Display name → summaries of every collection of the account."""
    import xml.etree.ElementTree as ET

    status, body, _ = await other.request(
        "PROPFIND",
        other.href(""),
        '<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
        {"Depth": "1", "Content-Type": "application/xml"},
    )
    assert status == 207, body
    out = {}
    for response in ET.fromstring(body).iter("{DAV:}response"):
        href = (response.findtext("{DAV:}href") or "").rstrip("/")
        if href == other.href("").rstrip("/"):
            continue
        coll = href.rsplit("/", 1)[-1]
        name = response.findtext(".//{DAV:}displayname") or coll
        out[name] = await other.summaries(coll)
    return dict(sorted(out.items()))


async def outcome(store: Store, other: Other) -> tuple[Any, ...]:
    server = await server_collections(other)
    names = {f.id: f.display_name for f in await store.folders.all()}
    async with store.core.reader.execute("SELECT folder_id, subject FROM items") as cur:
        here = sorted((names[r[0]], r[1]) for r in await cur.fetchall())
    assert await store.queries.journal_pending() == 0
    return server, here


async def contacts_changed(store: Store, other: Other) -> None:
    """Contacts changed here (made, edited, moved to another address book, deleted) and,
    some of them, by another client; over CardDAV."""
    for uid, name in (("ann", "Ann"), ("bob", "Bob"), ("cy", "Cy"), ("dee", "Dee")):
        await other.put("contacts", f"{uid}.vcf", vcard(uid, name))
    await other.put("friends", "eve.vcf", vcard("eve", "Eve"))
    await run(store, other, "carddav")
    friends = next(f.id for f in await store.folders.all() if f.display_name == "Friends")
    contact = {tags.SUBJECT: "Fay", tags.DISPLAY_NAME: "Fay"}
    await store.items.create(store.folders.roles["contacts"], NewItem(classes.IPM_CONTACT, contact))
    ann = await item_id(store, "contacts", "Ann")
    await store.items.update(ann, {tags.SUBJECT: "Ann B", tags.DISPLAY_NAME: "Ann B"})
    await store.items.move(await item_id(store, "contacts", "Bob"), friends)
    await store.items.delete(await item_id(store, "contacts", "Cy"), hard=True)
    await store.items.move(await item_id(store, "contacts", "Dee"), friends)
    # meanwhile, another client:
    _, etag = await other.get(other.href("contacts", "ann.vcf"))
    await other.put("contacts", "ann.vcf", vcard("ann", "Ann C"), etag)
    _, etag = await other.get(other.href("contacts", "dee.vcf"))
    await other.put("contacts", "dee.vcf", vcard("dee", "Dee D"), etag)
    await other.delete("friends", "eve.vcf")
    await other.put("friends", "gus.vcf", vcard("gus", "Gus"))


SCENARIOS = {
    "events and tasks changed on both sides": (events_and_tasks, "caldav"),
    "calendars changed on both sides": (collections_changed, "caldav"),
    "contacts changed on both sides": (contacts_changed, "carddav"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_a_dav_run_cut_at_every_step_ends_as_the_run_uncut(
    radicale: rad.Radicale,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    scenario, service = SCENARIOS[name]

    async def prepare(store: Store) -> Other:
        other = await account(radicale)
        await scenario(store, other)
        return other

    async def one_run(store: Store, other: Other) -> None:
        status = await run(store, other, service)
        assert not status[service]["last_run"]["failed"], status

    async def release(other: Other) -> None:
        await other.close()

    steps = await every_cut(
        monkeypatch,
        tmp_path,
        prepare=prepare,
        run=one_run,
        outcome=outcome,
        release=release,
        max_steps=MAX_STEPS,
    )
    assert len(steps) >= 5, steps
