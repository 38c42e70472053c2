"""IMAP names: modified UTF-7 mailbox names and categories as keywords, both ways; the UID
listing of an ESEARCH response."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.upstream.base import UpstreamError
from bridge.upstream.imap_codec import (
    MAX_LISTED,
    decode_keyword,
    decode_mailbox,
    encode_keyword,
    encode_mailbox,
    esearch_all,
    seqset,
)


def is_atom(word: str) -> bool:
    """An IMAP atom, as a keyword must be one (RFC 3501: printable ASCII, no atom-specials;
    and no "[", which some servers refuse in a keyword)."""
    return bool(word) and all(0x21 <= ord(c) <= 0x7E and c not in '(){%*"\\[]' for c in word)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=500)
@given(TEXT.filter(lambda t: t[0] not in "\\$"))
def test_a_category_is_one_keyword_and_comes_back_as_it_was(category: str) -> None:
    keyword = encode_keyword(category)
    assert is_atom(keyword)
    assert decode_keyword(keyword) == category


@given(TEXT)
def test_a_mailbox_name_comes_back_as_it_was(name: str) -> None:
    encoded = encode_mailbox(name)
    assert encoded.isascii()
    assert decode_mailbox(encoded) == name


@given(st.text(st.sampled_from("&-AB+,/=a\u00e9"), max_size=20))
def test_whatever_a_server_sends_decodes_without_an_error(text: str) -> None:
    decode_mailbox(text)
    decode_keyword(text)


@pytest.mark.parametrize(
    ("category", "keyword"),
    [
        ("Red Category", "Red&ACA-Category"),
        ("Work", "Work"),
        ("R&D", "R&D"),  # a keyword another client set reads back as itself: kept
        ("A&AGA-B", "A&-AGA-B"),  # that would not: its "&" is escaped
        ("[x]", "&AFs-x&AF0-"),
        ("\\Seen", "\\Seen"),
        ("$Forwarded", "$Forwarded"),
    ],
)
def test_keywords(category: str, keyword: str) -> None:
    assert encode_keyword(category) == keyword
    assert decode_keyword(keyword) == category


def test_a_broken_mailbox_name_from_the_server_is_kept_as_sent() -> None:
    assert decode_mailbox("a&A-b") == "a&A-b"  # one base64 digit: no character
    assert decode_mailbox("Ent&AOk-") == "Ent\u00e9"


@given(st.sets(st.integers(1, 10**6), max_size=200))
def test_an_esearch_listing_gives_back_the_uids_of_its_ranges(uids: set[int]) -> None:
    values: list[object] = ["ESEARCH", ["TAG", "A7"], "UID"]
    if uids:
        values += ["ALL", seqset(uids)]
    assert esearch_all(values) == uids


def test_an_esearch_listing_reads_its_result_whatever_the_case_of_all() -> None:
    assert esearch_all(["ESEARCH", ["TAG", "A7"], "UID", "all", "4:2,9"]) == {2, 3, 4, 9}


@pytest.mark.parametrize(
    "result", ["1:x", "", "1 2", "1,,2", "1:2:3", ["1"], f"1:{MAX_LISTED + 1}"]
)
def test_an_unreadable_or_oversized_esearch_listing_is_an_upstream_error(result: object) -> None:
    with pytest.raises(UpstreamError):
        esearch_all(["ESEARCH", ["TAG", "A7"], "UID", "ALL", result])


def test_an_esearch_all_without_its_result_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        esearch_all(["ESEARCH", ["TAG", "A7"], "UID", "ALL"])
