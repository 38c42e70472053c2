"""Per-folder sync settings against a real Dovecot: a headers-only folder whose messages are
fetched on demand (and refused with 503 offline), a folder that is not pulled, the window
of days pulled in full, the message size limit, and a folder switched to full."""

from __future__ import annotations

import base64
import email
import imaplib
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.config import FolderSync, SyncConfig
from bridge.model import tags
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync.engine import Engine, Report
from bridge.sync.imap_service import ImapSyncService
from bridge.sync.on_demand import OnDemand
from tests.integration.conftest import Account
from tests.servers import dovecot as dv

PDF = bytes(range(256)) * 80  # 20 KB of binary data


def settings(folders: Mapping[str, FolderSync], **defaults: Any) -> SyncConfig:
    return SyncConfig(
        interval=300,
        mode=defaults.get("mode", "full"),
        window_days=defaults.get("window_days"),
        max_message_bytes=defaults.get("max_message_bytes"),
        conflict_policy="keep-both",
        folders=MappingProxyType(dict(folders)),
    )


def with_attachment(subject: str) -> bytes:
    data = base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}.{time.monotonic_ns()}@test>\r\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            '--b1\r\nContent-Type: multipart/alternative; boundary="b2"\r\n\r\n'
            "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe plan, in words\r\n"
            "--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>the plan</p>\r\n--b2--\r\n"
            '--b1\r\nContent-Type: application/pdf; name="plan.pdf"\r\n'
            'Content-Disposition: attachment; filename="plan.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + data
        + b"--b1--\r\n"
    )


async def sync(store: Store, account: Account, config: SyncConfig) -> Report:
    adapter = await account.adapter()
    try:
        return await Engine(store, adapter, "keep-both", config).run(adapter.delimiter or "/")
    finally:
        await adapter.close()


async def folder_items(store: Store, name: str) -> dict[str, int]:
    folder = next(f for f in await store.folders.all() if f.display_name == name)
    items, _ = await store.queries.list(folder.id, limit=500)
    return {str(i.props.get(tags.SUBJECT)): i.id for i in items}


async def content(store: Store, item_id: int) -> str | None:
    item = await store.sync.item(item_id)
    assert item is not None and item.upstream is not None
    value = item.upstream.get("content")
    return None if value is None else str(value)


async def kept_as_headers(
    store: Store, account: Account, mailbox: str, subject: str, flags: str = ""
) -> tuple[bytes, SyncConfig, int]:
    """A message with an attachment in `mailbox`, a folder kept as headers only, pulled:
    its raw message, the settings, and its item."""
    m = account.client()
    m.create(mailbox)
    raw = with_attachment(subject)
    dv.append(m, mailbox, raw, flags)
    config = settings({mailbox: FolderSync("headers")})
    await sync(store, account, config)
    return raw, config, (await folder_items(store, mailbox))[subject]


def service(store: Store, account: Account, config: SyncConfig) -> ImapSyncService:
    return ImapSyncService(store, account.settings(), sync_config=config)


async def test_headers_only_folder_and_fetch_on_demand(
    store: Store, account: Account, aiohttp_client: AiohttpClient
) -> None:
    m = account.client()
    m.create("Archive")
    raw = with_attachment("plan")
    dv.append(m, "Archive", raw, "\\Seen")
    dv.append(m, "INBOX", dv.message("inbox mail"))
    config = settings({"Archive": FolderSync("headers")})
    report = await sync(store, account, config)
    assert report.fetched == 2

    plan_id = (await folder_items(store, "Archive"))["plan"]
    view = await store.queries.get(plan_id)
    assert view.props[tags.SENDER_NAME] == "Alice"
    assert view.props[tags.READ] is True
    assert tags.BODY not in view.props
    assert await store.queries.attachments(plan_id) == []
    assert (await store.queries.source(plan_id))[0] is None
    assert await content(store, plan_id) == "headers"
    inbox_id = (await folder_items(store, "Inbox"))["inbox mail"]
    assert await content(store, inbox_id) is None

    sync_service = service(store, account, config)
    _, secret = await store.tokens.create("admin", "admin")
    client = await aiohttp_client(create_app(store, sync=sync_service))
    auth = {"Authorization": f"Bearer {secret}"}
    api_id = store.ids.api_id("item", plan_id)

    # offline (the user's switch): a clear problem, nothing fetched
    await sync_service.set_offline(True)
    resp = await client.get(f"/api/v1/items/{api_id}/source", headers=auth)
    assert resp.status == 503
    problem = await resp.json()
    assert problem["type"] == "urn:kbridge:problem:not-available-offline"
    assert "offline" in problem["detail"]
    assert resp.headers["Retry-After"].isdigit()
    resp = await client.get(f"/api/v1/items/{api_id}?columns=PidTagBody", headers=auth)
    assert resp.status == 503
    # the cached properties are served offline
    resp = await client.get(f"/api/v1/items/{api_id}?columns=PidTagSubject", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["props"]["PidTagSubject"] == "plan"
    assert await content(store, plan_id) == "headers"

    # online: fetched through the sync service, stored, answered byte for byte
    await sync_service.set_offline(False)
    resp = await client.get(f"/api/v1/items/{api_id}/source", headers=auth)
    assert resp.status == 200
    assert await resp.read() == raw
    assert await content(store, plan_id) is None
    view = await store.queries.get(plan_id)
    assert "the plan, in words" in str(view.props[tags.BODY])
    assert view.props[tags.READ] is True  # the local flags are kept
    atts = await store.queries.attachments(plan_id)
    assert [a[tags.ATTACH_LONG_FILENAME] for a in atts] == ["plan.pdf"]
    resp = await client.get(f"/api/v1/items/{api_id}/attachments/0/data", headers=auth)
    assert await resp.read() == PDF
    # the next run keeps the whole message and fetches nothing again
    again = await sync(store, account, config)
    assert again.fetched == 0
    assert (await store.queries.source(plan_id))[0] is not None


async def test_webdav_get_fetches_on_demand(
    store: Store, account: Account, aiohttp_client: AiohttpClient
) -> None:
    m = account.client()
    raw = with_attachment("over dav")
    dv.append(m, "INBOX", raw)
    config = settings({"INBOX": FolderSync("headers")})
    await sync(store, account, config)
    item_id = (await folder_items(store, "Inbox"))["over dav"]
    sync_service = service(store, account, config)
    _, secret = await store.tokens.create("admin", "admin")
    client = await aiohttp_client(create_app(store, sync=sync_service))
    auth = {"Authorization": f"Bearer {secret}"}
    resp = await client.request("PROPFIND", "/dav/Inbox/", headers={**auth, "Depth": "1"})
    listing = await resp.text()
    href = next(h for h in re.findall(r"<[^>]*href>([^<]+)<", listing) if h.endswith(".eml"))
    await sync_service.set_offline(True)
    resp = await client.get(href, headers=auth)
    assert resp.status == 503
    assert await content(store, item_id) == "headers"
    await sync_service.set_offline(False)
    resp = await client.get(href, headers=auth)
    assert resp.status == 200
    assert await resp.read() == raw
    assert await content(store, item_id) is None


async def test_unreachable_server_is_a_clear_error(
    store: Store, account: Account, aiohttp_client: AiohttpClient
) -> None:
    m = account.client()
    dv.append(m, "INBOX", with_attachment("far away"))
    config = settings({}, mode="headers")
    await sync(store, account, config)
    item_id = (await folder_items(store, "Inbox"))["far away"]
    gone = account.settings().__class__(
        "127.0.0.1", 1, "none", account.user, account.password, timeout=5
    )
    sync_service = ImapSyncService(store, gone, sync_config=config)
    _, secret = await store.tokens.create("admin", "admin")
    client = await aiohttp_client(create_app(store, sync=sync_service))
    api_id = store.ids.api_id("item", item_id)
    resp = await client.get(
        f"/api/v1/items/{api_id}/attachments", headers={"Authorization": f"Bearer {secret}"}
    )
    assert resp.status == 503
    problem = await resp.json()
    assert problem["type"] == "urn:kbridge:problem:not-available-offline"
    assert "cannot be reached" in problem["detail"]
    assert await content(store, item_id) == "headers"


async def test_folder_off_is_listed_but_not_pulled(store: Store, account: Account) -> None:
    m = account.client()
    m.create("Lists")
    dv.append(m, "Lists", dv.message("newsletter"))
    dv.append(m, "INBOX", dv.message("hello"))
    report = await sync(store, account, settings({"Lists": FolderSync("off")}))
    assert report.fetched == 1
    assert report.paths["Lists"] == "off"
    assert await folder_items(store, "Lists") == {}
    # switched on later: pulled by the next run
    report = await sync(store, account, settings({}))
    assert report.fetched == 1
    assert list(await folder_items(store, "Lists")) == ["newsletter"]


def append_dated(m: imaplib.IMAP4, mailbox: str, raw: bytes, days_ago: float) -> None:
    when = imaplib.Time2Internaldate(time.time() - days_ago * 86400)
    typ, data = m.append(mailbox, None, when, raw)
    assert typ == "OK", data


async def test_window_days(store: Store, account: Account) -> None:
    m = account.client()
    append_dated(m, "INBOX", with_attachment("recent"), 2)
    append_dated(m, "INBOX", with_attachment("last year"), 400)
    report = await sync(store, account, settings({"INBOX": FolderSync(None, 30)}))
    assert report.fetched == 2
    ids = await folder_items(store, "Inbox")
    assert await content(store, ids["recent"]) is None
    assert len(await store.queries.attachments(ids["recent"])) == 1
    assert await content(store, ids["last year"]) == "headers"
    assert (await store.queries.source(ids["last year"]))[0] is None


async def test_size_limit_keeps_headers_and_text(store: Store, account: Account) -> None:
    m = account.client()
    dv.append(m, "INBOX", with_attachment("large"))
    dv.append(m, "INBOX", dv.message("small"))
    report = await sync(store, account, settings({}, max_message_bytes=10_000))
    assert report.fetched == 2
    ids = await folder_items(store, "Inbox")
    assert await content(store, ids["small"]) is None
    assert await content(store, ids["large"]) == "text"
    view = await store.queries.get(ids["large"])
    assert str(view.props[tags.BODY]).strip() == "the plan, in words"
    html = view.props[tags.HTML]
    assert b"<p>the plan</p>" in (html if isinstance(html, bytes) else base64.b64decode(html))
    assert view.props[tags.SENDER_NAME] == "Alice"
    assert await store.queries.attachments(ids["large"]) == []
    assert (await store.queries.source(ids["large"]))[0] is None


async def test_headers_to_full_fetches_the_bodies(store: Store, account: Account) -> None:
    m = account.client()
    m.create("Archive")
    raws = [with_attachment(f"a{i}") for i in range(3)]
    for raw in raws:
        dv.append(m, "Archive", raw)
    await sync(store, account, settings({"Archive": FolderSync("headers")}))
    ids = await folder_items(store, "Archive")
    assert [await content(store, ids[f"a{i}"]) for i in range(3)] == ["headers"] * 3
    # nothing changed on the server: the same settings find nothing to do
    same = await sync(store, account, settings({"Archive": FolderSync("headers")}))
    assert same.paths["Archive"] == "unchanged"
    report = await sync(store, account, settings({"Archive": FolderSync("full")}))
    assert report.fetched == 3
    assert await folder_items(store, "Archive") == ids  # completed in place, same ids
    for i, raw in enumerate(raws):
        item_id = ids[f"a{i}"]
        assert await content(store, item_id) is None
        blob, _, _ = await store.queries.source(item_id)
        assert blob is not None
        assert b"".join([c async for c in store.queries.read_blob(blob)]) == raw
        assert len(await store.queries.attachments(item_id)) == 1


async def test_a_copy_of_a_message_kept_as_headers_goes_up_whole(
    store: Store, account: Account
) -> None:
    """A copy made here of a message stored as its headers only used to go up built from
    what the cache had: 273 bytes, the body and the attachment gone. It goes up as the
    server's whole message now, and stays marked as partly stored here."""
    raw, config, original = await kept_as_headers(store, account, "Archive", "plan", "\\Seen")
    m = account.client()
    copy = await store.items.copy(original, store.folders.roles["inbox"])
    report = await sync(store, account, config)
    assert not report.failed and report.pushed == 1, report
    m.select("INBOX")
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    [uploaded] = [part[1] for part in data if isinstance(part, tuple)]
    assert uploaded.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert await content(store, copy) == "headers"
    # the Inbox wants whole messages: the next pull completes the copy, with no second item
    again = await sync(store, account, config)
    assert again.fetched == 1 and again.pushed == 0, again
    assert await content(store, copy) is None
    assert [a[tags.ATTACH_LONG_FILENAME] for a in await store.queries.attachments(copy)] == [
        "plan.pdf"
    ]
    assert list(await folder_items(store, "Inbox")) == ["plan"]
    last = await sync(store, account, config)
    assert last.fetched == 0 and last.pushed == 0, last


async def test_a_message_kept_as_headers_stays_partly_stored_when_moved(
    store: Store, account: Account
) -> None:
    """Moved here from a headers-only folder to a full one: its link still says what the
    cache lacks, so the next run fetches it whole (the folder wants whole messages), and a
    later edit of it never replaces the server's message by the headers."""
    raw, config, item_id = await kept_as_headers(store, account, "Lists", "moved partial")
    m = account.client()
    assert await content(store, item_id) == "headers"
    await store.items.move(item_id, store.folders.roles["inbox"])
    report = await sync(store, account, config)
    assert not report.failed, report
    item = await store.sync.item(item_id)
    assert item is not None and item.upstream is not None and item.upstream["mailbox"] == "INBOX"
    subject = "moved partial"
    if await content(store, item_id) is not None:  # the move's run did not complete it
        subject = "edited while partial"
        await store.items.update(item_id, {tags.SUBJECT: subject})
        report = await sync(store, account, config)
        assert not report.failed, report
    assert await content(store, item_id) is None
    assert (await store.queries.get(item_id)).props[tags.HASATTACH] is True
    m.select("INBOX", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    [on_server] = [email.message_from_bytes(p[1]) for p in data if isinstance(p, tuple)]
    assert on_server["Subject"] == subject
    attached = [p.get_payload(decode=True) for p in on_server.walk() if p.get_filename()]
    assert attached == [PDF]
    assert (
        subject != "moved partial"
        or on_server.as_bytes() == email.message_from_bytes(raw).as_bytes()
    )


async def test_a_flag_set_while_the_message_is_fetched_on_demand_is_kept(
    store: Store, account: Account
) -> None:
    """A client opens a message kept as headers only: the bridge fetches it, and the
    client marks it read meanwhile. The whole message keeps the read state (and it goes
    up), not the state from before the fetch."""
    m = account.client()
    dv.append(m, "INBOX", with_attachment("opened"))
    config = settings({}, mode="headers")
    await sync(store, account, config)
    item_id = (await folder_items(store, "Inbox"))["opened"]

    async def connect() -> Any:
        adapter = await account.adapter()
        fetch = adapter.fetch

        async def fetch_while_read(*args: Any, **kw: Any) -> Any:
            await store.items.update(item_id, {tags.READ: True})
            async for msg in fetch(*args, **kw):
                yield msg

        adapter.fetch = fetch_while_read  # type: ignore[method-assign]
        return adapter

    assert await OnDemand(store, connect).ensure(item_id)
    assert await content(store, item_id) is None
    assert (await store.queries.get(item_id)).props[tags.READ] is True
    report = await sync(store, account, config)
    assert not report.failed, report
    m.select("INBOX", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert b"\\Seen" in data[0]


async def test_an_edit_of_a_partly_stored_message_takes_no_other_copy_for_its_upload(
    store: Store, account: Account
) -> None:
    """The edit of a message kept as headers only is never uploaded: a copy with its
    Message-ID that another client puts in the mailbox is not taken for such an upload
    (which would expunge the server's message as the copy the edit replaces)."""
    raw, config, item_id = await kept_as_headers(store, account, "Lists", "edited-partial")
    m = account.client()
    await store.items.update(item_id, {tags.SUBJECT: "edited here"})
    dv.append(m, "Lists", raw)  # another client's copy
    report = await sync(store, account, config)
    assert not report.failed, report
    m.select("Lists", readonly=True)
    _, data = m.uid("SEARCH", "ALL")
    assert len(data[0].split()) == 2  # both copies stay on the server
    assert sorted(await folder_items(store, "Lists")) == ["edited here", "edited-partial"]


async def test_an_edit_of_a_partly_stored_message_goes_up_with_its_whole_message(
    store: Store, account: Account
) -> None:
    """An edit made here of a message kept as headers only used to stay here until the
    whole message came, which then replaced it: the edit was lost. The next run now
    fetches the whole message of an item edited here, keeps the edit on it (properties,
    recipients, an attachment added), and uploads it in place of the server's, with the
    message's own attachment."""
    _, config, item_id = await kept_as_headers(store, account, "Lists", "edit me")
    await store.items.update(item_id, {tags.SUBJECT: "edited here"})
    carol = {
        tags.RECIPIENT_TYPE: 1,
        tags.DISPLAY_NAME: "Carol",
        tags.SMTP_ADDRESS: "carol@example.org",
        tags.EMAIL_ADDRESS: "carol@example.org",
        tags.ADDRTYPE: "SMTP",
    }
    await store.items.set_recipients(item_id, [carol])
    note = {tags.ATTACH_LONG_FILENAME: "note.txt", tags.ATTACH_MIME_TAG: "text/plain"}
    await store.items.add_attachment(item_id, note, data=b"added here")
    for _ in range(3):  # fetched whole, then uploaded
        report = await sync(store, account, config)
        assert not report.failed, report
    assert await content(store, item_id) is None
    view = await store.queries.get(item_id)
    assert view.props[tags.SUBJECT] == "edited here"
    assert "the plan, in words" in str(view.props[tags.BODY])
    assert [r[tags.DISPLAY_NAME] for r in await store.queries.recipients(item_id)] == ["Carol"]
    atts = await store.queries.attachments(item_id)
    assert [a[tags.ATTACH_LONG_FILENAME] for a in atts] == ["plan.pdf", "note.txt"]
    m = account.client()
    m.select("Lists", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    [uploaded] = [email.message_from_bytes(p[1]) for p in data if isinstance(p, tuple)]
    assert uploaded["Subject"] == "edited here"
    assert "carol@example.org" in str(uploaded["To"])
    attached = {p.get_filename(): p.get_payload(decode=True) for p in uploaded.walk()}
    assert attached.get("plan.pdf") == PDF and attached.get("note.txt") == b"added here"
    assert await folder_items(store, "Lists") == {"edited here": item_id}
    last = await sync(store, account, config)
    assert last.fetched == 0 and last.pushed == 0, last


async def test_a_partly_stored_message_replaced_whole_here_goes_up_as_replaced(
    store: Store, account: Account
) -> None:
    """A message kept as headers only whose content a client replaced whole here (a
    WebDAV PUT) keeps that content: the server's whole message does not replace it, and
    it goes up in place of the server's (before, it stayed here, never uploaded, and a
    change of the folder to whole messages replaced it by the server's)."""
    _, config, item_id = await kept_as_headers(store, account, "Lists", "to replace")
    mine = dv.message("replaced here", msgid="<replaced-here@test>")
    await store.dav.replace(item_id, item_from_rfc822(mine))
    for _ in range(2):
        report = await sync(store, account, config)
        assert not report.failed, report
    assert await content(store, item_id) is None
    assert await folder_items(store, "Lists") == {"replaced here": item_id}
    m = account.client()
    m.select("Lists", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    [on_server] = [email.message_from_bytes(p[1]) for p in data if isinstance(p, tuple)]
    # (an edit goes up built from the item's properties: README, Limits)
    assert on_server["Subject"] == "replaced here"
    assert on_server["Message-ID"] == "<replaced-here@test>"
    assert "hello" in str(on_server.get_payload())
    last = await sync(store, account, config)
    assert last.fetched == 0 and last.pushed == 0, last


async def test_a_flag_set_here_while_a_completion_is_written_is_kept(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag set here after a completion read the item's flags, before it wrote the
    whole message with them, used to be undone by that write. The write now finds the
    item changed and the completion reads its flags again."""
    _, _, item_id = await kept_as_headers(store, account, "Archive", "racing")
    real = store.dav.complete_message
    calls = 0

    async def flagged_meanwhile(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            await store.items.update(item_id, {tags.FLAG_STATUS: 2})
        return await real(*args, **kwargs)

    monkeypatch.setattr(store.dav, "complete_message", flagged_meanwhile)
    config = settings({"Archive": FolderSync("full")})
    report = await sync(store, account, config)
    assert not report.failed and report.fetched == 1, report
    assert await content(store, item_id) is None
    assert (await store.queries.get(item_id)).props.get(tags.FLAG_STATUS) == 2
    assert calls == 2
    report = await sync(store, account, config)
    assert not report.failed, report
    m = account.client()
    m.select("Archive", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert b"\\Flagged" in data[0]


async def test_a_partly_stored_message_whose_copy_was_lost_sight_of_stays_so(
    store: Store, account: Account
) -> None:
    """A message kept as headers only, moved here to the Inbox, while another client
    moved it there too and deleted its old mailbox: the item loses sight of its server
    copy (`LOST`) until the pull of the Inbox finds it. It used to be linked to it as a
    whole message, with no source; it is now completed there, as the Inbox wants."""
    raw, config, item_id = await kept_as_headers(store, account, "Lists", "wandering")
    await store.items.move(item_id, store.folders.roles["inbox"])
    m = account.client()
    m.select("Lists")
    m.uid("MOVE", "1", "INBOX")
    m.close()
    m.delete("Lists")
    for _ in range(2):
        report = await sync(store, account, config)
        assert not report.failed, report
    assert await content(store, item_id) is None
    blob, _, _ = await store.queries.source(item_id)
    assert blob is not None
    assert b"".join([c async for c in store.queries.read_blob(blob)]) == raw
    m.select("INBOX", readonly=True)
    _, data = m.uid("SEARCH", "ALL")
    assert len(data[0].split()) == 1
    assert await folder_items(store, "Inbox") == {"wandering": item_id}
