"""iCalendar ↔ MAPI value vocabularies: the named properties calendar items use, busy status,
sensitivity, importance, attendee status and role, task status, and the MS-OXCICAL encoding
of a UID as PidLidGlobalObjectId."""

from __future__ import annotations

import struct

from bridge.model.named import (
    PS_PUBLIC_STRINGS,
    NamedProp,
    PSETID_Appointment,
    PSETID_Common,
    PSETID_Meeting,
    PSETID_Task,
)


class IcalError(ValueError):
    """Bytes that are not an iCalendar object this bridge can hold; the message says why."""


def _a(lid: int) -> NamedProp:
    return NamedProp(PSETID_Appointment, lid=lid)


def _c(lid: int) -> NamedProp:
    return NamedProp(PSETID_Common, lid=lid)


def _t(lid: int) -> NamedProp:
    return NamedProp(PSETID_Task, lid=lid)


APPT_START = _a(0x820D)
APPT_END = _a(0x820E)
LOCATION = _a(0x8208)
BUSY_STATUS = _a(0x8205)
INTENDED_BUSY_STATUS = _a(0x8224)
ALL_DAY = _a(0x8215)
STATE_FLAGS = _a(0x8217)
DURATION = _a(0x8213)
SEQUENCE = _a(0x8201)
TZ_DESCRIPTION = _a(0x8234)
TZ_STRUCT = _a(0x8233)
TZ_DEFINITION_START = _a(0x825E)
TZ_DEFINITION_END = _a(0x825F)
TZ_DEFINITION_RECUR = _a(0x8260)
RECURRING = _a(0x8223)
RECURRENCE_PATTERN = _a(0x8232)
APPOINTMENT_RECUR = _a(0x8216)
CLIP_START = _a(0x8235)
CLIP_END = _a(0x8236)
ALL_ATTENDEES = _a(0x8238)
GLOBAL_OBJECT_ID = NamedProp(PSETID_Meeting, lid=0x0003)
CLEAN_GLOBAL_OBJECT_ID = NamedProp(PSETID_Meeting, lid=0x0023)
REMINDER_SET = _c(0x8503)
REMINDER_DELTA = _c(0x8501)
REMINDER_TIME = _c(0x8502)
REMINDER_SIGNAL_TIME = _c(0x8560)
COMMON_START = _c(0x8516)
COMMON_END = _c(0x8517)
PRIVATE = _c(0x8506)
TASK_STATUS = _t(0x8101)
PERCENT_COMPLETE = _t(0x8102)
TASK_START = _t(0x8104)
TASK_DUE = _t(0x8105)
TASK_COMPLETED = _t(0x810F)
TASK_COMPLETE = _t(0x811C)
TASK_RECURRING = _t(0x8126)
KEYWORDS = NamedProp(PS_PUBLIC_STRINGS, name="Keywords")
CALENDAR_UID = NamedProp(PS_PUBLIC_STRINGS, name="urn:schemas:calendar:uid")

# PidLidBusyStatus
FREE, TENTATIVE, BUSY, OOF, WORKING_ELSEWHERE = 0, 1, 2, 3, 4
BUSY_BY_CDO = {
    "FREE": FREE,
    "TENTATIVE": TENTATIVE,
    "BUSY": BUSY,
    "OOF": OOF,
    "WORKINGELSEWHERE": WORKING_ELSEWHERE,
}
CDO_BY_BUSY = {v: k for k, v in BUSY_BY_CDO.items()}

# PidTagSensitivity ↔ CLASS
SENSITIVITY_BY_CLASS = {
    "PUBLIC": 0,
    "PERSONAL": 1,
    "X-PERSONAL": 1,
    "PRIVATE": 2,
    "CONFIDENTIAL": 3,
}
CLASS_BY_SENSITIVITY = {0: "PUBLIC", 1: "X-PERSONAL", 2: "PRIVATE", 3: "CONFIDENTIAL"}


def importance_of(priority: int) -> int:
    """PRIORITY (1 highest … 9 lowest, 0 undefined) → PidTagImportance (0 low, 1, 2 high)."""
    if 1 <= priority <= 4:
        return 2
    if priority >= 6:
        return 0
    return 1


PRIORITY_BY_IMPORTANCE = {0: 9, 1: 5, 2: 1}

# PidTagRecipientTrackStatus ↔ PARTSTAT
TRACK_BY_PARTSTAT = {
    "NEEDS-ACTION": 5,
    "TENTATIVE": 2,
    "ACCEPTED": 3,
    "DECLINED": 4,
    "DELEGATED": 0,
}
PARTSTAT_BY_TRACK = {
    0: "NEEDS-ACTION",
    2: "TENTATIVE",
    3: "ACCEPTED",
    4: "DECLINED",
    5: "NEEDS-ACTION",
}

# Recipient flags (MS-OXOCAL): sendable, organizer.
RECIP_SENDABLE, RECIP_ORGANIZER = 0x1, 0x2

# PidLidTaskStatus ↔ STATUS
TASK_STATUS_BY_ICAL = {"NEEDS-ACTION": 0, "IN-PROCESS": 1, "COMPLETED": 2, "CANCELLED": 4}
ICAL_BY_TASK_STATUS = {
    0: "NEEDS-ACTION",
    1: "IN-PROCESS",
    2: "COMPLETED",
    3: "NEEDS-ACTION",
    4: "CANCELLED",
}

# MS-OXCICAL 2.1.3.1.1.20.26: the fixed head of a Global Object ID.
GOID_HEAD = bytes.fromhex("040000008200E00074C5B7101A82E008")
VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"


def global_object_id(uid: str, instance: tuple[int, int, int] | None = None) -> bytes:
    """PidLidGlobalObjectId for a UID: an Outlook UID (the hex of a Global Object ID) is
    decoded; any other UID is wrapped in the "vCal-Uid" form. `instance` (year, month, day)
    marks one occurrence; without it the result is also the PidLidCleanGlobalObjectId."""
    date = b"\x00\x00\x00\x00"
    if instance is not None:
        year, month, day = instance
        date = struct.pack(">HBB", year, month, day)
    raw: bytes | None = None
    if len(uid) >= 80 and uid[:32].upper() == GOID_HEAD.hex().upper():
        try:
            raw = bytes.fromhex(uid)
        except ValueError:
            raw = None
    if raw is not None and len(raw) >= 40:
        return raw[:16] + date + raw[20:]
    data = VCAL_UID + uid.encode("utf-8") + b"\x00"
    return GOID_HEAD + date + b"\x00" * 16 + struct.pack("<I", len(data)) + data


def uid_from_global_object_id(goid: bytes) -> str | None:
    """The UID a Global Object ID stands for (the inverse of `global_object_id`)."""
    if len(goid) < 40 or goid[:16] != GOID_HEAD:
        return None
    (size,) = struct.unpack("<I", goid[36:40])
    data = goid[40 : 40 + size]
    if data.startswith(VCAL_UID):
        return data[len(VCAL_UID) :].rstrip(b"\x00").decode("utf-8", "replace")
    clean = goid[:16] + b"\x00\x00\x00\x00" + goid[20:]
    return clean.hex().upper()
