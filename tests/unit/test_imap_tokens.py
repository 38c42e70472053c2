"""The quicker readings of a response segment (`_simple_tokens`, `_plain_tokens`) give what
the general loop gives, and leave every other segment to it; a response read from the
stream is the same however the server's bytes are cut."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from bridge.upstream import imap_proto
from bridge.upstream.base import UpstreamError
from bridge.upstream.imap_proto import Connection, Response, TooLarge, Value, quote

PIECES = [
    b" ", b"(", b")", b"NIL", b"nil", b"n\xc4\xb1l", b"UID", b"123", b"\\Seen", b"BODY[]",
    b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"[", b"]", b"[a[b]c]", b'"', b'"abc"', b'"a\\"b"',
    b'""', b"{5}\r\n", b"{12+}\r\n", b"{", b"}", b"\r\n", b"\n", b"\r", b"x", b"\xc3\xa9", b"\xff",
    b"BODY[HEADER]", b"[x]", b"~{3}\r\n", b"~", b"\t", b"\xc2\xa0", b"\x00", b"\xc3", b"NI", b"L",
]  # fmt: skip

Stack = list[list[Value]]
Reading = Callable[[bytes, Stack], bool]


def nested(depth: int) -> Stack:
    """A stack `depth` lists deep, as a segment after an open parenthesis finds it."""
    stack: Stack = [[]]
    for _ in range(depth):
        inner: list[Value] = []
        stack[-1].append(inner)
        stack.append(inner)
    return stack


def tokens(text: bytes, depth: int = 0) -> Stack:
    stack = nested(depth)
    imap_proto._tokens(text, stack)
    return stack


def general(text: bytes, depth: int = 0) -> Stack:
    stack = nested(depth)
    imap_proto._general_tokens(text, stack)
    return stack


FETCH_LINE = b"12 FETCH (UID 7 FLAGS (\\Seen $Forwarded) MODSEQ (77) BODY[] {2048}\r\n"
FETCHED = ["UID", "7", "FLAGS", ["\\Seen", "$Forwarded"], "MODSEQ", ["77"], "BODY[]"]


@pytest.mark.parametrize("reading", [imap_proto._simple_tokens, imap_proto._plain_tokens])
def test_a_fetch_line_is_read_in_one_pass(reading: Reading) -> None:
    stack: Stack = [[]]
    assert reading(FETCH_LINE, stack)
    assert stack == general(FETCH_LINE) == tokens(FETCH_LINE)
    assert stack[0] == ["12", "FETCH", FETCHED]


def test_the_usual_lines_take_the_simple_reading() -> None:
    for text in (
        FETCH_LINE,
        b"1 FETCH (UID 1 FLAGS () RFC822.SIZE 229 MODSEQ (4) BODY[HEADER] {177}\r\n",
        b"1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE 229 MODSEQ (4))\r\n",
        b"OK Fetch completed (0.001 + 0.000 secs).\r\n",
        b"3 EXISTS\r\n",
        b"{5}\r\n",
        b"X-GM-LABELS NIL nil (a[b] [c]d)\r\n",
        b"SEARCH 1 2 \xc3\xa9t\xc3\xa9 \xff\r\n",
    ):
        stack: Stack = [[]]
        assert imap_proto._simple_tokens(text, stack), text
        assert stack == general(text), text


def test_escapes_and_odd_atoms_take_the_general_loop() -> None:
    for text in (b'"a\\"b"', b'abc"def"', b"BODY[]{5}\r\n", b"[a[b]c]", b"x]"):
        assert not imap_proto._PLAIN_SEGMENT.fullmatch(text)


def test_what_the_simple_reading_declines() -> None:
    for text in (
        b'"abc"',  # a quoted string: for the regex reading
        b"BODY[HEADER.FIELDS (MESSAGE-ID)] {5}\r\n",  # delimiters within brackets
        b"[a[b]c]",
        b"x] y",
        b"a[b",
        b"BINARY[] ~{3}\r\n",  # the literal8 announcement is read into an atom
        b"BODY[]{5}\r\n",
        b"a\tb\r\n",  # a tab, a no-break space, a lone CR or LF: not cut like a space
        b"a\xc2\xa0b\r\n",
        b"a\rb\r\n",
        b"a\nb\r\n",
        b"x}\r\n",
    ):
        stack: Stack = [[]]
        assert not imap_proto._simple_tokens(text, stack), text
        assert stack == [[]], text
        assert tokens(text) == general(text), text


@pytest.mark.parametrize("reading", [imap_proto._simple_tokens, imap_proto._plain_tokens])
def test_random_segments_read_alike(reading: Reading) -> None:
    rng = random.Random(7)
    taken = 0
    for _ in range(20000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        depth = rng.choice((0, 0, 1, 3))
        stack = nested(depth)
        if reading(text, stack):
            taken += 1
            assert stack == general(text, depth), text
        else:
            assert stack == nested(depth), text  # untouched
        assert tokens(text, depth) == general(text, depth), text
    assert taken > 1000  # the reading is put to the test, not always declining


@pytest.mark.parametrize("value", ["a\r\nX1 LOGOUT", "a\nb", "a\rb", "a\0b"])
def test_a_quoted_string_refuses_what_would_end_the_command(value: str) -> None:
    with pytest.raises(UpstreamError, match="line break or NUL"):
        quote(value)
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


# -- whole responses from the stream -------------------------------------------------------

BODY = b"From: a\r\n\r\n)\r\n{3}\r\nend"  # what ends a line or a response, inside a literal
RESPONSES = [
    b"* 12 FETCH (UID 7 FLAGS (\\Seen \\Recent) RFC822.SIZE %d MODSEQ (77) BODY[] {%d}\r\n"
    % (len(BODY), len(BODY))
    + BODY
    + b")\r\n",
    b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 229 MODSEQ (4) BODY[HEADER] {6}\r\nA: b\r\n"
    b' BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 52 1 NIL NIL NIL'
    b" NIL))\r\n",
    b"* 3 FETCH (UID 9 BINARY[] ~{3}\r\nxyz)\r\n",
    b"* 5 FETCH (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {15}\r\nMessage-ID: <a>)\r\n",
    b"* 6 FETCH (BODY[1] {2}\r\nab BODY[2] {0}\r\n BODY[3] {1+}\r\n\xff)\r\n",
    b"* 7 FETCH (UID 7 FLAGS (nil NIL) X-GM-LABELS NIL)\r\n",
    b'* 2 FETCH (ENVELOPE (NIL "s" ((NIL NIL "a" "b.c")) NIL) UID 4)\r\n',
    b'* LIST (\\HasNoChildren) "/" "a \\"b\\" \\\\c"\r\n',
    b'* LIST () "/" {4}\r\nab c\r\n',
    b"* 4 FETCH (((\r\n",
    b'\xff\xfe garbage ( ] [ "open\r\n',
    b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n",
    b"K1 OK [APPENDUID 17 42] done\r\n",
    b"K2 NO\r\n",
    b"+ go ahead\r\n",
    b"+ {2}\r\nxx\r\n",
    b"+\r\n",
]
FOLLOWING = b"K9 OK done\r\n"  # where the response ends


def connection(max_literal: int = 64 << 20) -> tuple[Connection, asyncio.StreamReader]:
    conn = Connection(max_literal)
    conn.reader = asyncio.StreamReader(limit=imap_proto.MAX_LINE)
    return conn, conn.reader


async def read_cut(data: bytes, cuts: list[int], max_literal: int = 64 << 20) -> list[Response]:
    """The responses of `data`, arriving in the pieces between `cuts`: the reader waits for
    the next piece wherever it is cut."""
    conn, reader = connection(max_literal)
    responses: list[Response] = []

    async def read() -> None:
        while True:
            responses.append(await conn._read_response())

    task = asyncio.ensure_future(read())
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        reader.feed_data(data[start:end])
        for _ in range(3):  # the reader takes what it can and waits for the rest
            await asyncio.sleep(0)
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as cut:
        await task
    assert not cut.value.partial  # each response was read whole, nothing was left
    return responses


async def test_a_fetch_response_and_its_literal() -> None:
    (resp, after) = await read_cut(RESPONSES[0] + FOLLOWING, [])
    assert resp == Response(
        "*",
        [
            "12",
            "FETCH",
            ["UID", "7", "FLAGS", ["\\Seen", "\\Recent"], "RFC822.SIZE", str(len(BODY)),
             "MODSEQ", ["77"], "BODY[]", BODY],
        ],
    )  # fmt: skip
    assert resp.kind == "FETCH"
    assert after == Response("K9", ["OK", "done"], text="done")


async def test_status_and_continuation_responses() -> None:
    data = b"K1 OK [APPENDUID 17 42] done\r\n+ go ahead\r\n+\r\n* 3 EXISTS\r\nK2 NO\r\n"
    assert await read_cut(data, []) == [
        Response("K1", ["OK", "[APPENDUID 17 42]", "done"], text="done", code="APPENDUID 17 42"),
        Response("+", [], "go ahead"),
        Response("+", [], ""),
        Response("*", ["3", "EXISTS"]),
        Response("K2", ["NO"]),
    ]


@pytest.mark.parametrize("index", range(len(RESPONSES)))
async def test_a_response_cut_anywhere_reads_as_by_the_general_loop(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = RESPONSES[index] + FOLLOWING
    with monkeypatch.context() as m:
        m.setattr(imap_proto, "_tokens", imap_proto._general_tokens)
        expected = await read_cut(data, [])
    assert len(expected) == 2 and expected[1].tag == "K9"
    assert await read_cut(data, []) == expected
    for cut in range(1, len(data)):
        assert await read_cut(data, [cut]) == expected, cut
    assert await read_cut(data, list(range(1, len(data)))) == expected  # byte by byte


async def test_a_long_literal_is_joined_and_a_too_long_one_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(imap_proto, "CHUNK", 4)  # read in pieces from 5 bytes on
    for size, kept in ((3, True), (4, True), (5, True), (10, True), (11, False), (23, False)):
        body = bytes(range(65, 65 + size))
        data = b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s UID 2)\r\n" % (size, body) + FOLLOWING
        for cuts in ([], [7], [30], list(range(1, len(data)))):
            resp, after = await read_cut(data, cuts, max_literal=10)
            value = body if kept else TooLarge(size)
            assert resp.values == ["1", "FETCH", ["UID", "1", "BODY[]", value, "UID", "2"]]
            assert after.tag == "K9"
