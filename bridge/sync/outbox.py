"""Draining the Outbox: every item submitted through the API (`MSGFLAG_SUBMITTED`, in the
Outbox) is sent by SMTP submission when the upstream is reachable, and waits there while
it is not.

Outcome of one item:
- sent: its submitted/unsent flags are cleared and it moves to Sent Items, in the one
  transaction that also makes the reports of refused recipients (so a run stopped after
  the send finds it either still queued or wholly filed). Unless the
  server files sent mail itself (`upstream.smtp.saves_sent`), the move is an ordinary local
  change, so the journal replay APPENDs it to the server's Sent mailbox (looking it up by
  Message-ID first, so a retry does not upload it twice). With `saves_sent` the move is
  not journaled and the item is linked to the server's copy, found by Message-ID: at
  once, or by the first pull of Sent that meets it, if the server files it later.
- rejected (a 5xx reply): it stays in the Outbox, no longer submitted, marked failed with
  `PidTagNonDeliveryReportStatusCode` (the SMTP reply code, e.g. 550) and
  `PidTagSupplementaryInfo` (the server's reply), and a non-delivery report
  (`REPORT.IPM.Note.NDR`) appears in the Inbox, in one transaction. Submitting it again
  clears the mark once it is sent.
- deferred (a 4xx reply, a dropped connection): it stays queued and is tried again with
  exponential backoff and jitter; "sync now" retries at once.
Recipients refused one by one while others accepted the message get a report as well;
the message itself counts as sent.

The envelope comes from the item: MAIL FROM the sender's SMTP address (else the SMTP user
name if it is an address), RCPT TO every To, Cc and Bcc recipient. The message is the
item's stored source if it has one, else one built from its properties; Bcc header
fields are never sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from email.utils import make_msgid
from typing import Any

from bridge.formats.mime_build import message_ids
from bridge.model import flags, tags
from bridge.store.core import UPSTREAM
from bridge.store.errors import StoreError
from bridge.store.items import NewItem, PropChange
from bridge.store.queries import MAX_PAGE
from bridge.store.store import Store
from bridge.store.syncstate import AWAITS
from bridge.upstream import smtp
from bridge.upstream.base import AuthFailed, ConnectFailed, MailAdapter, UpstreamError

log = logging.getLogger(__name__)

NDR_CLASS = "REPORT.IPM.Note.NDR"
RETRY_FIRST = 30.0
RETRY_MAX = 3600.0
FAILED_TAGS = (tags.NDR_STATUS_CODE, tags.SUPPLEMENTARY_INFO)


@dataclass
class OutboxReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


def _address(props: dict[int, Any], smtp_tag: int, email_tag: int, type_tag: int) -> str | None:
    value = props.get(smtp_tag)
    if isinstance(value, str) and "@" in value:
        return value.strip()
    email, addrtype = props.get(email_tag), props.get(type_tag)
    if isinstance(email, str) and "@" in email and str(addrtype or "SMTP").upper() == "SMTP":
        return email.strip()
    return None


def sender_of(props: dict[int, Any]) -> str | None:
    return _address(
        props, tags.SENDER_SMTP_ADDRESS, tags.SENDER_EMAIL_ADDRESS, tags.SENDER_ADDRTYPE
    ) or _address(
        props,
        tags.SENT_REPRESENTING_SMTP_ADDRESS,
        tags.SENT_REPRESENTING_EMAIL_ADDRESS,
        tags.SENT_REPRESENTING_ADDRTYPE,
    )


def recipient_addresses(rows: list[dict[int, Any]]) -> list[str]:
    """Every To, Cc and Bcc address, once each, in order."""
    out: list[str] = []
    for row in rows:
        if row.get(tags.RECIPIENT_TYPE, flags.MAPI_TO) == flags.MAPI_ORIG:
            continue
        addr = _address(row, tags.SMTP_ADDRESS, tags.EMAIL_ADDRESS, tags.ADDRTYPE)
        if addr and addr.lower() not in {a.lower() for a in out}:
            out.append(addr)
    return out


class Outbox:
    """The queue of submitted items of one store, with the retry schedule kept in memory."""

    def __init__(
        self, store: Store, settings: smtp.SmtpSettings, *, retry_first: float = RETRY_FIRST
    ) -> None:
        self.store = store
        self.settings = settings
        self.retry_first = retry_first
        self.last_error: str | None = None
        self._attempts: dict[int, int] = {}
        self._not_before: dict[int, float] = {}

    async def queued(self) -> list[int]:
        """Submitted items waiting in the Outbox, oldest first."""
        items, _ = await self.store.queries.list(self.store.folders.roles["outbox"], limit=MAX_PAGE)
        out = []
        for item in items:
            mflags = item.props.get(tags.MESSAGE_FLAGS)
            if isinstance(mflags, int) and mflags & flags.MSGFLAG_SUBMITTED:
                out.append(item.id)
        return out

    def next_due(self) -> float | None:
        """When (time.monotonic) the earliest deferred item may be tried again."""
        return min(self._not_before.values(), default=None)

    def retry_now(self) -> None:
        self._not_before.clear()

    def _defer(self, item_id: int, reason: str, report: OutboxReport) -> None:
        n = self._attempts.get(item_id, 0) + 1
        self._attempts[item_id] = n
        delay = min(RETRY_MAX, self.retry_first * 2 ** (n - 1)) * random.uniform(0.5, 1.0)
        self._not_before[item_id] = time.monotonic() + delay
        report.deferred += 1
        report.errors.append(reason)
        log.info("item %s not sent yet (%s); next try in %.0f s", item_id, reason, delay)

    def _forget(self, item_id: int) -> None:
        self._attempts.pop(item_id, None)
        self._not_before.pop(item_id, None)

    async def drain(self, adapter: MailAdapter | None = None) -> OutboxReport:
        """Send what is due. Raises nothing for SMTP trouble: the items stay queued and
        `last_error` says why. `adapter` (connected) links sent items to the server's
        copies when the server files them itself."""
        report = OutboxReport()
        now = time.monotonic()
        queued = await self.queued()
        for gone in set(self._attempts) - set(queued):
            self._forget(gone)
        pending = [i for i in queued if self._not_before.get(i, 0.0) <= now]
        if not pending:
            return report
        sent_ids: list[tuple[int, str]] = []
        try:
            async with smtp.session(self.settings) as conn:
                while pending:
                    item_id = pending.pop(0)
                    try:
                        msgid = await self._send_one(conn, item_id, report)
                    except StoreError as exc:  # changed or deleted meanwhile
                        log.info("item %s not sent: %s", item_id, exc)
                        continue
                    except (smtp.Deferred, ConnectFailed) as exc:
                        self._defer(item_id, str(exc), report)
                        if isinstance(exc, ConnectFailed):
                            raise
                        continue
                    if msgid is not None:
                        sent_ids.append((item_id, msgid))
            self.last_error = None
        except (ConnectFailed, AuthFailed) as exc:
            for item_id in pending:
                self._defer(item_id, str(exc), report)
            self.last_error = str(exc)
        if sent_ids and self.settings.saves_sent and adapter is not None:
            try:
                await self._link_sent(adapter, sent_ids)
            except UpstreamError as exc:
                log.info("sent items not linked to the server's copies: %s", exc)
        return report

    async def _send_one(
        self, conn: smtp.SmtpSession, item_id: int, report: OutboxReport
    ) -> str | None:
        """Send one item; returns its Message-ID once sent, None if it was rejected."""
        props = (await self.store.queries.get(item_id)).props
        rows = await self.store.queries.recipients(item_id)
        sender = sender_of(props) or (
            self.settings.username if "@" in self.settings.username else None
        )
        rcpts = recipient_addresses(rows)
        if sender is None:
            await self._failed(item_id, props, 553, "the item has no sender address", rcpts)
            report.failed += 1
            return None
        if not rcpts:
            await self._failed(item_id, props, 553, "the item has no SMTP recipient", [])
            report.failed += 1
            return None
        msgid = await self._prepare(item_id, props, sender)
        raw = smtp.strip_bcc(await self.store.sync.source(item_id))
        try:
            refused = await conn.send(sender, rcpts, raw)
        except smtp.Rejected as exc:
            await self._failed(item_id, props, exc.code, exc.text, exc.recipients or rcpts)
            report.failed += 1
            report.errors.append(str(exc))
            self._forget(item_id)
            return None
        self._forget(item_id)
        reports = [self._report_item(props, r.code, r.text, [r.address]) for r in refused]
        with self.store.durable():  # an OS crash must not undo it: the item would leave again
            await self._sent(item_id, reports)
        report.sent += 1
        return msgid

    async def _prepare(self, item_id: int, props: dict[int, Any], sender: str) -> str:
        """Give the item what the message needs before it leaves: a Message-ID, the
        submit time and, when it has none, the sender address."""
        update: dict[int, Any] = {}
        value = props.get(tags.INTERNET_MESSAGE_ID)
        ids = message_ids(value if isinstance(value, str) else None)
        # (one with no <id> in it would leave with a Message-ID made at each build: the
        # copy in Sent would not have the one the recipients got)
        msgid = ids[0] if ids else make_msgid(domain=sender.rpartition("@")[2] or None)
        if msgid != value:
            update[tags.INTERNET_MESSAGE_ID] = msgid
        update[tags.CLIENT_SUBMIT_TIME] = dt.datetime.now(dt.UTC)
        if sender_of(props) is None:
            update[tags.SENDER_SMTP_ADDRESS] = sender
            update[tags.SENDER_EMAIL_ADDRESS] = sender
            update[tags.SENDER_ADDRTYPE] = "SMTP"
        await self.store.items.update(item_id, update, origin=UPSTREAM)
        return msgid

    async def _sent(self, item_id: int, reports: list[NewItem]) -> None:
        """Record the item as sent, in Sent Items, with the reports of recipients the
        server refused, in one transaction (`Items.record_sent`)."""
        sent = self.store.folders.roles["sent"]
        link = None
        if self.settings.saves_sent:  # the server's copy is awaited, never uploaded
            ref = (await self.store.sync.folder_links()).get(sent)
            if ref:
                link = {AWAITS: str(ref["mailbox"])}
        change = PropChange(
            {tags.MESSAGE_DELIVERY_TIME: dt.datetime.now(dt.UTC)}, list(FAILED_TAGS)
        )
        await self.store.items.record_sent(
            item_id,
            sent,
            change,
            upload=not self.settings.saves_sent,
            link=link,
            reports=reports,
            reports_folder=self.store.folders.roles["inbox"],
        )

    async def _failed(
        self, item_id: int, props: dict[int, Any], code: int, text: str, rcpts: list[str]
    ) -> None:
        """Mark the item failed, with its non-delivery report, in one transaction."""
        await self.store.items.record_rejected(
            item_id,
            PropChange({tags.NDR_STATUS_CODE: code, tags.SUPPLEMENTARY_INFO: text}),
            reports=[self._report_item(props, code, text, rcpts)],
            reports_folder=self.store.folders.roles["inbox"],
        )
        log.warning("item %s rejected by the SMTP server: %s %s", item_id, code, text)

    def _report_item(
        self, props: dict[int, Any], code: int, text: str, rcpts: list[str]
    ) -> NewItem:
        """A non-delivery report of the message with `props`, from the mail system."""
        subject = props.get(tags.SUBJECT)
        subject = subject if isinstance(subject, str) else ""
        who = ", ".join(rcpts) or "the recipients"
        summary = (
            f"Your message could not be delivered to {who}. The server answered: {code} {text}"
        )
        body = (
            f"{summary}\r\n\r\nSubject: {subject}\r\n\r\n"
            "The message stays in the Outbox, marked as failed. Correct it and send it again.\r\n"
        )
        daemon = f"MAILER-DAEMON@{self.settings.host}"
        now = dt.datetime.now(dt.UTC)
        new = NewItem(
            message_class=NDR_CLASS,
            props={
                tags.SUBJECT: f"Undeliverable: {subject}",
                tags.ORIGINAL_SUBJECT: subject,
                tags.BODY: body,
                tags.REPORT_TEXT: summary,
                tags.NDR_STATUS_CODE: code,
                tags.SUPPLEMENTARY_INFO: text,
                tags.SENDER_NAME: "Mail Delivery System",
                tags.SENDER_SMTP_ADDRESS: daemon,
                tags.SENDER_EMAIL_ADDRESS: daemon,
                tags.SENDER_ADDRTYPE: "SMTP",
                tags.SENT_REPRESENTING_NAME: "Mail Delivery System",
                tags.SENT_REPRESENTING_SMTP_ADDRESS: daemon,
                tags.SENT_REPRESENTING_EMAIL_ADDRESS: daemon,
                tags.SENT_REPRESENTING_ADDRTYPE: "SMTP",
                tags.CLIENT_SUBMIT_TIME: now,
                tags.MESSAGE_DELIVERY_TIME: now,
                tags.MESSAGE_FLAGS: 0,
            },
            recipients=[
                {
                    tags.RECIPIENT_TYPE: flags.MAPI_TO,
                    tags.DISPLAY_NAME: addr,
                    tags.SMTP_ADDRESS: addr,
                    tags.EMAIL_ADDRESS: addr,
                    tags.ADDRTYPE: "SMTP",
                    tags.NDR_STATUS_CODE: code,
                    tags.SUPPLEMENTARY_INFO: text,
                }
                for addr in rcpts
            ],
        )
        msgid = props.get(tags.INTERNET_MESSAGE_ID)
        if isinstance(msgid, str) and msgid:
            new.props[tags.IN_REPLY_TO_ID] = msgid
        return new

    async def _link_sent(self, adapter: MailAdapter, sent: list[tuple[int, str]]) -> None:
        """Point sent items at the copies the server filed, so the next pull of the Sent
        mailbox does not bring them in a second time. Until then an item awaits its copy
        (`AWAITS`, from `_sent`): the pull that meets it takes it for the item."""
        ref = (await self.store.sync.folder_links()).get(self.store.folders.roles["sent"])
        if not ref:
            return
        mailbox = str(ref["mailbox"])
        state = await adapter.select(mailbox)
        taken = {
            int(i.upstream["uid"])
            for i in await self.store.sync.linked_items(mailbox)
            if i.upstream and i.upstream.get("uidvalidity") == state.uidvalidity
        }
        links: dict[int, dict[str, Any] | None] = {}
        for item_id, msgid in sent:
            found = [u for u in await adapter.search_message_id(msgid) if u not in taken]
            if found:
                taken.add(found[-1])
                links[item_id] = {
                    "mailbox": mailbox,
                    "uidvalidity": state.uidvalidity,
                    "uid": found[-1],
                    "flags": ["\\Seen"],
                }
        await self.store.sync.set_item_links(links)
