"""Outlook's time-zone structures: TZREG (PidLidTimeZoneStruct) and TZDEFINITION
(PidLidAppointmentTimeZoneDefinition…), golden bytes from the [MS-OXOCAL] layout, round trips,
rules read off zoneinfo agreeing with it, and the properties of a parsed event."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tzlocal import windows_tz

from bridge.formats import ical_values as V
from bridge.formats import tz_rules as T
from bridge.formats import tz_struct as S
from bridge.formats.ical_parse import parse_ical
from bridge.store.calendar_items import check_calendar_props

UTC = dt.UTC
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = sorted(set(windows_tz.win_tz.values()))


def i32(value: int) -> bytes:
    return value.to_bytes(4, "little", signed=True)


def u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def systemtime(month: int = 0, dow: int = 0, week: int = 0, hour: int = 0) -> bytes:
    # wYear, wMonth, wDayOfWeek, wDay, wHour, wMinute, wSecond, wMilliseconds
    return u16(0) + u16(month) + u16(dow) + u16(week) + u16(hour) + u16(0) * 3


def tzreg(bias: int, std_bias: int, dst_bias: int, std: bytes, dst: bytes) -> bytes:
    # lBias, lStandardBias, lDaylightBias, wStandardYear, stStandardDate, wDaylightYear,
    # stDaylightDate
    return i32(bias) + i32(std_bias) + i32(dst_bias) + u16(0) + std + u16(0) + dst


def tzdefinition(name: str, rules: list[tuple[int, int, bytes]]) -> bytes:
    """rules: (flags, wYear, the TZREG bytes)."""
    key = name.encode("utf-16-le")
    cch = len(name)
    # bMajorVersion, bMinorVersion, cbHeader, Reserved, cchKeyName, KeyName, cRules
    out = b"\x02\x01" + u16(6 + 2 * cch) + u16(0x0002) + u16(cch) + key + u16(len(rules))
    for flags, year, reg in rules:
        biases, std, dst = reg[:12], reg[14:30], reg[32:48]
        # version 2.1, Reserved 0x003E, flags, wYear, X (14 zero bytes), biases, dates
        out += b"\x02\x01" + u16(0x003E) + u16(flags) + u16(year) + bytes(14)
        out += biases + std + dst
    return out


BERLIN = tzreg(-60, 0, -60, systemtime(10, 0, 5, 3), systemtime(3, 0, 5, 2))
NEW_YORK = tzreg(300, 0, -60, systemtime(11, 0, 1, 2), systemtime(3, 0, 2, 2))
TOKYO = tzreg(-540, 0, 0, systemtime(), systemtime())
GMT = bytes(48)
EFFECTIVE = S.TZRULE_FLAG_EFFECTIVE_TZREG
RECUR = S.TZRULE_FLAG_RECUR_CURRENT_TZREG


@pytest.mark.parametrize(
    ("iana", "windows", "golden"),
    [
        ("Europe/Berlin", "W. Europe Standard Time", BERLIN),
        ("America/New_York", "Eastern Standard Time", NEW_YORK),
        ("Asia/Tokyo", "Tokyo Standard Time", TOKYO),
        ("UTC", "UTC", GMT),
    ],
)
def test_golden_bytes(iana: str, windows: str, golden: bytes) -> None:
    zone = zoneinfo.ZoneInfo(iana)
    reg = T.zone_rule(zone, 2025)
    assert len(golden) == 48
    assert S.encode_tzreg(reg) == golden
    assert S.decode_tzreg(golden) == reg
    assert T.stable(zone, 2025)
    defn = T.definition(zone, 2025)
    assert S.encode_definition(defn) == tzdefinition(windows, [(EFFECTIVE, 2025, golden)])
    assert S.decode_definition(S.encode_definition(defn)) == defn
    assert T.describe(golden)["bias"] == reg.bias
    assert T.describe(S.encode_definition(defn))["name"] == windows


def test_berlin_fields() -> None:
    reg = T.zone_rule(zoneinfo.ZoneInfo("Europe/Berlin"), 2024)
    assert (reg.bias, reg.standard_bias, reg.daylight_bias) == (-60, 0, -60)
    assert reg.daylight_date == S.SystemTime(0, 3, 0, 5, 2, 0)  # last Sunday of March, 02:00
    assert reg.standard_date == S.SystemTime(0, 10, 0, 5, 3, 0)  # last Sunday of October 03:00
    assert reg.daylight_date.local(2024) == dt.datetime(2024, 3, 31, 2, 0)
    assert reg.standard_date.local(2024) == dt.datetime(2024, 10, 27, 3, 0)


def test_changes_are_exact_to_the_second() -> None:
    reg = T.zone_rule(zoneinfo.ZoneInfo("America/New_York"), 2025)
    change = dt.datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 02:00 EST
    assert reg.utc_offset(change - dt.timedelta(seconds=1)) == -300
    assert reg.utc_offset(change) == -240
    back = dt.datetime(2025, 11, 2, 6, 0, tzinfo=UTC)  # 02:00 EDT
    assert reg.utc_offset(back - dt.timedelta(seconds=1)) == -240
    assert reg.utc_offset(back) == -300


def test_southern_and_negative_dst_zones() -> None:
    sydney = T.zone_rule(zoneinfo.ZoneInfo("Australia/Sydney"), 2025)
    assert (sydney.bias, sydney.daylight_bias) == (-600, -60)
    assert (sydney.daylight_date.month, sydney.standard_date.month) == (10, 4)
    dublin = T.zone_rule(zoneinfo.ZoneInfo("Europe/Dublin"), 2025)  # tzdata: negative DST
    assert (dublin.bias, dublin.daylight_bias, dublin.daylight_date.month) == (0, -60, 3)


def test_rules_that_change_between_years() -> None:
    assert not T.stable(zoneinfo.ZoneInfo("Africa/Casablanca"), 2025)  # follows Ramadan
    defn = T.definition(zoneinfo.ZoneInfo("America/New_York"), 2005, last_year=2010, recur=True)
    assert [(r.year, r.flags) for r in defn.rules] == [(2005, EFFECTIVE | RECUR), (2007, 0)]
    assert defn.rules[0].reg.daylight_date == S.SystemTime(0, 4, 0, 1, 2)  # first Sunday Apr
    assert defn.reg_for(2020) == T.zone_rule(zoneinfo.ZoneInfo("America/New_York"), 2025)
    assert S.decode_definition(S.encode_definition(defn)) == defn


def test_fixed_offset_and_unknown_zones_have_only_a_bias() -> None:
    india = dt.timezone(dt.timedelta(hours=5, minutes=30), "UTC+05:30")
    assert T.zone_rule(india, 2025) == S.TzReg(bias=-330)
    assert T.definition(india, 2025).key_name == "UTC+05:30"
    moved = T.zone_rule(zoneinfo.ZoneInfo("Europe/Volgograd"), 2020)  # +04 → +03 on Dec 27
    assert moved == S.TzReg(bias=-240)


def test_malformed_blobs() -> None:
    good = S.encode_definition(T.definition(zoneinfo.ZoneInfo("Europe/Berlin"), 2025))
    for bad in (b"", good[:20], good[:-1], b"\x03" + good[1:]):
        with pytest.raises(S.TzStructError):
            S.decode_definition(bad)
    with pytest.raises(S.TzStructError):
        S.decode_tzreg(BERLIN[:40])
    with pytest.raises(S.TzStructError):
        S.decode_tzreg(BERLIN[:20] + u16(13) + BERLIN[22:])  # month 13
    # Not part of the iCalendar: a broken one is stored like any other binary property.
    check_calendar_props({V.TZ_STRUCT: b"junk", V.TZ_DEFINITION_RECUR: b"\x02"})


SYSTEMTIMES = st.builds(
    S.SystemTime,
    year=st.just(0),
    month=st.integers(1, 12),
    day_of_week=st.integers(0, 6),
    day=st.integers(1, 5),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    second=st.integers(0, 59),
)
BIASES = st.integers(-24 * 60, 24 * 60)
REGS = st.one_of(
    st.builds(S.TzReg, bias=BIASES),
    st.builds(S.TzReg, BIASES, BIASES, BIASES, SYSTEMTIMES, SYSTEMTIMES),
)


@SETTINGS
@given(
    REGS,
    st.lists(st.tuples(st.integers(1601, 3000), REGS, st.integers(0, 3)), min_size=1),
    st.text(max_size=40),
)
def test_decode_encode_round_trip(
    reg: S.TzReg, rules: list[tuple[int, S.TzReg, int]], name: str
) -> None:
    assert S.decode_tzreg(S.encode_tzreg(reg)) == reg
    name = name.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    defn = S.TzDefinition(name, tuple(S.TzRule(y, r, f) for y, r, f in rules))
    assert S.decode_definition(S.encode_definition(defn)) == defn


@SETTINGS
@given(st.sampled_from(ZONES), st.integers(1995, 2037), st.floats(0.0, 1.0))
@example("Asia/Dhaka", 2009, 0.0)  # daylight time ended at the stroke of the next year
def test_rule_gives_zoneinfo_offsets(key: str, year: int, where: float) -> None:
    zone = zoneinfo.ZoneInfo(key)
    begin = dt.datetime(year, 1, 3, tzinfo=UTC)
    instant = begin + (dt.datetime(year, 12, 29, tzinfo=UTC) - begin) * where
    instant = instant.replace(microsecond=0)
    expected = round(instant.astimezone(zone).utcoffset().total_seconds() / 60)  # type: ignore[union-attr]
    rule = T.year_rule(zone, year)
    if rule is None:  # changes that fit no yearly rule: the bias only
        assert not T.zone_rule(zone, year).has_dst
        return
    assert rule.utc_offset(instant) == expected
    for change, _, after in T.changes(zone, year):
        assert rule.utc_offset(change) == round(after / 60)
        assert rule.utc_offset(change - dt.timedelta(seconds=1)) != round(after / 60)


EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:tz-1\r
DTSTAMP:20250101T000000Z\r
DTSTART;TZID=Europe/Berlin:20250106T100000\r
DTEND;TZID=America/New_York:20250106T050000\r
{extra}SUMMARY:Zones\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_parsed_event_carries_the_zone_props() -> None:
    item = parse_ical(EVENT.format(extra="").encode(), floating_tz=UTC)
    n = item.named
    assert n[V.TZ_STRUCT] == BERLIN
    start = S.decode_definition(n[V.TZ_DEFINITION_START])
    end = S.decode_definition(n[V.TZ_DEFINITION_END])
    assert (start.key_name, end.key_name) == ("W. Europe Standard Time", "Eastern Standard Time")
    assert start.rules == (S.TzRule(2025, S.decode_tzreg(BERLIN), EFFECTIVE),)
    assert end.effective == S.decode_tzreg(NEW_YORK)
    assert V.TZ_DEFINITION_RECUR not in n


def test_parsed_series_carries_the_recur_definition() -> None:
    data = EVENT.format(extra="RRULE:FREQ=WEEKLY;UNTIL=20270101T000000Z\r\n").encode()
    n = parse_ical(data, floating_tz=UTC).named
    assert V.APPOINTMENT_RECUR in n
    recur = S.decode_definition(n[V.TZ_DEFINITION_RECUR])
    assert recur.key_name == "W. Europe Standard Time"
    assert recur.rules == (S.TzRule(2025, S.decode_tzreg(BERLIN), EFFECTIVE | RECUR),)
    assert S.decode_tzreg(n[V.TZ_STRUCT]) == recur.effective


def test_floating_and_utc_events() -> None:
    utc = EVENT.replace("DTSTART;TZID=Europe/Berlin:20250106T100000", "DTSTART:20250106T090000Z")
    n = parse_ical(utc.format(extra="").encode(), floating_tz=UTC).named
    assert n[V.TZ_STRUCT] == GMT
    assert S.decode_definition(n[V.TZ_DEFINITION_START]).key_name == "UTC"
    floating = EVENT.replace(";TZID=Europe/Berlin", "").replace(
        "DTEND;TZID=America/New_York:20250106T050000", "DTEND:20250106T110000"
    )
    n = parse_ical(floating.format(extra="").encode(), floating_tz=UTC).named
    assert V.TZ_STRUCT not in n and V.TZ_DEFINITION_START not in n
    series = floating.format(extra="RRULE:FREQ=DAILY;COUNT=3\r\n")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    n = parse_ical(series.encode(), floating_tz=tokyo).named
    assert n[V.TZ_STRUCT] == TOKYO  # the blob's local times are in the floating zone
    assert S.decode_definition(n[V.TZ_DEFINITION_RECUR]).key_name == "Tokyo Standard Time"
