"""Decoded text is always storable: no NUL and no lone surrogate, whatever the bytes and
their declared charset (the UTF-8 and guessed paths skip the surrogate scan, because
their decoders cannot make one)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.formats.mime_decode import decode_bytes, scrub_text

CHARSETS = [None, "utf-8", "UTF8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-7"]


@given(st.binary(max_size=200), st.sampled_from(CHARSETS))
def test_decoded_text_is_storable(data: bytes, charset: str | None) -> None:
    text = decode_bytes(data, charset)
    assert "\x00" not in text
    text.encode("utf-8")  # raises on a lone surrogate
    assert scrub_text(text) == text


@given(st.text(max_size=100))
def test_utf8_text_comes_back_without_its_nuls(text: str) -> None:
    data = text.encode("utf-8", "replace")  # (a lone surrogate has no UTF-8 form)
    assert decode_bytes(data, "utf-8") == data.decode("utf-8").replace("\x00", "")
