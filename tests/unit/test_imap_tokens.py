"""The one-pass reading of the usual response segments gives what the general loop gives,
and leaves every other segment to it."""

from __future__ import annotations

import random
import re

import pytest

from bridge.upstream import imap_proto
from bridge.upstream.base import UpstreamError
from bridge.upstream.imap_proto import Value, quote

PIECES = [
    b" ", b"(", b")", b"NIL", b"nil", b"n\xc4\xb1l", b"UID", b"123", b"\\Seen", b"BODY[]",
    b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"[", b"]", b"[a[b]c]", b'"', b'"abc"', b'"a\\"b"',
    b'""', b"{5}\r\n", b"{12+}\r\n", b"{", b"}", b"\r\n", b"\n", b"\r", b"x", b"\xc3\xa9", b"\xff",
]  # fmt: skip


def tokens(text: bytes) -> list[list[Value]]:
    stack: list[list[Value]] = [[]]
    imap_proto._tokens(text, stack)
    return stack


def general(text: bytes, monkeypatch: pytest.MonkeyPatch) -> list[list[Value]]:
    with monkeypatch.context() as m:
        m.setattr(imap_proto, "_PLAIN_SEGMENT", re.compile(rb"(?!)"))
        return tokens(text)


def test_a_fetch_line_is_read_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    line = b"12 FETCH (UID 7 FLAGS (\\Seen $Forwarded) MODSEQ (77) BODY[] {2048}\r\n"
    assert imap_proto._PLAIN_SEGMENT.fullmatch(line)
    assert tokens(line) == general(line, monkeypatch)
    fetched = ["UID", "7", "FLAGS", ["\\Seen", "$Forwarded"], "MODSEQ", ["77"], "BODY[]"]
    assert tokens(line)[0] == ["12", "FETCH", fetched]


def test_escapes_and_odd_atoms_take_the_general_loop() -> None:
    for text in (b'"a\\"b"', b'abc"def"', b"BODY[]{5}\r\n", b"[a[b]c]", b"x]"):
        assert not imap_proto._PLAIN_SEGMENT.fullmatch(text)


def test_random_segments_read_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    for _ in range(5000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        assert tokens(text) == general(text, monkeypatch), text


@pytest.mark.parametrize("value", ["a\r\nX1 LOGOUT", "a\nb", "a\rb", "a\0b"])
def test_a_quoted_string_refuses_what_would_end_the_command(value: str) -> None:
    with pytest.raises(UpstreamError, match="line break or NUL"):
        quote(value)
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
