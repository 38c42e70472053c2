"""The fast MIME splitter builds the same tree as the stdlib parser, or declines."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.formats.mime_parts import PARSE_POLICY
from bridge.formats.mime_split import header_end, split

HEAD = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\n"
NESTED = (
    HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"preamble text\r\n--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello \xc3\xa9\r\n"
    b"--inner  \r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--inner--\r\n"
    b"--outer\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--outer--\r\nepilogue\r\n"
)  # fmt: skip


def dump(msg: Message) -> list[Any]:
    out: list[Any] = [msg.items(), msg.preamble, msg.epilogue, len(msg.defects)]
    payload = msg.get_payload()
    if isinstance(payload, list):
        out += [dump(part) for part in payload]
    else:
        out.append(payload)
    return out


@pytest.mark.parametrize(
    "raw",
    [
        HEAD + b"\r\nplain body\r\n",
        HEAD + b"Content-Type: text/plain\r\n\r\nno final newline",
        HEAD + b"Subject-Folded: a\r\n b\r\n\r\nbody\r\n",
        NESTED,
        NESTED.replace(b"\r\n", b"\n"),
        b"\r\nno headers at all\r\n",
        HEAD + b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n\r\nempty\r\n--x--',
    ],
)
def test_same_tree_as_the_stdlib(raw: bytes) -> None:
    fast = split(raw, PARSE_POLICY)
    assert fast is not None
    assert dump(fast) == dump(BytesParser(policy=PARSE_POLICY).parsebytes(raw))


@pytest.mark.parametrize(
    "raw",
    [NESTED, NESTED.replace(b"\r\n", b"\n"), HEAD + b"\r\nplain body\r\n", b"\r\nno headers\r\n"],
)
def test_each_leaf_knows_where_its_body_stands_in_the_message(raw: bytes) -> None:
    fast = split(raw, PARSE_POLICY)
    assert fast is not None
    leaves = [p for p in fast.walk() if not p.is_multipart()]
    assert leaves
    for leaf in leaves:
        body = leaf.raw_body
        assert body is not None and leaf.raw_at >= 0
        assert raw[leaf.raw_at : leaf.raw_at + len(body)] == body


def test_a_leaf_s_payload_text_is_made_when_first_asked_for() -> None:
    fast = split(NESTED, PARSE_POLICY)
    assert fast is not None and fast.is_multipart()
    alternative, attachment = fast.get_payload()
    text = alternative.get_payload()[0]
    assert not attachment.is_multipart() and not text.is_multipart()
    assert attachment._lazy_body == b"AAECAw=="  # not decoded by splitting or asking
    assert attachment.get_payload() == "AAECAw=="
    assert attachment._lazy_body is None
    assert attachment.get_payload(decode=True) == bytes([0, 1, 2, 3])
    assert text.get_payload() == "hello \u00e9"  # its 8-bit bytes read as the stdlib does
    text.set_payload("changed")
    assert text.get_payload() == "changed" and not text.is_multipart()


@pytest.mark.parametrize(
    "raw",
    [
        NESTED.replace(b"--outer--", b"--outer-x"),  # no closing boundary
        NESTED.replace(b"hello \xc3\xa9\r\n", b"hello\rthere\r\n"),  # a bare CR
        HEAD + b"not a header line\r\n\r\nbody",
        HEAD + b"Content-Type: message/rfc822\r\n\r\n" + HEAD + b"\r\ninner\r\n",
        HEAD + b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        HEAD + b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x--\r\n--x\r\n',
        HEAD,  # no end of the header block
    ],
)
def test_declines_what_the_stdlib_must_decide(raw: bytes) -> None:
    assert split(raw, PARSE_POLICY) is None


def test_header_answers_follow_changes_of_the_headers() -> None:
    """Header values, parameters and the content type are kept once read; every way of
    changing the headers gives the new answers, as a plain stdlib message does."""
    raw = HEAD + b'Content-Type: text/plain; charset="latin-1"; name=a.txt\r\n\r\nbody\r\n'
    fast = split(raw, PARSE_POLICY)
    plain = BytesParser(policy=PARSE_POLICY).parsebytes(raw)
    assert fast is not None

    def answers(msg: Message) -> list[Any]:
        return [
            msg.get("subject"),
            msg.get_all("to"),
            "x-new" in msg,
            msg.get_content_type(),
            msg.get_param("charset"),
            msg.get_param("name"),
            msg.get_params(),
        ]

    changes = [
        lambda m: m.replace_header("Subject", "changed"),
        lambda m: m.__setitem__("X-New", "1"),
        lambda m: m.set_param("charset", "utf-8"),
        lambda m: m.del_param("name"),
        lambda m: m.__delitem__("Content-Type"),
        lambda m: m.__setitem__("Content-Type", "text/html"),
        lambda m: m.replace_header("Content-Type", "Multipart/Mixed; boundary=b"),
    ]
    assert answers(fast) == answers(plain)
    for change in changes:
        change(fast)
        change(plain)
        assert answers(fast) == answers(plain)
        assert answers(fast) == answers(plain)  # asked again: from what was kept


def test_a_bare_cr_anywhere_declines() -> None:
    assert split(NESTED, PARSE_POLICY) is not None
    for at in (0, len(HEAD) - 1, NESTED.index(b"AAEC"), len(NESTED) - 3):
        assert split(NESTED[:at] + b"x\ry" + NESTED[at:], PARSE_POLICY) is None, at


@given(st.lists(st.sampled_from([b"\r", b"\n", b"a", b": "]), max_size=40).map(b"".join))
def test_the_end_of_the_header_block_is_where_the_regex_finds_it(raw: bytes) -> None:
    match = re.search(rb"\r?\n\r?\n", raw)
    assert header_end(raw) == (match.span() if match else None)
