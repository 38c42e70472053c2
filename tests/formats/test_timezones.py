"""Time zones: Windows ↔ IANA names, TZIDs of every shape, the same instant in any zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from bridge.formats import ical_values as V
from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_render import render_ical
from bridge.formats.timezones import (
    iana_name,
    iana_to_windows,
    resolve_tzid,
    tzid_description,
    windows_to_iana,
)
from bridge.model import classes, tags

UTC = dt.UTC


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("GMT Standard Time", "Europe/London"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
    ],
)
def test_windows_and_iana_both_ways(windows: str, iana: str) -> None:
    assert windows_to_iana(windows) == iana
    assert iana_to_windows(iana) == windows
    assert iana_name(windows) == iana


def test_unknown_names() -> None:
    assert windows_to_iana("Nowhere Standard Time") is None
    assert iana_to_windows("Mars/Olympus") is None
    assert resolve_tzid("Mars/Olympus") is None
    assert resolve_tzid("../../etc/passwd") is None


@pytest.mark.parametrize(
    ("tzid", "iana"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin"),
        ("/freeassociation.sourceforge.net/Tzfile/America/Chicago", "America/Chicago"),
        ("(UTC+09:00) Osaka, Sapporo, Tokyo", "Asia/Tokyo"),
        ("(UTC-05:00) Eastern Time (US & Canada)", None),
    ],
)
def test_tzid_shapes(tzid: str, iana: str | None) -> None:
    assert iana_name(tzid) == iana


def test_display_name_without_city_uses_its_offset() -> None:
    zone = resolve_tzid("(UTC-05:00) Eastern Time (US & Canada)")
    assert zone is not None
    assert zone.utcoffset(dt.datetime(2024, 7, 1)) == dt.timedelta(hours=-5)
    assert tzid_description("Tokyo Standard Time") == "Tokyo Standard Time"
    assert tzid_description("Asia/Tokyo") == "Tokyo Standard Time"


def _event(tzid: str, local: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:tz\r\n"
        f"DTSTART;TZID={tzid}:{local}\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.mark.parametrize(
    "reader_zone",
    ["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"],
)
def test_berlin_event_is_the_same_instant_in_any_zone(reader_zone: str) -> None:
    expected = dt.datetime(2024, 3, 31, 0, 30, tzinfo=UTC)  # 01:30 CET, just before DST
    floating = zoneinfo.ZoneInfo(reader_zone)
    for tzid in ("Europe/Berlin", "W. Europe Standard Time"):
        item = parse_ical(_event(tzid, "20240331T013000"), floating_tz=floating)
        assert item.named[V.APPT_START] == expected
    summer = parse_ical(_event("Europe/Berlin", "20240331T033000"), floating_tz=floating)
    assert summer.named[V.APPT_START] == dt.datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


def test_created_in_berlin_read_back_anywhere() -> None:
    start = dt.datetime(2024, 12, 24, 17, 0, tzinfo=UTC)
    named = {V.APPT_START: start, V.APPT_END: start, V.TZ_DESCRIPTION: "Europe/Berlin"}
    data = render_ical(classes.IPM_APPOINTMENT, {tags.SUBJECT: "Eve"}, named)
    assert b"DTSTART;TZID=Europe/Berlin:20241224T180000" in data
    for zone in ("UTC", "Asia/Tokyo", "America/Sao_Paulo"):
        back = parse_ical(data, floating_tz=zoneinfo.ZoneInfo(zone))
        assert back.named[V.APPT_START] == start
        assert back.named[V.TZ_DESCRIPTION] == "W. Europe Standard Time"


def test_unknown_tzid_falls_back_to_utc_and_keeps_the_raw() -> None:
    data = _event("Bogus/Zone", "20240105T100000")
    item = parse_ical(data, floating_tz=zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert item.named[V.APPT_START] == dt.datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert item.named[V.TZ_DESCRIPTION] == "Bogus/Zone"


def test_floating_time_is_read_in_the_local_zone() -> None:
    data = _event("Europe/Berlin", "20240105T100000").replace(b";TZID=Europe/Berlin", b"")
    item = parse_ical(data, floating_tz=zoneinfo.ZoneInfo("America/New_York"))
    assert item.named[V.APPT_START] == dt.datetime(2024, 1, 5, 15, tzinfo=UTC)
    assert V.TZ_DESCRIPTION not in item.named


def test_outlook_display_name_tzid_in_an_event() -> None:
    tzid = '"(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"'
    item = parse_ical(_event(tzid, "20240705T100000"), floating_tz=UTC)
    assert item.named[V.APPT_START] == dt.datetime(2024, 7, 5, 8, tzinfo=UTC)
    assert item.named[V.TZ_DESCRIPTION] == "W. Europe Standard Time"
