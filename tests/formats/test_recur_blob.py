"""Outlook's recurrence blob (PidLidAppointmentRecur, [MS-OXOCAL] 2.2.1.44.5).

Golden bytes: the spec's own example (4.1.1.x: every Mon/Thu/Fri, 12 occurrences, one
modified instance), and four blobs put together here field by field from the spec's layout
with the FirstDateTime formulas worked by hand. Then: decode(encode(x)) == x; the occurrences
of the blob (expanded here by the spec's own rules, independent of the encoder) and of the
iCalendar rendered back from it equal recurring-ical-events' expansion of the source; series
the blob cannot say get none; broken blobs give a clear error.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
import struct
import zoneinfo
from typing import Any

import icalendar
import pytest
import recurring_ical_events
from dateutil import rrule as du_rrule  # type: ignore[import-untyped]
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.formats import ical_values as V
from bridge.formats import recur_blob as R
from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_render import render_ical, update_ical
from bridge.formats.recur_blob import Override, RecurBlobError, Series, encode
from bridge.formats.recur_blob_read import decode
from bridge.store.calendar_items import ItemDataError, check_calendar_props, resource_bytes
from tests.formats.samples import SERIES

UTC = dt.UTC
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# [MS-OXOCAL] 4.1.1.x, the recurrence BLOB of the example with one exception.
SPEC_EXAMPLE = bytes.fromhex(
    "043004300B2001000000C0210000010000000000000032000000222000000C00000000000000010000"
    "00A096BC0C01000000A096BC0C8020BC0C20ADBC0C06300000093000005802000076020000010034"
    "99BC0C5299BC0CF898BC0C11002200210053696D706C6520526563757272656E6365207769746820"
    "657863657074696F6E730800070033342F34313431000000000400000000000000000000003499BC"
    "0C5299BC0CF898BC0C2100530069006D0070006C006500200052006500630075007200720065006E"
    "006300650020007700690074006800200065007800630065007000740069006F006E007300070033"
    "0034002F0034003100340031000000000000000000"
)
SPEC_SERIES = Series(
    freq="WEEKLY",
    start=dt.datetime(2007, 3, 26, 10, 0),
    duration=30,
    byday=("MO", "TH", "FR"),
    count=12,
    wkst="SU",
    overrides=(
        Override(
            original_start=dt.datetime(2007, 4, 16, 10, 0),
            start=dt.datetime(2007, 4, 16, 11, 0),
            end=dt.datetime(2007, 4, 16, 11, 30),
            subject="Simple Recurrence with exceptions",
            location="34/4141",
        ),
    ),
)


# -- the layout, by hand -------------------------------------------------------------------


def day(y: int, m: int, d: int) -> int:
    """Minutes from 1601-01-01 to midnight of the date."""
    return (dt.date(y, m, d) - dt.date(1601, 1, 1)).days * 1440


def at(y: int, m: int, d: int, hh: int, mm: int) -> int:
    return day(y, m, d) + hh * 60 + mm


def pattern(
    freq: int,
    ptype: int,
    first: int,
    period: int,
    specific: bytes,
    end: tuple[int, int, int],
    first_dow: int,
    deleted: list[int],
    modified: list[int],
    start: int,
) -> bytes:
    end_type, count, end_date = end
    out = struct.pack("<HHHHHIII", 0x3004, 0x3004, freq, ptype, 0, first, period, 0)
    out += specific + struct.pack("<III", end_type, count, first_dow)
    out += struct.pack(f"<I{len(deleted)}I", len(deleted), *deleted)
    out += struct.pack(f"<I{len(modified)}I", len(modified), *modified)
    return out + struct.pack("<II", start, end_date)


def appointment(start_offset: int, end_offset: int, infos: list[bytes], ext: list[bytes]) -> bytes:
    out = struct.pack("<IIIIH", 0x3006, 0x3009, start_offset, end_offset, len(infos))
    return out + b"".join(infos) + b"\0\0\0\0" + b"".join(ext) + b"\0\0\0\0"


# Every Monday and Wednesday, 10 times, from Mon 2024-01-08 09:00–10:00; week starts Monday.
# Occurrences: Jan 8 10 15 17 22 24 29 31, Feb 5 7. 1601-01-01 was a Monday and so is
# 2024-01-08: the week start is a whole number of weeks from 1601, FirstDateTime 0.
WEEKLY_ICS = """DTSTART;TZID=Europe/Berlin:20240108T090000
DTEND;TZID=Europe/Berlin:20240108T100000
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"""
WEEKLY_BLOB = pattern(
    0x200B, 0x0001, 0, 1, struct.pack("<I", 0x02 | 0x08), (0x2022, 10, day(2024, 2, 7)),
    1, [], [], day(2024, 1, 8),
) + appointment(540, 600, [], [])  # fmt: skip

# The second Tuesday of every month, no end, from Tue 2024-01-09 14:30–15:00 UTC. Months
# since January 1601 modulo a Period of 1 is 0: FirstDateTime is 1601-01-01, 0 minutes.
MONTHLY_NTH_ICS = """DTSTART:20240109T143000Z
DTEND:20240109T150000Z
RRULE:FREQ=MONTHLY;BYDAY=2TU"""
MONTHLY_NTH_BLOB = pattern(
    0x200C, 0x0003, 0, 1, struct.pack("<II", 0x04, 2), (0x2023, 10, 0x5AE980DF),
    1, [], [], day(2024, 1, 9),
) + appointment(870, 900, [], [])  # fmt: skip

# Day 15 of every 5th month, 3 times, from 2024-01-15: Jan 15, Jun 15, Nov 15. January 2024
# is month (2024 - 1601) * 12 = 5076 since January 1601; 5076 % 5 = 1: February 1601,
# 31 days = 44640 minutes.
MONTHLY_DAY_ICS = """DTSTART:20240115T080000Z
DTEND:20240115T083000Z
RRULE:FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=15;COUNT=3"""
MONTHLY_DAY_BLOB = pattern(
    0x200C, 0x0002, 44640, 5, struct.pack("<I", 15), (0x2022, 3, day(2024, 11, 15)),
    1, [], [], day(2024, 1, 15),
) + appointment(480, 510, [], [])  # fmt: skip

# Every March 15 until 2027: 4 occurrences. March 2024 is month 5078; 5078 % 12 = 2:
# March 1601, 31 + 28 days = 84960 minutes. Yearly: RecurFrequency 0x200D, Period 12.
YEARLY_ICS = """DTSTART:20240315T080000Z
DTEND:20240315T090000Z
RRULE:FREQ=YEARLY;UNTIL=20270315T080000Z"""
YEARLY_BLOB = pattern(
    0x200D, 0x0002, 84960, 12, struct.pack("<I", 15), (0x2021, 4, day(2027, 3, 15)),
    1, [], [], day(2024, 3, 15),
) + appointment(480, 540, [], [])  # fmt: skip

# Every 2 days, 8 times, from 2024-01-01 10:00–11:00 Berlin: Jan 1 3 5 7 9 11 13 15. Jan 5 is
# deleted; Jan 7 moved to Jan 8 13:00–14:30 as "Moved", out of office. 2024-01-01 is an odd
# number of days after 1601-01-01: FirstDateTime = StartDate % 2880 = 1440.
DAILY_ICS = """DTSTART;TZID=Europe/Berlin:20240101T100000
DTEND;TZID=Europe/Berlin:20240101T110000
RRULE:FREQ=DAILY;INTERVAL=2;COUNT=8
EXDATE;TZID=Europe/Berlin:20240105T100000"""
DAILY_OVERRIDE = """RECURRENCE-ID;TZID=Europe/Berlin:20240107T100000
DTSTART;TZID=Europe/Berlin:20240108T130000
DTEND;TZID=Europe/Berlin:20240108T143000
X-MICROSOFT-CDO-BUSYSTATUS:OOF"""
_moved = struct.pack("<III", at(2024, 1, 8, 13, 0), at(2024, 1, 8, 14, 30), at(2024, 1, 7, 10, 0))
DAILY_BLOB = pattern(
    0x200A, 0x0000, 1440, 2880, b"", (0x2022, 8, day(2024, 1, 15)),
    1, [day(2024, 1, 5), day(2024, 1, 7)], [day(2024, 1, 8)], day(2024, 1, 1),
) + appointment(
    600, 660,
    [_moved + struct.pack("<HHH", 0x0001 | 0x0020, 6, 5) + b"Moved" + struct.pack("<I", 3)],
    [struct.pack("<III", 4, 0, 0) + _moved + struct.pack("<H", 5) + "Moved".encode("utf-16-le")
     + b"\0\0\0\0"],
)  # fmt: skip

GOLDEN = [
    (WEEKLY_ICS, [], WEEKLY_BLOB),
    (MONTHLY_NTH_ICS, [], MONTHLY_NTH_BLOB),
    (MONTHLY_NTH_ICS.replace("BYDAY=2TU", "BYDAY=TU;BYSETPOS=2"), [], MONTHLY_NTH_BLOB),
    (MONTHLY_DAY_ICS, [], MONTHLY_DAY_BLOB),
    (YEARLY_ICS, [], YEARLY_BLOB),
    (DAILY_ICS, [DAILY_OVERRIDE + "\nSUMMARY:Moved"], DAILY_BLOB),
]


def ics(master: str, overrides: list[str] | None = None, summary: str = "Series") -> bytes:
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    parts += ["BEGIN:VEVENT", "UID:s-1", "DTSTAMP:20240101T000000Z", f"SUMMARY:{summary}"]
    parts += [master, "END:VEVENT"]
    for o in overrides or []:
        parts += ["BEGIN:VEVENT", "UID:s-1", "DTSTAMP:20240101T000000Z", o, "END:VEVENT"]
    parts.append("END:VCALENDAR")
    return ("\r\n".join("\n".join(parts).split("\n")) + "\r\n").encode()


def blob_of(data: bytes) -> bytes | None:
    blob = parse_ical(data, floating_tz=UTC).named.get(V.APPOINTMENT_RECUR)
    assert blob is None or isinstance(blob, bytes)
    return blob


def test_the_spec_example_decodes_and_encodes_to_the_same_bytes() -> None:
    assert decode(SPEC_EXAMPLE) == SPEC_SERIES
    assert encode(SPEC_SERIES) == SPEC_EXAMPLE


@pytest.mark.parametrize(
    ("master", "overrides", "blob"),
    GOLDEN,
    ids=["weekly", "monthly-nth", "monthly-setpos", "monthly-day", "yearly", "daily-exceptions"],
)
def test_golden_blobs_from_icalendar(master: str, overrides: list[str], blob: bytes) -> None:
    assert blob_of(ics(master, overrides)) == blob
    assert encode(decode(blob)) == blob


def test_golden_daily_blob_reads_back() -> None:
    series = decode(DAILY_BLOB)
    assert series.freq == "DAILY" and series.interval == 2 and series.count == 8
    assert series.deleted == (dt.date(2024, 1, 5),)
    assert series.overrides == (
        Override(
            dt.datetime(2024, 1, 7, 10),
            dt.datetime(2024, 1, 8, 13),
            dt.datetime(2024, 1, 8, 14, 30),
            subject="Moved",
            busy_status=V.OOF,
        ),
    )


def test_the_sample_series_gets_a_blob_with_its_exceptions() -> None:
    item = parse_ical(SERIES, floating_tz=UTC)
    series = decode(item.named[V.APPOINTMENT_RECUR])
    assert item.named[V.RECURRING] is True
    assert item.named[V.RECURRENCE_PATTERN] == "every day, 10 times"
    # EXDATE Jan 3 and the cancelled override of Jan 5 are deleted; Jan 4 is modified
    assert series.deleted == (dt.date(2024, 1, 3), dt.date(2024, 1, 5))
    (moved,) = series.overrides
    assert (moved.start, moved.subject, moved.location) == (
        dt.datetime(2024, 1, 4, 15),
        "Moved",
        "Elsewhere",
    )


INEXPRESSIBLE = [
    "RRULE:FREQ=DAILY;BYHOUR=9,17;COUNT=4",
    "RRULE:FREQ=DAILY;COUNT=4\nRRULE:FREQ=WEEKLY;COUNT=2",
    "RRULE:FREQ=DAILY;COUNT=4\nRDATE:20240120T100000Z",
    "RDATE:20240120T100000Z",
    "RRULE:FREQ=MONTHLY;BYMONTHDAY=31",  # skips short months; Outlook would not
    "RRULE:FREQ=MONTHLY;BYDAY=5MO",  # the fifth Monday, not the last
    "RRULE:FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",  # skips 2100; Outlook would not
    "RRULE:FREQ=YEARLY;BYDAY=1MO",  # the first Monday of the year
    "RRULE:FREQ=YEARLY;BYMONTH=1,7",
    "RRULE:FREQ=WEEKLY;BYDAY=TU",  # DTSTART (a Monday) is not on the rule
    "RRULE:FREQ=HOURLY;COUNT=3",
    "RRULE:FREQ=DAILY;INTERVAL=2;BYDAY=MO,TU",
    "RRULE:FREQ=WEEKLY;BYWEEKNO=3",
]


@pytest.mark.parametrize("rule", INEXPRESSIBLE)
def test_rules_the_blob_cannot_say_get_no_blob(rule: str) -> None:
    data = ics("DTSTART:20240101T100000Z\nDTEND:20240101T110000Z\n" + rule)
    item = parse_ical(data, floating_tz=UTC)
    assert V.APPOINTMENT_RECUR not in item.named
    assert item.named[V.RECURRING] is True
    assert item.named[V.RECURRENCE_PATTERN]
    named = dict(item.named)
    # and an unchanged item leaves its source alone
    assert update_ical(data, item.message_class, item.props, named, item.recipients) == data


def test_single_events_have_no_blob() -> None:
    item = parse_ical(ics("DTSTART:20240101T100000Z"), floating_tz=UTC)
    assert V.APPOINTMENT_RECUR not in item.named
    assert item.named[V.RECURRING] is False


# -- decode(encode(x)) == x ----------------------------------------------------------------

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30
)  # fmt: skip


@st.composite
def series(draw: st.DrawFn) -> Series:
    freq = draw(st.sampled_from(R.FREQS))
    start = draw(
        st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2060, 1, 1))
    ).replace(second=0, microsecond=0)
    weekday = R.DAYS[R.outlook_weekday(start.date())]
    days = st.sets(st.sampled_from(R.DAYS), min_size=1).map(
        lambda s: tuple(d for d in R.DAYS if d in s)
    )
    fields: dict[str, Any] = {"interval": draw(st.integers(1, 6))}
    if freq == "DAILY" and draw(st.booleans()):
        fields = {"interval": 1, "byday": tuple(sorted({*draw(days), weekday}, key=R.DAYS.index))}
    elif freq == "WEEKLY":
        fields["byday"] = tuple(sorted({*draw(days), weekday}, key=R.DAYS.index))
    elif freq in ("MONTHLY", "YEARLY"):
        if draw(st.booleans()):
            fields["byday"] = draw(days)
            fields["setpos"] = draw(st.sampled_from([1, 2, 3, 4, -1]))
        else:
            fields["monthday"] = draw(st.sampled_from([*range(1, 32), -1]))
        if freq == "YEARLY":
            fields["month"] = start.month
    base = Series(
        freq=freq,
        start=start,
        duration=draw(st.integers(0, 3 * 1440)),
        wkst=draw(st.sampled_from(R.DAYS)),
        **fields,
    )
    first = R.occurrence_starts(dataclasses.replace(base, count=12), 12)
    assume(first)
    end = draw(st.sampled_from(["count", "until", "never"]))
    if end == "count":
        base = dataclasses.replace(base, count=draw(st.integers(1, 40)))
    elif end == "until":
        base = dataclasses.replace(base, until=draw(st.sampled_from(first)).date())
    picked = draw(st.lists(st.sampled_from(first), unique=True, max_size=6))
    cut = draw(st.integers(0, len(picked)))
    deleted = tuple(sorted(d.date() for d in picked[:cut]))
    overrides = []
    for original in sorted(picked[cut:]):
        moved = original + dt.timedelta(minutes=draw(st.integers(-600, 600)))
        overrides.append(
            Override(
                original,
                moved,
                moved + dt.timedelta(minutes=draw(st.integers(0, 600))),
                draw(st.none() | text),
                draw(st.none() | text),
                draw(st.none() | st.integers(0, 4)),
            )
        )
    return dataclasses.replace(base, deleted=deleted, overrides=tuple(overrides))


@SETTINGS
@given(series())
def test_decode_encode_round_trip(s: Series) -> None:
    assert decode(encode(s)) == s


# -- occurrences: the blob, by the spec's rules, against recurring-ical-events ----------------


def outlook_occurrences(blob: bytes, last: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """The instances of a blob up to `last`, found the way [MS-OXOCAL] 2.2.1.44.1.2 says
    (valid days from FirstDateTime and Period), in local time."""
    ptype, _, first, period = struct.unpack_from("<HHII", blob, 6)
    pos = 22
    mask = nth = mday = 0
    if ptype in (1, 2, 4):
        (mask,) = struct.unpack_from("<I", blob, pos)
        mday = mask
        pos += 4
    elif ptype == 3:
        mask, nth = struct.unpack_from("<II", blob, pos)
        pos += 8
    end_type, count, first_dow, n_deleted = struct.unpack_from("<IIII", blob, pos)
    pos += 16
    deleted = set(struct.unpack_from(f"<{n_deleted}I", blob, pos))
    pos += 4 * n_deleted
    (n_modified,) = struct.unpack_from("<I", blob, pos)
    pos += 4 + 4 * n_modified
    start_date, end_date = struct.unpack_from("<II", blob, pos)
    start_off, end_off = struct.unpack_from("<II", blob, pos + 16)
    epoch = dt.date(1601, 1, 1)

    def minutes(d: dt.date) -> int:
        return (d - epoch).days * 1440

    def weekday(d: dt.date) -> int:
        return (d.weekday() + 1) % 7

    def months(d: dt.date) -> int:
        return (d.year - 1601) * 12 + d.month - 1

    first_month = months(epoch + dt.timedelta(minutes=first))

    def valid(d: dt.date) -> bool:
        if ptype == 0:
            return (minutes(d) - first) % period == 0
        if ptype == 1:
            week = d - dt.timedelta(days=(weekday(d) - first_dow) % 7)
            return (minutes(week) - first) % (period * 10080) == 0 and bool(
                mask & (1 << weekday(d))
            )
        if (months(d) - first_month) % period:
            return False
        length = calendar.monthrange(d.year, d.month)[1]
        if ptype == 2:
            return d.day == min(mday, length)
        if ptype == 4:
            return d.day == length
        hits = [
            x for x in range(1, length + 1) if mask & (1 << weekday(dt.date(d.year, d.month, x)))
        ]
        return d.day == (hits[-1] if nth == 5 else hits[nth - 1])

    out = []
    d = epoch + dt.timedelta(minutes=start_date)
    found = 0
    while d <= last:
        if end_type == 0x2022 and found >= count:
            break
        if end_type == 0x2021 and minutes(d) > end_date:
            break
        if valid(d):
            found += 1
            if minutes(d) not in deleted:
                midnight = dt.datetime.combine(d, dt.time())
                out.append(
                    (
                        midnight + dt.timedelta(minutes=start_off),
                        midnight + dt.timedelta(minutes=end_off),
                    )
                )
        d += dt.timedelta(days=1)
    for o in decode(blob).overrides:
        if o.start.date() <= last:
            out.append((o.start, o.end))
    return sorted(out)


ZONES = ["Europe/Berlin", "America/New_York", "UTC", None]


@st.composite
def expressible_calendars(draw: st.DrawFn) -> tuple[bytes, str | None, dt.datetime, bool, str]:
    zone = draw(st.sampled_from(ZONES))
    all_day = zone is None and draw(st.booleans())
    freq = draw(st.sampled_from(R.FREQS))
    interval = draw(st.integers(1, 3))
    days = draw(st.sets(st.sampled_from(R.DAYS[1:] + R.DAYS[:1]), min_size=1, max_size=4))
    day_list = ",".join(d for d in R.DAYS if d in days)
    parts = [f"FREQ={freq}"] + ([f"INTERVAL={interval}"] if interval > 1 else [])
    form = draw(st.integers(0, 3))
    if freq == "DAILY" and interval == 1 and form == 0:
        parts.append(f"BYDAY={day_list}")
    elif freq == "WEEKLY" and form:
        parts.append(f"BYDAY={day_list}")
        parts.append(f"WKST={draw(st.sampled_from(R.DAYS))}")
    elif freq in ("MONTHLY", "YEARLY"):
        if freq == "YEARLY" and form:
            parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
        nth = draw(st.sampled_from([1, 2, 3, 4, -1]))
        if form == 1:
            parts.append(f"BYMONTHDAY={draw(st.sampled_from([*range(1, 29), -1]))}")
        elif form == 2:
            parts.append(f"BYDAY={nth}{draw(st.sampled_from(R.DAYS))}")
        elif form == 3:
            parts += [f"BYDAY={day_list}", f"BYSETPOS={nth}"]
    rough = draw(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)))
    rough = rough.replace(
        hour=0 if all_day else draw(st.integers(6, 22)),
        minute=0 if all_day else draw(st.integers(0, 59)),
        second=0,
        microsecond=0,
    )
    if freq in ("MONTHLY", "YEARLY") and form == 0 and rough.day > 28:
        rough = rough.replace(day=28)  # an implicit day 29-31 skips months: no blob
    found = list(du_rrule.rrulestr(";".join(parts) + ";COUNT=1", dtstart=rough))
    assume(found)
    start: dt.datetime = found[0]
    end_kind = draw(st.sampled_from(["count", "until", "never"]))
    tz = zoneinfo.ZoneInfo(zone) if zone else UTC
    local_rule = rule = ";".join(parts)
    if end_kind == "count":
        local_rule = rule = f"{rule};COUNT={draw(st.integers(1, 25))}"
    elif end_kind == "until":
        until = start + dt.timedelta(days=draw(st.integers(0, 900)), hours=draw(st.integers(0, 30)))
        local_rule = f"{rule};UNTIL={until:%Y%m%dT%H%M%S}"
        if all_day:
            rule = f"{rule};UNTIL={until:%Y%m%d}"
        elif zone is None:
            rule = local_rule
        else:
            rule = f"{rule};UNTIL={until.replace(tzinfo=tz).astimezone(UTC):%Y%m%dT%H%M%SZ}"
    length = dt.timedelta(minutes=draw(st.integers(0, 1440 * 2)))
    if all_day:
        length = dt.timedelta(days=draw(st.integers(1, 3)))

    def fmt(name: str, value: dt.datetime) -> str:
        if all_day:
            return f"{name};VALUE=DATE:{value:%Y%m%d}"
        if zone is None:
            return f"{name}:{value:%Y%m%dT%H%M%S}"
        if zone == "UTC":
            return f"{name}:{value:%Y%m%dT%H%M%SZ}"
        return f"{name};TZID={zone}:{value:%Y%m%dT%H%M%S}"

    instances = list(itertools.islice(du_rrule.rrulestr(local_rule, dtstart=start), 10))
    picked = draw(st.lists(st.sampled_from(instances), unique=True, max_size=4))
    cut = draw(st.integers(0, len(picked)))
    master = [fmt("DTSTART", start), fmt("DTEND", start + length), f"RRULE:{rule}"]
    master += [fmt("EXDATE", d) for d in picked[:cut]]
    overrides = []
    for original in picked[cut:]:
        shift = dt.timedelta(days=draw(st.integers(0, 1))) if all_day else dt.timedelta(
            minutes=draw(st.integers(-300, 300))
        )  # fmt: skip
        moved = original + shift
        lines = [fmt("RECURRENCE-ID", original), fmt("DTSTART", moved)]
        lines.append(fmt("DTEND", moved + length))
        lines.append("SUMMARY:" + draw(st.sampled_from(["Series", "Changed"])))
        if draw(st.booleans()):
            lines.append("LOCATION:Room " + str(draw(st.integers(1, 9))))
        overrides.append("\n".join(lines))
    return ics("\n".join(master), overrides), zone, start, all_day, freq


def _utc(value: dt.date, tz: dt.tzinfo, all_day: bool) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time(), UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=tz).astimezone(UTC)
    return value.astimezone(UTC)


def _expand(data: bytes, a: dt.date, b: dt.date, tz: dt.tzinfo, all_day: bool) -> list[Any]:
    cal = icalendar.Calendar.from_ical(data)
    out = []
    for ev in recurring_ical_events.of(cal).between(a, b):
        start = _utc(ev["DTSTART"].dt, tz, all_day)
        end = _utc(ev["DTEND"].dt, tz, all_day)
        out.append((start, end))
    return sorted(out)


# How far each kind of series is compared (recurring-ical-events is slow on long windows).
WINDOW = {"DAILY": 120, "WEEKLY": 400, "MONTHLY": 3 * 366, "YEARLY": 8 * 366}


@settings(max_examples=70, deadline=None, suppress_health_check=list(HealthCheck))
@given(expressible_calendars())
def test_blob_occurrences_equal_the_source_expansion(
    case: tuple[bytes, str | None, dt.datetime, bool, str],
) -> None:
    data, zone, start, all_day, freq = case
    item = parse_ical(data, floating_tz=UTC)
    blob = item.named.get(V.APPOINTMENT_RECUR)
    assert isinstance(blob, bytes), data.decode()
    tz = zoneinfo.ZoneInfo(zone) if zone else UTC
    a, b = (start - dt.timedelta(days=2)).date(), (start + dt.timedelta(days=WINDOW[freq])).date()
    source = _expand(data, a, b, tz, all_day)
    # the blob, expanded by the spec's rules (local times in the item's zone)
    last = b - dt.timedelta(days=1)
    ours = [
        (s.replace(tzinfo=tz).astimezone(UTC), e.replace(tzinfo=tz).astimezone(UTC))
        for s, e in outlook_occurrences(blob, last)
        if s.date() < b - dt.timedelta(days=1)
    ]
    wanted = [(s, e) for s, e in source if s.astimezone(tz).date() < last]
    assert ours == wanted
    # the iCalendar made back from the blob alone (a client's new item) expands the same
    named = dict(item.named)
    rendered = render_ical(item.message_class, item.props, named, floating_tz=UTC)
    assert _expand(rendered, a, b, tz, all_day) == source
    assert blob_of(rendered) == blob


# -- the write direction ---------------------------------------------------------------------


def _edited(raw: bytes, new: Series) -> bytes:
    item = parse_ical(raw, floating_tz=UTC)
    named = dict(item.named)
    named[V.APPOINTMENT_RECUR] = encode(new)
    return update_ical(raw, item.message_class, item.props, named, item.recipients, floating_tz=UTC)


def test_an_unchanged_blob_leaves_the_source_byte_identical() -> None:
    item = parse_ical(SERIES, floating_tz=UTC)
    named = dict(item.named)
    # even re-encoded by a client
    named[V.APPOINTMENT_RECUR] = encode(decode(named[V.APPOINTMENT_RECUR]))
    out = update_ical(SERIES, item.message_class, item.props, named, item.recipients)
    assert out == SERIES
    # an item stored before blobs existed (none) leaves it alone as well
    named.pop(V.APPOINTMENT_RECUR)
    assert update_ical(SERIES, item.message_class, item.props, named, item.recipients) == SERIES


def test_a_changed_blob_rewrites_rule_exdate_and_overrides() -> None:
    old = decode(blob_of(SERIES) or b"")
    new = dataclasses.replace(
        old,
        freq="WEEKLY",
        byday=("MO", "WE"),
        count=6,
        deleted=(dt.date(2024, 1, 8),),
        overrides=(
            Override(dt.datetime(2024, 1, 3, 10), dt.datetime(2024, 1, 3, 10),
                     dt.datetime(2024, 1, 3, 11), location="Room"),
            Override(dt.datetime(2024, 1, 10, 10), dt.datetime(2024, 1, 11, 12),
                     dt.datetime(2024, 1, 11, 13), subject="Thursday", busy_status=V.FREE),
        ),
    )  # fmt: skip
    out = _edited(SERIES, new)
    text = out.decode()
    assert "RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO,WE" in text
    assert "EXDATE;TZID=Europe/Berlin:20240108T100000" in text
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20240104T100000" not in text  # gone with DAILY
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20240110T100000" in text
    assert "DTSTART;TZID=Europe/Berlin:20240111T120000" in text
    assert "SUMMARY:Thursday" in text and "LOCATION:Room" in text
    assert "X-MICROSOFT-CDO-BUSYSTATUS:FREE" in text
    assert decode(blob_of(out) or b"") == new
    # everything else of the master is as it was
    assert "UID:series-1" in text and "SUMMARY:Daily" in text


def test_changing_one_override_touches_only_it() -> None:
    old = decode(blob_of(SERIES) or b"")
    (moved,) = old.overrides
    later = dataclasses.replace(moved, end=moved.end + dt.timedelta(minutes=30), subject="Long")
    out = _edited(SERIES, dataclasses.replace(old, overrides=(later,)))
    before = SERIES.decode().split("\r\n")
    after = out.decode().split("\r\n")
    assert [ln for ln in before if ln not in after] == [
        "DTEND;TZID=Europe/Berlin:20240104T160000",
        "SUMMARY:Moved",
    ]
    assert "DTEND;TZID=Europe/Berlin:20240104T163000" in after and "SUMMARY:Long" in after
    assert decode(blob_of(out) or b"").overrides == (later,)


def test_a_blob_on_a_single_event_makes_it_recur_and_clearing_it_does_not_undo_it() -> None:
    raw = ics(
        "DTSTART;TZID=Europe/Berlin:20240108T090000\nDTEND;TZID=Europe/Berlin:20240108T100000"
    )
    out = _edited(raw, decode(WEEKLY_BLOB))
    assert b"RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO,WE" in out
    assert blob_of(out) == WEEKLY_BLOB
    item = parse_ical(out, floating_tz=UTC)
    named = dict(item.named)
    named[V.RECURRING] = False
    named.pop(V.APPOINTMENT_RECUR)
    single = update_ical(out, item.message_class, item.props, named, item.recipients)
    assert b"RRULE" not in single
    assert parse_ical(single, floating_tz=UTC).named[V.RECURRING] is False


def test_all_day_series_write_dates() -> None:
    raw = ics("DTSTART;VALUE=DATE:20240101\nDTEND;VALUE=DATE:20240102\nRRULE:FREQ=DAILY;COUNT=5")
    old = decode(blob_of(raw) or b"")
    assert (old.start, old.duration) == (dt.datetime(2024, 1, 1), 1440)
    out = _edited(raw, dataclasses.replace(old, count=None, until=dt.date(2024, 1, 9),
                                           deleted=(dt.date(2024, 1, 3),)))  # fmt: skip
    assert b"RRULE:FREQ=DAILY;UNTIL=20240109" in out
    assert b"EXDATE;VALUE=DATE:20240103" in out


# -- broken blobs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blob",
    [SPEC_EXAMPLE, DAILY_BLOB, MONTHLY_NTH_BLOB, YEARLY_BLOB],
    ids=["spec", "daily", "monthly-nth", "yearly"],
)
def test_every_truncation_is_a_clear_error(blob: bytes) -> None:
    for size in range(len(blob)):
        with pytest.raises(RecurBlobError) as info:
            decode(blob[:size])
        assert str(info.value)
        assert isinstance(info.value, ValueError)


@SETTINGS
@given(st.sampled_from([SPEC_EXAMPLE, DAILY_BLOB, WEEKLY_BLOB]), st.data())
def test_mangled_blobs_decode_or_fail_cleanly(blob: bytes, data: st.DataObject) -> None:
    mangled = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(mangled) - 1))
        mangled[pos] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(mangled))
    except RecurBlobError as exc:
        assert str(exc)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_fail_cleanly(blob: bytes) -> None:
    try:
        decode(blob)
    except RecurBlobError as exc:
        assert str(exc)


def test_bad_blob_from_a_client_is_an_item_data_error() -> None:
    item = parse_ical(SERIES, floating_tz=UTC)
    for bad in (SPEC_EXAMPLE[:40], b"\x04\x30\x04\x30" + b"\xff" * 60, b"junk", "text"):
        named = dict(item.named)
        named[V.APPOINTMENT_RECUR] = bad
        with pytest.raises(ItemDataError, match="PidLidAppointmentRecur"):
            check_calendar_props(named)
        if isinstance(bad, bytes):
            with pytest.raises(ItemDataError):
                resource_bytes(SERIES, item.message_class, item.props, named=named)
    check_calendar_props({V.APPOINTMENT_RECUR: SPEC_EXAMPLE})
    check_calendar_props({})


def test_subject_override_without_unicode_extension_reads_ansi() -> None:
    # a writer before 0x3009 may stop after ReservedBlock1
    # 62 bytes of RecurrencePattern, 18 up to ExceptionCount, 62 of ExceptionInfo, then
    # ReservedBlock1Size: 146 bytes; the ExtendedException would follow.
    head = SPEC_EXAMPLE[:146]
    series = decode(head + b"\0\0\0\0")
    assert series.overrides[0].subject == "Simple Recurrence with exceptions"
    assert series.overrides[0].location == "34/4141"
