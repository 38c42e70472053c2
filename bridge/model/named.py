"""Named properties: property-set GUIDs, the well-known LIDs and names, and their JSON key syntax.

Key syntax: ``{PSETID_Appointment}:0x8205``, ``{00062002-0000-0000-C000-000000000046}:0x8205``
or ``{PS_PUBLIC_STRINGS}:Keywords``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from bridge.model.errors import PropKeyError
from bridge.model.proptypes import MV_FLAG, PropType

PSETID_Appointment = UUID("00062002-0000-0000-C000-000000000046")
PSETID_Task = UUID("00062003-0000-0000-C000-000000000046")
PSETID_Address = UUID("00062004-0000-0000-C000-000000000046")
PSETID_Common = UUID("00062008-0000-0000-C000-000000000046")
PSETID_Log = UUID("0006200A-0000-0000-C000-000000000046")
PSETID_Note = UUID("0006200E-0000-0000-C000-000000000046")
PSETID_Meeting = UUID("6ED8DA90-450B-101B-98DA-00AA003F1305")
PS_PUBLIC_STRINGS = UUID("00020329-0000-0000-C000-000000000046")
PS_INTERNET_HEADERS = UUID("00020386-0000-0000-C000-000000000046")
PS_MAPI = UUID("00020328-0000-0000-C000-000000000046")

SET_NAMES: dict[str, UUID] = {
    "PSETID_Appointment": PSETID_Appointment,
    "PSETID_Task": PSETID_Task,
    "PSETID_Address": PSETID_Address,
    "PSETID_Common": PSETID_Common,
    "PSETID_Log": PSETID_Log,
    "PSETID_Note": PSETID_Note,
    "PSETID_Meeting": PSETID_Meeting,
    "PS_PUBLIC_STRINGS": PS_PUBLIC_STRINGS,
    "PS_INTERNET_HEADERS": PS_INTERNET_HEADERS,
    "PS_MAPI": PS_MAPI,
}
SET_BY_GUID: dict[UUID, str] = {guid: name for name, guid in SET_NAMES.items()}
_SET_BY_LOWER = {name.lower(): guid for name, guid in SET_NAMES.items()}

MAX_LID = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, eq=False)
class NamedProp:
    """A named property: set GUID plus either a numeric LID (MNID_ID) or a string (MNID_STRING).

    A dictionary key met hundreds of thousands of times in a large pull: its hash is
    computed once, and a prop that comes out of a pickle (from a parse worker) is the one
    object this process already has for it, so that lookups end at the identity test."""

    guid: UUID
    lid: int | None = None
    name: str | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.lid is None) == (self.name is None):
            raise ValueError("a named property has exactly one of lid and name")
        if self.lid is not None and not 0 <= self.lid <= MAX_LID:
            raise ValueError(f"LID out of range: {self.lid}")
        if self.name is not None and (not self.name or "\x00" in self.name):
            raise ValueError("a property name must be non-empty and contain no NUL")
        object.__setattr__(self, "_hash", hash((self.guid.int, self.lid, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, NamedProp):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.lid == other.lid
            and self.name == other.name
            and self.guid == other.guid
        )

    def __reduce__(self) -> tuple[Any, tuple[bytes, int | None, str | None]]:
        # Not the hash: another process has other string hashes.
        return _unpickle, (self.guid.bytes, self.lid, self.name)


_INTERNED: dict[tuple[bytes, int | None, str | None], NamedProp] = {}
MAX_INTERNED = 4096  # names come from the outside too: the table stays bounded


def _unpickle(guid: bytes, lid: int | None, name: str | None) -> NamedProp:
    found = _INTERNED.get((guid, lid, name))
    return found if found is not None else interned(NamedProp(UUID(bytes=guid), lid, name))


def interned(np: NamedProp) -> NamedProp:
    """The object this process keeps for `np` (`np` itself when it is the first)."""
    key = (np.guid.bytes, np.lid, np.name)
    found = _INTERNED.get(key)
    if found is not None:
        return found
    if len(_INTERNED) < MAX_INTERNED:
        _INTERNED[key] = np
    return np


@dataclass(frozen=True, slots=True)
class NamedInfo:
    """A well-known named property: its canonical PidLid/PidName name and type."""

    prop: NamedProp
    canonical: str
    ptype: int


_U = PropType.UNICODE
_B = PropType.BINARY
_L = PropType.LONG
_T = PropType.SYSTIME
_F = PropType.BOOLEAN
_D = PropType.DOUBLE
_MVB = PropType.BINARY | MV_FLAG
_MVU = PropType.UNICODE | MV_FLAG

# (set, LID, name without "PidLid", type)
_LIDS: tuple[tuple[UUID, int, str, int], ...] = (
    (PSETID_Appointment, 0x820D, "AppointmentStartWhole", _T),
    (PSETID_Appointment, 0x820E, "AppointmentEndWhole", _T),
    (PSETID_Appointment, 0x8208, "Location", _U),
    (PSETID_Appointment, 0x8216, "AppointmentRecur", _B),
    (PSETID_Appointment, 0x8223, "Recurring", _F),
    (PSETID_Appointment, 0x8205, "BusyStatus", _L),
    (PSETID_Appointment, 0x8224, "IntendedBusyStatus", _L),
    (PSETID_Appointment, 0x8215, "AppointmentSubType", _F),
    (PSETID_Appointment, 0x8217, "AppointmentStateFlags", _L),
    (PSETID_Appointment, 0x8218, "ResponseStatus", _L),
    (PSETID_Appointment, 0x8213, "AppointmentDuration", _L),
    (PSETID_Appointment, 0x8201, "AppointmentSequence", _L),
    (PSETID_Appointment, 0x8233, "TimeZoneStruct", _B),
    (PSETID_Appointment, 0x8234, "TimeZoneDescription", _U),
    (PSETID_Appointment, 0x825E, "AppointmentTimeZoneDefinitionStartDisplay", _B),
    (PSETID_Appointment, 0x825F, "AppointmentTimeZoneDefinitionEndDisplay", _B),
    (PSETID_Appointment, 0x8260, "AppointmentTimeZoneDefinitionRecur", _B),
    (PSETID_Appointment, 0x8235, "ClipStart", _T),
    (PSETID_Appointment, 0x8236, "ClipEnd", _T),
    (PSETID_Appointment, 0x8238, "AllAttendeesString", _U),
    (PSETID_Appointment, 0x8232, "RecurrencePattern", _U),
    (PSETID_Appointment, 0x8231, "RecurrenceType", _L),
    (PSETID_Appointment, 0x8214, "AppointmentColor", _L),
    (PSETID_Meeting, 0x0003, "GlobalObjectId", _B),
    (PSETID_Meeting, 0x0023, "CleanGlobalObjectId", _B),
    (PSETID_Meeting, 0x0026, "MeetingType", _L),
    (PSETID_Common, 0x8503, "ReminderSet", _F),
    (PSETID_Common, 0x8501, "ReminderDelta", _L),
    (PSETID_Common, 0x8502, "ReminderTime", _T),
    (PSETID_Common, 0x8560, "ReminderSignalTime", _T),
    (PSETID_Common, 0x8516, "CommonStart", _T),
    (PSETID_Common, 0x8517, "CommonEnd", _T),
    (PSETID_Common, 0x8506, "Private", _F),
    (PSETID_Common, 0x8518, "TaskMode", _L),
    (PSETID_Common, 0x8530, "FlagRequest", _U),
    (PSETID_Common, 0x85A4, "ToDoTitle", _U),
    (PSETID_Common, 0x8549, "RecallTime", _T),
    (PSETID_Common, 0x2328, "Categories", _MVU),
    (PSETID_Address, 0x8080, "Email1DisplayName", _U),
    (PSETID_Address, 0x8082, "Email1AddressType", _U),
    (PSETID_Address, 0x8083, "Email1EmailAddress", _U),
    (PSETID_Address, 0x8084, "Email1OriginalDisplayName", _U),
    (PSETID_Address, 0x8085, "Email1OriginalEntryId", _B),
    (PSETID_Address, 0x8090, "Email2DisplayName", _U),
    (PSETID_Address, 0x8092, "Email2AddressType", _U),
    (PSETID_Address, 0x8093, "Email2EmailAddress", _U),
    (PSETID_Address, 0x8094, "Email2OriginalDisplayName", _U),
    (PSETID_Address, 0x8095, "Email2OriginalEntryId", _B),
    (PSETID_Address, 0x80A0, "Email3DisplayName", _U),
    (PSETID_Address, 0x80A2, "Email3AddressType", _U),
    (PSETID_Address, 0x80A3, "Email3EmailAddress", _U),
    (PSETID_Address, 0x80A4, "Email3OriginalDisplayName", _U),
    (PSETID_Address, 0x80A5, "Email3OriginalEntryId", _B),
    (PSETID_Address, 0x8005, "FileUnder", _U),
    (PSETID_Address, 0x8006, "FileUnderId", _L),
    (PSETID_Address, 0x8045, "WorkAddressStreet", _U),
    (PSETID_Address, 0x8046, "WorkAddressCity", _U),
    (PSETID_Address, 0x8047, "WorkAddressState", _U),
    (PSETID_Address, 0x8048, "WorkAddressPostalCode", _U),
    (PSETID_Address, 0x8049, "WorkAddressCountry", _U),
    (PSETID_Address, 0x8062, "InstantMessagingAddress", _U),
    (PSETID_Address, 0x802B, "Html", _U),
    (PSETID_Address, 0x8053, "DistributionListName", _U),
    (PSETID_Address, 0x8055, "DistributionListMembers", _MVB),
    (PSETID_Address, 0x8054, "DistributionListOneOffMembers", _MVB),
    (PSETID_Task, 0x8101, "TaskStatus", _L),
    (PSETID_Task, 0x8102, "PercentComplete", _D),
    (PSETID_Task, 0x8104, "TaskStartDate", _T),
    (PSETID_Task, 0x8105, "TaskDueDate", _T),
    (PSETID_Task, 0x810F, "TaskDateCompleted", _T),
    (PSETID_Task, 0x811C, "TaskComplete", _F),
    (PSETID_Task, 0x8126, "TaskFRecurring", _F),
    (PSETID_Task, 0x8116, "TaskRecurrence", _B),
    (PSETID_Task, 0x811F, "TaskOwner", _U),
    (PSETID_Task, 0x8121, "TaskAssigner", _U),
    (PSETID_Task, 0x8113, "TaskState", _L),
    (PSETID_Task, 0x8129, "TaskOwnership", _L),
    (PSETID_Note, 0x8B00, "NoteColor", _L),
    (PSETID_Note, 0x8B02, "NoteWidth", _L),
    (PSETID_Note, 0x8B03, "NoteHeight", _L),
    (PSETID_Note, 0x8B04, "NoteX", _L),
    (PSETID_Note, 0x8B05, "NoteY", _L),
    (PSETID_Log, 0x8700, "LogType", _U),
    (PSETID_Log, 0x8706, "LogStart", _T),
    (PSETID_Log, 0x8708, "LogEnd", _T),
)

# (set, string name, canonical name, type)
_NAMES: tuple[tuple[UUID, str, str, int], ...] = (
    (PS_PUBLIC_STRINGS, "Keywords", "PidNameKeywords", _MVU),
    (PS_PUBLIC_STRINGS, "urn:schemas:calendar:uid", "PidNameCalendarUid", _U),
    # Bridge-defined: the vCard UID of a contact or group, for lookup.
    (PS_PUBLIC_STRINGS, "urn:kbridge:vcard:uid", "PidNameVCardUid", _U),
)


def _build_known() -> dict[NamedProp, NamedInfo]:
    infos = [NamedInfo(NamedProp(g, lid=lid), "PidLid" + n, t) for g, lid, n, t in _LIDS]
    infos += [NamedInfo(NamedProp(g, name=name), c, t) for g, name, c, t in _NAMES]
    known = {info.prop: info for info in infos}
    if len(known) != len(infos):
        raise RuntimeError("duplicate named property in the known table")
    return known


KNOWN: dict[NamedProp, NamedInfo] = _build_known()
for _np in KNOWN:
    interned(_np)
_KNOWN_BY_NAME = {info.canonical.lower(): info for info in KNOWN.values()}


def known_by_name(canonical: str) -> NamedInfo | None:
    """Look up "PidLidBusyStatus" / "PidNameKeywords" (case-insensitive)."""
    return _KNOWN_BY_NAME.get(canonical.lower())


def format_set(guid: UUID) -> str:
    """The symbolic set name when known, else the uppercase GUID."""
    return SET_BY_GUID.get(guid) or str(guid).upper()


def format_named(np: NamedProp) -> str:
    """``{PSETID_Appointment}:0x8205`` or ``{PS_PUBLIC_STRINGS}:Keywords``."""
    what = f"0x{np.lid:04X}" if np.lid is not None else np.name
    return f"{{{format_set(np.guid)}}}:{what}"


_GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_LID_RE = re.compile(r"0[xX][0-9A-Fa-f]{1,8}")


def parse_set(text: str) -> UUID:
    """A set given by symbolic name (case-insensitive) or GUID, without braces."""
    guid = _SET_BY_LOWER.get(text.lower())
    if guid is not None:
        return guid
    if _GUID_RE.fullmatch(text):
        return UUID(text)
    raise PropKeyError(
        f"unknown property set {text!r}: use a GUID such as "
        f"00062002-0000-0000-C000-000000000046 or one of {', '.join(SET_NAMES)}"
    )


def parse_named(text: str) -> NamedProp:
    """Parse ``{SET}:0xLID`` or ``{SET}:Name``; raises PropKeyError."""
    if not text.startswith("{") or "}:" not in text:
        raise PropKeyError(
            f"bad named property {text!r}: expected {{PSETID_…}}:0xLID, {{GUID}}:0xLID "
            "or {PS_…}:Name"
        )
    set_text, _, what = text[1:].partition("}:")
    guid = parse_set(set_text)
    if not what:
        raise PropKeyError(f"bad named property {text!r}: missing LID or name after the set")
    if _LID_RE.fullmatch(what):
        return NamedProp(guid, lid=int(what, 16))
    if what[:2].lower() == "0x":
        raise PropKeyError(f"bad LID in {text!r}: expected 0x followed by 1-8 hex digits")
    if "\x00" in what:
        raise PropKeyError(f"bad named property {text!r}: the name contains NUL")
    return NamedProp(guid, name=what)
