"""CalDAV sync runs cut at every step, against a real Radicale, judged against the same
run uncut (as `test_cut_runs.py` does for mail).

Events and tasks are changed here while offline, and by another client meanwhile. A
reference account runs that once, uncut; then, for every step N of the run, a fresh
account runs it cut after step N (the step raises an exception no handler takes; the store
is closed and opened again, as after a restart) and a restarted run finishes the job. The
server's collections and the cache's folders must end as the reference's did.
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
from tests.integration.test_crash_folders import Cut, cut_after
from tests.integration.test_dav_sync import (  # noqa: F401 (fixtures)
    Other,
    appointment,
    ical,
    item_id,
    radicale,
    vevent,
    vtodo,
)
from tests.servers import radicale as rad

MAX_STEPS = 60  # far more than one run of this scenario takes


async def run(store: Store, other: Other) -> dict[str, Any]:
    """One CalDAV run (one engine: a cut stops the whole run, nothing goes on beside it)."""
    settings = DavSettings(other.base + "/", other.user, other.password)
    r = DavRunner(
        store,
        [DavEndpoint("caldav", settings)],
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
    return other


async def scenario(store: Store, other: Other) -> None:
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


async def outcome(store: Store, other: Other) -> tuple[Any, ...]:
    server = {c: await other.summaries(c) for c in ("calendar", "work", "tasks")}
    names = {f.id: f.display_name for f in await store.folders.all()}
    async with store.core.reader.execute("SELECT folder_id, subject FROM items") as cur:
        here = sorted((names[r[0]], r[1]) for r in await cur.fetchall())
    return server, here, await store.queries.journal_pending()


async def test_a_caldav_run_cut_at_every_step_ends_as_the_run_uncut(
    radicale: rad.Radicale,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await account(radicale)
    store = await Store.open(tmp_path / "reference.sqlite")
    try:
        await scenario(store, other)
        status = await run(store, other)
        assert not status["caldav"]["last_run"]["failed"], status
        await run(store, other)
        expected = await outcome(store, other)
    finally:
        await store.close()
        await other.close()
    assert expected[2] == 0, expected
    steps: list[str] = []
    for n in range(1, MAX_STEPS + 1):
        path = tmp_path / f"cut{n}.sqlite"
        other = await account(radicale)
        try:
            store = await Store.open(path)
            try:
                await scenario(store, other)
                cut_after(monkeypatch, n)
                await run(store, other)
            except Cut as cut:
                steps.append(str(cut))
            else:
                break  # the run has fewer than n steps: every one of them was cut
            finally:
                monkeypatch.undo()
                await store.close()
            store = await Store.open(path)  # restarted
            try:
                status = await run(store, other)
                assert not status["caldav"]["last_run"]["failed"], (steps[-1], status)
                await run(store, other)
                assert await outcome(store, other) == expected, steps[-1]
            finally:
                await store.close()
        finally:
            await other.close()
    else:
        raise AssertionError(f"a sync run took more than {MAX_STEPS} steps")
    assert len(steps) >= 5, steps
