"""How properties are kept: `{hex tag: canonical JSON value}` documents, hot columns that
mirror a few of them, and the properties the store computes instead of storing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from bridge.model import flags, tags
from bridge.model.codec import FILETIME_EPOCH, datetime_to_filetime, to_json
from bridge.model.named import PS_PUBLIC_STRINGS, NamedProp, PSETID_Appointment, PSETID_Task
from bridge.model.proptypes import MV_FLAG, PropType, hex_tag
from bridge.store.errors import InvalidValue

JsonProps = dict[int, Any]

KEYWORDS = NamedProp(PS_PUBLIC_STRINGS, name="Keywords")
APPT_START = NamedProp(PSETID_Appointment, lid=0x820D)
APPT_END = NamedProp(PSETID_Appointment, lid=0x820E)
TASK_DUE = NamedProp(PSETID_Task, lid=0x8105)

# Computed by the store on every read; a client that tries to set them gets an error.
COMPUTED_COMMON = frozenset(
    {
        tags.ENTRYID,
        tags.PARENT_ENTRYID,
        tags.RECORD_KEY,
        tags.SOURCE_KEY,
        tags.PARENT_SOURCE_KEY,
        tags.INSTANCE_KEY,
        tags.OBJECT_TYPE,
        tags.CREATION_TIME,
        tags.LAST_MODIFICATION_TIME,
        tags.CHANGE_NUMBER,
        tags.STORE_ENTRYID,
        tags.STORE_RECORD_KEY,
        tags.MAPPING_SIGNATURE,
        tags.ACCESS,
        tags.ACCESS_LEVEL,
    }
)
COMPUTED_ITEM = COMPUTED_COMMON | {
    tags.MESSAGE_SIZE,
    tags.MESSAGE_SIZE_EXTENDED,
    tags.HASATTACH,
    tags.DISPLAY_TO,
    tags.DISPLAY_CC,
    tags.DISPLAY_BCC,
    tags.MESSAGE_RECIPIENTS,
    tags.MESSAGE_ATTACHMENTS,
    tags.PARENT_DISPLAY,
    tags.CONVERSATION_ID,
}
COMPUTED_FOLDER = COMPUTED_COMMON | {
    tags.CONTENT_COUNT,
    tags.CONTENT_UNREAD,
    tags.ASSOC_CONTENT_COUNT,
    tags.SUBFOLDERS,
    tags.FOLDER_TYPE,
    tags.RIGHTS,
}

# Columns that mirror a property; (column, tag). Named ones are resolved per store.
HOT_TAGGED: tuple[tuple[str, int], ...] = (
    ("subject", tags.SUBJECT),
    ("received", tags.MESSAGE_DELIVERY_TIME),
    ("sent", tags.CLIENT_SUBMIT_TIME),
    ("importance", tags.IMPORTANCE),
    ("sensitivity", tags.SENSITIVITY),
)
HOT_COLUMN_OF_TAG = {tag: col for col, tag in HOT_TAGGED}


def dumps(doc: Mapping[str, Any]) -> str:
    """A stored document as compact JSON text. orjson also refuses lone surrogates, which
    is the one check the string fast path of `encode` leaves to it."""
    return dumps_utf8(doc).decode("utf-8")


def dumps_utf8(doc: Mapping[str, Any]) -> bytes:
    """`dumps` as UTF-8 bytes (bound as `CAST(? AS TEXT)`, the same stored text without a
    round trip through a Python string)."""
    try:
        return orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise InvalidValue(f"a property value cannot be stored: {exc}") from None


_KEYS: dict[int, str] = {}
MAX_KEYS = 4096


def key(tag: int) -> str:
    """The key of a property in a stored document."""
    found = _KEYS.get(tag)
    if found is None:
        found = hex_tag(tag)
        if len(_KEYS) < MAX_KEYS:
            _KEYS[tag] = found
    return found


_STRINGS = frozenset({PropType.UNICODE, PropType.STRING8})
_INTS: dict[int, tuple[int, int]] = {
    PropType.I2: (-(2**15), 2**15),
    PropType.LONG: (-(2**31), 2**32),
}


def encode(props: Mapping[int, Any]) -> dict[str, Any]:
    """Python values → the stored JSON document (validated by the codec; the common
    string, integer, boolean, UTC time and binary cases are checked here without it)."""
    out: dict[str, Any] = {}
    keys = _KEYS
    for tag, value in props.items():
        ptype = tag & 0xFFFF
        kind = type(value)
        name = keys.get(tag) or key(tag)
        if (
            (kind is str and ptype in _STRINGS)
            or (kind is int and ptype in _INTS and _INTS[ptype][0] <= value < _INTS[ptype][1])
            or (kind is bool and ptype == PropType.BOOLEAN)
        ):
            out[name] = value
        elif (
            kind is dt.datetime
            and ptype == PropType.SYSTIME
            and value.tzinfo is dt.UTC
            and value >= FILETIME_EPOCH
        ):
            # What the codec makes of it (format_utc), without its checks: the ISO form of a
            # UTC time, with microseconds only when there are any, and a Z for +00:00.
            out[name] = value.isoformat()[:-6] + "Z"
        elif kind is bytes and ptype == PropType.BINARY:
            out[name] = base64.b64encode(value).decode("ascii")
        else:
            out[name] = to_json(ptype, value)
    return out


def decode_doc(text: str) -> JsonProps:
    """The stored JSON document → {tag: JSON value}."""
    return {int(key, 16): value for key, value in json.loads(text).items()}


def filetime(value: Any) -> int | None:
    return datetime_to_filetime(value) if isinstance(value, dt.datetime) else None


def now_filetime() -> int:
    return datetime_to_filetime(dt.datetime.now(dt.UTC))


def sender_columns(props: Mapping[int, Any]) -> tuple[str | None, str | None]:
    name = props.get(tags.SENDER_NAME) or props.get(tags.SENT_REPRESENTING_NAME)
    email = (
        props.get(tags.SENDER_SMTP_ADDRESS)
        or props.get(tags.SENDER_EMAIL_ADDRESS)
        or props.get(tags.SENT_REPRESENTING_SMTP_ADDRESS)
        or props.get(tags.SENT_REPRESENTING_EMAIL_ADDRESS)
    )
    return (name if isinstance(name, str) else None, email if isinstance(email, str) else None)


def message_flags(props: Mapping[int, Any], has_attach: bool) -> int:
    value = props.get(tags.MESSAGE_FLAGS, 0)
    mflags = int(value) if isinstance(value, int) else 0
    if props.get(tags.READ) is True:
        mflags |= flags.MSGFLAG_READ
    elif props.get(tags.READ) is False:
        mflags &= ~flags.MSGFLAG_READ
    if has_attach:
        mflags |= flags.MSGFLAG_HASATTACH
    else:
        mflags &= ~flags.MSGFLAG_HASATTACH
    return mflags


def display_lists(recipients: Sequence[Mapping[int, Any]]) -> dict[int, str]:
    """PR_DISPLAY_TO / _CC / _BCC from the recipient rows ("; "-joined names)."""
    out: dict[int, list[str]] = {tags.DISPLAY_TO: [], tags.DISPLAY_CC: [], tags.DISPLAY_BCC: []}
    target = {
        flags.MAPI_TO: tags.DISPLAY_TO,
        flags.MAPI_CC: tags.DISPLAY_CC,
        flags.MAPI_BCC: tags.DISPLAY_BCC,
    }
    for rcpt in recipients:
        rtype = rcpt.get(tags.RECIPIENT_TYPE, flags.MAPI_TO)
        tag = target.get(rtype & 0xFF if isinstance(rtype, int) else flags.MAPI_TO)
        if tag is None:
            continue
        name = (
            rcpt.get(tags.DISPLAY_NAME)
            or rcpt.get(tags.SMTP_ADDRESS)
            or rcpt.get(tags.EMAIL_ADDRESS)
        )
        if isinstance(name, str) and name:
            out[tag].append(name)
    return {tag: "; ".join(names) for tag, names in out.items()}


def infer_type(value: Any) -> int:
    """A property type for a value (Python or JSON) of a named property never seen before."""
    if isinstance(value, dt.datetime):
        return PropType.SYSTIME
    if isinstance(value, bytes | bytearray):
        return PropType.BINARY
    if isinstance(value, uuid.UUID):
        return PropType.CLSID
    if isinstance(value, bool):
        return PropType.BOOLEAN
    if isinstance(value, int):
        return PropType.LONG if -(2**31) <= value < 2**31 else PropType.I8
    if isinstance(value, float):
        return PropType.DOUBLE
    if isinstance(value, list):
        if value and all(isinstance(v, dt.datetime) for v in value):
            return PropType.SYSTIME | MV_FLAG
        if value and all(isinstance(v, bytes) for v in value):
            return PropType.BINARY | MV_FLAG
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return PropType.LONG | MV_FLAG
        return PropType.UNICODE | MV_FLAG
    return PropType.UNICODE


def check_writable(props: Mapping[int, Any], computed: frozenset[int]) -> None:
    """Refuse computed and object properties in a write."""
    bad = computed.intersection(props)
    if bad:
        names = ", ".join(sorted(key(t) for t in bad))
        raise InvalidValue("read-only properties (computed by the store): " + names)
    for tag in props:
        if tag & 0xFFFF == PropType.OBJECT:
            raise InvalidValue(f"{key(tag)} is an object property; open it, do not set it")
