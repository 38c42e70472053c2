"""Two-way sync of calendars, tasks, notes and contacts against a real Radicale: initial
pull, offline edits of each kind going up, another client's edits coming down, an expired
sync token, 412 conflicts, a recurring event with exceptions, and a `kbridge serve` killed
in the middle of a run."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.model import classes, tags
from bridge.store import props as P
from bridge.store.core import UPSTREAM
from bridge.store.davstore import DavStore
from bridge.store.folders import Folders
from bridge.store.items import Items, NewItem
from bridge.store.search_folders import Criteria
from bridge.store.store import Store
from bridge.sync.dav_engine import DavEngine
from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import DavSettings
from tests.integration.conftest import Account
from tests.integration.conftest import sync as mail_sync
from tests.servers import radicale as rad

MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:set><D:prop><D:displayname>{name}</D:displayname>
 <C:supported-calendar-component-set><C:comp name="{comp}"/></C:supported-calendar-component-set>
 </D:prop></D:set></C:mkcalendar>"""
MKADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
 <D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
 <D:displayname>{name}</D:displayname></D:prop></D:set></D:mkcol>"""


def vevent(uid: str, summary: str, extra: str = "", start: str = "20300105T100000Z") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:{start}\r\n"
        f"DURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\n"
    )


def ical(*components: str) -> bytes:
    body = "".join(components)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\n{body}END:VCALENDAR\r\n".encode()
    )


def vtodo(uid: str, summary: str) -> bytes:
    return ical(
        f"BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:{summary}\r\nEND:VTODO\r\n"
    )


def vjournal(uid: str, summary: str) -> bytes:
    return ical(
        f"BEGIN:VJOURNAL\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:{summary}\r\n"
        "DESCRIPTION:text\r\nEND:VJOURNAL\r\n"
    )


def vcard(uid: str, name: str) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"
    ).encode()


class Other:
    """A second client on the account, speaking plain HTTP."""

    def __init__(self, server: rad.Radicale, user: str, password: str) -> None:
        self.base = server.url.rstrip("/")
        self.user = user
        self.password = password
        token = b64encode(f"{user}:{password}".encode()).decode()
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})

    def href(self, coll: str, name: str = "") -> str:
        return f"/{self.user}/{coll}/{name}"

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str | None]:
        async with self.http.request(
            method, self.base + path, data=body, headers=headers or {}
        ) as r:
            return r.status, await r.read(), r.headers.get("ETag")

    async def mkcalendar(self, coll: str, name: str, comp: str) -> None:
        status, body, _ = await self.request(
            "MKCALENDAR",
            self.href(coll),
            MKCALENDAR.format(name=name, comp=comp),
            {"Content-Type": "application/xml"},
        )
        assert status == 201, body

    async def mkaddressbook(self, coll: str, name: str) -> None:
        status, body, _ = await self.request(
            "MKCOL",
            self.href(coll),
            MKADDRESSBOOK.format(name=name),
            {"Content-Type": "application/xml"},
        )
        assert status == 201, body

    async def put(self, coll: str, name: str, data: bytes, etag: str | None = None) -> str:
        ctype = "text/vcard" if name.endswith(".vcf") else "text/calendar"
        headers = {"Content-Type": ctype}
        if etag:
            headers["If-Match"] = etag
        status, body, new = await self.request("PUT", self.href(coll, name), data, headers)
        assert status in (201, 204), (status, body)
        return new or ""

    async def get(self, path: str) -> tuple[bytes, str]:
        status, body, etag = await self.request("GET", path)
        assert status == 200, (path, status)
        return body, etag or ""

    async def delete(self, coll: str, name: str) -> None:
        status, _, _ = await self.request("DELETE", self.href(coll, name))
        assert status in (200, 204)

    async def members(self, coll: str) -> dict[str, bytes]:
        """name → data of every member of a collection."""
        status, body, _ = await self.request(
            "PROPFIND",
            self.href(coll),
            '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
            {"Depth": "1", "Content-Type": "application/xml"},
        )
        assert status == 207, body
        import xml.etree.ElementTree as ET

        out: dict[str, bytes] = {}
        for href in ET.fromstring(body).iter("{DAV:}href"):
            path = href.text or ""
            if path.rstrip("/") == self.href(coll).rstrip("/"):
                continue
            data, _ = await self.get(path)
            out[path.rsplit("/", 1)[-1]] = data
        return out

    async def summaries(self, coll: str) -> list[str]:
        out = []
        for data in (await self.members(coll)).values():
            for line in data.decode().splitlines():
                if line.startswith(("SUMMARY:", "FN:")):
                    out.append(line.split(":", 1)[1].strip())
        return sorted(out)

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture(scope="session")
def radicale() -> Iterator[rad.Radicale]:
    server = rad.start()
    yield server
    server.stop()


@pytest.fixture
async def other(radicale: rad.Radicale) -> AsyncIterator[Other]:
    user, password = radicale.add_user()
    client = Other(radicale, user, password)
    # The second client makes the account's collections, as a user's other device would.
    await client.mkcalendar("calendar", "Calendar", "VEVENT")
    await client.mkcalendar("tasks", "Tasks", "VTODO")
    await client.mkcalendar("notes", "Notes", "VJOURNAL")
    await client.mkaddressbook("contacts", "Contacts")
    yield client
    await client.close()


def runner(store: Store, other: Other, policy: str = "keep-both") -> DavRunner:
    settings = DavSettings(other.base + "/", other.user, other.password)
    return DavRunner(
        store,
        [DavEndpoint("caldav", settings), DavEndpoint("carddav", settings)],
        DavOptions(policy=policy),
        adapter_factory=HttpDavAdapter,
    )


async def sync(store: Store, other: Other, policy: str = "keep-both") -> dict[str, Any]:
    r = runner(store, other, policy)
    try:
        await r.run(strict=True)
        return r.status()
    finally:
        await r.close()


def appointment(subject: str, day: int = 7) -> NewItem:
    start = dt.datetime(2030, 1, day, 12, tzinfo=dt.UTC)
    return NewItem(
        classes.IPM_APPOINTMENT,
        {tags.SUBJECT: subject},
        named={P.APPT_START: start, P.APPT_END: start + dt.timedelta(hours=1)},
    )


async def subjects(store: Store, role: str) -> list[str]:
    async with store.core.reader.execute(
        "SELECT subject FROM items WHERE folder_id = ? ORDER BY subject",
        (store.folders.roles[role],),
    ) as cur:
        return [r[0] for r in await cur.fetchall()]


async def item_id(store: Store, role: str, subject: str) -> int:
    async with store.core.reader.execute(
        "SELECT id FROM items WHERE folder_id = ? AND subject = ?",
        (store.folders.roles[role], subject),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None, subject
    return int(row[0])


async def seed(other: Other) -> None:
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Standup")))
    await other.put("calendar", "review.ics", ical(vevent("review", "Review")))
    await other.put("tasks", "report.ics", vtodo("report", "Write report"))
    await other.put("notes", "idea.ics", vjournal("idea", "Idea"))
    await other.put("contacts", "ann.vcf", vcard("ann", "Ann Example"))
    await other.put("contacts", "bob.vcf", vcard("bob", "Bob Example"))


async def test_initial_pull_of_every_kind(store: Store, other: Other) -> None:
    await seed(other)
    status = await sync(store, other)
    assert status["caldav"]["state"] == "online", status
    assert status["carddav"]["state"] == "online", status
    assert await subjects(store, "calendar") == ["Review", "Standup"]
    assert await subjects(store, "tasks") == ["Write report"]
    assert await subjects(store, "notes") == ["Idea"]
    assert await subjects(store, "contacts") == ["Ann Example", "Bob Example"]
    assert await store.queries.journal_pending() == 0
    # A second run with nothing changed fetches nothing.
    status = await sync(store, other)
    run = status["caldav"]["last_run"]
    assert run["fetched"] == 0 and set(run["paths"].values()) == {"unchanged"}


async def test_offline_edits_of_each_kind_reach_the_server(store: Store, other: Other) -> None:
    await seed(other)
    await other.mkcalendar("work", "Work", "VEVENT")
    await sync(store, other)
    roles = store.folders.roles
    # Offline: create, update, delete and move, for each kind.
    await store.items.create(roles["calendar"], appointment("Lunch"))
    await store.items.update(
        await item_id(store, "calendar", "Standup"), {tags.SUBJECT: "Daily standup"}
    )
    work = next(f for f in await store.folders.all() if f.display_name == "Work")
    await store.items.move(await item_id(store, "calendar", "Review"), work.id)
    await store.items.create(
        roles["tasks"], NewItem(classes.IPM_TASK, {tags.SUBJECT: "File taxes"})
    )
    await store.items.update(
        await item_id(store, "tasks", "Write report"), {tags.SUBJECT: "Write the report"}
    )
    await store.items.create(
        roles["notes"], NewItem(classes.IPM_STICKYNOTE, {tags.SUBJECT: "Shopping"})
    )
    await store.items.delete(await item_id(store, "notes", "Idea"))
    await store.items.create(
        roles["contacts"],
        NewItem(classes.IPM_CONTACT, {tags.SUBJECT: "Cy", tags.DISPLAY_NAME: "Cy"}),
    )
    await store.items.update(
        await item_id(store, "contacts", "Ann Example"),
        {tags.SUBJECT: "Ann Other", tags.DISPLAY_NAME: "Ann Other"},
    )
    await store.items.delete(await item_id(store, "contacts", "Bob Example"), hard=True)
    assert await store.queries.journal_pending() > 0
    status = await sync(store, other)
    assert not status["caldav"]["last_run"]["failed"], status
    assert not status["carddav"]["last_run"]["failed"], status
    assert await other.summaries("calendar") == ["Daily standup", "Lunch"]
    assert await other.summaries("work") == ["Review"]
    assert await other.summaries("tasks") == ["File taxes", "Write the report"]
    assert await other.summaries("notes") == ["Shopping"]
    assert await other.summaries("contacts") == ["Ann Other", "Cy"]
    assert await store.queries.journal_pending() == 0
    # Converged: another run changes nothing on either side.
    status = await sync(store, other)
    for service in ("caldav", "carddav"):
        run = status[service]["last_run"]
        assert run["pushed"] == run["fetched"] == run["updated"] == run["deleted"] == 0, run
    assert await subjects(store, "calendar") == ["Daily standup", "Lunch"]


async def test_second_client_edits_appear(store: Store, other: Other) -> None:
    await seed(other)
    await sync(store, other)
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Standup moved")), etag)
    await other.delete("calendar", "review.ics")
    await other.put("calendar", "new.ics", ical(vevent("new", "Planning")))
    await other.delete("contacts", "bob.vcf")
    await other.put("tasks", "t2.ics", vtodo("t2", "Call Bob"))
    status = await sync(store, other)
    # The first pull, in one query, kept the CTag only: the first change is found by a
    # listing (which reads the token), the next ones by sync-collection.
    assert status["caldav"]["last_run"]["paths"][other.href("calendar")] == "listing"
    assert await subjects(store, "calendar") == ["Planning", "Standup moved"]
    assert await subjects(store, "contacts") == ["Ann Example"]
    assert await subjects(store, "tasks") == ["Call Bob", "Write report"]
    await other.delete("calendar", "new.ics")
    await other.put("calendar", "later.ics", ical(vevent("later", "Retro")))
    status = await sync(store, other)
    run = status["caldav"]["last_run"]
    assert run["paths"][other.href("calendar")] == "sync-collection", run
    assert run["fetched"] == 1 and run["deleted"] == 1, run
    assert await subjects(store, "calendar") == ["Retro", "Standup moved"]
    assert await store.queries.journal_pending() == 0


async def test_expired_sync_token_resyncs_without_duplicates(
    store: Store, other: Other, radicale: rad.Radicale
) -> None:
    await seed(other)
    await sync(store, other)
    await other.put("calendar", "late.ics", ical(vevent("late", "Late addition")))
    # Radicale forgets the tokens it handed out when its cache goes.
    for cache in (radicale.root / "collections").rglob(".Radicale.cache"):
        shutil.rmtree(cache / "sync-token", ignore_errors=True)
    status = await sync(store, other)
    run = status["caldav"]["last_run"]
    assert run["paths"][other.href("calendar")].startswith("listing"), run
    assert run["fetched"] == 1, run
    assert await subjects(store, "calendar") == ["Late addition", "Review", "Standup"]


@pytest.mark.parametrize("policy", ["keep-both", "server-wins", "local-wins"])
async def test_changed_on_both_sides(store: Store, other: Other, policy: str) -> None:
    await seed(other)
    await sync(store, other, policy)
    await store.items.update(await item_id(store, "calendar", "Standup"), {tags.SUBJECT: "Mine"})
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
    status = await sync(store, other, policy)
    assert status["caldav"]["last_run"]["conflicts"] == 1
    want = "Mine" if policy == "local-wins" else "Theirs"
    assert await subjects(store, "calendar") == sorted(["Review", want])
    assert "Review" in await other.summaries("calendar")
    assert want in await other.summaries("calendar")
    assert await subjects(store, "conflicts") == (["Mine"] if policy == "keep-both" else [])
    assert await store.queries.journal_pending() == 0


async def sync_while_theirs_changes(store: Store, other: Other) -> dict[str, Any]:
    """A run in which another client renames Standup to "Theirs" just after the run listed
    the collections: the pull misses the change (the CTag read is from before it), and
    the push meets a 412."""
    r = runner(store, other)
    edited = False

    def factory(settings: DavSettings) -> HttpDavAdapter:
        adapter = HttpDavAdapter(settings)
        real = adapter.collections

        async def listed_then_edited(*, first_sync: bool = False) -> Any:
            nonlocal edited
            found = await real(first_sync=first_sync)
            if not edited:
                edited = True
                _, etag = await other.get(other.href("calendar", "standup.ics"))
                await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
            return found

        adapter.collections = listed_then_edited  # type: ignore[method-assign]
        return adapter

    r.adapter_factory = factory
    try:
        await r.run(strict=True)
    finally:
        await r.close()
    return r.status()


async def test_put_412_between_pull_and_push(store: Store, other: Other) -> None:
    """The server copy changes after the pull: If-Match fails and keep-both applies."""
    await seed(other)
    await sync(store, other)
    await store.items.update(await item_id(store, "calendar", "Standup"), {tags.SUBJECT: "Mine"})
    status = await sync_while_theirs_changes(store, other)
    assert status["caldav"]["last_run"]["conflicts"] == 1
    assert await subjects(store, "calendar") == ["Review", "Theirs"]
    assert await subjects(store, "conflicts") == ["Mine"]
    assert await other.summaries("calendar") == ["Review", "Theirs"]


async def test_changed_again_while_a_412_is_settled(
    store: Store, other: Other, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, and the user renames the event again after its conflict was settled,
    as the server's version is written: that write used to overwrite the new name. It is
    settled too: both local versions are kept in Sync Issues/Conflicts."""
    await seed(other)
    await sync(store, other)
    mine = await item_id(store, "calendar", "Standup")
    await store.items.update(mine, {tags.SUBJECT: "Mine"})
    replace = DavStore.replace
    done: list[object] = []

    async def user_renames_it_again(self: DavStore, item: int, *args: Any, **kw: Any) -> None:
        if not done and item == mine and kw.get("origin") == UPSTREAM:
            done.append(await store.items.update(mine, {tags.SUBJECT: "Mine again"}))
        await replace(self, item, *args, **kw)

    monkeypatch.setattr(DavStore, "replace", user_renames_it_again)
    await sync_while_theirs_changes(store, other)
    assert done
    await sync(store, other)
    assert await subjects(store, "calendar") == ["Review", "Theirs"]
    assert await subjects(store, "conflicts") == ["Mine", "Mine again"]
    assert await other.summaries("calendar") == ["Review", "Theirs"]
    assert await store.queries.journal_pending() == 0


async def test_move_whose_delete_meets_a_412(store: Store, other: Other) -> None:
    """Moved here to another calendar; the original changes on the server between the
    pull and the push: the DELETE of the original meets a 412. Keep-both: the server's
    version stays where it is and comes back, the copy made in the other calendar goes,
    the local version is kept in Sync Issues/Conflicts; no UID is in two calendars."""
    await seed(other)
    await other.mkcalendar("work", "Work", "VEVENT")
    await sync(store, other)
    work = next(f for f in await store.folders.all() if f.display_name == "Work")
    await store.items.move(await item_id(store, "calendar", "Standup"), work.id)
    status = await sync_while_theirs_changes(store, other)
    assert status["caldav"]["last_run"]["conflicts"] == 1
    await sync(store, other)
    assert await other.summaries("calendar") == ["Review", "Theirs"]
    assert await other.summaries("work") == []
    assert await subjects(store, "calendar") == ["Review", "Theirs"]
    assert await subjects(store, "conflicts") == ["Standup"]
    async with store.core.reader.execute(
        "SELECT count(*) FROM items WHERE folder_id = ?", (work.id,)
    ) as cur:
        assert (await cur.fetchone())[0] == 0
    assert await store.queries.journal_pending() == 0


async def test_moved_here_and_changed_on_the_server(store: Store, other: Other) -> None:
    """Keep-both: the server's version wins in place, in its collection's folder (not in
    the folder the item was moved to here, whose collection does not have it); the moved
    local version is kept in Sync Issues/Conflicts."""
    await seed(other)
    await other.mkcalendar("work", "Work", "VEVENT")
    await sync(store, other)
    work = next(f for f in await store.folders.all() if f.display_name == "Work")
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
    await store.items.move(await item_id(store, "calendar", "Standup"), work.id)
    status = await sync(store, other)
    assert status["caldav"]["last_run"]["conflicts"] == 1, status
    await sync(store, other)
    assert await subjects(store, "calendar") == ["Review", "Theirs"]
    assert await subjects(store, "conflicts") == ["Standup"]
    async with store.core.reader.execute(
        "SELECT subject FROM items WHERE folder_id = ?", (work.id,)
    ) as cur:
        assert await cur.fetchall() == []
    assert await other.summaries("calendar") == ["Review", "Theirs"]
    assert await other.summaries("work") == []
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize("kind", ["event", "contact"])
async def test_own_upload_deleted_by_another_client(store: Store, other: Other, kind: str) -> None:
    """Made here and uploaded after the collection's sync token was read, then deleted by
    another client: the deletion is seen (a server may leave a member made and removed
    since the token out of the sync-collection answer; Radicale does)."""
    await seed(other)
    await sync(store, other)
    role, coll = ("calendar", "calendar") if kind == "event" else ("contacts", "contacts")
    ext = ".ics" if kind == "event" else ".vcf"
    await other.delete(coll, f"review{ext}" if kind == "event" else f"bob{ext}")
    await sync(store, other)  # a listing, which keeps a sync token
    if kind == "event":
        new = appointment("Lunch")
    else:
        new = NewItem(classes.IPM_CONTACT, {tags.SUBJECT: "Cy", tags.DISPLAY_NAME: "Cy"})
    before = await subjects(store, role)
    await store.items.create(store.folders.roles[role], new)
    await sync(store, other)
    mine = {n: d for n, d in (await other.members(coll)).items() if b"Lunch" in d or b"FN:Cy" in d}
    assert len(mine) == 1, mine
    await other.delete(coll, next(iter(mine)))
    status = await sync(store, other)
    service = "caldav" if kind == "event" else "carddav"
    run = status[service]["last_run"]
    assert run["paths"][other.href(coll)] == "sync-collection", run
    assert run["deleted"] == 1, run
    assert await subjects(store, role) == before
    assert await other.summaries(coll) == before
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize("hard", [True, False], ids=["hard", "to-deleted-items"])
async def test_deleted_here_and_changed_on_the_server(
    store: Store, other: Other, hard: bool
) -> None:
    """The DELETE meets a 412 and the server's newer version comes back on the next run
    (README, Limits), though the pull before it skipped the resource; deleted into Deleted
    Items, the same (no conflict copy). The calendar and the collection then agree."""
    await seed(other)
    await sync(store, other)
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
    await store.items.delete(await item_id(store, "calendar", "Standup"), hard=hard)
    status = await sync(store, other)
    assert status["caldav"]["last_run"]["conflicts"] == 1, status
    await sync(store, other)
    assert await subjects(store, "calendar") == ["Review", "Theirs"]
    assert await subjects(store, "conflicts") == []
    assert await other.summaries("calendar") == ["Review", "Theirs"]
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize("policy", ["keep-both", "local-wins"])
async def test_changed_here_while_the_pull_fetches_the_servers_change(
    store: Store, other: Other, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """The user renames an event after the pull planned to fetch another client's change
    of it, and before that is applied: the change meets the policy (keep-both: the local
    version kept in Sync Issues/Conflicts; local-wins: it goes up), not overwritten."""
    await seed(other)
    await sync(store, other, policy)
    mine = await item_id(store, "calendar", "Standup")
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
    fetch = DavEngine._fetch
    done: list[object] = []

    async def user_renames_it(self: DavEngine, *args: Any, **kw: Any) -> None:
        if not done:
            done.append(await store.items.update(mine, {tags.SUBJECT: "Mine"}))
        await fetch(self, *args, **kw)

    monkeypatch.setattr(DavEngine, "_fetch", user_renames_it)
    status = await sync(store, other, policy)
    assert done and status["caldav"]["last_run"]["conflicts"] == 1, status
    await sync(store, other, policy)
    if policy == "keep-both":
        assert await subjects(store, "calendar") == ["Review", "Theirs"]
        assert await subjects(store, "conflicts") == ["Mine"]
        assert await other.summaries("calendar") == ["Review", "Theirs"]
    else:
        assert await subjects(store, "calendar") == ["Mine", "Review"]
        assert await other.summaries("calendar") == ["Mine", "Review"]
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize("policy", ["keep-both", "local-wins"])
async def test_changed_here_while_the_servers_change_is_written(
    store: Store, other: Other, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """As above, but the user renames the event after the pull looked at it last, as the
    server's version is written: that write used to overwrite the change. It now finds
    the item changed, and the change meets the policy."""
    await seed(other)
    await sync(store, other, policy)
    mine = await item_id(store, "calendar", "Standup")
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Theirs")), etag)
    replace = DavStore.replace
    done: list[object] = []

    async def user_renames_it_first(self: DavStore, item: int, *args: Any, **kw: Any) -> None:
        if not done and item == mine and kw.get("origin") == UPSTREAM:
            done.append(await store.items.update(mine, {tags.SUBJECT: "Mine"}))
        await replace(self, item, *args, **kw)

    monkeypatch.setattr(DavStore, "replace", user_renames_it_first)
    status = await sync(store, other, policy)
    assert done and status["caldav"]["last_run"]["conflicts"] == 1, status
    await sync(store, other, policy)
    if policy == "keep-both":
        assert await subjects(store, "calendar") == ["Review", "Theirs"]
        assert await subjects(store, "conflicts") == ["Mine"]
        assert await other.summaries("calendar") == ["Review", "Theirs"]
    else:
        assert await subjects(store, "calendar") == ["Mine", "Review"]
        assert await other.summaries("calendar") == ["Mine", "Review"]
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize("policy", ["keep-both", "local-wins"])
async def test_changed_here_while_the_pull_deletes_it(
    store: Store, other: Other, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """Another client deletes an event; the user renames it here after the pull planned
    the deletion, as the deletion is written: that deletion used to take the change with
    it. It now meets the policy (keep-both: kept in Sync Issues/Conflicts; local-wins:
    it goes up again)."""
    await seed(other)
    await sync(store, other, policy)
    mine = await item_id(store, "calendar", "Standup")
    await other.delete("calendar", "standup.ics")
    delete = Items.delete
    done: list[object] = []

    async def user_renames_it_first(self: Items, item: int, **kw: Any) -> None:
        if not done and item == mine and kw.get("origin") == UPSTREAM:
            done.append(await store.items.update(mine, {tags.SUBJECT: "Mine"}))
        await delete(self, item, **kw)

    monkeypatch.setattr(Items, "delete", user_renames_it_first)
    status = await sync(store, other, policy)
    assert done and status["caldav"]["last_run"]["conflicts"] == 1, status
    await sync(store, other, policy)
    if policy == "keep-both":
        assert await subjects(store, "calendar") == ["Review"]
        assert await subjects(store, "conflicts") == ["Mine"]
        assert await other.summaries("calendar") == ["Review"]
    else:
        assert await subjects(store, "calendar") == ["Mine", "Review"]
        assert await other.summaries("calendar") == ["Mine", "Review"]
    assert await store.queries.journal_pending() == 0


async def test_recurring_event_keeps_its_exceptions(store: Store, other: Other) -> None:
    series = ical(
        vevent(
            "weekly",
            "Weekly sync",
            "RRULE:FREQ=WEEKLY;COUNT=10\r\nEXDATE:20300119T100000Z\r\n",
        ),
        vevent(
            "weekly",
            "Weekly sync (moved)",
            "RECURRENCE-ID:20300112T100000Z\r\n",
            start="20300113T150000Z",
        ),
        vevent(
            "weekly",
            "Weekly sync (long)",
            "RECURRENCE-ID:20300126T100000Z\r\n",
            start="20300126T090000Z",
        ),
    )
    await other.put("calendar", "weekly.ics", series)
    await sync(store, other)
    iid = await item_id(store, "calendar", "Weekly sync")
    await store.items.update(iid, {tags.SUBJECT: "Weekly team sync"})
    await sync(store, other)
    data, _ = await other.get(other.href("calendar", "weekly.ics"))
    text = data.decode()
    assert "SUMMARY:Weekly team sync" in text
    assert "RRULE:FREQ=WEEKLY;COUNT=10" in text
    assert "EXDATE" in text and "20300119T100000Z" in text
    assert text.count("RECURRENCE-ID") == 2
    assert "Weekly sync (moved)" in text and "Weekly sync (long)" in text
    assert "20300113T150000Z" in text


# -- a kbridge serve killed in the middle of a run -------------------------------------------


def _start(data_dir: Path, config: Path, crash_after: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("KBRIDGE_TEST_CRASH_AFTER", None)
    if crash_after is not None:
        env["KBRIDGE_TEST_CRASH_AFTER"] = str(crash_after)
    (data_dir / "server.json").unlink(missing_ok=True)
    with (data_dir.parent / "serve.log").open("a") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "serve",
                "--config",
                str(config),
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )


def _log(data_dir: Path) -> str:
    return (data_dir.parent / "serve.log").read_text(errors="replace")[-3000:]


def _status(data_dir: Path) -> dict[str, Any] | None:
    import urllib.request

    try:
        info = json.loads((data_dir / "server.json").read_text())
        token = (data_dir / "admin.token").read_text().strip()
    except (OSError, ValueError):
        return None
    req = urllib.request.Request(
        info["url"] + "/api/v1/sync/status", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except OSError:
        return None


def _wait_online(proc: subprocess.Popen[str], data_dir: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, _log(data_dir)
        st = _status(data_dir)
        if st and st.get("state") == "online" and st.get("last_sync"):
            return st
        time.sleep(0.2)
    raise AssertionError(f"no sync within 60 s: {_status(data_dir)}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(20)


async def test_kill_during_a_run_then_restart_converges(tmp_path: Path, other: Other) -> None:
    for n in range(60):
        await other.put("calendar", f"e{n}.ics", ical(vevent(f"e{n}", f"Event {n:02d}")))
    for n in range(30):
        await other.put("contacts", f"c{n}.vcf", vcard(f"c{n}", f"Person {n:02d}"))
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "upstream:\n"
        f"  username: {other.user}\n"
        f"  password: {other.password}\n"
        f"  caldav: {{url: '{other.base}/'}}\n"
        f"  carddav: {{url: '{other.base}/'}}\n"
        "sync:\n  interval: 3600\n"
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Local changes made while the bridge has never reached the server: added straight to
    # the store before the first start.
    store = await Store.open(data_dir / "store.sqlite")
    try:
        for n in range(20):
            await store.items.create(
                store.folders.roles["calendar"],
                appointment(f"Local {n:02d}", 1 + n % 28),
            )
    finally:
        await store.close()
    # Die at several points of the first runs (the crash hook ends the process as kill -9
    # would), then once more by a real SIGKILL while syncing.
    for crash_after in (3, 7, 12):
        proc = _start(data_dir, config, crash_after)
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 86, _log(data_dir)
    await other.put("calendar", "extra.ics", ical(vevent("extra", "Extra")))
    proc = _start(data_dir, config)
    for _ in range(3000):
        if (_status(data_dir) or {}).get("state") == "syncing":
            break
        await asyncio.sleep(0.01)
    proc.kill()  # SIGKILL (TerminateProcess on Windows)
    proc.wait(20)
    proc = _start(data_dir, config)
    try:
        _wait_online(proc, data_dir)
    finally:
        _stop(proc)
    store = await Store.open(data_dir / "store.sqlite")
    try:
        cal = await subjects(store, "calendar")
        want = sorted(
            [f"Event {n:02d}" for n in range(60)]
            + [f"Local {n:02d}" for n in range(20)]
            + ["Extra"]
        )
        assert cal == want
        assert await subjects(store, "contacts") == [f"Person {n:02d}" for n in range(30)]
        assert await store.queries.journal_pending() == 0
    finally:
        await store.close()
    assert await other.summaries("calendar") == want
    uids = [d for d in (await other.members("calendar")).values()]
    assert len(uids) == len(want)


async def test_mail_and_dav_each_carry_out_their_own_entries(
    store: Store, other: Other, account: Account
) -> None:
    """One journal, two upstreams: calendar and contact changes go to Radicale only, mail
    changes to Dovecot only, and neither side drops the other's entries."""
    await seed(other)
    await mail_sync(store, account)
    await sync(store, other)
    inbox = store.folders.roles["inbox"]
    await store.items.create(inbox, NewItem(props={tags.SUBJECT: "Hello", tags.MESSAGE_FLAGS: 1}))
    await store.items.create(store.folders.roles["calendar"], appointment("Planning"))
    await store.items.update(await item_id(store, "contacts", "Ann Example"), {tags.SUBJECT: "Ann"})
    await mail_sync(store, account)  # the mail side first: it must leave the DAV entries
    assert await store.queries.journal_pending() == 2
    await sync(store, other)
    assert await store.queries.journal_pending() == 0
    assert "Planning" in await other.summaries("calendar")
    client = account.client()
    try:
        names = [line.decode() for line in client.list()[1] if isinstance(line, bytes)]
        assert not [n for n in names if "Calendar" in n or "Contacts" in n], names
        client.select("INBOX")
        assert client.search(None, 'SUBJECT "Hello"')[1][0].split()
        assert not client.search(None, 'SUBJECT "Planning"')[1][0].split()
    finally:
        client.logout()


async def test_an_event_deleted_before_its_first_sync_stays_in_deleted_items(
    store: Store, other: Other, account: Account
) -> None:
    """An event made here and deleted (into Deleted Items) before it ever went up has
    nothing to do on any server: it is not uploaded to the calendar, nor as a message to
    the Trash mailbox, and no journal entry of it waits for ever (with CalDAV alone, or
    with mail too), as for an event that was synced before its deletion."""
    await seed(other)
    await sync(store, other)
    iid = await store.items.create(store.folders.roles["calendar"], appointment("Scrapped"))
    await store.items.delete(iid)
    await sync(store, other)  # CalDAV alone
    assert await store.queries.journal_pending() == 0
    assert "Scrapped" not in await other.summaries("calendar")
    await mail_sync(store, account)
    await sync(store, other)
    assert await store.queries.journal_pending() == 0
    assert await subjects(store, "deleted") == ["Scrapped"]
    client = account.client()
    try:
        client.select("Trash")
        assert client.search(None, "ALL")[1] == [b""]
    finally:
        client.logout()
    await store.items.move(iid, store.folders.roles["calendar"])  # restored: it goes up
    await sync(store, other)
    assert "Scrapped" in await other.summaries("calendar")
    assert await store.queries.journal_pending() == 0


async def test_an_event_moved_away_and_back_here_is_no_local_change(
    store: Store, other: Other
) -> None:
    """Moved to another calendar and back before the next run, while another client
    changed it: nothing changed here, so the server's version comes in, with no copy kept
    aside as a conflict."""
    await seed(other)
    await other.mkcalendar("work", "Work", "VEVENT")
    await sync(store, other)
    work = next(f.id for f in await store.folders.all() if f.display_name == "Work")
    standup = await item_id(store, "calendar", "Standup")
    await store.items.move(standup, work)
    await store.items.move(standup, store.folders.roles["calendar"])
    _, etag = await other.get(other.href("calendar", "standup.ics"))
    await other.put("calendar", "standup.ics", ical(vevent("standup", "Standup v2")), etag)
    status = await sync(store, other)
    run = status["caldav"]["last_run"]
    assert not run["failed"] and run["conflicts"] == 0, run
    assert await subjects(store, "calendar") == ["Review", "Standup v2"]
    assert await subjects(store, "conflicts") == []
    assert await other.summaries("calendar") == ["Review", "Standup v2"]
    assert await other.summaries("work") == []
    assert await store.queries.journal_pending() == 0


async def test_events_moved_into_and_out_of_a_calendar_another_client_deleted(
    store: Store, other: Other
) -> None:
    """An event moved here into a calendar that another client then deleted goes back to
    where the server still has it; one moved here out of it goes up to its new calendar.
    Neither is set aside as a conflict: no change of the user's meets another's."""
    await seed(other)
    await other.mkcalendar("old", "Old", "VEVENT")
    await other.put("old", "offsite.ics", ical(vevent("offsite", "Offsite")))
    await sync(store, other)
    old = next(f.id for f in await store.folders.all() if f.display_name == "Old")
    (offsite,), _ = await store.queries.list(old)
    await store.items.move(await item_id(store, "calendar", "Standup"), old)
    await store.items.move(offsite.id, store.folders.roles["calendar"])
    await other.request("DELETE", other.href("old"))
    status = await sync(store, other)
    assert not status["caldav"]["last_run"]["failed"], status
    assert await other.summaries("calendar") == ["Offsite", "Review", "Standup"]
    assert await subjects(store, "calendar") == ["Offsite", "Review", "Standup"]
    assert await subjects(store, "conflicts") == []
    assert await store.queries.journal_pending() == 0
    status = await sync(store, other)
    run = status["caldav"]["last_run"]
    assert run["pushed"] == run["fetched"] == run["deleted"] == 0, run
    assert await subjects(store, "calendar") == ["Offsite", "Review", "Standup"]


async def test_an_event_made_here_as_its_calendar_is_deleted_survives(
    store: Store, other: Other, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user makes an event in a calendar another client deleted, after the run kept
    its local work, as it deletes the folder: that deletion used to take the new event
    with it. It now finds the folder changed, and keeps its work again."""
    await seed(other)
    await other.mkcalendar("old", "Old", "VEVENT")
    await other.put("old", "offsite.ics", ical(vevent("offsite", "Offsite")))
    await sync(store, other)
    old = next(f.id for f in await store.folders.all() if f.display_name == "Old")
    await other.request("DELETE", other.href("old"))
    delete = Folders.delete
    done: list[int] = []

    async def user_makes_an_event_first(self: Folders, folder_id: int, **kw: Any) -> None:
        if not done and folder_id == old and kw.get("origin") == UPSTREAM:
            done.append(await store.items.create(folder_id, appointment("Late")))
        await delete(self, folder_id, **kw)

    monkeypatch.setattr(Folders, "delete", user_makes_an_event_first)
    status = await sync(store, other)
    assert done and not status["caldav"]["last_run"]["failed"], status
    assert old not in {f.id for f in await store.folders.all()}
    assert await subjects(store, "conflicts") == ["Late"]
    assert await store.queries.journal_pending() == 0


async def test_folders_become_collections_and_follow_renames_and_deletes(
    store: Store, other: Other
) -> None:
    await sync(store, other)
    top = store.folders.roles["ipm_subtree"]
    friends = await store.folders.create(top, "Friends", classes.IPF_CONTACT)
    await store.items.create(
        friends,
        NewItem(classes.IPM_CONTACT, {tags.SUBJECT: "Dana", tags.DISPLAY_NAME: "Dana"}),
    )
    chores = await store.folders.create(top, "Chores", classes.IPF_TASK)
    await store.items.create(chores, NewItem(classes.IPM_TASK, {tags.SUBJECT: "Dishes"}))
    status = await sync(store, other)
    assert not status["caldav"]["last_run"]["failed"], status
    assert not status["carddav"]["last_run"]["failed"], status
    refs = await store.dav_refs.folder_refs()
    book, tasks = refs[friends]["href"], refs[chores]["href"]
    assert refs[friends]["kind"] == "addressbook" and refs[chores]["kind"] == "tasks"
    assert await other.summaries(book.split("/")[-2]) == ["Dana"]
    assert await other.summaries(tasks.split("/")[-2]) == ["Dishes"]
    # Renamed here → displayname there; deleted here → gone there.
    await store.folders.update(chores, name="Housework")
    await store.folders.delete(friends, hard=True)
    await sync(store, other)
    status_code, body, _ = await other.request(
        "PROPFIND",
        tasks,
        '<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
        {"Depth": "0", "Content-Type": "application/xml"},
    )
    assert status_code == 207 and b"Housework" in body
    gone, _, _ = await other.request("PROPFIND", book, None, {"Depth": "0"})
    assert gone == 404
    # A second client's new calendar appears here as a folder of its own.
    await other.mkcalendar("trips", "Trips", "VEVENT")
    await other.put("trips", "t.ics", ical(vevent("trip", "Flight")))
    await sync(store, other)
    trips = next(f for f in await store.folders.all() if f.display_name == "Trips")
    assert trips.container_class == classes.IPF_APPOINTMENT and trips.content_count == 1


async def test_search_folders_are_never_synced(store: Store, other: Other) -> None:
    """A search folder of a DAV container class (made below the calendar, it takes the
    calendar's class) is local: no collection is made for it, nor any item pushed."""
    await seed(other)
    await sync(store, other)
    roles = store.folders.roles
    found = await store.search_folders.create(
        roles["ipm_subtree"],
        "Reviews",
        Criteria(
            {"property": {"prop": "PidTagSubject", "op": "eq", "value": "Review"}},
            (roles["calendar"],),
            False,
        ),
        classes.IPF_APPOINTMENT,
    )
    cards = await store.search_folders.create(
        roles["contacts"],
        "Found people",
        Criteria({"exist": "PidTagSubject"}, (roles["contacts"],), False),
    )
    status = await sync(store, other)
    assert not status["caldav"]["last_run"]["failed"], status
    refs = await store.dav_refs.folder_refs()
    assert found not in refs and cards not in refs
    status_code, body, _ = await other.request(
        "PROPFIND",
        f"/{other.user}/",
        '<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
        {"Depth": "1", "Content-Type": "application/xml"},
    )
    assert status_code == 207
    assert b"Reviews" not in body and b"Found people" not in body
    assert await store.queries.journal_pending() == 0


async def test_event_without_a_start_is_accepted_by_the_server(store: Store, other: Other) -> None:
    """An appointment made through the REST API with no start time still goes up: it gets a
    DTSTART (a VEVENT needs one); a task needs none."""
    await sync(store, other)
    roles = store.folders.roles
    await store.items.create(
        roles["calendar"], NewItem(classes.IPM_APPOINTMENT, {tags.SUBJECT: "Sometime"})
    )
    await store.items.create(roles["tasks"], NewItem(classes.IPM_TASK, {tags.SUBJECT: "Whenever"}))
    status = await sync(store, other)
    assert not status["caldav"]["last_run"]["failed"], status
    assert await other.summaries("calendar") == ["Sometime"]
    assert await other.summaries("tasks") == ["Whenever"]
    [data] = (await other.members("calendar")).values()
    assert b"DTSTART" in data
    assert await store.queries.journal_pending() == 0
    status = await sync(store, other)
    assert status["caldav"]["last_run"]["pushed"] == 0
