"""MIME import and export: fixtures, hostile input and round-trip properties."""

from __future__ import annotations

import base64
import email
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.formats import mime_parse
from bridge.formats.mime import (
    KEYWORDS,
    MimeError,
    ParsedMessage,
    build_message,
    parse_message,
)
from bridge.model import flags, tags
from bridge.model.proptypes import MV_FLAG, PropType, prop_type


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def check_values(parsed: ParsedMessage) -> None:
    """Every value has the Python type of its property type and can be stored."""
    rows = [parsed.props, *parsed.recipients, *(a.props for a in parsed.attachments)]
    for row in rows:
        for tag, value in row.items():
            ptype = prop_type(tag)
            if ptype == PropType.UNICODE:
                assert isinstance(value, str)
                assert "\x00" not in value
                value.encode("utf-8")  # no lone surrogates
            elif ptype == PropType.LONG:
                assert isinstance(value, int) and not isinstance(value, bool)
                assert -(2**31) <= value < 2**31
            elif ptype == PropType.BOOLEAN:
                assert isinstance(value, bool)
            elif ptype == PropType.SYSTIME:
                assert isinstance(value, datetime) and value.utcoffset() is not None
            elif ptype == PropType.BINARY:
                assert isinstance(value, bytes)
            elif ptype == PropType.UNICODE | MV_FLAG:
                assert isinstance(value, list) and all(isinstance(v, str) for v in value)
            else:
                raise AssertionError(f"unexpected type for {tag:#010x}")
    for attachment in parsed.attachments:
        assert isinstance(attachment.data, bytes)
    for key, value in parsed.named.items():
        assert key == KEYWORDS
        assert isinstance(value, list)


def parse(raw: bytes) -> ParsedMessage:
    """Parse without the last-resort fallback, so these tests see any exception."""
    parsed = mime_parse._parse(raw)
    check_values(parsed)
    return parsed


def header_lines(raw: bytes) -> list[bytes]:
    block = raw.split(b"\r\n\r\n", 1)[0]
    return block.split(b"\r\n")


# --- fixtures -------------------------------------------------------------------------------

PLAIN = crlf(
    """Return-Path: <alice@example.com>
Received: from mx.example.net by mail.example.org; Tue, 14 Nov 2023 10:00:05 +0100
Received: from client by mx.example.net; Tue, 14 Nov 2023 09:59:30 +0100
From: Alice Example <alice@example.com>
To: Bob <bob@example.org>, carol@example.org
Cc: "Doe, Dave" <dave@example.org>
Subject: RE: Quarterly numbers
Date: Tue, 14 Nov 2023 09:59:00 +0100
Message-ID: <m1@example.com>
In-Reply-To: <m0@example.org>
References: <root@example.org>
 <m0@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hi Bob,

the numbers are attached.
"""
)


def test_plain_message() -> None:
    parsed = parse(PLAIN)
    p = parsed.props
    assert p[tags.MESSAGE_CLASS] == "IPM.Note"
    assert p[tags.SUBJECT] == "RE: Quarterly numbers"
    assert p[tags.SUBJECT_PREFIX] == "RE: "
    assert p[tags.NORMALIZED_SUBJECT] == "Quarterly numbers"
    assert p[tags.CONVERSATION_TOPIC] == "Quarterly numbers"
    assert p[tags.SENT_REPRESENTING_NAME] == "Alice Example"
    assert p[tags.SENT_REPRESENTING_SMTP_ADDRESS] == "alice@example.com"
    assert p[tags.SENDER_NAME] == "Alice Example"
    assert p[tags.SENDER_EMAIL_ADDRESS] == "alice@example.com"
    assert p[tags.SENDER_ADDRTYPE] == "SMTP"
    assert p[tags.CLIENT_SUBMIT_TIME] == datetime(2023, 11, 14, 8, 59, tzinfo=UTC)
    assert p[tags.MESSAGE_DELIVERY_TIME] == datetime(2023, 11, 14, 9, 0, 5, tzinfo=UTC)
    assert p[tags.INTERNET_MESSAGE_ID] == "<m1@example.com>"
    assert p[tags.IN_REPLY_TO_ID] == "<m0@example.org>"
    assert p[tags.INTERNET_REFERENCES] == "<root@example.org> <m0@example.org>"
    assert p[tags.BODY] == "Hi Bob,\r\n\r\nthe numbers are attached.\r\n"
    assert tags.HTML not in p
    assert p[tags.NATIVE_BODY_INFO] == 1
    assert p[tags.IMPORTANCE] == flags.IMPORTANCE_NORMAL
    assert p[tags.SENSITIVITY] == flags.SENSITIVITY_NONE
    assert p[tags.READ_RECEIPT_REQUESTED] is False
    assert p[tags.HASATTACH] is False
    assert p[tags.MESSAGE_FLAGS] == 0  # in particular, not read
    assert p[tags.MESSAGE_SIZE] == len(PLAIN)
    assert p[tags.DISPLAY_TO] == "Bob; carol@example.org"
    assert p[tags.DISPLAY_CC] == "Doe, Dave"
    assert p[tags.DISPLAY_BCC] == ""
    headers = p[tags.TRANSPORT_MESSAGE_HEADERS]
    assert isinstance(headers, str)
    assert headers.startswith("Return-Path: <alice@example.com>\r\n")
    assert headers.endswith("Content-Type: text/plain; charset=us-ascii\r\n")
    assert "Hi Bob" not in headers
    assert parsed.attachments == []
    assert parsed.recipients == [
        {
            tags.RECIPIENT_TYPE: flags.MAPI_TO,
            tags.DISPLAY_NAME: "Bob",
            tags.EMAIL_ADDRESS: "bob@example.org",
            tags.ADDRTYPE: "SMTP",
            tags.SMTP_ADDRESS: "bob@example.org",
            tags.ROWID: 0,
            tags.RECIPIENT_FLAGS: 1,
        },
        {
            tags.RECIPIENT_TYPE: flags.MAPI_TO,
            tags.DISPLAY_NAME: "carol@example.org",
            tags.EMAIL_ADDRESS: "carol@example.org",
            tags.ADDRTYPE: "SMTP",
            tags.SMTP_ADDRESS: "carol@example.org",
            tags.ROWID: 1,
            tags.RECIPIENT_FLAGS: 1,
        },
        {
            tags.RECIPIENT_TYPE: flags.MAPI_CC,
            tags.DISPLAY_NAME: "Doe, Dave",
            tags.EMAIL_ADDRESS: "dave@example.org",
            tags.ADDRTYPE: "SMTP",
            tags.SMTP_ADDRESS: "dave@example.org",
            tags.ROWID: 2,
            tags.RECIPIENT_FLAGS: 1,
        },
    ]


def test_public_parse_matches_strict_parse() -> None:
    assert parse_message(PLAIN) == parse(PLAIN)


ALTERNATIVE = crlf(
    """From: alice@example.com
To: bob@example.org
Subject: Hello
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe
--alt
Content-Type: text/html; charset=iso-8859-1

<p>Gr\xfc\xdfe</p>
--alt--
"""
).replace(b"\xc3\xbc\xc3\x9f", b"\xfc\xdf")


def test_multipart_alternative() -> None:
    p = parse(ALTERNATIVE).props
    assert p[tags.BODY] == "Grüße"
    assert p[tags.HTML] == "<p>Grüße</p>".encode()
    assert p[tags.INTERNET_CPID] == 65001
    assert p[tags.NATIVE_BODY_INFO] == 3
    assert p[tags.HASATTACH] is False


def test_html_only_leaves_body_absent() -> None:
    raw = crlf("Subject: x\nContent-Type: text/html; charset=utf-8\n\n<b>bold</b>\n")
    p = parse(raw).props
    assert tags.BODY not in p
    assert p[tags.HTML] == b"<b>bold</b>\r\n"


ATTACHMENTS = crlf(
    f"""From: alice@example.com
To: bob@example.org
Subject: Files
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain

See attachments.
--mix
Content-Type: application/pdf; name="ignored.pdf"
Content-Disposition: attachment; filename="Quarterly report.pdf"
Content-Transfer-Encoding: base64

{base64.b64encode(b"%PDF-1.4 fake").decode()}
--mix
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=utf-8''%C3%BCbersicht.xlsx
Content-Transfer-Encoding: base64

AAEC/w==
--mix
Content-Type: text/csv; name="=?utf-8?b?w6TDtsO8LmNzdg==?="

a;b
--mix--
"""
)


def test_attachments() -> None:
    parsed = parse(ATTACHMENTS)
    assert parsed.props[tags.BODY] == "See attachments."
    assert parsed.props[tags.HASATTACH] is True
    assert parsed.props[tags.MESSAGE_FLAGS] == flags.MSGFLAG_HASATTACH
    first, second, third = parsed.attachments
    assert first.data == b"%PDF-1.4 fake"
    assert first.props == {
        tags.ATTACH_NUM: 0,
        tags.ATTACH_METHOD: flags.ATTACH_BY_VALUE,
        tags.ATTACH_MIME_TAG: "application/pdf",
        tags.ATTACH_SIZE: 13,
        tags.ATTACHMENT_HIDDEN: False,
        tags.RENDERING_POSITION: -1,
        tags.DISPLAY_NAME: "Quarterly report.pdf",
        tags.ATTACH_LONG_FILENAME: "Quarterly report.pdf",
        tags.ATTACH_FILENAME: "QUARTE~1.PDF",
        tags.ATTACH_EXTENSION: ".pdf",
    }
    assert second.data == b"\x00\x01\x02\xff"
    assert second.props[tags.ATTACH_LONG_FILENAME] == "übersicht.xlsx"
    assert second.props[tags.ATTACH_NUM] == 1
    assert third.props[tags.ATTACH_LONG_FILENAME] == "äöü.csv"
    assert third.props[tags.ATTACH_MIME_TAG] == "text/csv"
    assert third.data == b"a;b"


def test_unnamed_attachment_gets_a_name() -> None:
    raw = crlf(
        """Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

body
--b
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--b--
"""
    )
    (attachment,) = parse(raw).attachments
    assert attachment.props[tags.ATTACH_LONG_FILENAME] == "ATT00001.png"
    assert attachment.props[tags.ATTACH_FILENAME] == "ATT00001.PNG"
    assert attachment.data == b"\x89PNG\r\n\x1a\n"


INLINE_IMAGE = crlf(
    """From: alice@example.com
Subject: Logo
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain

[logo]
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html

<img src="cid:logo@example.com">
--rel
Content-Type: image/gif
Content-ID: <logo@example.com>
Content-Disposition: inline; filename=logo.gif
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--rel--
--alt--
"""
)


def test_inline_image_with_content_id() -> None:
    parsed = parse(INLINE_IMAGE)
    assert parsed.props[tags.BODY] == "[logo]"
    assert parsed.props[tags.HTML] == b'<img src="cid:logo@example.com">'
    (image,) = parsed.attachments
    assert image.props[tags.ATTACH_CONTENT_ID] == "logo@example.com"
    assert image.props[tags.ATTACHMENT_HIDDEN] is True
    assert image.props[tags.ATTACH_MIME_TAG] == "image/gif"
    assert image.data.startswith(b"GIF89a")
    assert parsed.props[tags.HASATTACH] is False
    assert parsed.props[tags.MESSAGE_FLAGS] == 0


EMBEDDED = crlf(
    """From: alice@example.com
Subject: Fwd: Lunch
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain

Forwarding.
--mix
Content-Type: message/rfc822

From: Carol <carol@example.org>
To: alice@example.com
Subject: Lunch?
Content-Type: multipart/mixed; boundary="inner"

--inner
Content-Type: text/plain

Noon?
--inner
Content-Type: application/octet-stream
Content-Disposition: attachment; filename=menu.bin

menu
--inner--
--mix--
"""
)


def test_embedded_message() -> None:
    parsed = parse(EMBEDDED)
    assert parsed.props[tags.SUBJECT_PREFIX] == "Fwd: "
    assert parsed.props[tags.BODY] == "Forwarding."
    (attachment,) = parsed.attachments
    assert attachment.props[tags.ATTACH_METHOD] == flags.ATTACH_EMBEDDED_MSG
    assert attachment.props[tags.ATTACH_MIME_TAG] == "message/rfc822"
    assert attachment.props[tags.DISPLAY_NAME] == "Lunch?"
    assert attachment.props[tags.ATTACH_SIZE] == len(attachment.data)
    inner = parse(attachment.data)
    assert inner.props[tags.SUBJECT] == "Lunch?"
    assert inner.props[tags.SENT_REPRESENTING_NAME] == "Carol"
    assert inner.props[tags.BODY] == "Noon?"
    assert [a.props[tags.ATTACH_LONG_FILENAME] for a in inner.attachments] == ["menu.bin"]
    assert parsed.props[tags.HASATTACH] is True


NDR = crlf(
    """From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: alice@example.com
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="rep"

--rep
Content-Type: text/plain

Your message could not be delivered.
--rep
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
--rep
Content-Type: text/rfc822-headers

From: alice@example.com
Subject: Hello
--rep--
"""
)


def test_ndr() -> None:
    parsed = parse(NDR)
    assert parsed.props[tags.MESSAGE_CLASS] == "REPORT.IPM.Note.NDR"
    assert parsed.props[tags.BODY] == "Your message could not be delivered."
    status, headers = parsed.attachments
    assert status.props[tags.ATTACH_MIME_TAG] == "message/delivery-status"
    assert b"Action: failed" in status.data
    assert headers.props[tags.ATTACH_MIME_TAG] == "text/rfc822-headers"


def test_delivery_report() -> None:
    raw = NDR.replace(b"Action: failed", b"Action: delivered")
    assert parse(raw).props[tags.MESSAGE_CLASS] == "REPORT.IPM.Note.DR"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (
            'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; '
            'boundary="sig"',
            "IPM.Note.SMIME.MultipartSigned",
        ),
        ('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', "IPM.Note.SMIME"),
        (
            'multipart/report; report-type=disposition-notification; boundary="sig"',
            "REPORT.IPM.Note.IPNRN",
        ),
        ('multipart/signed; protocol="application/pgp-signature"; boundary="sig"', "IPM.Note"),
    ],
)
def test_message_classes(content_type: str, expected: str) -> None:
    raw = crlf(
        f"Subject: s\nContent-Type: {content_type}\n\n--sig\nContent-Type: text/plain\n\n"
        "signed text\n--sig\nContent-Type: application/pkcs7-signature\n\nMIIB\n--sig--\n"
    )
    assert parse(raw).props[tags.MESSAGE_CLASS] == expected


def test_encoded_words() -> None:
    raw = crlf(
        "From: =?ISO-8859-1?Q?Fran=E7ois_Pr=E9vost?= <f@example.fr>\n"
        'To: "=?utf-8?b?SsO2cmc=?=" <j@example.de>,\n'
        " =?utf-8?q?M=C3=BCller=2C_Hans?= <h@example.de>\n"
        "Subject: =?utf-8?b?8J+YgA==?= =?utf-8?q?_caf=C3?=\n"
        " =?utf-8?q?=A9?= and =?iso-8859-1?q?=E0?=\n"
        "\nbody\n"
    )
    parsed = parse(raw)
    assert parsed.props[tags.SENT_REPRESENTING_NAME] == "François Prévost"
    assert [r[tags.DISPLAY_NAME] for r in parsed.recipients] == ["Jörg", "Müller, Hans"]
    # whitespace between encoded words goes; a character split across two words survives
    assert parsed.props[tags.SUBJECT] == "😀 café and à"


def test_group_syntax() -> None:
    raw = crlf(
        'To: Team: a@example.com, "B" <b@example.com>;, undisclosed-recipients:;, c@example.com\n'
        "Cc: Empty group:;\n\nbody\n"
    )
    parsed = parse(raw)
    assert [(r[tags.DISPLAY_NAME], r[tags.SMTP_ADDRESS]) for r in parsed.recipients] == [
        ("a@example.com", "a@example.com"),
        ("B", "b@example.com"),
        ("c@example.com", "c@example.com"),
    ]
    assert parsed.props[tags.DISPLAY_CC] == ""


def test_bcc_recipients() -> None:
    raw = crlf("To: a@example.com\nBcc: Hidden <h@example.com>, h2@example.com\n\nbody\n")
    parsed = parse(raw)
    assert [r[tags.RECIPIENT_TYPE] for r in parsed.recipients] == [1, 3, 3]
    assert [r[tags.ROWID] for r in parsed.recipients] == [0, 1, 2]
    assert parsed.props[tags.DISPLAY_BCC] == "Hidden; h2@example.com"


def test_sender_differs_from_author() -> None:
    raw = crlf("From: Boss <boss@example.com>\nSender: Assistant <asst@example.com>\n\nx\n")
    p = parse(raw).props
    assert p[tags.SENT_REPRESENTING_NAME] == "Boss"
    assert p[tags.SENDER_NAME] == "Assistant"
    assert p[tags.SENDER_SMTP_ADDRESS] == "asst@example.com"


@pytest.mark.parametrize(
    ("header", "importance", "sensitivity"),
    [
        ("Importance: High", 2, 0),
        ("Importance: low", 0, 0),
        ("X-Priority: 1 (Highest)", 2, 0),
        ("X-Priority: 5", 0, 0),
        ("X-Priority: 3", 1, 0),
        ("Priority: urgent", 2, 0),
        ("Sensitivity: Personal", 1, 1),
        ("Sensitivity: Private", 1, 2),
        ("Sensitivity: Company-Confidential", 1, 3),
        ("Sensitivity: whatever", 1, 0),
    ],
)
def test_importance_and_sensitivity(header: str, importance: int, sensitivity: int) -> None:
    p = parse(crlf(f"{header}\n\nx\n")).props
    assert p[tags.IMPORTANCE] == importance
    assert p[tags.SENSITIVITY] == sensitivity


@pytest.mark.parametrize(
    ("subject", "prefix"),
    [
        ("RE: x", "RE: "),
        ("Fwd: x", "Fwd: "),
        ("AW: WG: x", "AW: "),
        ("Re:x", ""),
        ("Meeting: x", ""),
        ("R2: x", ""),
        ("x", ""),
    ],
)
def test_subject_prefix(subject: str, prefix: str) -> None:
    p = parse(crlf(f"Subject: {subject}\n\nx\n")).props
    assert p[tags.SUBJECT_PREFIX] == prefix
    assert f"{p[tags.SUBJECT_PREFIX]}{p[tags.NORMALIZED_SUBJECT]}" == subject


def test_keywords_thread_headers_and_receipt() -> None:
    index = bytes(range(22)) + bytes(5)
    raw = crlf(
        "Keywords: Red, Blue , ,Red\nThread-Topic: The topic\n"
        f"Thread-Index: {base64.b64encode(index).decode()}\n"
        "Disposition-Notification-To: a@example.com\nSubject: RE: other\n\nx\n"
    )
    parsed = parse(raw)
    assert parsed.named == {KEYWORDS: ["Red", "Blue"]}
    assert parsed.props[tags.CONVERSATION_TOPIC] == "The topic"
    assert parsed.props[tags.CONVERSATION_INDEX] == index
    assert parsed.props[tags.READ_RECEIPT_REQUESTED] is True


def test_invalid_thread_index_is_ignored() -> None:
    raw = crlf("Thread-Index: not base64!\n\nx\n")
    assert tags.CONVERSATION_INDEX not in parse(raw).props


@pytest.mark.parametrize("raw", [b"", b" \r\n\t\n"])
def test_empty_input_is_not_a_message(raw: bytes) -> None:
    with pytest.raises(MimeError):
        parse_message(raw)


# --- bad input ------------------------------------------------------------------------------


def test_raw_8bit_headers() -> None:
    raw = (
        b"From: J\xf6rg <j@example.de>\r\nSubject: caf\xe9 cr\xe8me\r\n"
        b"To: \xc3\x9cmit <u@example.de>\r\n\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert parsed.props[tags.SUBJECT] == "café crème"  # latin-1 bytes
    assert parsed.props[tags.SENT_REPRESENTING_NAME] == "Jörg"
    assert parsed.recipients[0][tags.DISPLAY_NAME] == "Ümit"  # UTF-8 bytes


def test_unknown_charset() -> None:
    raw = crlf(
        "Subject: =?x-klingon?q?caf=C3=A9?=\nContent-Type: text/plain; charset=x-klingon\n\n"
        "Gr\u00fc\u00dfe\n"
    )
    p = parse(raw).props
    assert p[tags.SUBJECT] == "café"
    assert p[tags.BODY] == "Grüße\r\n"


def test_refused_codec_as_charset() -> None:
    raw = b"Content-Type: text/plain; charset=unicode-escape\r\n\r\n\\ud800 \\x00 x\r\n"
    assert parse(raw).props[tags.BODY] == "\\ud800 \\x00 x\r\n"


def test_latin1_body_without_charset() -> None:
    raw = b"Content-Type: text/plain\r\n\r\nna\xefve \x93quoted\x94\r\n"
    assert parse(raw).props[tags.BODY] == "naïve \u201cquoted\u201d\r\n"


def test_broken_base64_body() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
        "Content-Transfer-Encoding: base64\n\nSGVsbG8gd29ybGQ*!!\n--b\n"
        "Content-Type: application/octet-stream; name=x.bin\n"
        "Content-Transfer-Encoding: base64\n\n%%%AAEC===\n--b--\n"
    )
    parsed = parse(raw)
    assert str(parsed.props[tags.BODY]).startswith("Hello world")
    assert parsed.attachments[0].props[tags.ATTACH_LONG_FILENAME] == "x.bin"


def test_broken_quoted_printable_and_encoded_words() -> None:
    raw = crlf(
        "Subject: =?utf-8?b?!!!?= =?utf-8?q?ok?= =?utf-8?x?y?= =?utf-8?b?w6?=\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "a=ZZb=C3=A9=\n"
    )
    p = parse(raw).props
    assert p[tags.SUBJECT] == "=?utf-8?b?!!!?= ok =?utf-8?x?y?= \ufffd"
    assert p[tags.BODY] == "a=ZZbé"


def test_missing_closing_boundary() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
        "body\n--b\nContent-Type: application/pdf; name=a.pdf\n\nPDF"
    )
    parsed = parse(raw)
    assert parsed.props[tags.BODY] == "body"
    assert parsed.attachments[0].data == b"PDF"


def test_missing_boundary_parameter() -> None:
    raw = crlf("Content-Type: multipart/mixed\n\n--b\nContent-Type: text/plain\n\nbody\n--b--\n")
    assert "body" in str(parse(raw).props[tags.BODY])


@pytest.mark.parametrize(
    "date",
    [
        "yesterday",
        "Tue, 31 Feb 2023 10:00:00 +0000",
        "Mon, 1 Jan 1500 00:00:00 +0000",
        "Mon, 1 Jan 99999 00:00:00 +0000",
        "Tue, 14 Nov 2023 25:61:99 +9999",
        "",
        "1",
    ],
)
def test_invalid_date(date: str) -> None:
    p = parse(crlf(f"Date: {date}\nReceived: by x; {date}\n\nx\n")).props
    assert tags.CLIENT_SUBMIT_TIME not in p
    assert tags.MESSAGE_DELIVERY_TIME not in p


def test_date_without_zone_is_utc() -> None:
    p = parse(crlf("Date: 14 Nov 23 09:59 -0000\n\nx\n")).props
    assert p[tags.CLIENT_SUBMIT_TIME] == datetime(2023, 11, 14, 9, 59, tzinfo=UTC)


def test_garbage_address_list() -> None:
    raw = crlf(
        'To: <<<>>> ,,, foo@, "unterminated <x@y>, (comment (nested) a@b) <c@d>, '
        "<@route,@r2:e@f>, <mailto:g@h>, John Smith, ;;:: ,<>\n"
        'From: "\\"quoted\\"" <\n\nbody\n'
    )
    parsed = parse(raw)
    addresses = [r[tags.SMTP_ADDRESS] for r in parsed.recipients]
    assert "c@d" in addresses
    assert "e@f" in addresses
    assert "g@h" in addresses
    assert all(addresses)
    assert tags.SENT_REPRESENTING_NAME not in parsed.props


def test_nul_bytes() -> None:
    raw = b"Subject: a\x00b\r\nFrom: x\x00y@example.com\r\n\r\nbody\x00text\r\n"
    p = parse(raw).props
    assert p[tags.SUBJECT] == "ab"
    assert p[tags.BODY] == "bodytext\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "x " * 50_000),
        ("To", ", ".join(f"User {i} <user{i}@example.com>" for i in range(3_000))),
        ("To", '"' * 100_000),
        ("To", "(" * 100_000),
        ("To", "\\" * 100_000),
        ("To", "," * 100_000),
        ("Content-Type", 'multipart/mixed; a="' + ";" * 100_000),
        ("Content-Type", "text/plain; " + '"' * 100_000),
        ("Content-Disposition", "attachment; filename=" + "a" * 100_000),
        ("Message-ID", "<" * 100_000),
        ("Received", "x; " + "1 " * 50_000),
        ("Date", "Tue, " * 20_000),
        ("Keywords", "a," * 50_000),
    ],
)
def test_header_line_of_100_kb(name: str, value: str) -> None:
    raw = f"{name}: {value}\r\nSubject: s\r\n\r\nbody\r\n".encode()
    parsed = parse(raw)
    assert parsed.props[tags.MESSAGE_SIZE] == len(raw)
    if name == "To" and value.startswith("User"):
        assert len(parsed.recipients) == 3_000


@pytest.mark.parametrize("depth", [200, 2_000])
def test_deeply_nested_multiparts(depth: int) -> None:
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in range(depth, -1, -1))
    raw = (
        b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + b"--b%d\r\nContent-Type: text/plain\r\n\r\nbottom\r\n" % depth
        + closing
    )
    parsed = parse(raw)
    assert parsed.props[tags.SUBJECT] == "deep"
    # Beyond what the stdlib parser can nest, the body is kept as text.
    assert "bottom" in str(parsed.props[tags.BODY])


def test_deeply_nested_messages() -> None:
    raw = b"Subject: bottom\r\n\r\nx\r\n"
    for _ in range(300):
        raw = b"Subject: level\r\nContent-Type: message/rfc822\r\n\r\n" + raw
    parsed = parse(raw)
    assert parsed.props[tags.SUBJECT] == "level"


def test_many_parts() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i for i in range(10_000))
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    parsed = parse(raw)
    assert parsed.props[tags.BODY] == "p0"


def test_last_resort_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(msg: object, props: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(mime_parse, "_sender_props", broken)
    parsed = parse_message(PLAIN)
    assert parsed.props[tags.MESSAGE_CLASS] == "IPM.Note"
    assert parsed.props[tags.MESSAGE_SIZE] == len(PLAIN)


def test_html_charset_from_meta_tag() -> None:
    raw = b'Content-Type: text/html\r\n\r\n<meta charset="shift_jis"><p>\x82\xa0</p>'
    assert parse(raw).props[tags.HTML] == '<meta charset="shift_jis"><p>あ</p>'.encode()


def test_headers_only_message() -> None:
    p = parse(b"Subject: no body\r\n").props
    assert p[tags.TRANSPORT_MESSAGE_HEADERS] == "Subject: no body\r\n"
    assert p[tags.BODY] == ""
    p = parse(b"\r\nno headers").props
    assert p[tags.TRANSPORT_MESSAGE_HEADERS] == ""
    assert p[tags.BODY] == "no headers"


# --- export ---------------------------------------------------------------------------------

SENT = datetime(2024, 2, 29, 12, 30, 15, tzinfo=UTC)


def sample_props() -> dict[int, object]:
    return {
        tags.SUBJECT: "Über alles",
        tags.SENT_REPRESENTING_NAME: "Alice",
        tags.SENT_REPRESENTING_SMTP_ADDRESS: "alice@example.com",
        tags.SENDER_NAME: "Assistant",
        tags.SENDER_SMTP_ADDRESS: "asst@example.com",
        tags.CLIENT_SUBMIT_TIME: SENT,
        tags.INTERNET_MESSAGE_ID: "<id1@example.com>",
        tags.IN_REPLY_TO_ID: "<id0@example.com>",
        tags.INTERNET_REFERENCES: "<root@example.com> <id0@example.com>",
        tags.IMPORTANCE: flags.IMPORTANCE_HIGH,
        tags.SENSITIVITY: flags.SENSITIVITY_PRIVATE,
        tags.READ_RECEIPT_REQUESTED: True,
        tags.BODY: "Plain text\r\n",
        tags.HTML: b"<p>Html <img src='cid:img1'></p>",
        tags.INTERNET_CPID: 65001,
    }


def recipient(rtype: int, name: str, addr: str) -> dict[int, object]:
    return {
        tags.RECIPIENT_TYPE: rtype,
        tags.DISPLAY_NAME: name,
        tags.SMTP_ADDRESS: addr,
        tags.ADDRTYPE: "SMTP",
        tags.EMAIL_ADDRESS: addr,
    }


def test_build_message() -> None:
    recipients = [
        recipient(flags.MAPI_TO, "Bob", "bob@example.org"),
        recipient(flags.MAPI_CC, "Müller, Hans", "hans@example.de"),
        recipient(flags.MAPI_BCC, "Secret", "secret@example.net"),
    ]
    attachments: list[tuple[dict[int, object], bytes]] = [
        (
            {tags.ATTACH_LONG_FILENAME: "report.pdf", tags.ATTACH_MIME_TAG: "application/pdf"},
            b"%PDF",
        ),
        (
            {
                tags.ATTACH_LONG_FILENAME: "img.png",
                tags.ATTACH_MIME_TAG: "image/png",
                tags.ATTACH_CONTENT_ID: "img1",
                tags.ATTACHMENT_HIDDEN: True,
            },
            b"\x89PNG",
        ),
        ({tags.ATTACH_METHOD: flags.ATTACH_EMBEDDED_MSG}, PLAIN),
    ]
    raw = build_message(sample_props(), recipients, attachments, {KEYWORDS: ["Red", "Blue"]})
    assert b"secret@example.net" not in raw
    assert all(b"\n" not in line and len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None
    assert msg["Importance"] == "high"
    assert msg["Sensitivity"] == "Private"
    assert msg["Disposition-Notification-To"] == "<alice@example.com>"
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
        "message/rfc822",
        "text/plain",  # the embedded message's body
    ]

    parsed = parse(raw)
    p = parsed.props
    assert p[tags.SUBJECT] == "Über alles"
    assert p[tags.SENT_REPRESENTING_NAME] == "Alice"
    assert p[tags.SENDER_SMTP_ADDRESS] == "asst@example.com"
    assert p[tags.CLIENT_SUBMIT_TIME] == SENT
    assert p[tags.INTERNET_MESSAGE_ID] == "<id1@example.com>"
    assert p[tags.IN_REPLY_TO_ID] == "<id0@example.com>"
    assert p[tags.INTERNET_REFERENCES] == "<root@example.com> <id0@example.com>"
    assert p[tags.IMPORTANCE] == flags.IMPORTANCE_HIGH
    assert p[tags.SENSITIVITY] == flags.SENSITIVITY_PRIVATE
    assert p[tags.READ_RECEIPT_REQUESTED] is True
    assert p[tags.BODY] == "Plain text\r\n"
    assert p[tags.HTML] == b"<p>Html <img src='cid:img1'></p>\r\n"
    assert parsed.named == {KEYWORDS: ["Red", "Blue"]}
    assert [(r[tags.RECIPIENT_TYPE], r[tags.DISPLAY_NAME]) for r in parsed.recipients] == [
        (flags.MAPI_TO, "Bob"),
        (flags.MAPI_CC, "Müller, Hans"),
    ]
    image, pdf, embedded = parsed.attachments
    assert image.props[tags.ATTACHMENT_HIDDEN] is True
    assert image.props[tags.ATTACH_CONTENT_ID] == "img1"
    assert image.data == b"\x89PNG"
    assert pdf.data == b"%PDF"
    assert embedded.props[tags.ATTACH_METHOD] == flags.ATTACH_EMBEDDED_MSG
    assert parse(embedded.data).props[tags.SUBJECT] == "RE: Quarterly numbers"


def test_build_embeds_8bit_message_unchanged() -> None:
    inner = b"Subject: caf\xe9\r\nContent-Type: text/plain; charset=latin-1\r\n\r\nna\xefve\r\n"
    attachments = [({tags.ATTACH_METHOD: flags.ATTACH_EMBEDDED_MSG}, inner.replace(b"\r\n", b"\n"))]
    raw = build_message({tags.SUBJECT: "fwd"}, [], attachments)
    (attachment,) = parse(raw).attachments
    assert attachment.data == inner
    assert attachment.props[tags.DISPLAY_NAME] == "café"


def test_build_long_non_ascii_filename() -> None:
    name = "Überweisungsbestätigung " * 5 + ".pdf"
    raw = build_message({}, [], [({tags.ATTACH_LONG_FILENAME: name}, b"%PDF")])
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    (attachment,) = parse(raw).attachments
    assert attachment.props[tags.ATTACH_LONG_FILENAME] == name.strip()
    assert attachment.props[tags.ATTACH_MIME_TAG] == "application/pdf"


def test_build_minimal_message() -> None:
    raw = build_message({}, [], [])
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Message-ID"]
    assert msg["Date"]
    assert msg.get_content_type() == "text/plain"
    assert msg["From"] is None


def test_build_keeps_text_that_looks_like_an_encoded_word() -> None:
    props = {
        tags.SUBJECT: "about =?utf-8?q?x?= words",
        tags.SENT_REPRESENTING_NAME: "=?utf-8?q?Eve?=",
        tags.SENT_REPRESENTING_SMTP_ADDRESS: "eve@example.com",
    }
    attachments = [({tags.ATTACH_LONG_FILENAME: "=?utf-8?q?a?=.txt"}, b"a")]
    parsed = parse(build_message(props, [], attachments))
    assert parsed.props[tags.SUBJECT] == "about =?utf-8?q?x?= words"
    assert parsed.props[tags.SENT_REPRESENTING_NAME] == "=?utf-8?q?Eve?="
    assert parsed.attachments[0].props[tags.ATTACH_LONG_FILENAME] == "=?utf-8?q?a?=.txt"


def test_build_rejects_header_injection() -> None:
    props = {
        tags.SUBJECT: "hi\r\nBcc: victim@example.com",
        tags.SENT_REPRESENTING_NAME: "x\r\nBcc: victim@example.com",
        tags.SENT_REPRESENTING_SMTP_ADDRESS: "x@example.com\r\nBcc: victim@example.com",
    }
    raw = build_message(props, [], [])
    assert not any(line.lower().startswith(b"bcc:") for line in header_lines(raw))


# --- properties -----------------------------------------------------------------------------

# Broad Unicode text: no control characters (they do not survive in headers) and no lone
# surrogates (not text at all).
TEXT = st.characters(exclude_categories=("Cc", "Cs"))
NAMES = st.text(TEXT, max_size=40)
ADDRESSES = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}@[a-z0-9-]{1,12}\.[a-z]{2,6}", fullmatch=True)
FILENAMES = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=60,
).filter(lambda s: bool(s.strip()))


def normalize_body(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


ZONES = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
BODY_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")  # all but surrogates and NUL
ATTACHMENT = st.fixed_dictionaries(
    {
        "name": FILENAMES,
        "data": st.binary(max_size=300),
        "cid": st.none() | st.from_regex(r"[a-z0-9.@$-]{1,20}", fullmatch=True),
        "hidden": st.booleans(),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    subject=st.text(TEXT, max_size=120),
    author=st.tuples(NAMES, ADDRESSES),
    to=st.lists(st.tuples(NAMES, ADDRESSES), max_size=4),
    cc=st.lists(st.tuples(NAMES, ADDRESSES), max_size=3),
    body=st.none() | st.text(BODY_TEXT, max_size=400),
    html=st.none() | st.text(BODY_TEXT, max_size=200),
    message_id=st.from_regex(r"<[a-z0-9.$]{1,20}@[a-z0-9.-]{1,20}>", fullmatch=True),
    files=st.lists(ATTACHMENT, max_size=3),
)
def test_import_export_round_trip(
    subject: str,
    author: tuple[str, str],
    to: list[tuple[str, str]],
    cc: list[tuple[str, str]],
    body: str | None,
    html: str | None,
    message_id: str,
    files: list[dict[str, Any]],
) -> None:
    props: dict[int, object] = {
        tags.SUBJECT: subject,
        tags.SENT_REPRESENTING_NAME: author[0],
        tags.SENT_REPRESENTING_SMTP_ADDRESS: author[1],
        tags.INTERNET_MESSAGE_ID: message_id,
    }
    if body is not None:
        props[tags.BODY] = body
    if html is not None:
        props[tags.HTML] = html.encode("utf-8")
    rows = [recipient(flags.MAPI_TO, n, a) for n, a in to]
    rows += [recipient(flags.MAPI_CC, n, a) for n, a in cc]
    attachments = []
    for f in files:
        row: dict[int, object] = {tags.ATTACH_LONG_FILENAME: f["name"]}
        if f["cid"] is not None:
            row[tags.ATTACH_CONTENT_ID] = f["cid"]
        row[tags.ATTACHMENT_HIDDEN] = f["hidden"]
        attachments.append((row, f["data"]))

    first = parse(build_message(props, rows, attachments))
    again = parse(
        build_message(
            first.props,
            first.recipients,
            [(a.props, a.data) for a in first.attachments],
            first.named,
        )
    )
    for parsed in (first, again):
        p = parsed.props
        assert p[tags.SUBJECT] == subject.strip()
        assert p[tags.SENT_REPRESENTING_SMTP_ADDRESS] == author[1]
        assert p[tags.SENT_REPRESENTING_NAME] == (author[0].strip() or author[1])
        assert p[tags.INTERNET_MESSAGE_ID] == message_id
        if body is not None:
            assert normalize_body(str(p[tags.BODY])) == normalize_body(body)
        elif html is not None:
            assert tags.BODY not in p
        if html is not None:
            html_bytes = p[tags.HTML]
            assert isinstance(html_bytes, bytes)
            assert normalize_body(html_bytes.decode()) == normalize_body(html)
        else:
            assert tags.HTML not in p
        expected = [(flags.MAPI_TO, n.strip() or a, a) for n, a in to]
        expected += [(flags.MAPI_CC, n.strip() or a, a) for n, a in cc]
        assert [
            (r[tags.RECIPIENT_TYPE], r[tags.DISPLAY_NAME], r[tags.SMTP_ADDRESS])
            for r in parsed.recipients
        ] == expected
        # Attachments related to the HTML body come first, the rest keep their order.
        got = [
            (
                a.props[tags.ATTACH_LONG_FILENAME],
                a.data,
                a.props.get(tags.ATTACH_CONTENT_ID),
                a.props[tags.ATTACHMENT_HIDDEN],
            )
            for a in parsed.attachments
        ]
        want = [
            (f["name"].strip(), f["data"], f["cid"], f["hidden"] and f["cid"] is not None)
            for f in files
        ]
        assert sorted(got, key=repr) == sorted(want, key=repr)
        assert p[tags.HASATTACH] is any(not hidden for *_, hidden in want)


VALID = build_message(
    sample_props(),
    [recipient(flags.MAPI_TO, "Bob", "bob@example.org")],
    [
        ({tags.ATTACH_LONG_FILENAME: "ü.bin"}, bytes(range(256))),
        ({tags.ATTACH_METHOD: flags.ATTACH_EMBEDDED_MSG}, EMBEDDED),
    ],
)
SEEDS = [PLAIN, ALTERNATIVE, ATTACHMENTS, INLINE_IMAGE, EMBEDDED, NDR, VALID]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    if raw.strip():
        parse(raw)
        check_values(parse_message(raw))
    else:
        with pytest.raises(MimeError):
            parse_message(raw)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[pos:pos] = draw(
                st.sampled_from([b"\r\n", b"\n\n", b"--", b"=?", b"?=", b'"', b"(", b"<", b"\x00"])
                | st.binary(min_size=1, max_size=8)
            )
        elif kind == "delete":
            del raw[pos : pos + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del raw[pos:]
        else:
            other = draw(st.sampled_from(SEEDS))
            raw[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_parse_never_raises_on_mutated_messages(raw: bytes) -> None:
    if raw.strip():
        parse(raw)
    else:
        with pytest.raises(MimeError):
            parse_message(raw)


@settings(max_examples=200, deadline=None)
@given(
    props=st.fixed_dictionaries(
        {},
        optional={
            tags.SUBJECT: st.text(),
            tags.SENT_REPRESENTING_NAME: st.text(),
            tags.SENT_REPRESENTING_SMTP_ADDRESS: st.text(),
            tags.SENDER_NAME: st.text(),
            tags.SENDER_EMAIL_ADDRESS: st.text(),
            tags.INTERNET_MESSAGE_ID: st.text(),
            tags.INTERNET_REFERENCES: st.text(),
            tags.BODY: st.text(),
            tags.HTML: st.binary(),
            tags.INTERNET_CPID: st.integers(-5, 70_000),
            tags.IMPORTANCE: st.integers(-1, 3),
            tags.CLIENT_SUBMIT_TIME: st.datetimes(timezones=st.none() | st.just(UTC) | ZONES),
        },
    ),
    rows=st.lists(
        st.fixed_dictionaries(
            {tags.RECIPIENT_TYPE: st.sampled_from([0, 1, 2, 3, 0x10000001])},
            optional={
                tags.DISPLAY_NAME: st.text(),
                tags.SMTP_ADDRESS: st.text() | ADDRESSES,
                tags.EMAIL_ADDRESS: st.text(),
                tags.ADDRTYPE: st.sampled_from(["SMTP", "EX", ""]),
            },
        ),
        max_size=6,
    ),
    files=st.lists(
        st.tuples(
            st.fixed_dictionaries(
                {},
                optional={
                    tags.ATTACH_LONG_FILENAME: st.text(),
                    tags.ATTACH_MIME_TAG: st.text() | st.just("multipart/mixed"),
                    tags.ATTACH_CONTENT_ID: st.text(),
                    tags.ATTACHMENT_HIDDEN: st.booleans(),
                    tags.ATTACH_METHOD: st.sampled_from([1, 5]),
                },
            ),
            st.binary(max_size=200),
        ),
        max_size=3,
    ),
    keywords=st.lists(st.text(), max_size=3),
)
def test_build_never_writes_bcc(
    props: dict[int, object],
    rows: list[dict[int, object]],
    files: list[tuple[dict[int, object], bytes]],
    keywords: list[str],
) -> None:
    marker = "bcc-only.invalid"
    rows = [*rows, recipient(flags.MAPI_BCC, "Blind", f"blind@{marker}")]
    raw = build_message(props, rows, files, {KEYWORDS: keywords})
    lines = header_lines(raw)
    assert not any(line.lower().startswith(b"bcc:") for line in lines)
    assert marker.encode() not in raw
    assert all(len(line) <= 998 for line in lines)
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    assert msg["Bcc"] is None
    parsed = parse(raw)
    assert all(r[tags.RECIPIENT_TYPE] != flags.MAPI_BCC for r in parsed.recipients)
