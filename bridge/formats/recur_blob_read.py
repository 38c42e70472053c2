"""Reading Outlook's recurrence blob (PidLidAppointmentRecur, [MS-OXOCAL] 2.2.1.44.5) back
into a `Series`; the layout and the encoder are in `recur_blob`.

Every length and count is checked against the bytes that are there: a truncated or foreign
blob gives a RecurBlobError saying what and where, never an IndexError or struct.error.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import NamedTuple

from bridge.formats import recur_blob as R
from bridge.formats.recur_blob import Override, RecurBlobError, Series

MAX_BLOB = 4 * 1024 * 1024


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise RecurBlobError(
                f"the recurrence blob is truncated: {what} at byte {self.pos} needs {size} "
                f"bytes, {len(self.data) - self.pos} are left"
            )
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def left(self) -> int:
        return len(self.data) - self.pos


def _when(value: int, what: str) -> dt.datetime:
    try:
        return R.from_minutes(value)
    except OverflowError:
        raise RecurBlobError(f"the recurrence blob has an impossible {what}") from None


def _day(value: int, what: str) -> dt.date:
    return _when(value, what).date()


def _days(mask: int) -> tuple[str, ...]:
    days = R.mask_days(mask & 0x7F)
    if not days or mask & ~0x7F:
        raise RecurBlobError(f"the recurrence blob has a bad day-of-week mask 0x{mask:X}")
    return days


class _Pattern(NamedTuple):
    freq: str
    interval: int
    byday: tuple[str, ...] = ()
    setpos: int | None = None
    monthday: int | None = None


def _pattern(b: _Bytes, code: int, ptype: int, period: int) -> _Pattern:
    """The Series fields for RecurFrequency, PatternType, Period and PatternTypeSpecific."""
    if ptype in R.PT_HIJRI:
        raise RecurBlobError("Hijri-calendar recurrences are not supported")
    freqs = {v: k for k, v in R.FREQ_CODE.items()}
    if code not in freqs:
        raise RecurBlobError(f"the recurrence blob has an unknown RecurFrequency 0x{code:04X}")
    freq = freqs[code]
    if period < 1:
        raise RecurBlobError("the recurrence blob has a Period of 0")
    if ptype == R.PT_DAY and freq == "DAILY":
        if period % 1440:
            raise RecurBlobError("a daily recurrence needs a Period of whole days")
        return _Pattern(freq, period // 1440)
    if ptype == R.PT_WEEK and freq in ("DAILY", "WEEKLY"):
        days = _days(b.u32("the days of the week"))
        return _Pattern(freq, 1 if freq == "DAILY" else period, days)
    if ptype in (R.PT_MONTH, R.PT_MONTH_END, R.PT_MONTH_NTH) and freq in ("MONTHLY", "YEARLY"):
        if freq == "YEARLY" and period % 12:
            raise RecurBlobError("a yearly recurrence needs a Period of whole years")
        interval = period // 12 if freq == "YEARLY" else period
        if ptype == R.PT_MONTH_NTH:
            days = _days(b.u32("the days of the week"))
            nth = b.u32("the week of the month")
            if nth not in (1, 2, 3, 4, R.LAST_NTH):
                raise RecurBlobError(f"the recurrence blob has a bad week of the month {nth}")
            return _Pattern(freq, interval, days, -1 if nth == R.LAST_NTH else nth)
        day = b.u32("the day of the month")
        if ptype == R.PT_MONTH_END:
            return _Pattern(freq, interval, monthday=-1)
        if not 1 <= day <= 31:
            raise RecurBlobError(f"the recurrence blob has a bad day of the month {day}")
        return _Pattern(freq, interval, monthday=day)
    raise RecurBlobError(
        f"the recurrence blob has PatternType 0x{ptype:04X} with RecurFrequency 0x{code:04X}"
    )


def _text(b: _Bytes, what: str) -> str:
    b.u16(what + " length")
    size = b.u16(what + " length")
    return b.take(size, what).decode("cp1252", "replace")


def _wide(b: _Bytes, what: str) -> str:
    size = b.u16(what + " length")
    return b.take(size * 2, what).decode("utf-16-le", "replace")


def _exception(b: _Bytes) -> tuple[Override, int]:
    start = _when(b.u32("an exception's start"), "exception start")
    end = _when(b.u32("an exception's end"), "exception end")
    original = _when(b.u32("an exception's original start"), "exception original start")
    flags = b.u16("an exception's OverrideFlags")
    subject = location = None
    busy = None
    if flags & R.ARO_SUBJECT:
        subject = _text(b, "an exception's subject")
    for flag in (R.ARO_MEETINGTYPE, R.ARO_REMINDERDELTA, R.ARO_REMINDER):
        if flags & flag:
            b.u32("an exception's meeting type or reminder")
    if flags & R.ARO_LOCATION:
        location = _text(b, "an exception's location")
    if flags & R.ARO_BUSYSTATUS:
        busy = b.u32("an exception's busy status")
    for flag in (R.ARO_ATTACHMENT, R.ARO_SUBTYPE, R.ARO_APPTCOLOR):
        if flags & flag:
            b.u32("an exception's attachment, subtype or color")
    return Override(original, start, end, subject, location, busy), flags


def _extended(b: _Bytes, o: Override, flags: int, version2: int) -> Override:
    if version2 >= 0x3009:
        size = b.u32("ChangeHighlightSize")
        b.take(size, "ChangeHighlight")
    b.take(b.u32("ReservedBlockEE1Size"), "ReservedBlockEE1")
    if not flags & (R.ARO_SUBJECT | R.ARO_LOCATION):
        return o
    b.take(12, "an extended exception's dates")
    subject, location = o.subject, o.location
    if flags & R.ARO_SUBJECT:
        subject = _wide(b, "an exception's subject")
    if flags & R.ARO_LOCATION:
        location = _wide(b, "an exception's location")
    b.take(b.u32("ReservedBlockEE2Size"), "ReservedBlockEE2")
    return Override(o.original_start, o.start, o.end, subject, location, o.busy_status)


def decode(data: bytes) -> Series:
    """The series an AppointmentRecurrencePattern describes; RecurBlobError when the bytes
    are not one (wrong version, truncated, unknown pattern, Hijri calendar, …)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RecurBlobError("the recurrence blob must be binary")
    if len(data) > MAX_BLOB:
        raise RecurBlobError("the recurrence blob is too large")
    b = _Bytes(bytes(data))
    reader, writer = b.u16("ReaderVersion"), b.u16("WriterVersion")
    if reader != R.READER_VERSION or writer != R.WRITER_VERSION:
        raise RecurBlobError(
            f"not a recurrence blob: versions 0x{reader:04X}/0x{writer:04X}, not 0x3004"
        )
    code, ptype, cal_type = b.u16("RecurFrequency"), b.u16("PatternType"), b.u16("CalendarType")
    if cal_type not in (0, 1, 2):
        raise RecurBlobError(f"calendar type {cal_type} is not supported (only Gregorian)")
    first = b.u32("FirstDateTime")
    period = b.u32("Period")
    b.u32("SlidingFlag")
    pat = _pattern(b, code, ptype, period)
    end_type, count, first_dow = b.u32("EndType"), b.u32("OccurrenceCount"), b.u32("FirstDOW")
    if first_dow > 6:
        raise RecurBlobError(f"the recurrence blob has a bad FirstDOW {first_dow}")
    deleted = [b.u32("a deleted date") for _ in range(_count(b, "DeletedInstanceCount"))]
    modified = [b.u32("a modified date") for _ in range(_count(b, "ModifiedInstanceCount"))]
    start_date = _day(b.u32("StartDate"), "StartDate")
    end_date = _day(b.u32("EndDate"), "EndDate")
    version2 = (b.u32("ReaderVersion2"), b.u32("WriterVersion2"))
    if version2[0] != R.READER_VERSION2:
        raise RecurBlobError(f"not an appointment recurrence blob: 0x{version2[0]:X}")
    start_offset, end_offset = b.u32("StartTimeOffset"), b.u32("EndTimeOffset")
    if end_offset < start_offset or start_offset >= 1440:
        raise RecurBlobError("the recurrence blob's time offsets are out of order")
    n = b.u16("ExceptionCount")
    if n != len(modified):
        raise RecurBlobError("ExceptionCount differs from ModifiedInstanceCount")
    infos = [_exception(b) for _ in range(n)]
    b.take(b.u32("ReservedBlock1Size"), "ReservedBlock1")
    overrides = [o for o, _ in infos]
    if n and b.left() > 4:  # writers before 0x3009 may leave the extended part out
        overrides = [_extended(b, o, flags, version2[1]) for o, flags in infos]
    b.take(b.u32("ReservedBlock2Size"), "ReservedBlock2")
    if end_type not in (R.END_COUNT, R.END_DATE, R.END_NEVER, R.END_NEVER_OLD):
        raise RecurBlobError(f"the recurrence blob has an unknown EndType 0x{end_type:X}")
    moved = {o.original_start.date() for o in overrides}
    gone = sorted({_day(d, "a deleted date") for d in deleted} - moved)
    return Series(
        freq=pat.freq,
        start=dt.datetime.combine(start_date, dt.time()) + dt.timedelta(minutes=start_offset),
        duration=end_offset - start_offset,
        interval=pat.interval,
        byday=pat.byday,
        setpos=pat.setpos,
        monthday=pat.monthday,
        month=_when(first, "FirstDateTime").month if pat.freq == "YEARLY" else None,
        count=count if end_type == R.END_COUNT else None,
        until=end_date if end_type == R.END_DATE else None,
        wkst=R.DAYS[first_dow],
        deleted=tuple(gone),
        overrides=tuple(sorted(overrides, key=lambda o: o.original_start)),
    )


def _count(b: _Bytes, what: str) -> int:
    n = b.u32(what)
    if n * 4 > b.left():
        raise RecurBlobError(f"the recurrence blob is truncated: {what} is {n}")
    return n
