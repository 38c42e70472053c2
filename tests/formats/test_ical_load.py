"""Loading iCalendar objects: the faster content-line split and the VTIMEZONEs shared between
reads give exactly what icalendar alone gives, and the caches of the readers (time-zone
blobs, rule expansions) never hand one object's answer to another."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

import icalendar
import pytest
from dateutil import rrule as du_rrule
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar.parser.content_line import Contentline
from icalendar.parser.parameter import Parameters

from bridge.formats import ical_load, recur_expand, tz_rules
from bridge.formats import ical_values as V
from bridge.formats.ical_load import load_calendar
from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_values import IcalError
from tests.formats.samples import MEETING, SERIES

LINES = [
    "SUMMARY:Plain",
    "SUMMARY:With\\, comma\\nand\\\\ backslash",
    "DESCRIPTION:Colon: in the value; semicolon too",
    "DTSTART;TZID=Europe/Berlin:20270101T100000",
    'DTSTART;TZID="(UTC+01:00) Amsterdam, Berlin":20270101T100000',
    "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.com",
    'ATTENDEE;CN="Smith, Bob";X-Q="a:b;c":mailto:s@example.com',
    "ATTENDEE;CN=Ann%2CB;MEMBER=x,y:mailto:a@example.com",
    "X-Q;A=^n^^b^'q:x",
    "X-R ;A = 1 : x",
    "x-lower;a=b:value",
    'LOCATION;ALTREP="http://x/y:z":Room',
    "CATEGORIES:A\\,B,C",
    "NAME WITH SPACE:x",
    "X-P;=1:x",
    "X-P;:x",
    ":no name",
    "NOCOLON",
    "X-\\ESC:x",
    "DTSTART;VALUE=DATE:20270101",
]


@pytest.mark.parametrize("text", LINES)
def test_fast_split_gives_icalendars_parts(text: str) -> None:
    """The short way (`_Line.parts`) gives what icalendar's own split gives, or the same
    error."""
    fast, slow = ical_load._Line(text), Contentline(text)
    try:
        expected = slow.parts()
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            fast.parts()
        assert str(got.value) == str(exc)
        return
    name, params, value = fast.parts()
    assert (name, dict(params), value) == (expected[0], dict(expected[1]), expected[2])
    assert type(params) is type(expected[1])


def test_no_parameters_as_icalendar_makes_them() -> None:
    ours, theirs = ical_load._no_parameters(), Parameters()
    assert ours == theirs and type(ours) is type(theirs) and vars(ours) == vars(theirs)
    for params in (ours, theirs):
        params["tzid"] = "Europe/Berlin"
        params["cn"] = "Ann"
    assert list(ours.items()) == list(theirs.items())
    assert ours.to_ical() == theirs.to_ical() and ours.tzid == theirs.tzid


def test_parameters_of_one_line_are_its_own() -> None:
    """Parameter sections are read once, but each line gets parameters of its own."""
    one = ical_load._Line("ATTENDEE;MEMBER=a,b:mailto:x@example.com").parts()[1]
    one["MEMBER"].append("c")
    one["X-NEW"] = "1"
    two = ical_load._Line("ATTENDEE;MEMBER=a,b:mailto:x@example.com").parts()[1]
    assert dict(two) == {"MEMBER": ["a", "b"]}


@pytest.mark.parametrize("data", [MEETING, SERIES])
def test_calendar_as_icalendar_reads_it(data: bytes) -> None:
    ours = load_calendar(data)
    theirs = icalendar.Calendar.from_ical(data.decode())
    assert type(ours) is icalendar.Calendar
    assert ours.to_ical() == theirs.to_ical()


TEXTS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:u-1\r\n"
    b"DTSTAMP:20260101T000000Z\r\nDTSTART:20270101T100000Z\r\n"
    b"SUMMARY;LANGUAGE=de:Gr\xc3\xbc\xc3\x9fe\\, Teil\\; zwei\\nZeile \\\\ Ende\r\n"
    b'LOCATION;ALTREP="http://x/y:z":Room 1\r\nDESCRIPTION:a:b\r\n'
    b'ORGANIZER;CN="Smith, Ann":mailto:ann@example.com\r\n'
    b"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n"
    b"URL:http://example.com/a?b=c\r\nX-TEXT:free\\, form\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _properties(cal: icalendar.Component) -> list[tuple[str, str, type, str, dict[str, object]]]:
    return [
        (c.name, name, type(v), str(v), dict(v.params))
        for c in cal.walk()
        for name, values in c.property_items(recursive=False, sorted=False)
        for v in (values if isinstance(values, list) else [values])
        if hasattr(v, "params")
    ]


@pytest.mark.parametrize("data", [MEETING, SERIES, TEXTS])
def test_values_as_icalendar_makes_them(data: bytes) -> None:
    """Text, address and URI values made once are the values icalendar makes twice."""
    ours = _properties(load_calendar(data))
    theirs = _properties(icalendar.Calendar.from_ical(data.decode()))
    assert ours == theirs
    assert any(t is icalendar.vCalAddress for _, _, t, _, _ in ours) or data is not TEXTS


@pytest.mark.parametrize("bad", [b"PRODID;=x:y", b"NOCOLON", b"X-P;:x"])
def test_errors_as_icalendar_gives_them(bad: bytes) -> None:
    broken = MEETING.replace(b"X-WR-CALNAME:Work", bad)
    with pytest.raises(IcalError) as got:
        load_calendar(broken)
    with pytest.raises(ValueError) as theirs:
        icalendar.Calendar.from_ical(broken.decode())
    assert str(got.value) == f"not a valid iCalendar object: {ical_load.short_error(theirs.value)}"


def _with_zone(tzid: str, uid: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\n"
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\n"
        "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n"
        "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\n"
        "TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\n"
        f"END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;TZID={tzid}:20270705T100000\r\nDTEND;TZID={tzid}:20270705T110000\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_shared_zones_only_when_asked() -> None:
    a, b = _with_zone("Shared Zone", "a", "one"), _with_zone("Shared Zone", "b", "two")
    first = load_calendar(a, share_zones=True).walk("VTIMEZONE")[0]
    assert load_calendar(b, share_zones=True).walk("VTIMEZONE")[0] is first
    assert load_calendar(b).walk("VTIMEZONE")[0] is not first  # for a caller that edits
    other = load_calendar(_with_zone("Other Zone", "c", "x"), share_zones=True)
    assert other.walk("VTIMEZONE")[0] is not first


def test_shared_zones_read_the_same() -> None:
    """Every item read with a VTIMEZONE met before is the item a fresh read gives."""
    datas = [_with_zone("Zone Read Twice", str(i), f"event {i}") for i in range(3)]
    cached = [parse_ical(d, floating_tz=dt.UTC) for d in datas]
    fresh = []
    for d in datas:
        ical_load._ZONES.clear()
        fresh.append(parse_ical(d, floating_tz=dt.UTC))
    for got, want in zip(cached, fresh, strict=True):
        assert got.props == want.props and got.named == want.named
    assert cached[1].named[V.APPT_START] == dt.datetime(2027, 7, 5, 8, tzinfo=dt.UTC)


def test_zone_blocks_that_do_not_qualify_are_read_as_they_are() -> None:
    lines = [ical_load._Line(x) for x in _with_zone("Z", "u", "s").decode().split("\r\n") if x]
    begin = lines.index("BEGIN:VTIMEZONE")
    assert ical_load._block_end(lines, begin) == lines.index("END:VTIMEZONE")
    for odd in ("X-ODD;TZID=Z:1", "BEGIN ;X=1:STANDARD", "BEGIN:VTIMEZONE", "ENDING:x"):
        changed = [*lines]
        changed.insert(begin + 2, ical_load._Line(odd))
        assert ical_load._block_end(changed, begin) is None, odd
        assert odd == "BEGIN:VTIMEZONE" or not any(
            isinstance(x, (ical_load._ZoneBlock, ical_load._ZoneEnd))
            for x in ical_load._zone_blocks(changed)
        ), odd


def test_fixed_offset_zones_keep_their_names() -> None:
    """Zones that compare equal (same offset) but are named apart get their own name in
    the time-zone definitions, though those are made once per zone and year."""
    a = dt.timezone(dt.timedelta(hours=3), "Zone A")
    b = dt.timezone(dt.timedelta(hours=3), "Zone B")
    when_a = dt.datetime(2027, 1, 1, 10, tzinfo=a)
    when_b = dt.datetime(2027, 1, 1, 10, tzinfo=b)
    blob_a = tz_rules.appointment_props(when_a, when_a)[V.TZ_DEFINITION_START]
    blob_b = tz_rules.appointment_props(when_b, when_b)[V.TZ_DEFINITION_START]
    assert "Zone A".encode("utf-16-le") in blob_a
    assert "Zone B".encode("utf-16-le") in blob_b


@pytest.mark.parametrize("limit", [None, 1, 3, 20, 25])
def test_rule_expansion_as_dateutil(limit: int | None) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    start = dt.datetime(2027, 3, 1, 2, 30, tzinfo=berlin)
    text = "FREQ=WEEKLY;COUNT=20"
    expected = list(du_rrule.rrulestr(text, dtstart=start))[:limit]
    for _ in range(2):  # made, then kept
        got = recur_expand.starts(text, start, limit)
        assert got == expected
        assert all(g.tzinfo is berlin for g in got)
        got.append(start)  # the caller's own list
    assert recur_expand.starts(text, start) == expected if limit is None else True


_RULES = st.builds(
    lambda freq, interval, byday, count: ";".join(
        [
            f"FREQ={freq}",
            f"INTERVAL={interval}",
            *([f"BYDAY={byday}"] if byday else []),
            f"COUNT={count}",
        ]
    ),
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    st.integers(1, 3),
    st.sampled_from(["", "MO", "MO,WE", "SU", "-1FR"]),
    st.integers(1, 30),
)
_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]


@settings(max_examples=60, deadline=None)
@given(
    _RULES,
    st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2035, 1, 1)),
    st.sampled_from(_ZONES),
    st.booleans(),
    st.sampled_from([None, 1, 7]),
)
def test_rule_starts_kept_without_a_zone_are_dateutils_in_any_zone(
    text: str, wall: dt.datetime, zone: str, fold: bool, limit: int | None
) -> None:
    """A rule without UNTIL expanded for one zone (or none) serves another: the starts are
    what dateutil gives for that zone."""
    start = wall.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=int(fold))
    recur_expand.starts(text, wall)  # kept, without a zone
    got = recur_expand.starts(text, start, limit)
    expected = list(du_rrule.rrulestr(text, dtstart=start))[:limit]
    assert got == expected
    assert [(g.tzinfo, g.fold) for g in got] == [(e.tzinfo, e.fold) for e in expected]
    assert [g.replace(tzinfo=None) for g in got] == [e.replace(tzinfo=None) for e in expected]


def test_rule_expansion_keeps_zones_apart() -> None:
    """Starts made for one zone are never handed out for an equal instant in another."""
    text = "FREQ=DAILY;COUNT=3"
    utc_start = dt.datetime(2027, 1, 1, 10, tzinfo=dt.UTC)
    other = dt.timezone(dt.timedelta(0), "Other")
    first = recur_expand.starts(text, utc_start)
    second = recur_expand.starts(text, utc_start.replace(tzinfo=other))
    assert [s.tzinfo for s in first] == [dt.UTC] * 3
    assert [s.tzinfo for s in second] == [other] * 3


def test_rule_expansion_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for the first n never asks dateutil for the (n+1)th (which may fail)."""
    start = dt.datetime(2027, 1, 1, 10)

    def rule(text: str, dtstart: dt.datetime) -> Iterator[dt.datetime]:
        for day in range(5):
            yield dtstart + dt.timedelta(days=day)
        raise OverflowError("past the end")

    monkeypatch.setattr(du_rrule, "rrulestr", rule)
    assert recur_expand.starts("FREQ=DAILY;X-TEST=1", start, 5)[-1] == dt.datetime(2027, 1, 5, 10)
    with pytest.raises(OverflowError):
        recur_expand.starts("FREQ=DAILY;X-TEST=1", start, 6)
