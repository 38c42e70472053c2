"""iCalendar → MAPI properties, and back (new objects and in-place updates)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import icalendar
import pytest

from bridge.formats import ical_values as V
from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_render import render_ical, update_ical
from bridge.model import classes, flags, tags
from tests.formats.samples import ALL_DAY, DONE_TODO, JOURNAL, MEETING, SERIES, TODO

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _master(data: bytes) -> icalendar.Component:
    cal = icalendar.Calendar.from_ical(data)
    return next(c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO", "VJOURNAL"))


def _lines_without(comp: icalendar.Component, *names: str) -> list[str]:
    """The content lines of a component (sub-components included) but the named ones."""
    lines = [str(line) for line in comp.content_lines()]
    return sorted(ln for ln in lines if ln and ln.split(":")[0].split(";")[0] not in names)


def test_meeting_properties() -> None:
    item = parse_ical(MEETING, floating_tz=UTC)
    p, n = item.props, item.named
    assert item.message_class == classes.IPM_APPOINTMENT
    assert p[tags.SUBJECT] == "Planning"
    assert p[tags.BODY] == "Agenda:\n1. Budget"
    assert n[V.LOCATION] == "Room 1"
    # 10:00 in Berlin summer time is 08:00 UTC
    assert n[V.APPT_START] == dt.datetime(2024, 7, 5, 8, 0, tzinfo=UTC)
    assert n[V.APPT_END] == dt.datetime(2024, 7, 5, 9, 30, tzinfo=UTC)
    assert n[V.DURATION] == 90
    assert n[V.ALL_DAY] is False
    assert n[V.TZ_DESCRIPTION] == "W. Europe Standard Time"
    assert n[V.BUSY_STATUS] == V.OOF
    assert p[tags.SENSITIVITY] == 3
    assert p[tags.IMPORTANCE] == 2
    assert n[V.KEYWORDS] == ["Work", "Important"]
    assert n[V.SEQUENCE] == 3
    assert n[V.REMINDER_SET] is True
    assert n[V.REMINDER_DELTA] == 30
    assert n[V.REMINDER_SIGNAL_TIME] == dt.datetime(2024, 7, 5, 7, 30, tzinfo=UTC)
    assert n[V.RECURRING] is False
    assert n[V.CALENDAR_UID] == "meeting-1@example.com"
    assert item.uid == "meeting-1@example.com"


def test_attendees_become_recipients() -> None:
    item = parse_ical(MEETING, floating_tz=UTC)
    rows = {r[tags.SMTP_ADDRESS]: r for r in item.recipients}
    org = rows["ann@example.com"]
    assert org[tags.RECIPIENT_FLAGS] & V.RECIP_ORGANIZER
    assert org[tags.DISPLAY_NAME] == "Ann Organizer"
    assert item.props[tags.SENT_REPRESENTING_SMTP_ADDRESS] == "ann@example.com"
    assert rows["bob@example.com"][tags.RECIPIENT_TYPE] == flags.MAPI_TO
    assert rows["bob@example.com"][tags.RECIPIENT_TRACKSTATUS] == 3
    assert rows["carol@example.com"][tags.RECIPIENT_TYPE] == flags.MAPI_CC
    assert rows["carol@example.com"][tags.RECIPIENT_TRACKSTATUS] == 2
    assert rows["dan@example.com"][tags.RECIPIENT_TRACKSTATUS] == 4
    assert rows["room1@example.com"][tags.RECIPIENT_TYPE] == flags.MAPI_BCC
    assert rows["room1@example.com"][tags.RECIPIENT_TRACKSTATUS] == 5
    assert item.named[V.STATE_FLAGS] == 1


def test_global_object_id_vcal_uid_form() -> None:
    goid = parse_ical(MEETING).named[V.GLOBAL_OBJECT_ID]
    assert goid[:16] == V.GOID_HEAD
    assert goid[16:20] == b"\x00\x00\x00\x00"
    size = int.from_bytes(goid[36:40], "little")
    assert goid[40:] == b"vCal-Uid\x01\x00\x00\x00meeting-1@example.com\x00"
    assert size == len(goid) - 40
    assert V.uid_from_global_object_id(goid) == "meeting-1@example.com"
    assert parse_ical(MEETING).named[V.CLEAN_GLOBAL_OBJECT_ID] == goid


def test_global_object_id_outlook_uid_is_decoded() -> None:
    inner = V.GOID_HEAD + b"\x00" * 4 + bytes(range(16)) + (16).to_bytes(4, "little")
    outlook_uid = (inner + bytes(range(16, 32))).hex().upper()
    goid = V.global_object_id(outlook_uid)
    assert goid.hex().upper() == outlook_uid
    assert V.uid_from_global_object_id(goid) == outlook_uid
    instance = V.global_object_id(outlook_uid, (2024, 7, 5))
    assert instance[16:20] == bytes([0x07, 0xE8, 7, 5])
    assert instance[20:] == goid[20:]


def test_series_is_recurring_with_readable_pattern() -> None:
    item = parse_ical(SERIES)
    n = item.named
    assert n[V.RECURRING] is True
    assert n[V.RECURRENCE_PATTERN] == "every day, 10 times"
    assert n[V.CLIP_START] == dt.datetime(2024, 1, 1, 9, tzinfo=UTC)
    assert n[V.CLIP_END] == dt.datetime(2024, 1, 10, 9, tzinfo=UTC)
    # the master, not an override, is what the item shows
    assert item.props[tags.SUBJECT] == "Daily"


def test_all_day_event_in_floating_zone() -> None:
    item = parse_ical(ALL_DAY, floating_tz=BERLIN)
    n = item.named
    assert n[V.ALL_DAY] is True
    assert n[V.APPT_START] == dt.datetime(2024, 3, 9, 23, tzinfo=UTC)
    assert n[V.APPT_END] == dt.datetime(2024, 3, 11, 23, tzinfo=UTC)
    assert n[V.BUSY_STATUS] == V.FREE


def test_todo() -> None:
    item = parse_ical(TODO)
    n = item.named
    assert item.message_class == classes.IPM_TASK
    assert n[V.TASK_START] == dt.datetime(2024, 2, 1, 9, tzinfo=UTC)
    assert n[V.TASK_DUE] == dt.datetime(2024, 2, 5, 17, tzinfo=UTC)
    assert n[V.TASK_STATUS] == 1
    assert n[V.PERCENT_COMPLETE] == pytest.approx(0.4)
    assert n[V.TASK_COMPLETE] is False
    assert item.props[tags.IMPORTANCE] == 0
    assert n[V.REMINDER_SET] is True
    assert n[V.REMINDER_SIGNAL_TIME] == dt.datetime(2024, 2, 5, 16, tzinfo=UTC)


def test_completed_todo() -> None:
    n = parse_ical(DONE_TODO).named
    assert n[V.TASK_STATUS] == 2
    assert n[V.TASK_COMPLETE] is True
    assert n[V.PERCENT_COMPLETE] == 1.0
    assert n[V.TASK_COMPLETED] == dt.datetime(2024, 2, 3, 12, tzinfo=UTC)


def test_journal_is_a_sticky_note() -> None:
    item = parse_ical(JOURNAL)
    assert item.message_class == classes.IPM_STICKYNOTE
    assert item.props[tags.SUBJECT] == "Idea"
    assert item.props[tags.BODY] == "Build the thing"


# -- render ------------------------------------------------------------------------------


def _event_props() -> tuple[dict[int, Any], dict[Any, Any], list[dict[int, Any]]]:
    props = {tags.SUBJECT: "Lunch", tags.BODY: "With the team", tags.SENSITIVITY: 2}
    named = {
        V.APPT_START: dt.datetime(2024, 11, 4, 11, 0, tzinfo=UTC),
        V.APPT_END: dt.datetime(2024, 11, 4, 12, 0, tzinfo=UTC),
        V.ALL_DAY: False,
        V.LOCATION: "Cafe",
        V.TZ_DESCRIPTION: "W. Europe Standard Time",
        V.BUSY_STATUS: V.TENTATIVE,
        V.REMINDER_SET: True,
        V.REMINDER_DELTA: 10,
        V.KEYWORDS: ["Food"],
    }
    rows = [
        {
            tags.SMTP_ADDRESS: "eve@example.com",
            tags.DISPLAY_NAME: "Eve",
            tags.RECIPIENT_TYPE: flags.MAPI_CC,
            tags.RECIPIENT_TRACKSTATUS: 3,
        }
    ]
    return props, named, rows


def test_render_new_event_round_trips() -> None:
    props, named, rows = _event_props()
    data = render_ical(classes.IPM_APPOINTMENT, props, named, rows, uid="new-1")
    comp = _master(data)
    assert str(comp["DTSTART"].params["TZID"]) == "Europe/Berlin"
    assert comp["DTSTART"].dt == dt.datetime(2024, 11, 4, 12, 0, tzinfo=BERLIN)
    assert b"BEGIN:VTIMEZONE" in data
    back = parse_ical(data)
    assert back.uid == "new-1"
    assert back.props[tags.SUBJECT] == "Lunch"
    assert back.props[tags.SENSITIVITY] == 2
    assert back.named[V.APPT_START] == named[V.APPT_START]
    assert back.named[V.APPT_END] == named[V.APPT_END]
    assert back.named[V.LOCATION] == "Cafe"
    assert back.named[V.BUSY_STATUS] == V.TENTATIVE
    assert back.named[V.REMINDER_DELTA] == 10
    assert back.named[V.KEYWORDS] == ["Food"]
    (eve,) = back.recipients
    assert eve[tags.RECIPIENT_TYPE] == flags.MAPI_CC
    assert eve[tags.RECIPIENT_TRACKSTATUS] == 3


def test_render_new_task_and_note() -> None:
    named = {
        V.TASK_DUE: dt.datetime(2024, 5, 1, 12, tzinfo=UTC),
        V.TASK_STATUS: 2,
        V.TASK_COMPLETE: True,
        V.PERCENT_COMPLETE: 1.0,
        V.TASK_COMPLETED: dt.datetime(2024, 4, 30, 8, tzinfo=UTC),
    }
    data = render_ical(classes.IPM_TASK, {tags.SUBJECT: "Do", tags.IMPORTANCE: 2}, named)
    back = parse_ical(data)
    assert back.message_class == classes.IPM_TASK
    assert back.named[V.TASK_DUE] == named[V.TASK_DUE]
    assert back.named[V.TASK_STATUS] == 2
    assert back.named[V.TASK_COMPLETED] == named[V.TASK_COMPLETED]
    assert back.props[tags.IMPORTANCE] == 2
    note = render_ical(classes.IPM_STICKYNOTE, {tags.SUBJECT: "N", tags.BODY: "text"}, {})
    assert parse_ical(note).message_class == classes.IPM_STICKYNOTE
    assert parse_ical(note).props[tags.BODY] == "text"


def test_render_uses_uid_from_global_object_id() -> None:
    goid = V.global_object_id("from-goid")
    data = render_ical(classes.IPM_APPOINTMENT, {}, {V.CLEAN_GLOBAL_OBJECT_ID: goid})
    assert parse_ical(data).uid == "from-goid"


def _component(data: bytes, name: str) -> icalendar.Component:
    [comp] = [c for c in icalendar.Calendar.from_ical(data).subcomponents if c.name == name]
    return comp


def test_render_event_without_a_start_gets_one() -> None:
    """A VEVENT must have a DTSTART: an event made with no start time takes the time the
    item was made (an instant), or its end when it has one; a task needs none."""
    made = dt.datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    data = render_ical(classes.IPM_APPOINTMENT, {tags.SUBJECT: "S", tags.CREATION_TIME: made}, {})
    event = _component(data, "VEVENT")
    assert event.decoded("DTSTART") == made
    assert "DTEND" not in event and "DURATION" not in event
    assert parse_ical(data).named[V.APPT_START] == made
    end = dt.datetime(2024, 6, 2, 10, tzinfo=UTC)
    data = render_ical(classes.IPM_APPOINTMENT, {}, {V.APPT_END: end})
    assert _component(data, "VEVENT").decoded("DTSTART") == end
    data = render_ical(classes.IPM_APPOINTMENT, {}, {V.ALL_DAY: True}, floating_tz=UTC)
    assert type(_component(data, "VEVENT").decoded("DTSTART")) is dt.date
    assert _component(render_ical(classes.IPM_APPOINTMENT, {}, {}), "VEVENT").get("DTSTART")
    task = _component(render_ical(classes.IPM_TASK, {tags.SUBJECT: "T"}, {}), "VTODO")
    assert "DTSTART" not in task and "DUE" not in task


# -- update ------------------------------------------------------------------------------


def _update(raw: bytes, **changes: Any) -> bytes:
    item = parse_ical(raw, floating_tz=UTC)
    props = dict(item.props)
    named = dict(item.named)
    for key, value in changes.items():
        if key == "subject":
            props[tags.SUBJECT] = value
        else:
            named[getattr(V, key)] = value
    return update_ical(raw, item.message_class, props, named, item.recipients, floating_tz=UTC)


def test_update_without_changes_returns_raw() -> None:
    for raw in (MEETING, SERIES, ALL_DAY, TODO, JOURNAL):
        assert _update(raw) == raw


def test_update_subject_changes_only_summary() -> None:
    out = _update(MEETING, subject="Planning (moved)")
    before, after = _master(MEETING), _master(out)
    assert str(after["SUMMARY"]) == "Planning (moved)"
    assert _lines_without(after, "SUMMARY") == _lines_without(before, "SUMMARY")
    assert after["ATTENDEE"][0].params["X-NUM-GUESTS"] == "0"
    assert b"X-WR-CALNAME:Work" in out
    assert b"TZID:W. Europe Standard Time" in out
    assert b"X-ALARM-EXTRA:yes" in out


def test_update_start_keeps_tzid_and_bumps_sequence() -> None:
    new_start = dt.datetime(2024, 7, 5, 12, 0, tzinfo=UTC)
    new_end = dt.datetime(2024, 7, 5, 13, 0, tzinfo=UTC)
    out = _update(MEETING, APPT_START=new_start, APPT_END=new_end)
    comp = _master(out)
    assert comp["DTSTART"].params["TZID"] == "W. Europe Standard Time"
    assert comp["DTSTART"].to_ical() == b"20240705T140000"
    assert comp["DTEND"].to_ical() == b"20240705T150000"
    assert int(comp["SEQUENCE"]) == 4
    assert parse_ical(out).named[V.APPT_START] == new_start


def test_update_keeps_overrides_of_a_series() -> None:
    out = _update(SERIES, subject="Standup")
    cal = icalendar.Calendar.from_ical(out)
    events = cal.walk("VEVENT")
    assert len(events) == 3
    assert str(events[0]["SUMMARY"]) == "Standup"
    assert str(events[1]["SUMMARY"]) == "Moved"
    assert "EXDATE" in events[0] and "RRULE" in events[0]


def test_update_reminder_and_busy_and_people() -> None:
    out = _update(MEETING, REMINDER_SET=False)
    assert "VALARM" not in [c.name for c in _master(out).subcomponents]
    out = _update(MEETING, REMINDER_DELTA=5)
    assert parse_ical(out).named[V.REMINDER_DELTA] == 5
    out = _update(MEETING, BUSY_STATUS=V.FREE)
    comp = _master(out)
    assert str(comp["TRANSP"]) == "TRANSPARENT"
    assert str(comp["X-MICROSOFT-CDO-BUSYSTATUS"]) == "FREE"
    item = parse_ical(MEETING, floating_tz=UTC)
    rows = [dict(r) for r in item.recipients if r[tags.SMTP_ADDRESS] != "dan@example.com"]
    rows[1][tags.RECIPIENT_TRACKSTATUS] = 4
    out = update_ical(MEETING, item.message_class, item.props, item.named, rows, floating_tz=UTC)
    attendees = {str(a): a for a in _master(out)["ATTENDEE"]}
    assert "mailto:dan@example.com" not in attendees
    assert attendees["mailto:bob@example.com"].params["PARTSTAT"] == "DECLINED"
    assert attendees["mailto:bob@example.com"].params["X-NUM-GUESTS"] == "0"


def test_update_all_day_stays_dates() -> None:
    out = _update(
        ALL_DAY,
        APPT_START=dt.datetime(2024, 3, 11, tzinfo=UTC),
        APPT_END=dt.datetime(2024, 3, 12, tzinfo=UTC),
    )
    comp = _master(out)
    assert comp["DTSTART"].dt == dt.date(2024, 3, 11)
    assert comp["DTEND"].dt == dt.date(2024, 3, 12)
