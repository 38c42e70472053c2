"""The full-text prefilter of CONTENT restrictions never drops a text that matches."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from bridge.store.search_query import content_prefilter

TEXT = st.text(alphabet="aAbB1 .-_zßSKKéﬁFİi\u0301ǅ", max_size=8)


def _matches(text: str, needle: str, match: str, fold: bool) -> bool:
    if fold:
        text, needle = text.casefold(), needle.casefold()
    if match == "full":
        return text == needle
    if match == "prefix":
        return text.startswith(needle)
    return needle in text


_DB = sqlite3.connect(":memory:")
_DB.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2')")


@given(
    text=TEXT,
    needle=TEXT,
    match=st.sampled_from(["full", "prefix", "substring"]),
    fold=st.booleans(),
)
def test_prefilter_keeps_every_match(text: str, needle: str, match: str, fold: bool) -> None:
    if match == "substring" and len(needle) < len(text) and text:
        needle = text[1 : 1 + len(needle)] if len(text) > 1 else needle  # often a real hit
    expr = content_prefilter(needle, match)
    if expr is None or not _matches(text, needle, match, fold):
        return
    _DB.execute("DELETE FROM t")
    _DB.execute("INSERT INTO t (rowid, x) VALUES (1, ?)", (text.casefold(),))
    hits = _DB.execute("SELECT count(*) FROM t WHERE t MATCH ?", (expr,)).fetchone()[0]
    assert hits == 1, (text, needle, match, expr)


def test_prefilter_shapes() -> None:
    assert content_prefilter("Hello World", "substring") == '"world"*'
    assert content_prefilter("Hello World", "prefix") == '"hello" AND "world"*'
    assert content_prefilter("Hello World", "full") == '"hello" AND "world"'
    assert content_prefilter("ello", "substring") is None
    assert content_prefilter("é x", "prefix") == '"x"*'
    assert content_prefilter("xé", "full") == '"x"*'
    assert content_prefilter("", "full") is None
