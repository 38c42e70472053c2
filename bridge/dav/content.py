"""Item content in and out: what a PUT body becomes (mail, calendar, contact, note or
document item) and what a GET of an item without a raw source returns."""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar

from bridge.formats.mime import MimeError, build_message
from bridge.model import classes, flags, tags
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822

EML, ICS, VCF, TXT, DOC = "eml", "ics", "vcf", "txt", "document"
_BY_EXT = {".eml": EML, ".ics": ICS, ".vcf": VCF}
_BY_TYPE = {
    "message/rfc822": EML,
    "text/calendar": ICS,
    "text/vcard": VCF,
    "text/x-vcard": VCF,
}
# Folders of these container classes hold only their own kind of item.
_ONLY = {
    classes.IPF_APPOINTMENT: (ICS, "a calendar holds iCalendar (.ics) items"),
    classes.IPF_TASK: (ICS, "a task folder holds iCalendar (.ics) items"),
    classes.IPF_CONTACT: (VCF, "a contacts folder holds vCard (.vcf) items"),
}
_ICS_CLASSES = {"VEVENT": classes.IPM_APPOINTMENT, "VTODO": classes.IPM_TASK}


class ContentError(Exception):
    """A body the target cannot hold: `status` is 415 (wrong kind) or 422 (broken)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _family(container_class: str | None) -> str | None:
    if not container_class:
        return None
    for prefix in _ONLY:
        if container_class == prefix or container_class.startswith(prefix + "."):
            return prefix
    return None


def kind_of(name: str, content_type: str | None, container_class: str | None) -> str:
    """What a PUT of `name` into a folder of `container_class` creates."""
    ext = "." + name.rpartition(".")[2].lower() if "." in name else ""
    kind = _BY_EXT.get(ext)
    if kind is None and content_type:
        kind = _BY_TYPE.get(content_type.split(";")[0].strip().lower())
    is_notes = (container_class or "").startswith(classes.IPF_STICKYNOTE)
    if kind is None and ext == ".txt" and is_notes:
        kind = TXT
    family = _family(container_class)
    if family is not None:
        wanted, reason = _ONLY[family]
        if kind != wanted:
            raise ContentError(415, f"{reason}; '{name}' is not one")
    return kind or DOC


def parse(kind: str, name: str, data: bytes, container_class: str | None) -> NewItem:
    """The item a buffered (non-document) body becomes; raises ContentError."""
    if kind == EML:
        return _mail(data)
    if kind == ICS:
        return _calendar(data, container_class)
    if kind == VCF:
        return _vcard(data)
    text = _text(data, "a note")
    return NewItem(
        message_class=classes.IPM_STICKYNOTE,
        props={tags.SUBJECT: text.strip().split("\n", 1)[0][:255], tags.BODY: text},
        source=data,
        source_type="text/plain",
    )


def document(name: str, content_type: str | None) -> tuple[NewItem, dict[int, Any]]:
    """A document item and the properties of the attachment that holds the file."""
    mime = (content_type or "application/octet-stream").split(";")[0].strip()
    item = NewItem(
        message_class=_document_class(name),
        props={tags.SUBJECT: name, tags.DISPLAY_NAME: name, tags.MESSAGE_FLAGS: flags.MSGFLAG_READ},
    )
    att = {
        tags.ATTACH_LONG_FILENAME: name,
        tags.DISPLAY_NAME: name,
        tags.ATTACH_MIME_TAG: mime,
        tags.ATTACH_METHOD: flags.ATTACH_BY_VALUE,
    }
    return item, att


def _document_class(name: str) -> str:
    from bridge.dav.names import document_class

    return document_class(name)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ContentError(422, f"{what} must be UTF-8 text") from None


def _mail(data: bytes) -> NewItem:
    if not data.strip():
        raise ContentError(422, "an empty body is not an RFC 5322 message")
    try:
        return item_from_rfc822(data)
    except MimeError as exc:
        raise ContentError(422, f"not an RFC 5322 message: {exc}") from None


def _calendar(data: bytes, container_class: str | None) -> NewItem:
    text = _text(data, "an iCalendar object")
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        raise ContentError(422, "not an iCalendar object: it must start with BEGIN:VCALENDAR")
    if lines[-1].strip().upper() != "END:VCALENDAR":
        raise ContentError(422, "not an iCalendar object: it must end with END:VCALENDAR")
    try:
        cal = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise ContentError(422, f"not a valid iCalendar object: {exc}") from None
    components = [c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO", "VJOURNAL")]
    if not components:
        raise ContentError(422, "the iCalendar object holds no VEVENT, VTODO or VJOURNAL")
    first = components[0]
    if (container_class or "").startswith(classes.IPF_STICKYNOTE):
        message_class = classes.IPM_STICKYNOTE
    else:
        message_class = _ICS_CLASSES.get(str(first.name), classes.IPM_APPOINTMENT)
    props: dict[int, Any] = {}
    summary = first.get("SUMMARY")
    if summary is not None:
        props[tags.SUBJECT] = str(summary)
    for prop, tag in (("DTSTART", tags.START_DATE), ("DTEND", tags.END_DATE)):
        value = first.get(prop)
        when = getattr(value, "dt", None)
        if isinstance(when, dt.datetime):
            props[tag] = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return NewItem(
        message_class=message_class, props=props, source=data, source_type="text/calendar"
    )


def _vcard(data: bytes) -> NewItem:
    """A structural check (BEGIN/END:VCARD, VERSION, properties as NAME:VALUE lines); the
    full vCard parser comes with contact sync."""
    text = _text(data, "a vCard")
    unfolded = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    lines = [ln.strip() for ln in unfolded.split("\n") if ln.strip()]
    if not lines or lines[0].upper() != "BEGIN:VCARD" or lines[-1].upper() != "END:VCARD":
        raise ContentError(422, "not a vCard: it must be BEGIN:VCARD ... END:VCARD")
    depth = 0
    fn = None
    version = False
    for ln in lines:
        if ":" not in ln:
            raise ContentError(422, f"not a vCard: line without ':' ({ln[:40]!r})")
        name, _, value = ln.partition(":")
        key = name.split(";", 1)[0].upper()
        if key == "BEGIN":
            depth += 1
        elif key == "END":
            depth -= 1
            if depth < 0:
                raise ContentError(422, "not a vCard: END without BEGIN")
        elif key == "VERSION" and depth == 1:
            version = True
        elif key == "FN" and depth == 1 and fn is None:
            fn = value
    if depth != 0:
        raise ContentError(422, "not a vCard: BEGIN and END do not match")
    if not version:
        raise ContentError(422, "not a vCard: VERSION is missing")
    props: dict[int, Any] = {}
    if fn:
        props[tags.SUBJECT] = props[tags.DISPLAY_NAME] = fn
    return NewItem(
        message_class=classes.IPM_CONTACT, props=props, source=data, source_type="text/vcard"
    )


def render(
    props: dict[int, Any],
    recipients: list[dict[int, Any]],
    attachments: list[tuple[dict[int, Any], bytes]],
    ext: str,
    uid: str,
) -> bytes:
    """Content for an item that has no raw source (created through JSON properties)."""
    subject = str(props.get(tags.SUBJECT) or "")
    if ext == ".ics":
        cal = icalendar.Calendar()
        cal.add("prodid", "-//kbridge//EN")
        cal.add("version", "2.0")
        is_task = str(props.get(tags.MESSAGE_CLASS, "")).startswith(classes.IPM_TASK)
        comp = icalendar.Todo() if is_task else icalendar.Event()
        comp.add("uid", uid)
        comp.add("summary", subject)
        comp.add("dtstamp", dt.datetime.now(dt.UTC))
        for tag, prop in ((tags.START_DATE, "dtstart"), (tags.END_DATE, "dtend")):
            if isinstance(props.get(tag), dt.datetime):
                comp.add(prop, props[tag])
        cal.add_component(comp)
        return bytes(cal.to_ical())
    if ext == ".vcf":
        name = str(props.get(tags.DISPLAY_NAME) or subject)
        return f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nUID:{uid}\r\nEND:VCARD\r\n".encode()
    if ext == ".txt":
        return str(props.get(tags.BODY) or subject).encode("utf-8")
    return build_message(props, recipients, attachments)
