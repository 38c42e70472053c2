"""The WebDAV tree over the store: names, content, etags, MAPI and dead properties, PUT
validation, locks, and that writes go through the store (journal, change feed)."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.dav import names
from bridge.store.store import Store
from tests.dav.conftest import Dav

MAIL = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
    b"Subject: Quarterly report\r\nMessage-ID: <q1@example.com>\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nNumbers inside.\r\n"
)
EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    b"UID:e1@example.com\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
    b"DTEND:20240102T110000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
CARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\nEMAIL:carol@example.com\r\nEND:VCARD\r\n"
MAPI = "urn:kbridge:mapi:"


def hrefs(body: bytes) -> list[str]:
    return re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", body.decode())


def prop(body: bytes, name: str) -> str | None:
    m = re.search(rf"<(?:\w+:)?{name}>([^<]*)</(?:\w+:)?{name}>", body.decode())
    return m.group(1) if m else None


def test_names_are_safe_and_reversible() -> None:
    for raw in ["a/b", 'x:y*z?"<>|\\', "trail. ", "CON", "lpt1.txt", "100%", "ok name"]:
        safe = names.escape(raw)
        assert not set('\\/:*?"<>|') & set(safe), safe
        assert not safe.endswith((".", " ")), safe
        assert safe.split(".")[0].upper() not in {"CON", "LPT1"}, safe
        assert names.unescape(safe) == raw
    assert names.escape("Inbox") == "Inbox"
    assert names.derived_item_name(12, "Hi: there", ".eml") == "Hi%3A there [m12].eml"
    assert names.id_in_name("Hi%3A there [m12].eml") == 12
    assert names.unique([(3, "a.txt"), (2, "A.txt")], {"sub"}) == {2: "A.txt", 3: "a [m3].txt"}


async def test_folders_are_collections_with_unique_names(dav: Dav, store: Store) -> None:
    ipm = store.folders.roles["ipm_subtree"]
    await store.folders.create(ipm, "Q1: plans")
    await store.folders.create(ipm, "CON")
    resp, body = await dav.propfind("/dav/")
    assert resp.status == 207
    got = set(hrefs(body))
    assert {"/dav/Inbox/", "/dav/Q1%253A%20plans/", "/dav/%2543ON/"} <= got, got
    resp, _ = await dav.request("MKCOL", "/dav/New%20folder/")
    assert resp.status == 201
    created = [f for f in await store.folders.all() if f.display_name == "New folder"]
    assert created and created[0].container_class == "IPF.Note"


async def test_files_become_document_items_and_read_back_exactly(dav: Dav, store: Store) -> None:
    data = bytes(range(256)) * 3000
    resp, _ = await dav.request("PUT", "/dav/Inbox/report.pdf", data=data)
    assert resp.status == 201
    resp, body = await dav.request("GET", "/dav/Inbox/report.pdf")
    assert resp.status == 200 and body == data
    view, _ = await store.queries.list(store.folders.roles["inbox"])
    assert view[0].props[0x001A001F] == "IPM.Document.pdf"
    atts = await store.queries.attachments(view[0].id)
    assert len(atts) == 1
    resp, _ = await dav.request("GET", "/dav/Inbox/report.pdf", headers={"Range": "bytes=10-19"})
    assert resp.status == 206


async def test_mail_calendar_and_contacts_are_stored_as_sources(dav: Dav, store: Store) -> None:
    assert (await dav.request("PUT", "/dav/Inbox/q.eml", data=MAIL))[0].status == 201
    assert (await dav.request("PUT", "/dav/Calendar/e.ics", data=EVENT))[0].status == 201
    assert (await dav.request("PUT", "/dav/Contacts/c.vcf", data=CARD))[0].status == 201
    for path, raw, cls in (
        ("/dav/Inbox/q.eml", MAIL, "IPM.Note"),
        ("/dav/Calendar/e.ics", EVENT, "IPM.Appointment"),
        ("/dav/Contacts/c.vcf", CARD, "IPM.Contact"),
    ):
        _, body = await dav.request("GET", path)
        assert body == raw, path
        folder = path.split("/")[2].lower()
        role = {"inbox": "inbox", "calendar": "calendar", "contacts": "contacts"}[folder]
        items, _ = await store.queries.list(store.folders.roles[role])
        assert items[0].props[0x001A001F] == cls
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    assert items[0].props[0x0037001F] == "Quarterly report"
    changes = await store.queries.changes(store.folders.roles["inbox"], None)
    assert [v.id for v in changes.created] == [items[0].id]
    assert await store.queries.journal_pending() >= 3


async def test_junk_into_a_calendar_is_refused_and_nothing_is_stored(
    dav: Dav, store: Store
) -> None:
    cal = store.folders.roles["calendar"]
    for name, data, status in (
        ("junk.ics", b"this is not a calendar", 422),
        ("half.ics", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", 422),
        ("empty.ics", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", 422),
        ("photo.jpg", b"\xff\xd8\xff", 415),
    ):
        resp, body = await dav.request("PUT", f"/dav/Calendar/{name}", data=data)
        assert resp.status == status, (name, body)
        assert b"iCalendar" in body or b"calendar" in body
    resp, _ = await dav.request("PUT", "/dav/Contacts/x.vcf", data=b"BEGIN:VCARD\r\nFN:x\r\n")
    assert resp.status == 422
    assert (await store.queries.list(cal))[1] == 0
    assert await store.queries.journal_pending() == 0


async def test_etag_changes_exactly_when_the_item_changes(dav: Dav, store: Store) -> None:
    await dav.request("PUT", "/dav/Inbox/a.txt", data=b"one")
    await dav.request("PUT", "/dav/Inbox/b.txt", data=b"two")
    body = b'<propfind xmlns="DAV:"><prop><getetag/><getlastmodified/></prop></propfind>'

    async def etag(name: str) -> str | None:
        return prop((await dav.propfind(f"/dav/Inbox/{name}", body, "0"))[1], "getetag")

    a1, b1 = await etag("a.txt"), await etag("b.txt")
    assert a1 and b1 and a1 != b1
    assert await etag("a.txt") == a1
    await dav.request("PUT", "/dav/Inbox/b.txt", data=b"two, changed")
    assert await etag("a.txt") == a1
    b2 = await etag("b.txt")
    assert b2 != b1
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    target = next(i for i in items if i.props.get(0x0037001F) == "b.txt")
    await store.items.update(target.id, {0x0E070003: 1})
    assert await etag("b.txt") != b2
    assert await etag("a.txt") == a1
    assert (await dav.request("GET", "/dav/Inbox/b.txt"))[1] == b"two, changed"


async def test_mapi_properties_read_and_write(dav: Dav, store: Store) -> None:
    await dav.request("PUT", "/dav/Inbox/q.eml", data=MAIL)
    body = (
        f'<propfind xmlns="DAV:" xmlns:m="{MAPI}"><prop><m:PidTagSubject/>'
        "<m:x0E080003/><m:PidTagNope/></prop></propfind>"
    ).encode()
    resp, out = await dav.propfind("/dav/Inbox/q.eml", body, "0")
    assert resp.status == 207
    assert prop(out, "PidTagSubject") == "Quarterly report"
    assert prop(out, "x0E080003") == str(len(MAIL))
    patch = (
        f'<propertyupdate xmlns="DAV:" xmlns:m="{MAPI}"><set><prop>'
        "<m:PidTagSubject>Renamed</m:PidTagSubject><m:PidTagImportance>2</m:PidTagImportance>"
        "</prop></set></propertyupdate>"
    ).encode()
    resp, out = await dav.request("PROPPATCH", "/dav/Inbox/q.eml", data=patch)
    assert resp.status == 207 and b"200 OK" in out, out
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    assert items[0].props[0x0037001F] == "Renamed"
    assert items[0].props[0x00170003] == 2
    computed = (
        f'<propertyupdate xmlns="DAV:" xmlns:m="{MAPI}"><set><prop>'
        "<m:PidTagMessageSize>1</m:PidTagMessageSize></prop></set></propertyupdate>"
    ).encode()
    resp, out = await dav.request("PROPPATCH", "/dav/Inbox/q.eml", data=computed)
    assert b"403" in out
    resp, out = await dav.propfind("/dav/Inbox/", body, "0")
    assert b"PidTagSubject" in out  # folders answer too (404 inside the multistatus)


async def test_dead_properties_and_locks_persist_across_restart(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    path = tmp_path / "restart.sqlite"
    store = await Store.open(path)
    _, secret = await store.tokens.create("admin", "admin")
    dav = Dav(await aiohttp_client(create_app(store)), secret)
    await dav.request("PUT", "/dav/Inbox/doc.txt", data=b"hello")
    patch = (
        b'<propertyupdate xmlns="DAV:" xmlns:x="urn:example:"><set><prop>'
        b"<x:colour>blue</x:colour></prop></set></propertyupdate>"
    )
    assert b"200 OK" in (await dav.request("PROPPATCH", "/dav/Inbox/doc.txt", data=patch))[1]
    lock = (
        b'<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
        b"<locktype><write/></locktype><owner>tester</owner></lockinfo>"
    )
    resp, _ = await dav.request(
        "LOCK", "/dav/Inbox/doc.txt", data=lock, headers={"Timeout": "Second-600"}
    )
    assert resp.status == 200
    token = resp.headers["Lock-Token"]
    await dav.client.close()
    await store.close()

    store = await Store.open(path)
    try:
        dav = Dav(await aiohttp_client(create_app(store)), secret)
        body = (
            b'<propfind xmlns="DAV:" xmlns:x="urn:example:">'
            b"<prop><x:colour/><lockdiscovery/></prop></propfind>"
        )
        _, out = await dav.propfind("/dav/Inbox/doc.txt", body, "0")
        assert b"blue" in out
        assert token.strip("<>").encode() in out
        resp, _ = await dav.request("PUT", "/dav/Inbox/doc.txt", data=b"x")
        assert resp.status == 423
        resp, _ = await dav.request(
            "PUT", "/dav/Inbox/doc.txt", data=b"x", headers={"If": f"({token})"}
        )
        assert resp.status == 204
        resp, _ = await dav.request("UNLOCK", "/dav/Inbox/doc.txt", headers={"Lock-Token": token})
        assert resp.status == 204
    finally:
        await dav.client.close()
        await store.close()


async def test_attachments_are_reachable_under_their_item(dav: Dav, store: Store) -> None:
    mail = (
        b"From: a@example.com\r\nSubject: With file\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"
    )
    await dav.request("PUT", "/dav/Inbox/m.eml", data=mail)
    resp, body = await dav.propfind("/dav/Inbox/m.eml.attachments/")
    assert resp.status == 207, body
    assert "/dav/Inbox/m.eml.attachments/data.bin" in hrefs(body)
    resp, data = await dav.request("GET", "/dav/Inbox/m.eml.attachments/data.bin")
    assert data == b"\x00\x01\x02\x03"
    resp, _ = await dav.request("PUT", "/dav/Inbox/m.eml.attachments/new.bin", data=b"x")
    assert resp.status in (403, 405, 409)


async def test_move_copy_delete_go_through_the_store(dav: Dav, store: Store) -> None:
    await dav.request("PUT", "/dav/Inbox/q.eml", data=MAIL)
    dest = "http://127.0.0.1/dav/Drafts/moved.eml"
    resp, _ = await dav.request("MOVE", "/dav/Inbox/q.eml", headers={"Destination": dest})
    assert resp.status == 201
    drafts = store.folders.roles["drafts"]
    (item,), _ = await store.queries.list(drafts)
    resp, _ = await dav.request(
        "COPY", "/dav/Drafts/moved.eml", headers={"Destination": "http://127.0.0.1/dav/Inbox/c.eml"}
    )
    assert resp.status == 201
    assert (await store.queries.list(store.folders.roles["inbox"]))[1] == 1
    assert (await dav.request("DELETE", "/dav/Drafts/moved.eml"))[0].status == 204
    assert (await store.queries.list(drafts))[1] == 0
    changes = await store.queries.changes(drafts, None)
    assert item.id in changes.deleted
