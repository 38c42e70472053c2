"""Sending mail: submitted items leave by SMTP submission (aiosmtpd delivering into the
test Dovecot over LMTP), Bcc only in the envelope, copies in Sent Items locally and on
the server, queued while offline, rejections reported, temporary failures retried."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.model import flags, tags
from bridge.store import props as P
from bridge.store.core import Tx
from bridge.store.items import NewItem
from bridge.store.store import Store
from bridge.sync.imap_service import ImapSyncService
from bridge.sync.outbox import NDR_CLASS, Outbox
from bridge.upstream.smtp import SmtpSettings
from tests.integration.conftest import Account, sync
from tests.integration.test_imap_sync import server_flags
from tests.servers import dovecot as dv
from tests.servers import submission


@pytest.fixture
async def smtpd(dovecot: dv.Dovecot) -> AsyncIterator[submission.Submission]:
    server = await submission.start(dovecot)
    yield server
    await server.close()


def smtp_settings(sub: submission.Submission, account: Account, **kw: Any) -> SmtpSettings:
    return SmtpSettings(sub.host, sub.port, "none", account.user, account.password, **kw)


def rcpt(address: str, kind: int = flags.MAPI_TO) -> dict[int, Any]:
    return {
        tags.RECIPIENT_TYPE: kind,
        tags.DISPLAY_NAME: address.split("@")[0],
        tags.SMTP_ADDRESS: address,
        tags.ADDRTYPE: "SMTP",
    }


async def draft(store: Store, subject: str, *recipients: dict[int, Any], sender: str = "") -> int:
    props: dict[int, Any] = {tags.SUBJECT: subject, tags.BODY: f"body of {subject}\r\n"}
    if sender:
        props[tags.SENT_REPRESENTING_NAME] = "Sender"
        props[tags.SENT_REPRESENTING_SMTP_ADDRESS] = sender
    item = NewItem(props=props, recipients=list(recipients))
    return await store.items.create(store.folders.roles["drafts"], item)


def mailbox(server: dv.Dovecot, user: str, name: str = "INBOX") -> list[bytes]:
    """The raw messages of one account's mailbox."""
    m = server.client(user, f"pw-{user}")
    m.select(name)
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    return [part[1] for part in data if isinstance(part, tuple)]


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0].lower()


async def items_in(store: Store, role: str) -> list[Any]:
    items, _ = await store.queries.list(store.folders.roles[role], limit=100)
    return items


async def test_sent_mail_reaches_recipients_and_sent_folders(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    server = account.server
    to, hidden = server.add_user()[0], server.add_user()[0]
    await sync(store, account)
    iid = await draft(
        store,
        "hello there",
        rcpt(f"{to}@localhost"),
        rcpt(f"{hidden}@localhost", flags.MAPI_BCC),
        sender=f"{account.user}@localhost",
    )
    await store.items.submit(iid)
    report = await Outbox(store, smtp_settings(smtpd, account)).drain()
    assert (report.sent, report.failed, report.deferred) == (1, 0, 0), report
    [got] = smtpd.handler.received
    assert got.mail_from == f"{account.user}@localhost"
    assert sorted(got.rcpt_tos) == sorted([f"{to}@localhost", f"{hidden}@localhost"])
    for user in (to, hidden):
        [raw] = mailbox(server, user)
        assert b"subject: hello there" in header_block(raw)
        assert b"\nbcc:" not in header_block(raw)
    assert await items_in(store, "outbox") == []
    [sent] = await items_in(store, "sent")
    assert sent.id == iid
    assert not sent.props[tags.MESSAGE_FLAGS] & (flags.MSGFLAG_SUBMITTED | flags.MSGFLAG_UNSENT)
    await sync(store, account)  # the journal replay uploads the copy
    [copy] = mailbox(server, account.user, "Sent")
    assert b"subject: hello there" in header_block(copy)
    assert b"\nbcc:" not in header_block(copy)
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0
    assert len(await items_in(store, "sent")) == 1
    assert len(mailbox(server, account.user, "Sent")) == 1


async def test_a_message_id_without_an_id_in_it_is_replaced_once_for_all_copies(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    """The recipients' copy, the copy in Sent and the item carry one Message-ID."""
    to = account.server.add_user()[0]
    await sync(store, account)
    iid = await draft(store, "odd id", rcpt(f"{to}@localhost"), sender=f"{account.user}@localhost")
    await store.items.update(iid, {tags.INTERNET_MESSAGE_ID: "no brackets here, no id"})
    await store.items.submit(iid)
    assert (await Outbox(store, smtp_settings(smtpd, account)).drain()).sent == 1
    await sync(store, account)
    [delivered] = mailbox(account.server, to)
    [copy] = mailbox(account.server, account.user, "Sent")

    def message_id(raw: bytes) -> bytes:
        return next(
            line.split(b":", 1)[1].strip()
            for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line.lower().startswith(b"message-id:")
        )

    assert message_id(delivered) == message_id(copy)
    item = await store.sync.item(iid)
    assert item is not None and item.message_id == message_id(copy).decode()


async def test_what_records_a_sent_message_commits_durably(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    """Once the server has the message, the item leaves the queue in transactions that are
    on disk when they return (synchronous FULL), whatever their origin: an OS crash just
    after the send must not make the bridge send it a second time."""
    iid = await draft(store, "once only", rcpt(f"{account.user}@localhost"), sender="me@localhost")
    await store.items.submit(iid)
    commits: list[tuple[int, str, int]] = []  # (messages the server had, origin, synchronous)

    async def watch(tx: Tx) -> None:
        async with tx.conn.execute("PRAGMA synchronous") as cur:
            row = await cur.fetchone()
        assert row is not None
        commits.append((len(smtpd.handler.received), tx.origin, int(row[0])))

    store.core.before_commit.append(watch)
    try:
        report = await Outbox(store, smtp_settings(smtpd, account)).drain()
    finally:
        store.core.before_commit.remove(watch)
    assert report.sent == 1
    after = [(origin, sync) for received, origin, sync in commits if received]
    assert after, commits  # the sent mark and the move to Sent Items
    assert all(sync == 2 for _, sync in after), commits  # 2: FULL


@pytest.mark.parametrize("saves_sent", [False, True], ids=["uploads-sent", "server-files"])
async def test_a_sent_message_is_recorded_in_one_transaction(
    store: Store, account: Account, smtpd: submission.Submission, saves_sent: bool
) -> None:
    """Everything that records a message the server accepted (its sent flags, its move to
    Sent Items, the copy it awaits from the server, the reports of refused recipients)
    commits at once: a run stopped at any commit after the send finds the message either
    still queued (the window between the server's answer and that commit, which no client
    can close) or wholly filed, never sent but left in the Outbox, nor filed without the
    link that keeps the server's copy from coming in a second time, nor without its
    report."""
    to = account.server.add_user()[0]
    await sync(store, account)  # Sent Items is linked to its mailbox
    iid = await draft(
        store,
        "one step",
        rcpt(f"{to}@localhost"),
        rcpt("reject-y@localhost"),
        sender="me@localhost",
    )
    await store.items.submit(iid)
    sent, outbox = store.folders.roles["sent"], store.folders.roles["outbox"]
    inbox = store.folders.roles["inbox"]
    states: list[tuple[int, bool, bool, int]] = []  # committed after the send

    async def watch(tx: Tx) -> None:
        if not smtpd.handler.received:
            return
        sql = "SELECT folder_id, flags, upstream FROM items WHERE id = ?"
        async with tx.conn.execute(sql, (iid,)) as cur:
            folder, mflags, link = await cur.fetchone()
        sql = "SELECT count(*) FROM items WHERE folder_id = ? AND message_class = ?"
        async with tx.conn.execute(sql, (inbox, NDR_CLASS)) as cur:
            (reports,) = await cur.fetchone()
        states.append((folder, bool(mflags & flags.MSGFLAG_SUBMITTED), link is not None, reports))

    store.core.before_commit.append(watch)
    adapter = await account.adapter()
    try:
        outbox_ = Outbox(store, smtp_settings(smtpd, account, saves_sent=saves_sent))
        assert (await outbox_.drain(adapter)).sent == 1
    finally:
        store.core.before_commit.remove(watch)
        await adapter.close()
    assert states, "nothing was committed after the send"
    filed = (sent, False, saves_sent, 1)
    queued = (outbox, True, False, 0)
    assert all(s in (filed, queued) for s in states), states
    assert states[-1] == filed, states
    assert len(smtpd.handler.received) == 1
    # the report is no local change: nothing would upload it to the server's Inbox
    [ndr] = await items_in(store, "inbox")
    entries = await store.sync.journal()
    assert ndr.id not in {e.object_id for e in entries}, entries
    moves = [e for e in entries if e.op == "item_move" and e.folder_id == sent]
    assert len(moves) == (0 if saves_sent else 1), entries  # the upload of the copy


async def test_rejected_message_stays_in_outbox_with_a_report(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    iid = await draft(store, "to nobody", rcpt("reject-me@localhost"), sender="me@localhost")
    await store.items.submit(iid)
    report = await Outbox(store, smtp_settings(smtpd, account)).drain()
    assert (report.sent, report.failed) == (0, 1)
    [kept] = await items_in(store, "outbox")
    assert kept.id == iid
    assert not kept.props[tags.MESSAGE_FLAGS] & flags.MSGFLAG_SUBMITTED
    assert kept.props[tags.MESSAGE_FLAGS] & flags.MSGFLAG_UNSENT
    assert kept.props[tags.NDR_STATUS_CODE] == 550
    assert "no such user" in kept.props[tags.SUPPLEMENTARY_INFO]
    [ndr] = await items_in(store, "inbox")
    assert ndr.props[tags.MESSAGE_CLASS] == NDR_CLASS
    assert ndr.props[tags.SUBJECT] == "Undeliverable: to nobody"
    assert "reject-me@localhost" in ndr.props[tags.BODY]
    assert smtpd.handler.received == []
    await store.items.submit(iid)  # it can be sent again once corrected


async def test_a_rejection_is_recorded_in_one_transaction(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    """The failed mark and the non-delivery report of a refused message commit at once: a
    run stopped at any commit finds the message either still queued or failed with its
    report, never failed without a word in the Inbox."""
    iid = await draft(store, "to no one", rcpt("reject-z@localhost"), sender="me@localhost")
    await store.items.submit(iid)
    inbox = store.folders.roles["inbox"]
    states: list[tuple[bool, int | None, int]] = []

    async def watch(tx: Tx) -> None:
        async with tx.conn.execute("SELECT flags, props FROM items WHERE id = ?", (iid,)) as cur:
            mflags, props = await cur.fetchone()
        code = json.loads(props).get(P.key(tags.NDR_STATUS_CODE))
        sql = "SELECT count(*) FROM items WHERE folder_id = ? AND message_class = ?"
        async with tx.conn.execute(sql, (inbox, NDR_CLASS)) as cur:
            (reports,) = await cur.fetchone()
        states.append((bool(mflags & flags.MSGFLAG_SUBMITTED), code, reports))

    store.core.before_commit.append(watch)
    try:
        assert (await Outbox(store, smtp_settings(smtpd, account)).drain()).failed == 1
    finally:
        store.core.before_commit.remove(watch)
    assert states[-1] == (False, 550, 1), states
    assert all(s in ((True, None, 0), (False, 550, 1)) for s in states), states


async def test_temporary_failure_is_retried(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    to = account.server.add_user()[0]
    iid = await draft(store, "later", rcpt(f"{to}+busy@localhost"), sender="me@localhost")
    await store.items.submit(iid)
    outbox = Outbox(store, smtp_settings(smtpd, account), retry_first=0.2)
    report = await outbox.drain()
    assert (report.sent, report.deferred) == (0, 1)
    assert await outbox.queued() == [iid]
    due = outbox.next_due()
    assert due is not None and due > time.monotonic()
    assert (await outbox.drain()).deferred == 0  # not due yet: nothing tried
    smtpd.handler.busy = False
    await asyncio.sleep(max(0.0, due - time.monotonic()))
    report = await outbox.drain()
    assert report.sent == 1, report
    assert outbox.next_due() is None
    assert len(mailbox(account.server, to)) == 1


async def test_partly_refused_recipients_get_a_report(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    to = account.server.add_user()[0]
    iid = await draft(
        store, "some", rcpt(f"{to}@localhost"), rcpt("reject-x@localhost"), sender="me@localhost"
    )
    await store.items.submit(iid)
    report = await Outbox(store, smtp_settings(smtpd, account)).drain()
    assert report.sent == 1
    assert [i.id for i in await items_in(store, "sent")] == [iid]
    [ndr] = await items_in(store, "inbox")
    assert "reject-x@localhost" in ndr.props[tags.BODY]
    assert len(mailbox(account.server, to)) == 1


async def send_saving_sent(
    store: Store, account: Account, smtpd: submission.Submission, subject: str
) -> int:
    """Send a new message through an Outbox told that the server files sent mail itself;
    returns the item's id."""
    to = account.server.add_user()[0]
    await sync(store, account)
    iid = await draft(store, subject, rcpt(f"{to}@localhost"), sender="me@localhost")
    await store.items.submit(iid)
    adapter = await account.adapter()
    try:
        outbox = Outbox(store, smtp_settings(smtpd, account, saves_sent=True))
        assert (await outbox.drain(adapter)).sent == 1
    finally:
        await adapter.close()
    return iid


async def test_server_that_saves_sent_mail_gets_no_second_copy(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    smtpd.handler.saves_sent_for = (account.user, account.password)
    iid = await send_saving_sent(store, account, smtpd, "filed by the server")
    linked = await store.sync.item(iid)
    assert linked is not None and linked.upstream is not None
    assert linked.upstream["mailbox"] == "Sent"
    await sync(store, account)
    assert await store.queries.journal_pending() == 0
    assert len(mailbox(account.server, account.user, "Sent")) == 1
    assert len(await items_in(store, "sent")) == 1


async def test_sent_mail_the_server_files_late_is_taken_for_the_sent_item(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    """The server files its copy after the bridge looked for it: the next pull of Sent
    takes that copy for the item (by Message-ID), instead of bringing in a second one."""
    iid = await send_saving_sent(store, account, smtpd, "filed late")
    assert len(mailbox(account.server, account.user, "Sent")) == 0  # not filed yet
    await store.items.update(iid, {tags.FLAG_STATUS: 2})  # waits for the server's copy
    report = await sync(store, account)
    assert not report.failed, report
    assert len(mailbox(account.server, account.user, "Sent")) == 0  # the server files it
    assert await store.queries.journal_pending() > 0
    account.client().append("Sent", "(\\Seen)", None, smtpd.handler.received[-1].data)
    report = await sync(store, account)
    assert not report.failed, report
    assert [i.id for i in await items_in(store, "sent")] == [iid]
    linked = await store.sync.item(iid)
    assert linked is not None and linked.upstream is not None
    assert linked.upstream["mailbox"] == "Sent" and "uid" in linked.upstream
    assert len(mailbox(account.server, account.user, "Sent")) == 1
    assert server_flags(account, "Sent")["filed late"] == {"\\Seen", "\\Flagged"}
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert (again.fetched, again.pushed) == (0, 0)
    assert [i.id for i in await items_in(store, "sent")] == [iid]


@pytest.mark.parametrize("filed", ["before the next run", "during the next pull"])
async def test_a_sent_item_deleted_before_its_copy_is_filed_stays_deleted(
    store: Store, account: Account, smtpd: submission.Submission, filed: str
) -> None:
    """The user deletes a sent item for good before the server's copy was found: the
    copy, filed whenever, is deleted on the server too, never brought back here."""
    iid = await send_saving_sent(store, account, smtpd, "deleted early")
    assert len(mailbox(account.server, account.user, "Sent")) == 0  # not filed yet
    await store.items.delete(iid, hard=True)
    data = smtpd.handler.received[-1].data
    if filed == "before the next run":
        account.client().append("Sent", "(\\Seen)", None, data)
    else:
        report = await sync(store, account)  # nothing to find yet: the deletion waits
        assert not report.failed, report
        assert await store.queries.journal_pending() > 0
        account.client().append("Sent", "(\\Seen)", None, data)
        report = await sync(store, account)  # the pull meets the copy: not fetched
        assert not report.failed, report
        assert await items_in(store, "sent") == []
    report = await sync(store, account)
    assert not report.failed, report
    assert await items_in(store, "sent") == []
    assert mailbox(account.server, account.user, "Sent") == []
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert (again.fetched, again.pushed) == (0, 0)
    assert await items_in(store, "sent") == []


async def test_service_queues_while_offline_and_sends_after_reconnect(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    to = account.server.add_user()[0]
    service = ImapSyncService(
        store, account.settings(), interval=60, smtp=smtp_settings(smtpd, account)
    )
    await service.start()
    try:
        await service.set_offline(True)
        iid = await draft(store, "queued", rcpt(f"{to}@localhost"), sender="me@localhost")
        await store.items.submit(iid)
        await asyncio.sleep(0.5)
        status = await service.status()
        assert status["state"] == "offline" and status["work_offline"] is True
        assert status["outbox"] == {"queued": 1, "last_error": None}
        assert smtpd.handler.received == []
        await service.set_offline(False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if mailbox(account.server, account.user, "Sent") and service.state == "online":
                break
            await asyncio.sleep(0.1)
        assert len(mailbox(account.server, to)) == 1
        assert len(mailbox(account.server, account.user, "Sent")) == 1
        assert [i.id for i in await items_in(store, "sent")] == [iid]
        assert (await service.status())["outbox"]["queued"] == 0
    finally:
        await service.stop()


async def test_a_draft_from_the_server_edited_here_is_sent_as_edited(
    store: Store, account: Account, smtpd: submission.Submission
) -> None:
    """A draft fetched whole (its raw source kept) and then edited here used to go out as
    its stale source: the old subject and body reached the recipient."""
    to = account.server.add_user()[0]
    raw = (
        f"From: {account.user}@localhost\r\nTo: {to}@localhost\r\nSubject: first take\r\n"
        "Message-ID: <draft-edit@test>\r\n\r\nthe first body\r\n"
    ).encode()
    dv.append(account.client(), "Drafts", raw, "\\Draft")
    await sync(store, account)
    [item] = await items_in(store, "drafts")
    await store.items.update(item.id, {tags.SUBJECT: "final take", tags.BODY: "the final body"})
    await store.items.submit(item.id)
    report = await Outbox(store, smtp_settings(smtpd, account)).drain()
    assert (report.sent, report.failed, report.deferred) == (1, 0, 0), report
    [got] = mailbox(account.server, to)
    assert b"subject: final take" in header_block(got)
    assert b"the final body" in got and b"the first body" not in got
