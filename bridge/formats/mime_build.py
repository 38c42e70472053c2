"""RFC 5322 / MIME export: MAPI-shaped properties, recipients and attachments → message bytes.

The output is 7-bit clean (except an embedded 8-bit message), CRLF-terminated and folded at
78 columns. Bcc recipients are never written: a built message may go to any transport.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from io import BytesIO

from bridge.formats.mime_decode import scrub_line, scrub_text
from bridge.formats.mime_encode import (
    LONGEST_TOKEN,
    EncodedHeader,
    addr_spec,
    address_list,
    content_id,
    disposition,
    keyword_tokens,
    mailbox,
    unstructured,
)
from bridge.formats.mime_parse import KEYWORDS
from bridge.formats.mime_parts import RawBytesGenerator
from bridge.model import flags, tags
from bridge.model.named import NamedProp

# CRLF, 78 columns; text bodies as 7bit, quoted-printable or base64.
_POLICY = email_policy.SMTP.clone(cte_type="7bit")
_DEFAULT_DOMAIN = "kbridge.localhost"

_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")
_MSG_ID_BARE = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_EOL = re.compile(rb"\r\n|\r|\n")
_PATH_SEPARATORS = re.compile(r"[\\/]")

_IMPORTANCE = {flags.IMPORTANCE_HIGH: ("high", "1"), flags.IMPORTANCE_LOW: ("low", "5")}
_SENSITIVITY = {
    flags.SENSITIVITY_PERSONAL: "Personal",
    flags.SENSITIVITY_PRIVATE: "Private",
    flags.SENSITIVITY_COMPANY_CONFIDENTIAL: "Company-Confidential",
}
# Windows code page → Python codec, where "cp<n>" is not the name
_CODEPAGES = {
    65001: "utf-8",
    65000: "utf-7",
    20127: "ascii",
    1200: "utf-16-le",
    1201: "utf-16-be",
    20932: "euc-jp",
    51932: "euc-jp",
    50220: "iso2022-jp",
    50221: "iso2022-jp",
    50222: "iso2022-jp",
    51949: "euc-kr",
    936: "gbk",
    54936: "gb18030",
    52936: "hz",
    20866: "koi8-r",
    21866: "koi8-u",
    **{28590 + n: f"iso8859-{n}" for n in range(1, 16)},
}

_Node = Callable[[MIMEPart], None]


def build_message(
    props: Mapping[int, object],
    recipients: Sequence[Mapping[int, object]],
    attachments: Sequence[tuple[Mapping[int, object], bytes]],
    named: Mapping[NamedProp, object] | None = None,
) -> bytes:
    """An RFC 5322 message from properties, recipient rows and (row, content) attachments.

    Headers: From, Sender (when it differs), To and Cc — never Bcc —, Subject, Date,
    Message-ID (generated when absent), In-Reply-To, References, Thread-Topic, Thread-Index,
    Importance, Sensitivity, Keywords and Disposition-Notification-To. Body: BODY and/or HTML
    (multipart/alternative for both), hidden attachments with a Content-ID related to the
    HTML, the others attached; embedded messages (method 5) as message/rfc822.
    """
    msg = EmailMessage(policy=_POLICY)
    author = _address_headers(msg, props, recipients)
    _other_headers(msg, props, named or {}, author)
    _content(msg, props, attachments)
    out = BytesIO()
    RawBytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(msg)
    return out.getvalue()


# --- headers --------------------------------------------------------------------------------


def _text(props: Mapping[int, object], tag: int) -> str | None:
    value = props.get(tag)
    return scrub_line(value).strip() if isinstance(value, str) else None


def _smtp(props: Mapping[int, object], smtp_tag: int, email_tag: int, type_tag: int) -> str | None:
    smtp = _text(props, smtp_tag)
    if smtp:
        return smtp
    email = _text(props, email_tag)
    addrtype = (_text(props, type_tag) or "SMTP").upper()
    if email and (addrtype == "SMTP" or "@" in email):
        return email
    return None


def _address_headers(
    msg: EmailMessage,
    props: Mapping[int, object],
    recipients: Sequence[Mapping[int, object]],
) -> str | None:
    """From, Sender, To and Cc; returns the author's address."""
    author_addr = _smtp(
        props,
        tags.SENT_REPRESENTING_SMTP_ADDRESS,
        tags.SENT_REPRESENTING_EMAIL_ADDRESS,
        tags.SENT_REPRESENTING_ADDRTYPE,
    )
    sender_addr = _smtp(
        props, tags.SENDER_SMTP_ADDRESS, tags.SENDER_EMAIL_ADDRESS, tags.SENDER_ADDRTYPE
    )
    author = mailbox(_text(props, tags.SENT_REPRESENTING_NAME), author_addr)
    sender = mailbox(_text(props, tags.SENDER_NAME), sender_addr)
    if author is None:
        author, author_addr, sender = sender, sender_addr, None
    if author is not None:
        msg["From"] = EncodedHeader("From", author)
    if sender is not None and (sender_addr or "").lower() != (author_addr or "").lower():
        msg["Sender"] = EncodedHeader("Sender", sender)
    to: list[list[str]] = []
    cc: list[list[str]] = []
    for row in recipients:
        rtype = row.get(tags.RECIPIENT_TYPE, flags.MAPI_TO)
        if rtype not in (flags.MAPI_TO, flags.MAPI_CC):
            continue  # Bcc (and originator/P1 rows) never go into the headers
        box = mailbox(
            _text(row, tags.DISPLAY_NAME),
            _smtp(row, tags.SMTP_ADDRESS, tags.EMAIL_ADDRESS, tags.ADDRTYPE),
        )
        if box is not None:
            (to if rtype == flags.MAPI_TO else cc).append(box)
    if to:
        msg["To"] = EncodedHeader("To", address_list(to))
    if cc:
        msg["Cc"] = EncodedHeader("Cc", address_list(cc))
    return addr_spec(author_addr) if author is not None and author_addr else None


def message_ids(value: str | None) -> list[str]:
    """The <id> tokens of a message-id property (a bare id@host gets its brackets)."""
    if not value:
        return []
    found = _MSG_ID.findall(value)
    if not found and _MSG_ID_BARE.fullmatch(value):
        found = [f"<{value}>"]
    return [i for i in found if len(i) <= LONGEST_TOKEN]


def _other_headers(
    msg: EmailMessage,
    props: Mapping[int, object],
    named: Mapping[NamedProp, object],
    author: str | None,
) -> None:
    subject = _text(props, tags.SUBJECT)
    if subject is not None:
        msg["Subject"] = EncodedHeader("Subject", unstructured(subject))
    msg["Date"] = EncodedHeader(
        "Date", [format_datetime(_date(props.get(tags.CLIENT_SUBMIT_TIME)))]
    )
    ids = message_ids(_text(props, tags.INTERNET_MESSAGE_ID))
    domain = (author or "").rpartition("@")[2]
    domain = domain if _DOMAIN.fullmatch(domain) else _DEFAULT_DOMAIN
    msg["Message-ID"] = EncodedHeader("Message-ID", ids[:1] or [make_msgid(domain=domain)])
    for name, tag in (
        ("In-Reply-To", tags.IN_REPLY_TO_ID),
        ("References", tags.INTERNET_REFERENCES),
    ):
        ids = message_ids(_text(props, tag))
        if ids:
            msg[name] = EncodedHeader(name, ids)
    topic = _text(props, tags.CONVERSATION_TOPIC)
    if topic:
        msg["Thread-Topic"] = EncodedHeader("Thread-Topic", unstructured(topic))
    index = props.get(tags.CONVERSATION_INDEX)
    if isinstance(index, bytes) and index:
        msg["Thread-Index"] = EncodedHeader(
            "Thread-Index", [base64.b64encode(index).decode("ascii")]
        )
    importance = _IMPORTANCE.get(_int(props.get(tags.IMPORTANCE), 1))
    if importance is not None:
        msg["Importance"] = EncodedHeader("Importance", [importance[0]])
        msg["X-Priority"] = EncodedHeader("X-Priority", [importance[1]])
    sensitivity = _SENSITIVITY.get(_int(props.get(tags.SENSITIVITY), 0))
    if sensitivity is not None:
        msg["Sensitivity"] = EncodedHeader("Sensitivity", [sensitivity])
    keywords = named.get(KEYWORDS)
    if isinstance(keywords, list | tuple):
        words = [w for w in (scrub_line(k).strip() for k in keywords if isinstance(k, str)) if w]
        if words:
            msg["Keywords"] = EncodedHeader("Keywords", keyword_tokens(words))
    if props.get(tags.READ_RECEIPT_REQUESTED) is True and author is not None:
        msg["Disposition-Notification-To"] = EncodedHeader(
            "Disposition-Notification-To", [f"<{author}>"]
        )


def _date(value: object) -> datetime:
    """A UTC datetime for the Date header (a naive one is taken as UTC); now when unusable."""
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError):
            pass
    return datetime.now(UTC)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --- content --------------------------------------------------------------------------------


def _content(
    msg: EmailMessage,
    props: Mapping[int, object],
    attachments: Sequence[tuple[Mapping[int, object], bytes]],
) -> None:
    text = props.get(tags.BODY)
    plain = scrub_text(text) if isinstance(text, str) else None
    html = _html(props)
    related: list[_Node] = []
    others: list[_Node] = []
    for row, data in attachments:
        node = _attachment(row, data, inline_ok=html is not None)
        if node is None:
            continue
        inline, fill = node
        (related if inline else others).append(fill)

    body: list[_Node] = []
    if plain is not None:
        body.append(_text_node(plain, "plain"))
    if html is not None:
        html_node = _text_node(html, "html")
        body.append(_multipart("related", [html_node, *related]) if related else html_node)
    if not body and not others:
        body.append(_text_node("", "plain"))
    root = body[0] if len(body) == 1 else _multipart("alternative", body)
    if others:
        root = _multipart("mixed", ([root] if body else []) + others)
    msg["MIME-Version"] = "1.0"
    root(msg)


def _html(props: Mapping[int, object]) -> str | None:
    value = props.get(tags.HTML)
    if isinstance(value, str):
        return scrub_text(value)
    if not isinstance(value, bytes):
        return None
    cpid = _int(props.get(tags.INTERNET_CPID), 65001)
    for codec in (_CODEPAGES.get(cpid, f"cp{cpid}"), "utf-8"):
        try:
            return scrub_text(value.decode(codec))
        except (LookupError, UnicodeError):
            continue
    return scrub_text(value.decode("cp1252", "replace"))


def _text_node(text: str, subtype: str) -> _Node:
    def fill(part: MIMEPart) -> None:
        part.set_content(text, subtype=subtype, charset="utf-8")

    return fill


def _multipart(subtype: str, children: list[_Node]) -> _Node:
    def fill(part: MIMEPart) -> None:
        part["Content-Type"] = f"multipart/{subtype}"
        for child in children:
            sub = MIMEPart(policy=_POLICY)
            child(sub)
            part.attach(sub)

    return fill


def _filename(row: Mapping[int, object]) -> str | None:
    for tag in (tags.ATTACH_LONG_FILENAME, tags.ATTACH_FILENAME, tags.DISPLAY_NAME):
        value = _text(row, tag)
        if value:
            name = _PATH_SEPARATORS.split(value)[-1].strip()
            if name:
                return name
    return None


def _mime_type(row: Mapping[int, object], filename: str | None) -> tuple[str, str]:
    """The attachment's MIME type: its tag if valid, else a guess from the file name."""
    tag = (_text(row, tags.ATTACH_MIME_TAG) or "").split(";")[0].strip().lower()
    if not _MIME_TYPE.fullmatch(tag) and filename:
        tag = (mimetypes.guess_type(filename, strict=False)[0] or "").lower()
    maintype, _, subtype = tag.partition("/")
    if not _MIME_TYPE.fullmatch(tag) or maintype in ("multipart", "message"):
        return "application", "octet-stream"
    return maintype, subtype


def _attachment(
    row: Mapping[int, object], data: bytes, *, inline_ok: bool
) -> tuple[bool, _Node] | None:
    """(goes with the HTML body, filler) for one attachment; None when there is nothing to send."""
    content = bytes(data)
    stored = row.get(tags.ATTACH_DATA_BIN)
    if not content and isinstance(stored, bytes):
        content = stored
    filename = _filename(row)
    if row.get(tags.ATTACH_METHOD) == flags.ATTACH_EMBEDDED_MSG:
        if not content.strip():
            return None
        return False, _embedded_node(content, _text(row, tags.ATTACH_LONG_FILENAME))
    maintype, subtype = _mime_type(row, filename)
    cid = content_id(_text(row, tags.ATTACH_CONTENT_ID) or "")
    hidden = row.get(tags.ATTACHMENT_HIDDEN) is True

    def fill(part: MIMEPart) -> None:
        part.set_content(content, maintype, subtype)
        if cid:
            part["Content-ID"] = EncodedHeader("Content-ID", [f"<{cid}>"])
        part["Content-Disposition"] = disposition("inline" if hidden else "attachment", filename)

    return (hidden and bool(cid) and inline_ok), fill


def _embedded_node(content: bytes, filename: str | None) -> _Node:
    body = _EOL.sub(b"\r\n", content)

    def fill(part: MIMEPart) -> None:
        part["Content-Type"] = "message/rfc822"
        part["Content-Disposition"] = disposition("attachment", filename)
        part["Content-Transfer-Encoding"] = "7bit" if body.isascii() else "8bit"
        part.set_payload(body.decode("ascii", "surrogateescape"))

    return fill
