"""Calendar, task, note and contact items from and to their DAV resources.

Stable interface (the DAV sync and the REST and WebDAV paths call these):

- ``item_from_ical(data: bytes, *, notes: bool = False, floating_tz=None) -> NewItem`` — an
  iCalendar object (VEVENT → IPM.Appointment, VTODO → IPM.Task, VJOURNAL → IPM.StickyNote;
  ``notes=True`` makes any object a sticky note, for a notes collection; floating times are
  read in `floating_tz`, default the machine's zone).
- ``item_from_vcard(data: bytes) -> NewItem`` — a vCard (IPM.Contact, or IPM.DistList for a
  group).
- ``resource_bytes(source, message_class, props, recipients=(), attachments=(), *,
  names=None, named=None, uid=None) -> bytes`` — the .ics / .vcf to upload: the stored raw
  `source` with the changed mapped properties rewritten (byte-identical when none changed),
  else a new resource made from the properties.
- ``content_type_for(message_class) -> str`` — ``text/calendar`` or ``text/vcard``.
- ``split_props(props, names) -> (tagged, named)`` — store-tagged properties split with the
  store's NamedMap, JSON values turned into Python values.
- ``check_calendar_props(named)`` — raises ItemDataError when a client's calendar property
  cannot be used (a broken PidLidAppointmentRecur), before anything is stored.
- ``ItemDataError`` — raised by all of them for malformed input; the message says why.

The raw bytes become the item's source (``source_type`` text/calendar or text/vcard), kept
byte-exact, so whatever has no MAPI counterpart is never lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_render import render_ical, update_ical
from bridge.formats.ical_values import APPOINTMENT_RECUR, IcalError
from bridge.formats.parsed import ParsedItem
from bridge.formats.recur_blob_read import decode as decode_recurrence
from bridge.formats.vcard import VcardError, parse_vcard, render_vcard, update_vcard
from bridge.model import classes, flags, tags
from bridge.model.codec import from_json
from bridge.model.named import KNOWN, NamedProp
from bridge.model.proptypes import PropType
from bridge.store.item_base import NewItem
from bridge.store.named import NamedMap

ICAL_TYPE = "text/calendar"
VCARD_TYPE = "text/vcard"

# Properties the store computes itself; values parsed from a resource are dropped.
_COMPUTED = (tags.MESSAGE_SIZE, tags.HASATTACH, tags.DISPLAY_TO, tags.DISPLAY_CC, tags.DISPLAY_BCC)


class ItemDataError(ValueError):
    """A resource that is not a valid iCalendar object or vCard; the message says why."""


def check_calendar_props(named: Mapping[NamedProp, Any]) -> None:
    """ItemDataError when PidLidAppointmentRecur is set but is not a recurrence blob this
    bridge can read (truncated, foreign, Hijri, …); the message says why."""
    blob = named.get(APPOINTMENT_RECUR)
    if blob is None:
        return
    if not isinstance(blob, bytes | bytearray):
        raise ItemDataError("PidLidAppointmentRecur must be binary")
    if blob:
        try:
            decode_recurrence(bytes(blob))
        except IcalError as exc:
            raise ItemDataError(f"PidLidAppointmentRecur: {exc}") from None


def is_contact_class(message_class: str) -> bool:
    lower = message_class.lower()
    return lower.startswith((classes.IPM_CONTACT.lower(), classes.IPM_DISTLIST.lower()))


def content_type_for(message_class: str) -> str:
    return VCARD_TYPE if is_contact_class(message_class) else ICAL_TYPE


def _new_item(parsed: ParsedItem, data: bytes, source_type: str) -> NewItem:
    for computed in _COMPUTED:
        parsed.props.pop(computed, None)
    parsed.props[tags.MESSAGE_FLAGS] = flags.MSGFLAG_READ
    return NewItem(
        message_class=parsed.message_class,
        props=parsed.props,
        named=parsed.named,
        recipients=parsed.recipients,
        attachments=list(parsed.attachments),
        source=bytes(data),
        source_type=source_type,
    )


def item_from_ical(
    data: bytes, *, notes: bool = False, floating_tz: dt.tzinfo | None = None
) -> NewItem:
    """The item an iCalendar object becomes; raises ItemDataError."""
    try:
        parsed = parse_ical(data, floating_tz=floating_tz)
    except IcalError as exc:
        raise ItemDataError(str(exc)) from None
    if notes:
        parsed.message_class = classes.IPM_STICKYNOTE
    return _new_item(parsed, data, ICAL_TYPE)


def item_from_vcard(data: bytes) -> NewItem:
    """The item a vCard becomes; raises ItemDataError."""
    try:
        parsed = parse_vcard(data)
    except VcardError as exc:
        raise ItemDataError(str(exc)) from None
    return _new_item(parsed, data, VCARD_TYPE)


def _python(tag: int, value: Any) -> Any:
    """Stored JSON forms (RFC 3339 strings, base64) → Python values; Python values pass."""
    ptype = tag & 0xFFFF
    if isinstance(value, str) and ptype in (PropType.SYSTIME, PropType.BINARY):
        try:
            return from_json(ptype, value)
        except ValueError:
            return value
    is_mv = isinstance(value, list) and ptype & 0x1000 and value and isinstance(value[0], str)
    if is_mv and ptype & 0xFFF in (PropType.SYSTIME, PropType.BINARY):
        try:
            return from_json(ptype, value)
        except ValueError:
            return value
    return value


def split_props(
    props: Mapping[int, Any], names: NamedMap | None
) -> tuple[dict[int, Any], dict[NamedProp, Any]]:
    """Store-tagged properties → (tagged, named), with JSON values turned into Python."""
    tagged: dict[int, Any] = {}
    named: dict[NamedProp, Any] = {}
    for tag, value in props.items():
        pid = tag >> 16
        np = names.prop_for(pid) if names is not None and pid >= 0x8000 else None
        if np is not None:
            named[np] = _python(tag, value)
        else:
            tagged[tag] = _python(tag, value)
    return tagged, named


def resource_bytes(
    source: bytes | None,
    message_class: str,
    props: Mapping[int, Any],
    recipients: Sequence[Mapping[int, Any]] = (),
    attachments: Sequence[tuple[Mapping[int, Any], bytes]] = (),
    *,
    names: NamedMap | None = None,
    named: Mapping[NamedProp, Any] | None = None,
    uid: str | None = None,
) -> bytes:
    """The .ics or .vcf to upload for an item.

    `props` are keyed by tag; with `names` (the store's NamedMap, ``store.core.named``)
    named properties among them (ids 0x8000+) are resolved; `named` adds named properties
    keyed by NamedProp. Values may be Python values or their stored JSON forms. `source` is
    the item's stored raw resource, if any: it is updated in place (unchanged bytes when no
    mapped property changed). `uid` is used for a new resource when the item has none.
    Raises ItemDataError when `source` is broken."""
    tagged, resolved = split_props(props, names)
    for np, value in (named or {}).items():
        info = KNOWN.get(np)
        resolved[np] = _python(info.ptype, value) if info is not None else value
    rcpts = [{t: _python(t, v) for t, v in r.items()} for r in recipients]
    try:
        if is_contact_class(message_class):
            if source is not None:
                return update_vcard(source, message_class, tagged, resolved, attachments)
            return render_vcard(message_class, tagged, resolved, attachments, uid=uid)
        if source is not None:
            return update_ical(source, message_class, tagged, resolved, rcpts)
        return render_ical(message_class, tagged, resolved, rcpts, uid=uid)
    except (IcalError, VcardError) as exc:
        raise ItemDataError(str(exc)) from None
