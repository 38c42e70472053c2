"""RFC 5322 / MIME import: the bytes of a message → MAPI-shaped properties, recipients and
attachments.

Parsing is lenient. Malformed MIME, raw 8-bit headers, unknown charsets, broken transfer
encodings, invalid dates and garbage addresses are decoded as far as they can be and skipped
where they cannot. The one error is MimeError, for input that is not a message at all.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser

from bridge.formats.mime_date import parse_date
from bridge.formats.mime_decode import (
    Decoded,
    decode_bytes,
    decode_bytes_as,
    guess_decode,
    header_text,
    parse_addresses,
    scrub_line,
    scrub_text,
    to_crlf,
)
from bridge.formats.mime_parts import (
    MAX_LONG,
    PARSE_POLICY,
    Leaf,
    attachment_props,
    body_parts,
    charset,
    content_type,
    header,
    headers,
    leaves,
    param,
    payload_bytes,
)
from bridge.formats.mime_split import SplitPart, header_end, split
from bridge.model import flags, tags
from bridge.model.named import PS_PUBLIC_STRINGS, NamedProp

log = logging.getLogger(__name__)

KEYWORDS = NamedProp(PS_PUBLIC_STRINGS, name="Keywords")

NATIVE_BODY_PLAIN = 1
NATIVE_BODY_HTML = 3
CPID_UTF8 = 65001
RECIPIENT_SENDABLE = 1

_MSG_ID = re.compile(r"<[^<>\s]*>")
_SUBJECT_PREFIX = re.compile(r"[^\W\d_]{1,3}:\s+")
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I
)

_IMPORTANCE = {"high": flags.IMPORTANCE_HIGH, "normal": 1, "low": flags.IMPORTANCE_LOW}
_PRIORITY = {"urgent": flags.IMPORTANCE_HIGH, "normal": 1, "non-urgent": flags.IMPORTANCE_LOW}
_SENSITIVITY = {
    "personal": flags.SENSITIVITY_PERSONAL,
    "private": flags.SENSITIVITY_PRIVATE,
    "company-confidential": flags.SENSITIVITY_COMPANY_CONFIDENTIAL,
}
_PKCS7_SIGNATURE = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_PKCS7_MIME = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_DELIVERED = frozenset({"delivered", "relayed", "expanded"})


class MimeError(ValueError):
    """The input is not an Internet message at all (empty or blank)."""


@dataclass
class ParsedAttachment:
    """One attachment row and its content (for message/rfc822: the embedded message), and
    the base64 text of the message the content was decoded from, where there is one
    (`mime_parts.base64_body` of it gives `data` again)."""

    props: dict[int, object]
    data: bytes
    encoded: bytes | None = None
    # Set when the content was not decoded (`parse_message(undecoded_min=...)`): `data` is
    # then b"", and base64_body(encoded) is the content, this many bytes.
    undecoded_size: int | None = None
    encoded_at: int = -1  # where `encoded` starts in the message (-1: not known)


@dataclass
class ParsedMessage:
    """A message as MAPI sees it: tagged and named properties, recipient and attachment rows."""

    props: dict[int, object] = field(default_factory=dict)
    named: dict[NamedProp, object] = field(default_factory=dict)
    recipients: list[dict[int, object]] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


# The properties that are the message's texts: its header block and its bodies. They are
# as large as the message's text and can be had from it again at any time (`message_texts`).
TEXT_TAGS = (tags.TRANSPORT_MESSAGE_HEADERS, tags.BODY, tags.HTML)


def parse_message(
    raw: bytes, *, undecoded_min: int | None = None, texts: bool = True
) -> ParsedMessage:
    """Parse an RFC 5322 message; raises MimeError only for empty or blank input. With
    `undecoded_min`, an attachment whose content is clean base64 text of the message and at
    least that many bytes is not decoded (`ParsedAttachment.undecoded_size`). Without
    `texts`, the properties of TEXT_TAGS are left out (`message_texts` gives them)."""
    raw = bytes(raw)
    if not raw or raw.isspace():  # (raw.strip() would copy the message)
        raise MimeError("not a message: the input is empty")
    try:
        return _parse(raw, undecoded_min, texts)
    except Exception:
        # Every step of _parse is meant to be lenient; this is the last line of defence.
        log.warning("MIME import failed, keeping the headers only", exc_info=True)
        minimal = _parse_minimal(raw)
        if not texts:
            minimal.props.pop(tags.TRANSPORT_MESSAGE_HEADERS)
        return minimal


def message_texts(raw: bytes) -> dict[int, object]:
    """The properties of TEXT_TAGS that `parse_message` gives for `raw`, found without
    reading the rest of the message (its dates, addresses and attachments)."""
    raw = bytes(raw)
    if not raw or raw.isspace():
        return {}
    props: dict[int, object] = {tags.TRANSPORT_MESSAGE_HEADERS: _header_block(raw)}
    try:
        plain, html = body_parts(leaves(_parse_tree(raw)))
        if plain is not None:
            props[tags.BODY] = _body_text(plain)
        if html is not None:
            props[tags.HTML] = _html(html)
    except Exception:  # as parse_message: the header block only
        log.warning("MIME texts unreadable, keeping the header block only", exc_info=True)
    return props


def _parse_tree(raw: bytes) -> Message:
    fast = split(raw, PARSE_POLICY)
    if fast is not None:
        return fast
    parser = BytesParser(policy=PARSE_POLICY)
    try:
        return parser.parsebytes(raw)
    except RecursionError:
        # MIME nested several hundred levels deep: keep the top-level headers and body.
        return parser.parsebytes(raw, headersonly=True)


def _parse(raw: bytes, undecoded_min: int | None = None, texts: bool = True) -> ParsedMessage:
    msg = _parse_tree(raw)
    result = ParsedMessage()
    props = result.props
    props[tags.MESSAGE_CLASS] = _message_class(msg)
    props[tags.MESSAGE_SIZE] = min(len(raw), MAX_LONG)
    if texts:
        props[tags.TRANSPORT_MESSAGE_HEADERS] = _header_block(raw)
    _subject_props(msg, props)
    _sender_props(msg, props)
    _time_props(msg, props)
    _id_props(msg, props)
    _flag_props(msg, props)
    keywords = _keywords(msg)
    if keywords:
        result.named[KEYWORDS] = keywords
    result.recipients = _recipients(msg, props)
    _content(msg, result, undecoded_min, texts)
    return result


def _parse_minimal(raw: bytes) -> ParsedMessage:
    return ParsedMessage(
        props={
            tags.MESSAGE_CLASS: "IPM.Note",
            tags.MESSAGE_SIZE: min(len(raw), MAX_LONG),
            tags.TRANSPORT_MESSAGE_HEADERS: _header_block(raw),
            tags.MESSAGE_FLAGS: 0,
            tags.HASATTACH: False,
        }
    )


# --- headers --------------------------------------------------------------------------------


def _header_block(raw: bytes) -> str:
    """The header section as text, CRLF-terminated lines; "" when the message has none."""
    if raw.startswith((b"\r\n", b"\n")):
        return ""
    span = header_end(raw)
    block = raw[: span[0]] if span else raw.rstrip(b"\r\n")
    return to_crlf(scrub_text(guess_decode(block))) + "\r\n"


def _message_class(msg: Message) -> str:
    ctype = content_type(msg)
    if ctype == "multipart/signed" and param(msg, "protocol") in _PKCS7_SIGNATURE:
        return "IPM.Note.SMIME.MultipartSigned"
    if ctype in _PKCS7_MIME:
        return "IPM.Note.SMIME"
    if ctype == "multipart/report":
        report = param(msg, "report-type")
        if report == "delivery-status":
            actions = _report_fields(msg, "message/delivery-status", "action")
            if actions and actions <= _DELIVERED:
                return "REPORT.IPM.Note.DR"
            return "REPORT.IPM.Note.NDR"
        if report == "disposition-notification":
            dispositions = _report_fields(msg, "message/disposition-notification", "disposition")
            if any("deleted" in d for d in dispositions):
                return "REPORT.IPM.Note.IPNNRN"
            return "REPORT.IPM.Note.IPNRN"
    return "IPM.Note"


def _report_fields(msg: Message, ctype: str, name: str) -> set[str]:
    """Lower-cased values of one field in the machine-readable part of a report."""
    values: set[str] = set()
    for leaf in leaves(msg):
        if leaf.ctype != ctype:
            continue
        if leaf.part.is_multipart():  # parsed: one header block per entry
            blocks = [b for b in leaf.part.get_payload() if isinstance(b, Message)]
            values.update(v.strip().lower() for b in blocks for v in headers(b, name))
        else:
            body = decode_bytes(payload_bytes(leaf.part), None)
            found = re.finditer(rf"^{name}:(.*)$", body, re.I | re.M)
            values.update(m.group(1).strip().lower() for m in found)
    return {v.split(";")[0].strip() if name == "action" else v for v in values}


def _subject_props(msg: Message, props: dict[int, object]) -> None:
    raw = header(msg, "subject")
    normalized = ""
    if raw is not None:
        subject = header_text(raw)
        match = _SUBJECT_PREFIX.match(subject)
        prefix = match.group(0) if match else ""
        normalized = subject[len(prefix) :]
        props[tags.SUBJECT] = subject
        props[tags.SUBJECT_PREFIX] = prefix
        props[tags.NORMALIZED_SUBJECT] = normalized
    topic = header(msg, "thread-topic")
    if topic is not None:
        props[tags.CONVERSATION_TOPIC] = header_text(topic)
    elif raw is not None:
        props[tags.CONVERSATION_TOPIC] = normalized
    index = header(msg, "thread-index")
    if index is not None:
        try:
            data = base64.b64decode("".join(index.split()), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        # A header block of 22 bytes, then 5 bytes per reply (MS-OXOMSG 2.2.1.3).
        if len(data) >= 22 and (len(data) - 22) % 5 == 0:
            props[tags.CONVERSATION_INDEX] = data


def _first_mailbox(msg: Message, name: str) -> tuple[str, str] | None:
    for value in headers(msg, name):
        found = parse_addresses(value)
        if found:
            return found[0]
    return None


def _sender_props(msg: Message, props: dict[int, object]) -> None:
    author = _first_mailbox(msg, "from")
    sender = _first_mailbox(msg, "sender") or author
    author = author or sender
    for box, name_tag, email_tag, type_tag, smtp_tag in (
        (
            sender,
            tags.SENDER_NAME,
            tags.SENDER_EMAIL_ADDRESS,
            tags.SENDER_ADDRTYPE,
            tags.SENDER_SMTP_ADDRESS,
        ),
        (
            author,
            tags.SENT_REPRESENTING_NAME,
            tags.SENT_REPRESENTING_EMAIL_ADDRESS,
            tags.SENT_REPRESENTING_ADDRTYPE,
            tags.SENT_REPRESENTING_SMTP_ADDRESS,
        ),
    ):
        if box is None:
            continue
        name, addr = box
        props[name_tag] = name or addr
        props[email_tag] = addr
        props[type_tag] = "SMTP"
        props[smtp_tag] = addr


def _time_props(msg: Message, props: dict[int, object]) -> None:
    date_value = header(msg, "date")
    sent = parse_date(date_value) if date_value is not None else None
    if sent is not None:
        props[tags.CLIENT_SUBMIT_TIME] = sent
    received = header(msg, "received")
    delivered = parse_date(received.rpartition(";")[2]) if received and ";" in received else None
    if delivered is None:
        delivered = sent
    if delivered is not None:
        props[tags.MESSAGE_DELIVERY_TIME] = delivered


def _ids(value: str) -> str:
    """The <msg-id> tokens of a header, space-separated; the cleaned value when there are none."""
    clean = scrub_line(value).strip()
    found = _MSG_ID.findall(clean)
    return " ".join(found) if found else clean


def _id_props(msg: Message, props: dict[int, object]) -> None:
    for name, tag in (
        ("message-id", tags.INTERNET_MESSAGE_ID),
        ("in-reply-to", tags.IN_REPLY_TO_ID),
        ("references", tags.INTERNET_REFERENCES),
    ):
        value = header(msg, name)
        if value is None:
            continue
        ids = _ids(value)
        if tag == tags.INTERNET_MESSAGE_ID:
            ids = ids.split(" ", 1)[0]
        if ids:
            props[tag] = ids


def _flag_props(msg: Message, props: dict[int, object]) -> None:
    importance = 1
    value = header(msg, "importance")
    priority = header(msg, "x-priority") or header(msg, "x-msmail-priority")
    if value is not None and value.strip().lower() in _IMPORTANCE:
        importance = _IMPORTANCE[value.strip().lower()]
    elif priority is not None and priority.strip():
        level = priority.strip().lower()
        if level[0] in "12" or level.startswith("high"):
            importance = flags.IMPORTANCE_HIGH
        elif level[0] in "45" or level.startswith("low"):
            importance = flags.IMPORTANCE_LOW
    elif (value := header(msg, "priority")) is not None:
        importance = _PRIORITY.get(value.strip().lower(), 1)
    props[tags.IMPORTANCE] = importance
    sensitivity = header(msg, "sensitivity")
    props[tags.SENSITIVITY] = _SENSITIVITY.get((sensitivity or "").strip().lower(), 0)
    props[tags.READ_RECEIPT_REQUESTED] = header(msg, "disposition-notification-to") is not None


def _keywords(msg: Message) -> list[str]:
    found: list[str] = []
    for value in headers(msg, "keywords"):
        for word in header_text(value).split(","):
            word = word.strip()
            if word and word not in found:
                found.append(word)
    return found


def _recipients(msg: Message, props: dict[int, object]) -> list[dict[int, object]]:
    rows: list[dict[int, object]] = []
    for name, rtype, display_tag in (
        ("to", flags.MAPI_TO, tags.DISPLAY_TO),
        ("cc", flags.MAPI_CC, tags.DISPLAY_CC),
        ("bcc", flags.MAPI_BCC, tags.DISPLAY_BCC),
    ):
        names: list[str] = []
        for value in headers(msg, name):
            for display, addr in parse_addresses(value):
                display = display or addr
                names.append(display)
                rows.append(
                    {
                        tags.RECIPIENT_TYPE: rtype,
                        tags.DISPLAY_NAME: display,
                        tags.EMAIL_ADDRESS: addr,
                        tags.ADDRTYPE: "SMTP",
                        tags.SMTP_ADDRESS: addr,
                        tags.ROWID: len(rows),
                        tags.RECIPIENT_FLAGS: RECIPIENT_SENDABLE,
                    }
                )
        props[display_tag] = "; ".join(names)
    return rows


# --- content --------------------------------------------------------------------------------


def _content(
    msg: Message, result: ParsedMessage, undecoded_min: int | None, texts: bool = True
) -> None:
    props = result.props
    parts = leaves(msg)
    plain, html = body_parts(parts)
    if plain is not None and texts:
        props[tags.BODY] = _body_text(plain)
    if html is not None:
        if texts:
            props[tags.HTML] = _html(html)
        props[tags.INTERNET_CPID] = CPID_UTF8
    if html is not None or plain is not None:
        props[tags.NATIVE_BODY_INFO] = NATIVE_BODY_HTML if html is not None else NATIVE_BODY_PLAIN
    for leaf in parts:
        if leaf is plain or leaf is html:
            continue
        attachment = attachment_props(leaf, len(result.attachments), undecoded_min)
        if attachment is not None:
            result.attachments.append(ParsedAttachment(*attachment))
    visible = any(not a.props.get(tags.ATTACHMENT_HIDDEN) for a in result.attachments)
    props[tags.HASATTACH] = visible
    props[tags.MESSAGE_FLAGS] = flags.MSGFLAG_HASATTACH if visible else 0


def _decoded(leaf: Leaf, *, sniff: bool = False) -> tuple[Decoded, bytes]:
    """A text part decoded (for HTML without a charset parameter, per its <meta> tag), and
    the bytes it was decoded from."""
    data = payload_bytes(leaf.part)
    label = charset(leaf.part)
    if label is None and sniff:
        match = _META_CHARSET.search(data[:4096])
        label = match.group(1).decode("ascii") if match else None
    return decode_bytes_as(data, label), data


def _body_text(leaf: Leaf) -> str:
    """The text of a plain body part, CRLF-terminated lines."""
    decoded, data = _decoded(leaf)
    part = leaf.part
    if (
        decoded.same_breaks
        and isinstance(part, SplitPart)
        and data is part.raw_body
        and data.count(b"\r") == data.count(b"\n")
    ):
        # The bytes stand as such in a message the splitter took, which has no bare CR:
        # each CR is followed by an LF, so with as many CRs as LFs every line break is a
        # CRLF, and to_crlf would give the text back. These two counts of single bytes
        # cost half of to_crlf's three in the text (one of them of a two-character string).
        return decoded.text
    return to_crlf(decoded.text)


def _html(leaf: Leaf) -> bytes:
    """The HTML of a body part as UTF-8."""
    decoded, data = _decoded(leaf, sniff=True)
    if decoded.utf8 and type(data) is bytes:
        return data  # what encoding the text again would give
    return decoded.text.encode("utf-8")
