"""Outlook's recurrence blob (PidLidAppointmentRecur): a series as a `Series`, and its
AppointmentRecurrencePattern bytes ([MS-OXOCAL] 2.2.1.44.5, with the RecurrencePattern of
2.2.1.44.1, ExceptionInfo of 2.2.1.44.2 and ExtendedException of 2.2.1.44.3).

No well-kept Python library reads or writes this structure, so it is done here by hand with
`struct`, from the spec's field layout (the golden test in tests/formats/test_recur_blob.py
is the spec's own example blob). `encode` is here; `decode` is in `recur_blob_read`; the
iCalendar side (RRULE / EXDATE / overrides ↔ `Series`) is in `recur_ical`.

A `Series` holds local wall-clock times (naive datetimes) in the appointment's own zone, as
the blob does: minutes since 1601-01-01 00:00 local. What it can say:

- FREQ DAILY (every n days, or every weekday-set with interval 1), WEEKLY (days of the week,
  every n weeks, WKST), MONTHLY (day d of the month — Outlook moves day 29–31 to the month's
  last day when the month is shorter —, the last day, or the nth / last of a set of weekdays),
  YEARLY (the same in one month, every n years);
- an end after COUNT occurrences, on a date (UNTIL), or none;
- deleted occurrences (EXDATE) and modified ones (RECURRENCE-ID overrides) with their new
  start and end and, where they differ from the series, subject, location and busy status.

Anything else (BYHOUR and the other BYxxx parts, several RRULEs, RDATE, EXRULE, a DTSTART that
is not the rule's first occurrence, …) has no blob: `recur_ical.series_from_ical` says None.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import struct

from bridge.formats import recur_expand
from bridge.formats.ical_values import IcalError

# Days as Outlook numbers them (FirstDOW, the day bit 1 << n): Sunday first.
DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")

EPOCH = dt.datetime(1601, 1, 1)

READER_VERSION = WRITER_VERSION = 0x3004
READER_VERSION2 = 0x3006
WRITER_VERSION2 = 0x3009

# RecurFrequency
FREQ_DAILY, FREQ_WEEKLY, FREQ_MONTHLY, FREQ_YEARLY = 0x200A, 0x200B, 0x200C, 0x200D
FREQ_CODE = {
    "DAILY": FREQ_DAILY,
    "WEEKLY": FREQ_WEEKLY,
    "MONTHLY": FREQ_MONTHLY,
    "YEARLY": FREQ_YEARLY,
}
# PatternType
PT_DAY, PT_WEEK, PT_MONTH, PT_MONTH_NTH, PT_MONTH_END = 0x0000, 0x0001, 0x0002, 0x0003, 0x0004
PT_HIJRI = (0x000A, 0x000B, 0x000C)
# EndType
END_DATE, END_COUNT, END_NEVER, END_NEVER_OLD = 0x2021, 0x2022, 0x2023, 0xFFFFFFFF
NO_END_DATE = 0x5AE980DF  # 4500-12-31 23:59
NO_END_COUNT = 0x0000000A
# MonthNth: N of 5 is "the last"
LAST_NTH = 5

# ExceptionInfo.OverrideFlags
ARO_SUBJECT = 0x0001
ARO_MEETINGTYPE = 0x0002
ARO_REMINDERDELTA = 0x0004
ARO_REMINDER = 0x0008
ARO_LOCATION = 0x0010
ARO_BUSYSTATUS = 0x0020
ARO_ATTACHMENT = 0x0040
ARO_SUBTYPE = 0x0080
ARO_APPTCOLOR = 0x0100
ARO_EXCEPTIONAL_BODY = 0x0200

# The most occurrences expanded to find a series end or count.
MAX_OCCURRENCES = 100_000


class RecurBlobError(IcalError):
    """A recurrence blob that cannot be read, or a series it cannot hold; says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Override:
    """A modified occurrence: where it was (`original_start`), where it is now, and what
    differs from the series (None: the series' value)."""

    original_start: dt.datetime
    start: dt.datetime
    end: dt.datetime
    subject: str | None = None
    location: str | None = None
    busy_status: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """A recurring series in local wall-clock time (naive datetimes).

    `byday` holds day codes in `DAYS` order: the days of a WEEKLY rule (and of a DAILY one
    that is every-weekday), or with `setpos` (1–4, -1 last) the day set of a MONTHLY / YEARLY
    nth-weekday rule. `monthday` is 1–31 (Outlook semantics: a day past the month's end is
    its last day) or -1 (the last day). `month` is the month of a YEARLY rule. At most one
    of `count` and `until` (the local date of the last occurrence) is set. `deleted` are the
    original dates of deleted occurrences, `overrides` the modified ones, both sorted."""

    freq: str
    start: dt.datetime
    duration: int
    interval: int = 1
    byday: tuple[str, ...] = ()
    setpos: int | None = None
    monthday: int | None = None
    month: int | None = None
    count: int | None = None
    until: dt.date | None = None
    wkst: str = "MO"
    deleted: tuple[dt.date, ...] = ()
    overrides: tuple[Override, ...] = ()

    def pattern(self) -> Series:
        """The series without its deleted and modified occurrences."""
        return dataclasses.replace(self, deleted=(), overrides=())


def minutes(value: dt.datetime) -> int:
    """Minutes since 1601-01-01 00:00 (local wall-clock time)."""
    return int((value - EPOCH).total_seconds()) // 60


def from_minutes(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(minutes=value)


def day_minutes(day: dt.date) -> int:
    return (day - EPOCH.date()).days * 1440


def outlook_weekday(day: dt.date) -> int:
    """0 Sunday … 6 Saturday."""
    return (day.weekday() + 1) % 7


def month_index(day: dt.date) -> int:
    """Months since January 1601."""
    return (day.year - 1601) * 12 + day.month - 1


def month_start(index: int) -> dt.date:
    return dt.date(1601 + index // 12, index % 12 + 1, 1)


def day_mask(days: tuple[str, ...]) -> int:
    mask = 0
    for day in days:
        mask |= 1 << DAYS.index(day)
    return mask


def mask_days(mask: int) -> tuple[str, ...]:
    return tuple(d for n, d in enumerate(DAYS) if mask & (1 << n))


# -- the series as an RRULE (local times) ----------------------------------------------


def month_shortest(month: int | None) -> int:
    """The fewest days `month` (None: any month) has."""
    return 28 if month in (None, 2) else calendar.monthrange(2001, month)[1]


def _monthday_parts(day: int, month: int | None) -> list[str]:
    """BYMONTHDAY (and BYSETPOS) for Outlook's "day `day`, else the month's last day"."""
    shortest = month_shortest(month)
    longest = 29 if month == 2 else (31 if month is None else shortest)
    if day == -1 or day >= longest:
        return ["BYMONTHDAY=-1"]
    if day <= shortest:
        return [f"BYMONTHDAY={day}"]
    days = ",".join(str(d) for d in range(shortest, day + 1))
    return [f"BYMONTHDAY={days}", "BYSETPOS=-1"]


def rrule_parts(series: Series) -> list[str]:
    """The RRULE parts (``FREQ=…``) of the series, without its end."""
    parts = [f"FREQ={series.freq}"]
    if series.interval != 1:
        parts.append(f"INTERVAL={series.interval}")
    if series.freq == "YEARLY" and series.month is not None:
        parts.append(f"BYMONTH={series.month}")
    if series.byday and series.setpos is not None:
        if len(series.byday) == 1:
            parts.append(f"BYDAY={series.setpos}{series.byday[0]}")
        else:
            parts += ["BYDAY=" + ",".join(series.byday), f"BYSETPOS={series.setpos}"]
    elif series.byday:
        parts.append("BYDAY=" + ",".join(series.byday))
    elif series.monthday is not None:
        parts += _monthday_parts(series.monthday, series.month)
    if series.wkst != "MO":
        parts.append(f"WKST={series.wkst}")
    return parts


def occurrence_starts(series: Series, limit: int = MAX_OCCURRENCES) -> list[dt.datetime]:
    """The pattern's occurrences (deleted ones included), at most `limit`; with no end the
    first `limit`."""
    parts = rrule_parts(series)
    if series.count is not None:
        parts.append(f"COUNT={series.count}")
    elif series.until is not None:
        parts.append(f"UNTIL={series.until:%Y%m%d}T235959")
    return recur_expand.starts(";".join(parts), series.start, limit)


# -- encode -----------------------------------------------------------------------------


def _u32(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise RecurBlobError(f"the recurrence blob cannot hold {what} ({value})")
    return struct.pack("<I", value)


def _first_date_time(series: Series, period: int, pattern: int) -> int:
    start = series.start.date()
    if pattern == PT_DAY:
        return day_minutes(start) % period
    if pattern == PT_WEEK:
        back = (outlook_weekday(start) - DAYS.index(series.wkst)) % 7
        week = start - dt.timedelta(days=back)
        return day_minutes(week) % (period * 7 * 1440)
    return day_minutes(month_start(month_index(start) % period))


def _pattern(series: Series) -> tuple[int, int, int, bytes]:
    """(RecurFrequency, PatternType, Period, PatternTypeSpecific)."""
    freq, n = series.freq, series.interval
    if freq == "DAILY" and not series.byday:
        return FREQ_DAILY, PT_DAY, n * 1440, b""
    if freq in ("DAILY", "WEEKLY"):
        if not series.byday:
            raise RecurBlobError("a weekly series needs its days of the week")
        if freq == "DAILY" and n != 1:
            raise RecurBlobError("an every-weekday series repeats every day")
        return FREQ_CODE[freq], PT_WEEK, n, struct.pack("<I", day_mask(series.byday))
    period = n * 12 if freq == "YEARLY" else n
    if series.byday:
        nth = LAST_NTH if series.setpos == -1 else series.setpos
        if nth not in (1, 2, 3, 4, LAST_NTH):
            raise RecurBlobError("a monthly nth-day series needs an nth of 1 to 4 or last")
        specific = struct.pack("<II", day_mask(series.byday), nth)
        return FREQ_CODE[freq], PT_MONTH_NTH, period, specific
    if series.monthday == -1:
        return FREQ_CODE[freq], PT_MONTH_END, period, struct.pack("<I", 31)
    if series.monthday is None or not 1 <= series.monthday <= 31:
        raise RecurBlobError("a monthly series needs its day of the month")
    return FREQ_CODE[freq], PT_MONTH, period, struct.pack("<I", series.monthday)


def _ansi(text: str) -> bytes:
    data = text.encode("cp1252", "replace")
    if len(data) >= 0xFFFF:
        raise RecurBlobError("an exception's subject or location is too long")
    return struct.pack("<HH", len(data) + 1, len(data)) + data


def _wide(text: str) -> bytes:
    data = text.encode("utf-16-le")
    if len(data) // 2 > 0xFFFF:
        raise RecurBlobError("an exception's subject or location is too long")
    return struct.pack("<H", len(data) // 2) + data


def _exception(o: Override) -> tuple[bytes, bytes]:
    """(ExceptionInfo, ExtendedException) of one modified occurrence."""
    times = (
        _u32(minutes(o.start), "the start of an exception")
        + _u32(minutes(o.end), "the end of an exception")
        + _u32(minutes(o.original_start), "the original start of an exception")
    )
    flags = 0
    info = b""
    extended = b""
    if o.subject is not None:
        flags |= ARO_SUBJECT
        info += _ansi(o.subject)
        extended += _wide(o.subject)
    if o.location is not None:
        flags |= ARO_LOCATION
        info += _ansi(o.location)
        extended += _wide(o.location)
    if o.busy_status is not None:
        flags |= ARO_BUSYSTATUS
        info += _u32(o.busy_status, "a busy status")
    head = struct.pack("<III", 4, 0, 0)  # ChangeHighlight (size 4, value 0), EE1 size 0
    if flags & (ARO_SUBJECT | ARO_LOCATION):
        extended = head + times + extended + struct.pack("<I", 0)
    else:
        extended = head
    return times + struct.pack("<H", flags) + info, extended


def _end(series: Series) -> tuple[int, int, int]:
    """(EndType, OccurrenceCount, EndDate)."""
    if series.count is None and series.until is None:
        return END_NEVER, NO_END_COUNT, NO_END_DATE
    starts = occurrence_starts(series)
    if len(starts) >= MAX_OCCURRENCES:
        raise RecurBlobError(f"a series of more than {MAX_OCCURRENCES} occurrences")
    if not starts:
        raise RecurBlobError("the series has no occurrence")
    if series.count is not None:
        return END_COUNT, series.count, day_minutes(starts[-1].date())
    assert series.until is not None
    return END_DATE, len(starts), day_minutes(series.until)


def encode(series: Series) -> bytes:
    """The AppointmentRecurrencePattern of the series; RecurBlobError for a series the blob
    cannot hold (times before 1601, a negative duration, …)."""
    if series.freq not in FREQS or series.interval < 1:
        raise RecurBlobError("the series needs a frequency and an interval of at least 1")
    if series.wkst not in DAYS or any(d not in DAYS for d in series.byday):
        raise RecurBlobError("unknown day of the week")
    if series.duration < 0 or series.start < EPOCH:
        raise RecurBlobError("the series starts before 1601 or ends before it starts")
    code, pattern, period, specific = _pattern(series)
    end_type, count, end_date = _end(series)
    overrides = sorted(series.overrides, key=lambda o: (o.start, o.original_start))
    deleted = sorted(
        {day_minutes(d) for d in series.deleted}
        | {day_minutes(o.original_start.date()) for o in overrides}
    )
    modified = sorted(day_minutes(o.start.date()) for o in overrides)
    out = struct.pack(
        "<HHHHH", READER_VERSION, WRITER_VERSION, code, pattern, 0
    )  # CalendarType 0: Gregorian
    out += _u32(_first_date_time(series, period, pattern), "FirstDateTime")
    out += _u32(period, "the interval") + struct.pack("<I", 0)  # SlidingFlag
    out += specific + struct.pack("<III", end_type, count, DAYS.index(series.wkst))
    out += _u32(len(deleted), "so many deleted occurrences")
    out += b"".join(_u32(d, "a deleted date") for d in deleted)
    out += _u32(len(modified), "so many modified occurrences")
    out += b"".join(_u32(d, "a modified date") for d in modified)
    out += _u32(day_minutes(series.start.date()), "the start date")
    out += _u32(end_date, "the end date")
    offset = series.start.hour * 60 + series.start.minute
    out += struct.pack("<II", READER_VERSION2, WRITER_VERSION2)
    out += _u32(offset, "the start time") + _u32(offset + series.duration, "the end time")
    if len(overrides) > 0xFFFF:
        raise RecurBlobError("too many modified occurrences")
    parts = [_exception(o) for o in overrides]
    out += struct.pack("<H", len(parts)) + b"".join(info for info, _ in parts)
    out += struct.pack("<I", 0)  # ReservedBlock1Size
    out += b"".join(extended for _, extended in parts)
    return out + struct.pack("<I", 0)  # ReservedBlock2Size
