"""The fast paths of item rendering give what the codec gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.model.codec import MAX_FILETIME, PropValueError, filetime_to_datetime, format_utc
from bridge.store import render

LAST = 2650467743999999999  # 9999-12-31T23:59:59.9999999


@given(st.one_of(st.integers(0, LAST), st.sampled_from([0, 9, 10, LAST - 1, LAST])))
def test_systime_is_the_codec_text(ft: int) -> None:
    assert render.systime(ft) == format_utc(filetime_to_datetime(ft))


@pytest.mark.parametrize("ft", [-1, LAST + 1, MAX_FILETIME + 1, 1.5, True])
def test_systime_out_of_range_is_the_codec_error(ft: object) -> None:
    with pytest.raises(PropValueError):
        render.systime(ft)  # type: ignore[arg-type]


def test_systime_none() -> None:
    assert render.systime(None) is None
