"""Property values to and from JSON."""

from __future__ import annotations

import contextlib
import json
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.model.codec import (
    FILETIME_EPOCH,
    MAX_FILETIME,
    PropValueError,
    datetime_to_filetime,
    filetime_to_datetime,
    from_json,
    normalize_json,
    to_json,
)
from bridge.model.proptypes import MV_CAPABLE, MV_FLAG, MV_INSTANCE, PropType, is_known_type

P = PropType
MAX_DT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), floats, st.text())
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)
        ),
        max_leaves=12,
    )


# Strict JSON, and anything Python's json.loads produces (NaN, Infinity, lone surrogates).
_json = _json_values(st.floats(allow_nan=False, allow_infinity=False))
_json_any = _json_values(st.floats()) | st.just(json.loads('"\\ud800"'))

_BASE: dict[int, st.SearchStrategy[Any]] = {
    P.I2: st.integers(-(2**15), 2**15 - 1),
    P.LONG: st.integers(-(2**31), 2**32 - 1),
    P.I8: st.integers(-(2**63), 2**63 - 1),
    P.CURRENCY: st.integers(-(2**63), 2**63 - 1),
    P.ERROR: st.integers(0, 2**32 - 1),
    P.R4: st.floats(width=32),
    P.DOUBLE: st.floats(),
    P.APPTIME: st.floats(allow_nan=False, allow_infinity=False),
    P.BOOLEAN: st.booleans(),
    P.STRING8: st.text(),
    P.UNICODE: st.text(),
    P.SYSTIME: st.datetimes(
        min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    P.CLSID: st.uuids(),
    P.BINARY: st.binary(),
    P.SVREID: st.binary(),
    P.SRESTRICTION: st.dictionaries(st.text(), _json, max_size=4),
    P.ACTIONS: st.lists(_json, max_size=4),
}
_NOT_VALUES = (P.OBJECT, P.NULL, P.UNSPECIFIED)
ALL_TYPES = sorted(t for t in range(0x4000) if is_known_type(t))


def _typed_values() -> st.SearchStrategy[tuple[int, Any]]:
    single = [st.tuples(st.just(int(t)), s) for t, s in _BASE.items()]
    multi = [
        st.tuples(st.just(int(t) | MV_FLAG), st.lists(_BASE[t], max_size=5)) for t in MV_CAPABLE
    ]
    instance = [st.tuples(st.just(int(t) | MV_FLAG | MV_INSTANCE), _BASE[t]) for t in MV_CAPABLE]
    return st.one_of(*single, *multi, *instance)


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def test_every_known_type_has_a_codec() -> None:
    for ptype in ALL_TYPES:
        if ptype & 0xFFF in _NOT_VALUES:
            continue
        assert ptype & 0xFFF in _BASE


@given(_typed_values())
def test_round_trip(typed: tuple[int, Any]) -> None:
    ptype, value = typed
    wire = json.dumps(to_json(ptype, value), allow_nan=False)
    back = from_json(ptype, json.loads(wire))
    assert _same(back, value), (hex(ptype), value, back)
    assert normalize_json(ptype, json.loads(wire)) == json.loads(wire)


@given(st.sampled_from(ALL_TYPES), _json_any)
def test_arbitrary_json_only_raises_prop_value_error(ptype: int, value: object) -> None:
    try:
        decoded = from_json(ptype, value)
    except PropValueError:
        return
    normal = to_json(ptype, decoded)
    json.dumps(normal, allow_nan=False)
    assert normalize_json(ptype, normal) == normal


@given(st.integers(0, 0xFFFF), _json_any)
def test_any_type_code_only_raises_prop_value_error(ptype: int, value: object) -> None:
    with contextlib.suppress(PropValueError):
        from_json(ptype, value)


# --- integers ---


@pytest.mark.parametrize(
    ("ptype", "good", "bad"),
    [
        (P.I2, [-32768, 32767, 0], [-32769, 32768]),
        (P.LONG, [-(2**31), -1, 2**32 - 1], [-(2**31) - 1, 2**32]),
        (P.I8, [-(2**63), 2**63 - 1], [-(2**63) - 1, 2**63]),
        (P.CURRENCY, [-(2**63), 123_4567], [2**63]),
        (P.ERROR, [0, 0x8004010F, 2**32 - 1], [-1, 2**32]),
    ],
)
def test_integer_ranges(ptype: int, good: list[int], bad: list[int]) -> None:
    for value in good:
        assert from_json(ptype, value) == value
        assert to_json(ptype, value) == value
    for value in bad:
        with pytest.raises(PropValueError, match="out of range"):
            from_json(ptype, value)
        with pytest.raises(PropValueError):
            to_json(ptype, value)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, [1]])
def test_integers_reject_other_shapes(value: object) -> None:
    with pytest.raises(PropValueError, match="PT_LONG expects an integer"):
        from_json(P.LONG, value)


# --- floating point ---


def test_r4_is_rounded_to_single_precision() -> None:
    single = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert from_json(P.R4, 0.1) == single != 0.1
    assert normalize_json(P.R4, 0.1) == single
    assert from_json(P.R4, 3) == 3.0
    with pytest.raises(PropValueError, match="out of range"):
        from_json(P.R4, 1e39)


def test_double_specials() -> None:
    assert math.isnan(from_json(P.DOUBLE, "NaN"))  # type: ignore[arg-type]
    assert from_json(P.DOUBLE, "Infinity") == math.inf
    assert from_json(P.R4, "-Infinity") == -math.inf
    assert to_json(P.DOUBLE, math.nan) == "NaN"
    assert to_json(P.R4, math.inf) == "Infinity"
    assert to_json(P.DOUBLE, -math.inf) == "-Infinity"
    for bad in ("nan", "inf", "1.5", math.inf, math.nan, True, None):
        with pytest.raises(PropValueError):
            from_json(P.DOUBLE, bad)
    with pytest.raises(PropValueError, match="out of range"):
        from_json(P.DOUBLE, 10**400)


def test_apptime_is_finite() -> None:
    assert from_json(P.APPTIME, 45000.5) == 45000.5
    for bad in ("NaN", "Infinity", math.inf):
        with pytest.raises(PropValueError):
            from_json(P.APPTIME, bad)
    with pytest.raises(PropValueError):
        to_json(P.APPTIME, math.nan)


# --- booleans and strings ---


@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_boolean_rejects_non_bools(value: object) -> None:
    with pytest.raises(PropValueError, match="true or false"):
        from_json(P.BOOLEAN, value)


def test_strings() -> None:
    assert from_json(P.UNICODE, "a\0b") == "a\0b"
    assert from_json(P.STRING8, "Grüße") == "Grüße"
    with pytest.raises(PropValueError, match="lone surrogate"):
        from_json(P.UNICODE, json.loads('"\\ud800"'))
    with pytest.raises(PropValueError, match="a string"):
        from_json(P.UNICODE, 5)
    with pytest.raises(PropValueError):
        to_json(P.UNICODE, b"bytes")


# --- time ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01t09:30:00z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01 09:30:00+02:00", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00.5-01:30", datetime(2024, 5, 1, 11, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T09:30:00.123456789Z", datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)),
        ("1601-01-01T00:00:00Z", FILETIME_EPOCH),
        ("9999-12-31T23:59:59.999999Z", MAX_DT),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    value = from_json(P.SYSTIME, text)
    assert value == expected
    assert isinstance(value, datetime) and value.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2024-05-01T09:30:00", "RFC 3339"),
        ("2024-05-01", "RFC 3339"),
        ("2024-05-01T09:30Z", "RFC 3339"),
        ("2024-05-01T09:30:00.Z", "RFC 3339"),
        ("2024-05-01T09:30:00+0200", "RFC 3339"),
        ("2024-05-01T09:30:00+24:00", "bad offset"),
        ("2024-05-01T09:30:00+02:60", "bad offset"),
        ("2024-02-30T09:30:00Z", "day is out of range"),
        ("2016-12-31T23:59:60Z", "second must be"),
        ("1600-12-31T23:59:59Z", "before 1601"),
        ("1601-01-01T00:30:00+01:00", "before 1601"),
        ("0001-01-01T00:00:00+01:00", "out of range"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("２０２４-05-01T09:30:00Z", "RFC 3339"),
    ],
)
def test_parse_time_errors(text: str, fragment: str) -> None:
    with pytest.raises(PropValueError, match=fragment):
        from_json(P.SYSTIME, text)


def test_format_time() -> None:
    assert to_json(P.SYSTIME, datetime(2024, 5, 1, 9, 30, tzinfo=UTC)) == "2024-05-01T09:30:00Z"
    tz = timezone(timedelta(hours=2))
    assert to_json(P.SYSTIME, datetime(2024, 5, 1, 9, 30, 0, 7, tzinfo=tz)) == (
        "2024-05-01T07:30:00.000007Z"
    )
    with pytest.raises(PropValueError, match="naive"):
        to_json(P.SYSTIME, datetime(2024, 5, 1))
    with pytest.raises(PropValueError):
        to_json(P.SYSTIME, "2024-05-01T09:30:00Z")


def test_filetime_known_values() -> None:
    assert datetime_to_filetime(FILETIME_EPOCH) == 0
    assert datetime_to_filetime(datetime(1970, 1, 1, tzinfo=UTC)) == 116444736000000000
    assert filetime_to_datetime(116444736000000000) == datetime(1970, 1, 1, tzinfo=UTC)
    assert filetime_to_datetime(19) == FILETIME_EPOCH + timedelta(microseconds=1)
    assert datetime_to_filetime(MAX_DT) == 2650467743999999990


@pytest.mark.parametrize("ft", [-1, MAX_FILETIME + 1, True, 2650467744000000000, MAX_FILETIME])
def test_filetime_out_of_range(ft: int) -> None:
    with pytest.raises(PropValueError, match="FILETIME"):
        filetime_to_datetime(ft)


@pytest.mark.parametrize(
    "dt", [datetime(2024, 1, 1), datetime(1600, 12, 31, tzinfo=UTC), "2024-01-01"]
)
def test_datetime_to_filetime_errors(dt: datetime) -> None:
    with pytest.raises(PropValueError, match="FILETIME"):
        datetime_to_filetime(dt)


@given(
    st.datetimes(
        min_value=datetime(1601, 1, 1),
        max_value=datetime(9999, 12, 31),
        timezones=st.just(UTC),
    )
)
def test_filetime_round_trip_from_datetime(dt: datetime) -> None:
    ft = datetime_to_filetime(dt)
    assert 0 <= ft <= MAX_FILETIME and ft % 10 == 0
    assert filetime_to_datetime(ft) == dt


@given(st.integers(0, 2650467743999999990 // 10).map(lambda n: n * 10))
def test_filetime_round_trip_from_ticks(ft: int) -> None:
    assert datetime_to_filetime(filetime_to_datetime(ft)) == ft


# --- GUIDs, bytes, errors, structures ---


def test_clsid() -> None:
    guid = UUID("00062002-0000-0000-c000-000000000046")
    for text in (str(guid), str(guid).upper(), "{" + str(guid) + "}"):
        assert from_json(P.CLSID, text) == guid
    assert to_json(P.CLSID, guid) == "00062002-0000-0000-C000-000000000046"
    for bad in ("{" + str(guid), str(guid)[:-1], guid.hex, "", 5):
        with pytest.raises(PropValueError, match="GUID"):
            from_json(P.CLSID, bad)


def test_binary() -> None:
    assert from_json(P.BINARY, "") == b""
    assert from_json(P.BINARY, "AQID") == b"\x01\x02\x03"
    assert from_json(P.SVREID, "AQ==") == b"\x01"
    assert to_json(P.BINARY, bytearray(b"\x01\x02\x03")) == "AQID"
    for bad in ("AQ", "AQ=", "AQ ID", "AQID\n", "AQ-_", "ÄQID", 5):
        with pytest.raises(PropValueError, match="base64"):
            from_json(P.BINARY, bad)


def test_structures() -> None:
    assert from_json(P.SRESTRICTION, {"type": "exist"}) == {"type": "exist"}
    assert from_json(P.ACTIONS, [{"op": "move"}]) == [{"op": "move"}]
    with pytest.raises(PropValueError, match="restriction object"):
        from_json(P.SRESTRICTION, [])
    with pytest.raises(PropValueError, match="array of rule actions"):
        from_json(P.ACTIONS, {})
    with pytest.raises(PropValueError, match="non-finite"):
        from_json(P.SRESTRICTION, {"value": [math.nan]})
    with pytest.raises(PropValueError, match="lone surrogate"):
        from_json(P.ACTIONS, [{"\ud800": 1}])
    with pytest.raises(PropValueError, match="object keys must be strings"):
        from_json(P.ACTIONS, [{1: 1}])
    with pytest.raises(PropValueError, match="contains a bytes"):
        to_json(P.SRESTRICTION, {"value": b"x"})
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(PropValueError, match="nested too deeply"):
        from_json(P.ACTIONS, deep)


@pytest.mark.parametrize("ptype", [P.OBJECT, P.NULL, P.UNSPECIFIED])
def test_types_without_values(ptype: int) -> None:
    with pytest.raises(PropValueError, match="nothing"):
        from_json(ptype, None)
    with pytest.raises(PropValueError):
        to_json(ptype, None)
    with pytest.raises(PropValueError, match="objects are opened, not set"):
        from_json(P.OBJECT, "x")


# --- multi-valued and unknown types ---


def test_multi_valued() -> None:
    assert from_json(0x101F, ["a", "b"]) == ["a", "b"]
    assert from_json(0x1003, []) == []
    assert to_json(0x1003, (1, 2)) == [1, 2]
    with pytest.raises(PropValueError, match="expects an array of a string"):
        from_json(0x101F, "a")
    with pytest.raises(PropValueError, match="expects an array"):
        from_json(0x1003, (1, 2))
    with pytest.raises(PropValueError, match="at index 1"):
        from_json(0x1003, [1, "2"])
    with pytest.raises(PropValueError, match="at index 0"):
        to_json(0x1040, [datetime(2024, 1, 1)])


def test_mv_instance_columns_hold_one_value() -> None:
    assert from_json(0x301F, "a") == "a"
    assert to_json(0x3102, b"\x01") == "AQ=="


@pytest.mark.parametrize("ptype", [0x0099, 0x100B, 0x100D, 0x201F, 0x10FD, 0x4003])
def test_unknown_types(ptype: int) -> None:
    with pytest.raises(PropValueError, match="unknown property type"):
        from_json(ptype, 1)
    with pytest.raises(PropValueError, match="unknown property type"):
        to_json(ptype, 1)
