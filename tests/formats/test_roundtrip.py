"""Property-based round trips: parse → update with no change → the same object; a subject
edit changes SUMMARY and nothing else; a vCard edit changes only its lines."""

from __future__ import annotations

import datetime as dt

import icalendar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.formats.ical_parse import parse_ical
from bridge.formats.ical_render import update_ical
from bridge.formats.vcard import parse_vcard, update_vcard
from bridge.formats.vcard_lines import escape
from bridge.model import tags
from bridge.store.calendar_items import (
    ItemDataError,
    item_from_ical,
    item_from_vcard,
    resource_bytes,
)
from tests.formats import samples as s

UTC = dt.UTC
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "W. Europe Standard Time", None]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s != "")
x_name = st.from_regex(r"X-[A-Z]{1,8}", fullmatch=True)
email = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.org", fullmatch=True)


@st.composite
def calendars(draw: st.DrawFn) -> bytes:
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//hypothesis//EN")
    cal.add("VERSION", "2.0")
    kind = draw(st.sampled_from(["VEVENT", "VTODO"]))
    comp = icalendar.Event() if kind == "VEVENT" else icalendar.Todo()
    comp.add("UID", draw(text))
    comp.add("DTSTAMP", dt.datetime(2024, 1, 1, tzinfo=UTC))
    comp.add("SUMMARY", draw(text))
    if draw(st.booleans()):
        comp.add("DESCRIPTION", draw(text))
    start = draw(
        st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2060, 1, 1))
    ).replace(microsecond=0)
    zone = draw(st.sampled_from(ZONES))
    length = dt.timedelta(minutes=draw(st.integers(0, 60 * 24 * 3)))
    end_name = "DTEND" if kind == "VEVENT" else "DUE"
    if zone is None:
        comp.add("DTSTART", start.replace(tzinfo=UTC))
        comp.add(end_name, (start + length).replace(tzinfo=UTC))
    else:
        comp.add("DTSTART", start, parameters={"TZID": zone})
        comp.add(end_name, start + length, parameters={"TZID": zone})
    if kind == "VEVENT" and draw(st.booleans()):
        comp.add("LOCATION", draw(text))
    if draw(st.booleans()):
        comp.add("CATEGORIES", draw(st.lists(text, min_size=1, max_size=3, unique=True)))
    if draw(st.booleans()):
        comp.add("RRULE", {"FREQ": draw(st.sampled_from(["DAILY", "WEEKLY"])), "COUNT": 5})
    for _ in range(draw(st.integers(0, 3))):
        comp.add(draw(x_name), draw(text), parameters={"X-P": "1"})
    if draw(st.booleans()):
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("TRIGGER", dt.timedelta(minutes=-draw(st.integers(0, 600))))
        comp.add_component(alarm)
    cal.add_component(comp)
    if zone is not None:
        cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _lines(data: bytes, *skip: str) -> list[str]:
    cal = icalendar.Calendar.from_ical(data)
    lines = [str(line) for line in cal.content_lines()]
    return sorted(ln for ln in lines if ln and ln.split(":")[0].split(";")[0] not in skip)


@SETTINGS
@given(calendars(), text)
def test_ical_update_round_trip(raw: bytes, new_subject: str) -> None:
    item = parse_ical(raw, floating_tz=UTC)
    args = (item.message_class, item.props, item.named, item.recipients)
    assert update_ical(raw, *args, floating_tz=UTC) == raw
    props = dict(item.props)
    props[tags.SUBJECT] = new_subject
    edited = update_ical(raw, item.message_class, props, item.named, item.recipients)
    after = parse_ical(edited, floating_tz=UTC)
    assert after.props[tags.SUBJECT] == new_subject
    assert _lines(edited, "SUMMARY") == _lines(raw, "SUMMARY")
    # and back: the original subject gives an object equal to the original
    back = update_ical(edited, *args, floating_tz=UTC)
    assert _lines(back) == _lines(raw)
    assert after.named == item.named


@st.composite
def cards(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from(["3.0", "4.0"]))
    lines = ["BEGIN:VCARD", f"VERSION:{version}"]
    lines.append("FN:" + escape(draw(text)))
    lines.append("N:" + ";".join(escape(draw(text)) for _ in range(2)) + ";;;")
    for kind in draw(st.lists(st.sampled_from(["work", "home", "cell", "fax"]), max_size=3)):
        lines.append(f"TEL;TYPE={kind}:+{draw(st.integers(1000, 99999999))}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append("EMAIL:" + draw(email))
    if draw(st.booleans()):
        lines.append("NOTE:" + escape(draw(text)))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(f"{draw(x_name)};X-P=1:{escape(draw(text))}")
    lines += ["UID:" + escape(draw(text)), "END:VCARD", ""]
    return "\r\n".join(lines).encode("utf-8")


@SETTINGS
@given(cards(), text)
def test_vcard_update_round_trip(raw: bytes, title: str) -> None:
    item = parse_vcard(raw)
    same = update_vcard(raw, item.message_class, item.props, item.named, item.attachments)
    assert same == raw
    props = dict(item.props)
    props[tags.TITLE] = title
    edited = update_vcard(raw, item.message_class, props, item.named, item.attachments)
    assert parse_vcard(edited).props[tags.TITLE] == title
    unfolded = edited.decode().replace("\r\n ", "")
    kept = [ln for ln in unfolded.split("\r\n") if not ln.startswith("TITLE")]
    assert kept == raw.decode().split("\r\n") or kept[:-1] == raw.decode().split("\r\n")[:-1]
    assert parse_vcard(edited).named == item.named


SAMPLES = [s.MEETING, s.SERIES, s.TODO, s.JOURNAL, s.CARD3, s.CARD4, s.GROUP4]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 80))]
    return bytes(data)


@SETTINGS
@given(mangled())
def test_mangled_input_gives_an_item_or_a_clear_error(raw: bytes) -> None:
    for parse in (item_from_ical, item_from_vcard):
        try:
            item = parse(raw)
        except ItemDataError as exc:
            assert str(exc)
            continue
        assert item.source == raw
        out = resource_bytes(
            raw,
            item.message_class,
            item.props,
            item.recipients,
            item.attachments,
            named=item.named,
        )
        assert out == raw
