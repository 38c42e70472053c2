"""Item content in and out: what a PUT body becomes (mail, calendar, contact, note or
document item) and what a GET of an item without a raw source returns."""

from __future__ import annotations

from typing import Any

from bridge.formats.mime import MimeError, build_message
from bridge.model import classes, flags, tags
from bridge.store.calendar_items import (
    ItemDataError,
    item_from_ical,
    item_from_vcard,
    resource_bytes,
)
from bridge.store.items import NewItem
from bridge.store.named import NamedMap
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
    notes = (container_class or "").startswith(classes.IPF_STICKYNOTE)
    try:
        return item_from_ical(data, notes=notes)
    except ItemDataError as exc:
        raise ContentError(422, str(exc)) from None


def _vcard(data: bytes) -> NewItem:
    try:
        return item_from_vcard(data)
    except ItemDataError as exc:
        raise ContentError(422, str(exc)) from None


def render(
    props: dict[int, Any],
    recipients: list[dict[int, Any]],
    attachments: list[tuple[dict[int, Any], bytes]],
    ext: str,
    uid: str,
    names: NamedMap | None = None,
) -> bytes:
    """Content for an item that has no raw source (created through JSON properties)."""
    subject = str(props.get(tags.SUBJECT) or "")
    if ext in (".ics", ".vcf"):
        message_class = str(props.get(tags.MESSAGE_CLASS) or "")
        if ext == ".vcf" and not message_class.startswith(classes.IPM_DISTLIST):
            message_class = classes.IPM_CONTACT
        return resource_bytes(
            None, message_class, props, recipients, attachments, names=names, uid=uid
        )
    if ext == ".txt":
        return str(props.get(tags.BODY) or subject).encode("utf-8")
    return build_message(props, recipients, attachments)
