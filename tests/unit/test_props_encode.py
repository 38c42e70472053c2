"""The stored JSON of a property: `props.encode`'s shortcuts for the common cases give what
the codec gives, and what the codec refuses is still refused."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.model.codec import PropValueError, to_json
from bridge.model.proptypes import PropType, hex_tag, make_tag
from bridge.store import props as P

SYSTIME = make_tag(0x0E06, PropType.SYSTIME)
BINARY = make_tag(0x0FFF, PropType.BINARY)
zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))]
)


@given(st.datetimes(timezones=zones))
def test_times_as_the_codec_writes_them(value: dt.datetime) -> None:
    try:
        expected = to_json(PropType.SYSTIME, value)
    except PropValueError:  # before 1601 in UTC
        with pytest.raises(PropValueError):
            P.encode({SYSTIME: value})
        return
    assert P.encode({SYSTIME: value}) == {P.key(SYSTIME): expected}


@given(st.binary(max_size=64))
def test_binary_as_the_codec_writes_it(value: bytes) -> None:
    assert P.encode({BINARY: value}) == {P.key(BINARY): to_json(PropType.BINARY, value)}


def test_what_the_codec_refuses_is_refused() -> None:
    with pytest.raises(PropValueError):
        P.encode({SYSTIME: dt.datetime(2020, 1, 1)})  # naive
    with pytest.raises(PropValueError):
        P.encode({SYSTIME: dt.datetime(1600, 12, 31, 23, tzinfo=dt.UTC)})
    with pytest.raises(PropValueError):
        P.encode({BINARY: "not bytes"})


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_document_keys_are_the_hex_tags(tag: int) -> None:
    assert P.key(tag) == hex_tag(tag)
    assert P.key(tag) == hex_tag(tag)  # and again, from the cache
