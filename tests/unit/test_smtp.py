"""SMTP submission helpers: Bcc stripping, envelope addresses, reply classification."""

from __future__ import annotations

import aiosmtplib
import pytest

from bridge.model import flags, tags
from bridge.sync.outbox import recipient_addresses, sender_of
from bridge.upstream import smtp
from bridge.upstream.base import AuthFailed, ConnectFailed


def test_strip_bcc_removes_the_field_and_its_continuation_lines() -> None:
    raw = (
        b"From: a@x\r\nBcc: b@x,\r\n c@x\r\nTo: d@x\r\nRESENT-BCC: e@x\r\n"
        b"Subject: s\r\n\r\nBcc: stays in the body\r\n"
    )
    assert smtp.strip_bcc(raw) == (
        b"From: a@x\r\nTo: d@x\r\nSubject: s\r\n\r\nBcc: stays in the body\r\n"
    )
    assert smtp.strip_bcc(b"Bcc: x\nSubject: s\n\nbody") == b"Subject: s\n\nbody"
    assert smtp.strip_bcc(b"Subject: only headers\r\n") == b"Subject: only headers\r\n"


def test_envelope_addresses() -> None:
    rows = [
        {tags.RECIPIENT_TYPE: flags.MAPI_TO, tags.SMTP_ADDRESS: "a@x"},
        {tags.RECIPIENT_TYPE: flags.MAPI_CC, tags.EMAIL_ADDRESS: "b@x", tags.ADDRTYPE: "SMTP"},
        {tags.RECIPIENT_TYPE: flags.MAPI_BCC, tags.SMTP_ADDRESS: "c@x"},
        {tags.RECIPIENT_TYPE: flags.MAPI_BCC, tags.SMTP_ADDRESS: "A@x"},  # duplicate
        {tags.RECIPIENT_TYPE: flags.MAPI_TO, tags.EMAIL_ADDRESS: "/o=ex/cn=x", tags.ADDRTYPE: "EX"},
        {tags.RECIPIENT_TYPE: flags.MAPI_ORIG, tags.SMTP_ADDRESS: "me@x"},
    ]
    assert recipient_addresses(rows) == ["a@x", "b@x", "c@x"]
    assert sender_of({tags.SENDER_SMTP_ADDRESS: "s@x"}) == "s@x"
    assert sender_of({tags.SENT_REPRESENTING_EMAIL_ADDRESS: "r@x"}) == "r@x"
    assert sender_of({tags.SENDER_NAME: "no address"}) is None


def test_replies_are_classified() -> None:
    failure = smtp._failure
    rejected = failure(aiosmtplib.SMTPDataError(554, "spam"))
    assert isinstance(rejected, smtp.Rejected) and rejected.code == 554
    assert isinstance(failure(aiosmtplib.SMTPSenderRefused(451, "later", "a@x")), smtp.Deferred)
    everyone = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "a@x")])
    refused = failure(everyone)
    assert isinstance(refused, smtp.Rejected) and refused.recipients == ["a@x"]
    mixed = aiosmtplib.SMTPRecipientsRefused(
        [
            aiosmtplib.SMTPRecipientRefused(550, "no", "a@x"),
            aiosmtplib.SMTPRecipientRefused(452, "full", "b@x"),
        ]
    )
    assert isinstance(failure(mixed), smtp.Deferred)
    assert isinstance(failure(aiosmtplib.SMTPAuthenticationError(535, "bad")), AuthFailed)
    assert isinstance(failure(aiosmtplib.SMTPServerDisconnected("gone")), ConnectFailed)
    assert isinstance(failure(ConnectionResetError()), ConnectFailed)


async def test_clear_text_only_on_loopback() -> None:
    settings = smtp.SmtpSettings("mail.example.com", 587, "none", "u", "p")
    with pytest.raises(ConnectFailed, match="unencrypted"):
        async with smtp.session(settings):
            pass
