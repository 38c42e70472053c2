"""Named properties and property-key parsing."""

from __future__ import annotations

import re
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.model import named, tags
from bridge.model.keys import (
    NamedKey,
    PropKeyError,
    TaggedKey,
    format_key,
    parse_key,
    tagged_key_name,
)
from bridge.model.named import (
    KNOWN,
    SET_BY_GUID,
    SET_NAMES,
    NamedProp,
    format_named,
    known_by_name,
    parse_named,
)
from bridge.model.proptypes import PropType, is_known_type

APPT = named.PSETID_Appointment
KEYWORDS = NamedProp(named.PS_PUBLIC_STRINGS, name="Keywords")


# --- named.py ---


def test_set_guids() -> None:
    assert str(named.PSETID_Common).upper() == "00062008-0000-0000-C000-000000000046"
    assert str(named.PSETID_Log).upper() == "0006200A-0000-0000-C000-000000000046"
    assert str(named.PSETID_Note).upper() == "0006200E-0000-0000-C000-000000000046"
    assert str(named.PSETID_Meeting).upper() == "6ED8DA90-450B-101B-98DA-00AA003F1305"
    assert str(named.PS_PUBLIC_STRINGS).upper() == "00020329-0000-0000-C000-000000000046"
    assert str(named.PS_INTERNET_HEADERS).upper() == "00020386-0000-0000-C000-000000000046"
    assert str(named.PS_MAPI).upper() == "00020328-0000-0000-C000-000000000046"
    assert len(SET_NAMES) == len(SET_BY_GUID) == 10
    for name, guid in SET_NAMES.items():
        assert getattr(named, name) == guid
        assert SET_BY_GUID[guid] == name


def test_known_table_integrity() -> None:
    canonicals = [i.canonical for i in KNOWN.values()]
    assert len(set(canonicals)) == len(canonicals)
    for prop, info in KNOWN.items():
        assert info.prop == prop
        assert is_known_type(info.ptype), info
        assert info.canonical.startswith("PidLid" if prop.lid is not None else "PidName")
        assert prop.guid in SET_BY_GUID
        assert known_by_name(info.canonical) is info
        assert parse_named(format_named(prop)) == prop


@pytest.mark.parametrize(
    ("canonical", "guid", "lid", "ptype"),
    [
        ("PidLidBusyStatus", APPT, 0x8205, PropType.LONG),
        ("PidLidAppointmentStartWhole", APPT, 0x820D, PropType.SYSTIME),
        ("PidLidEmail1EmailAddress", named.PSETID_Address, 0x8083, PropType.UNICODE),
        ("PidLidTaskDueDate", named.PSETID_Task, 0x8105, PropType.SYSTIME),
        ("PidLidPercentComplete", named.PSETID_Task, 0x8102, PropType.DOUBLE),
        ("PidLidReminderSet", named.PSETID_Common, 0x8503, PropType.BOOLEAN),
        ("PidLidGlobalObjectId", named.PSETID_Meeting, 0x0003, PropType.BINARY),
        ("PidLidDistributionListMembers", named.PSETID_Address, 0x8055, 0x1102),
        ("PidLidCategories", named.PSETID_Common, 0x2328, 0x101F),
        ("PidLidNoteColor", named.PSETID_Note, 0x8B00, PropType.LONG),
        ("PidLidLogStart", named.PSETID_Log, 0x8706, PropType.SYSTIME),
    ],
)
def test_known_lids(canonical: str, guid: UUID, lid: int, ptype: int) -> None:
    info = known_by_name(canonical)
    assert info is not None
    assert info.prop == NamedProp(guid, lid=lid)
    assert info.ptype == ptype


def test_keywords() -> None:
    info = known_by_name("PidNameKeywords")
    assert info is not None
    assert info.prop == NamedProp(named.PS_PUBLIC_STRINGS, name="Keywords")
    assert info.ptype == 0x101F
    assert format_named(info.prop) == "{PS_PUBLIC_STRINGS}:Keywords"
    assert known_by_name("pidnamekeywords") is info
    assert known_by_name("PidLidNope") is None


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"lid": 1, "name": "x"}, {"lid": -1}, {"lid": 2**32}, {"name": ""}, {"name": "a\0"}],
)
def test_named_prop_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NamedProp(APPT, **kwargs)  # type: ignore[arg-type]


def test_format_named() -> None:
    assert format_named(NamedProp(APPT, lid=0x8205)) == "{PSETID_Appointment}:0x8205"
    assert format_named(NamedProp(APPT, lid=3)) == "{PSETID_Appointment}:0x0003"
    other = UUID("12345678-9abc-def0-1234-56789abcdef0")
    assert format_named(NamedProp(other, name="X-Foo")) == (
        "{12345678-9ABC-DEF0-1234-56789ABCDEF0}:X-Foo"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{PSETID_Appointment}:0x8205", NamedProp(APPT, lid=0x8205)),
        ("{psetid_appointment}:0X8205", NamedProp(APPT, lid=0x8205)),
        ("{00062002-0000-0000-C000-000000000046}:0x8205", NamedProp(APPT, lid=0x8205)),
        ("{00062002-0000-0000-c000-000000000046}:0x8205", NamedProp(APPT, lid=0x8205)),
        ("{PSETID_Meeting}:0x3", NamedProp(named.PSETID_Meeting, lid=3)),
        ("{PSETID_Common}:0xFFFFFFFF", NamedProp(named.PSETID_Common, lid=0xFFFFFFFF)),
        ("{PS_PUBLIC_STRINGS}:Keywords", NamedProp(named.PS_PUBLIC_STRINGS, name="Keywords")),
        ("{PS_INTERNET_HEADERS}:x-spam", NamedProp(named.PS_INTERNET_HEADERS, name="x-spam")),
    ],
)
def test_parse_named(text: str, expected: NamedProp) -> None:
    assert parse_named(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PSETID_Appointment:0x8205", "expected"),
        ("{PSETID_Appointment}", "expected"),
        ("{PSETID_Appointment}:", "missing"),
        ("{PSETID_Nope}:0x8205", "unknown property set"),
        ("{00062002-0000-0000-C000-00000000004}:0x8205", "unknown property set"),
        ("{{00062002-0000-0000-C000-000000000046}}:0x8205", "unknown property set"),
        ("{PSETID_Appointment}:0x", "bad LID"),
        ("{PSETID_Appointment}:0x123456789", "bad LID"),
        ("{PSETID_Appointment}:0xZZ", "bad LID"),
        ("{PS_PUBLIC_STRINGS}:a\0b", "NUL"),
    ],
)
def test_parse_named_errors(text: str, fragment: str) -> None:
    with pytest.raises(PropKeyError, match=fragment):
        parse_named(text)


# --- keys.py ---


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("PidTagSubject", tags.SUBJECT),
        ("PR_SUBJECT", tags.SUBJECT),
        ("PR_SUBJECT_W", tags.SUBJECT),
        ("PR_SUBJECT_A", 0x0037001E),
        ("0x0037001F", tags.SUBJECT),
        ("0x0037001f", tags.SUBJECT),
        ("0X0037001E", 0x0037001E),
        ("0x12341102", 0x12341102),
        ("0x80050003", 0x80050003),
        ("PidTagAttachDataObject", tags.ATTACH_DATA_OBJ),
    ],
)
def test_parse_tagged(text: str, tag: int) -> None:
    assert parse_key(text) == TaggedKey(tag)


@pytest.mark.parametrize(
    ("text", "prop", "ptype"),
    [
        ("PidLidBusyStatus", NamedProp(APPT, lid=0x8205), PropType.LONG),
        ("PidNameKeywords", NamedProp(named.PS_PUBLIC_STRINGS, name="Keywords"), 0x101F),
        ("{PSETID_Appointment}:0x8205", NamedProp(APPT, lid=0x8205), PropType.LONG),
        ("{PSETID_Common}:0x8599", NamedProp(named.PSETID_Common, lid=0x8599), None),
        ("{PSETID_Common}:0x8599:0x000B", NamedProp(named.PSETID_Common, lid=0x8599), 0x000B),
        ("{PSETID_Appointment}:0x8208:0x001E", NamedProp(APPT, lid=0x8208), 0x001E),
        ("{PS_PUBLIC_STRINGS}:Keywords:0x101E", KEYWORDS, 0x101E),
        ("{PS_INTERNET_HEADERS}:X-Foo", NamedProp(named.PS_INTERNET_HEADERS, name="X-Foo"), None),
    ],
)
def test_parse_named_keys(text: str, prop: NamedProp, ptype: int | None) -> None:
    assert parse_key(text) == NamedKey(prop, ptype)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PidTagNope", "unknown property 'PidTagNope': use a PidTag name"),
        ("Subject", "unknown property"),
        ("", "unknown property"),
        ("PR_ENTRYID_A", "unknown property"),
        ("0x0037001", "exactly 8 hex digits"),
        ("0x0037001F0", "exactly 8 hex digits"),
        ("0x0037001G", "exactly 8 hex digits"),
        ("0x00370099", "bad property type 0x0099"),
        ("0x0037100B", "bad property type 0x100B"),
        ("0x0037201F", "bad property type 0x201F"),
        ("0x0000001F", "bad property id 0x0000"),
        ("0xFFFF001F", "bad property id 0xFFFF"),
        ("{PSETID_Nope}:0x8205", "unknown property set"),
        ("{PSETID_Common}:0x8599:0x0099", "bad property type 0x0099"),
        ("{PSETID_Appointment}:0x8205:0x001F", "PidLidBusyStatus has type PT_LONG"),
        ("{PSETID_Appointment}:0x8208:0x101F", "PidLidLocation has type PT_UNICODE"),
        ("{PSETID_Appointment}:", "missing"),
        ("{PSETID_Appointment}:0xZZZZ", "bad LID"),
    ],
)
def test_parse_key_errors(text: str, fragment: str) -> None:
    with pytest.raises(PropKeyError, match=re.escape(fragment)):
        parse_key(text)


def test_parse_key_rejects_non_strings() -> None:
    with pytest.raises(PropKeyError, match="must be a string"):
        parse_key(0x0037001F)  # type: ignore[arg-type]


def test_tagged_key_name() -> None:
    assert tagged_key_name(tags.SUBJECT) == "PidTagSubject"
    assert tagged_key_name(0x0037001E) == "0x0037001E"
    assert tagged_key_name(0x12340003) == "0x12340003"
    for tag, info in tags.TAGS.items():
        assert tagged_key_name(tag) == info.pidtag
        assert parse_key(tagged_key_name(tag)) == TaggedKey(tag)


def test_format_key_round_trips_known() -> None:
    for prop, info in KNOWN.items():
        key = NamedKey(prop, info.ptype)
        assert format_key(key) == info.canonical
        assert parse_key(format_key(key)) == key
    assert format_key(NamedKey(KEYWORDS, None)) == "{PS_PUBLIC_STRINGS}:Keywords"


_guids = st.one_of(st.sampled_from(sorted(SET_BY_GUID, key=str)), st.uuids())
_names = st.text(
    st.characters(exclude_characters="\0", exclude_categories=("Cs",)), min_size=1
).filter(lambda s: not s.lower().startswith("0x") and ":" not in s)
_props = st.one_of(
    st.builds(lambda g, lid: NamedProp(g, lid=lid), _guids, st.integers(0, 0xFFFFFFFF)),
    st.builds(lambda g, n: NamedProp(g, name=n), _guids, _names),
)
_types = st.sampled_from([t for t in range(0x10000) if is_known_type(t) and t < 0x2000])


@given(_props, st.one_of(st.none(), _types))
def test_named_key_round_trip(prop: NamedProp, ptype: int | None) -> None:
    assert parse_named(format_named(prop)) == prop
    known = KNOWN.get(prop)
    if known is not None and ptype is not None and ptype != known.ptype:
        return
    key = NamedKey(prop, ptype)
    parsed = parse_key(format_key(key))
    assert isinstance(parsed, NamedKey)
    assert parsed.prop == prop
    assert parsed.ptype == (ptype if ptype is not None or known is None else known.ptype)


_PREFIXES = ["", "{", "{PSETID_Common}:", "{PS_PUBLIC_STRINGS}:", "0x", "PR_", "PidTag", "PidLid"]


@given(st.builds(str.__add__, st.sampled_from(_PREFIXES), st.text(max_size=40)))
def test_parse_key_raises_only_prop_key_error(text: str) -> None:
    try:
        key = parse_key(text)
    except PropKeyError:
        return
    assert isinstance(key, TaggedKey | NamedKey)


@given(st.integers(0, 0xFFFFFFFF))
def test_hex_tags(tag: int) -> None:
    text = f"0x{tag:08X}"
    try:
        key = parse_key(text)
    except PropKeyError as exc:
        assert not is_known_type(tag & 0xFFFF) or (tag >> 16) in (0, 0xFFFF), exc
    else:
        assert key == TaggedKey(tag)
