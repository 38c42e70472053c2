"""The store's view: resources → NewItem, items → the bytes to upload; bad input."""

from __future__ import annotations

import base64
import datetime as dt
import os

import pytest

from bridge.formats import ical_values as V
from bridge.formats import vcard_fields as F
from bridge.formats.ical_occurrences import iter_occurrences
from bridge.model import classes, tags
from bridge.store.calendar_items import (
    ItemDataError,
    content_type_for,
    item_from_ical,
    item_from_vcard,
    resource_bytes,
)
from tests.formats.samples import CARD3, JOURNAL, MEETING, SERIES

UTC = dt.UTC


def test_ical_item_keeps_raw_source() -> None:
    item = item_from_ical(MEETING)
    assert item.source == MEETING
    assert item.source_type == "text/calendar"
    assert item.message_class == classes.IPM_APPOINTMENT
    assert item.named[V.LOCATION] == "Room 1"
    assert len(item.recipients) == 5
    assert tags.DISPLAY_TO not in item.props


def test_notes_flag_makes_a_sticky_note() -> None:
    assert item_from_ical(JOURNAL).message_class == classes.IPM_STICKYNOTE
    assert item_from_ical(MEETING, notes=True).message_class == classes.IPM_STICKYNOTE


def test_vcard_item_keeps_raw_source() -> None:
    item = item_from_vcard(CARD3)
    assert item.source == CARD3
    assert item.source_type == "text/vcard"
    assert item.props[tags.SURNAME] == "Doe"


def test_content_types() -> None:
    assert content_type_for(classes.IPM_CONTACT) == "text/vcard"
    assert content_type_for(classes.IPM_DISTLIST) == "text/vcard"
    assert content_type_for(classes.IPM_TASK) == "text/calendar"


def test_resource_bytes_updates_raw_or_renders() -> None:
    item = item_from_ical(MEETING)
    assert (
        resource_bytes(MEETING, item.message_class, item.props, item.recipients, named=item.named)
        == MEETING
    )
    props = dict(item.props)
    props[tags.SUBJECT] = "Renamed"
    out = resource_bytes(MEETING, item.message_class, props, item.recipients, named=item.named)
    assert item_from_ical(out).props[tags.SUBJECT] == "Renamed"
    assert b"X-VENDOR-THING;X-P=1:keep me" in out
    new = resource_bytes(None, classes.IPM_APPOINTMENT, {tags.SUBJECT: "Fresh"}, uid="u-1")
    assert item_from_ical(new).named[V.CALENDAR_UID] == "u-1"
    card = resource_bytes(None, classes.IPM_CONTACT, {tags.DISPLAY_NAME: "Zed"}, uid="c-1")
    assert item_from_vcard(card).named[F.VCARD_UID] == "c-1"


def test_resource_bytes_accepts_stored_json_values() -> None:
    """Values as the store keeps them (RFC 3339 strings, base64) work as well."""
    stamp = "2024-02-03T04:05:06Z"
    named = {V.APPT_START: stamp, V.APPT_END: stamp}
    out = resource_bytes(None, classes.IPM_APPOINTMENT, {tags.SUBJECT: "J"}, named=named)
    assert item_from_ical(out).named[V.APPT_START] == dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    photo = base64.b64encode(b"\xff\xd8\xff").decode()
    card = resource_bytes(
        None,
        classes.IPM_CONTACT,
        {tags.DISPLAY_NAME: "P"},
        attachments=[({tags.ATTACHMENT_CONTACT_PHOTO: True}, b"\xff\xd8\xff")],
    )
    assert photo in card.decode()


GARBAGE = [
    b"",
    b"garbage",
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n",
    MEETING[: len(MEETING) // 2],
    b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:notadate\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    b"BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n",
    b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
    b"BEGIN:VCALENDAR\x00\r\nEND:VCALENDAR\r\n",
    os.urandom(4096),
]


@pytest.mark.parametrize("raw", GARBAGE)
def test_bad_icalendar_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(ItemDataError) as info:
        item_from_ical(raw)
    assert str(info.value)
    with pytest.raises(ItemDataError):
        item_from_vcard(raw)


def test_eight_bit_junk_is_read_not_refused() -> None:
    raw = MEETING.replace(b"SUMMARY:Planning", b"SUMMARY:Caf\xe9 \x93quoted\x94")
    item = item_from_ical(raw)
    assert item.props[tags.SUBJECT] == "Caf\u00e9 \u201cquoted\u201d"
    assert item.source == raw
    card = CARD3.replace(b"NICKNAME:Johnny", b"NICKNAME:J\xf6rg")
    assert item_from_vcard(card).props[tags.NICKNAME] == "J\u00f6rg"


def test_ten_thousand_occurrence_rule() -> None:
    raw = SERIES.replace(b"COUNT=10", b"COUNT=10000")
    item = item_from_ical(raw)
    assert item.named[V.RECURRING] is True
    # 10:00 Berlin summer time on the 10,000th day
    assert item.named[V.CLIP_END] == dt.datetime(2051, 5, 18, 8, tzinfo=UTC)
    start = dt.datetime(2023, 1, 1, tzinfo=UTC)
    occurrences = list(iter_occurrences(raw, start, start + dt.timedelta(days=40 * 366), UTC))
    # one EXDATE and one cancelled override are not occurrences
    assert len(occurrences) == 9998
    assert occurrences == sorted(occurrences, key=lambda o: o.start)
    assert occurrences[-1].start == dt.datetime(2051, 5, 18, 8, tzinfo=UTC)
    assert [o.subject for o in occurrences[:4]] == ["Daily", "Daily", "Moved", "Daily"]


def test_endless_dense_rule_is_expanded_lazily() -> None:
    endless = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:dense\r\n"
        b"DTSTART:20240101T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=MINUTELY\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    item = item_from_ical(endless)
    assert V.CLIP_END not in item.named
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    occurrences = iter_occurrences(endless, start, start + dt.timedelta(days=3650), UTC)
    first = [next(occurrences) for _ in range(3000)]
    assert first[-1].start - first[0].start == dt.timedelta(minutes=2999)


def test_five_megabyte_photo_in_a_vcard() -> None:
    photo = os.urandom(5 * 1024 * 1024)
    b64 = base64.b64encode(photo).decode()
    lines = [b64[i : i + 74] for i in range(0, len(b64), 74)]
    body = "\r\n ".join(lines)
    raw = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Pic\r\nN:Pic;;;;\r\n"
        f"PHOTO;ENCODING=b;TYPE=JPEG:{body}\r\nEND:VCARD\r\n"
    ).encode()
    item = item_from_vcard(raw)
    ((aprops, data),) = item.attachments
    assert data == photo
    assert aprops[tags.ATTACHMENT_CONTACT_PHOTO] is True
    assert aprops[tags.ATTACH_MIME_TAG] == "image/jpeg"
    assert item.source == raw
