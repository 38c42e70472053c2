"""Attachments read from their message's source (schema 16): a synced message's large
base64 attachment is kept as a part of the source and decoded when read; it reads the same
everywhere, survives the deletion of the item it was copied from, and goes with its item."""

from __future__ import annotations

import base64
import itertools
import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dav.reader import BlobFile, Reader
from bridge.formats.mime_parts import Base64Decoder, base64_body, clean_base64_size
from bridge.model import tags
from bridge.store import blobs
from bridge.store.core import LOCAL, UPSTREAM
from bridge.store.errors import InvalidValue
from bridge.store.rfc822 import PART_MIN, item_from_rfc822
from bridge.store.store import Store

CONTENT = bytes(range(256)) * 64  # 16 KiB, over PART_MIN
SMALL = b"tiny file"  # under PART_MIN: stored as bytes


@pytest.fixture(params=[LOCAL, UPSTREAM])
def origin(request: pytest.FixtureRequest) -> str:
    """Who made the item: its source is kept in chunk rows (a local item) or in a pack
    (one the upstream gave)."""
    return str(request.param)


def message(content: bytes = CONTENT) -> bytes:
    encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: files\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee the files\r\n"
        b'--b\r\nContent-Type: application/octet-stream; name="big.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b\r\n"
        b'Content-Type: text/plain; name="small.txt"\r\nContent-Transfer-Encoding: base64\r\n'
        b"\r\n" + base64.b64encode(SMALL) + b"\r\n--b--\r\n"
    )


async def attachment_data(store: Store, item_id: int, num: int) -> bytes:
    _, blob_id, _ = await store.queries.attachment(item_id, num)
    assert blob_id is not None
    return await blobs.read_all(store.core.reader, blob_id)


async def chunk_count(store: Store, blob_id: int) -> int:
    async with store.core.reader.execute(
        "SELECT count(*) FROM blob_chunks WHERE id >= ? AND id < ?",
        (blob_id * blobs.MAX_CHUNKS, (blob_id + 1) * blobs.MAX_CHUNKS),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def test_only_a_large_base64_attachment_becomes_a_part_of_the_source() -> None:
    raw = message()
    item = item_from_rfc822(raw, parts=True)
    (_, big), (_, small) = item.attachments
    assert isinstance(big, blobs.SourcePart) and big.size == len(CONTENT) > PART_MIN
    assert base64.b64decode(raw[big.start : big.end]) == CONTENT
    assert small == SMALL
    assert [d for _, d in item_from_rfc822(raw).attachments] == [CONTENT, SMALL]


def test_unclean_base64_is_decoded_as_before() -> None:
    raw = message().replace(b"AAECAwQF", b"AAEC*wQF", 1)  # a character base64 lacks
    (_, big), _ = item_from_rfc822(raw, parts=True).attachments
    (_, plain), _ = item_from_rfc822(raw).attachments
    assert isinstance(big, bytes) and big == plain


@given(
    st.binary(max_size=3000),
    st.sampled_from([b"\r\n", b"\n"]),
    st.integers(1, 30),
    st.lists(st.tuples(st.integers(0, 5000), st.sampled_from(list(b"=*-A \r\n"))), max_size=3),
)
def test_a_clean_size_is_what_decoding_gives(
    data: bytes, eol: bytes, quanta: int, edits: list[tuple[int, int]]
) -> None:
    text = base64.b64encode(data)
    width = quanta * 4
    encoded = bytearray(eol.join(text[i : i + width] for i in range(0, len(text), width)) + eol)
    assert clean_base64_size(bytes(encoded)) == len(data)
    assert base64_body(bytes(encoded)) == data
    for at, byte in edits:  # damaged text: sized right, or not sized at all
        if encoded:
            encoded[at % len(encoded)] = byte
    size = clean_base64_size(bytes(encoded))
    assert size is None or size == len(base64_body(bytes(encoded)))


async def test_a_part_reads_as_its_content_everywhere(store: Store, origin: str) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, item_from_rfc822(message(), parts=True), origin=origin)
    _, blob_id, size = await store.queries.attachment(iid, 0)
    assert size == len(CONTENT)
    assert blob_id is not None and await chunk_count(store, blob_id) == 0
    assert await attachment_data(store, iid, 0) == CONTENT
    assert await attachment_data(store, iid, 1) == SMALL
    view = await store.queries.get(iid)
    assert view.props.get(tags.HASATTACH) is True
    source_blob, _, _ = await store.queries.source(iid)
    async with store.core.reader.execute(blobs.PART_OF, (source_blob,)) as cur:
        assert (blobs.packed(await cur.fetchone()) is not None) == (origin == UPSTREAM)
    reader = Reader(store.core.path)
    try:
        f = BlobFile(reader, blob_id)
        assert f.read(100) == CONTENT[:100]
        assert f.read() == CONTENT[100:]
        assert f.seek(5000) == 5000 and f.read(10) == CONTENT[5000:5010]
    finally:
        reader.close()


async def test_a_copy_keeps_its_attachment_when_the_original_goes(
    store: Store, origin: str
) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, item_from_rfc822(message(), parts=True), origin=origin)
    other = await store.folders.create(inbox, "Other")
    copy = await store.items.copy(iid, other)
    _, copied_blob, _ = await store.queries.attachment(copy, 0)
    assert copied_blob is not None and await chunk_count(store, copied_blob) == 0
    await store.items.delete(iid, hard=True)
    assert await attachment_data(store, copy, 0) == CONTENT
    assert await chunk_count(store, copied_blob) > 0  # made an ordinary blob first
    source_blob, _, _ = await store.queries.source(copy)
    assert source_blob is not None
    assert await blobs.read_all(store.core.reader, source_blob) == message()
    await store.items.delete(copy, hard=True)
    async with store.core.reader.execute("SELECT count(*) FROM blobs") as cur:
        row = await cur.fetchone()
    assert row is not None and row[0] == 0


async def test_a_part_needs_the_source_it_is_part_of(store: Store) -> None:
    item = item_from_rfc822(message(), parts=True)
    item.source = None
    with pytest.raises(InvalidValue):
        await store.items.create(store.folders.roles["inbox"], item)
    short = item_from_rfc822(message(), parts=True)
    short.source = message()[:100]
    with pytest.raises(InvalidValue):
        await store.items.create(store.folders.roles["inbox"], short)


@given(
    st.binary(max_size=3000),
    st.sampled_from([b"\r\n", b"\n"]),
    st.integers(1, 30),
    st.lists(st.integers(0, 5000), max_size=8),
)
def test_clean_base64_decodes_the_same_piece_by_piece(
    data: bytes, eol: bytes, quanta: int, cuts: list[int]
) -> None:
    text = base64.b64encode(data)
    width = quanta * 4
    encoded = eol.join(text[i : i + width] for i in range(0, len(text), width)) + eol
    bounds = sorted({0, len(encoded), *(c % (len(encoded) + 1) for c in cuts)})
    decoder = Base64Decoder()
    pieces = [decoder.feed(encoded[a:b]) for a, b in itertools.pairwise(bounds)]
    assert b"".join(pieces) + decoder.end() == base64_body(encoded) == data


LARGE = random.Random(7).randbytes(16 * blobs.CHUNK_SIZE + 12345)  # a part of 22 chunks


async def test_a_large_part_streams_a_chunk_at_a_time(store: Store, origin: str) -> None:
    inbox = store.folders.roles["inbox"]
    item = item_from_rfc822(message(LARGE), parts=True)
    iid = await store.items.create(inbox, item, origin=origin)
    _, blob_id, size = await store.queries.attachment(iid, 0)
    assert blob_id is not None and size == len(LARGE)
    tracemalloc.start()
    try:
        pieces: list[int] = []
        async for piece in blobs.read(store.core.reader, blob_id):
            assert piece == LARGE[sum(pieces) : sum(pieces) + len(piece)]
            pieces.append(len(piece))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(pieces) == len(LARGE) and len(pieces) > 1
    assert max(pieces) <= blobs.CHUNK_SIZE
    assert peak < len(LARGE) // 2  # never the whole content at once
    assert await attachment_data(store, iid, 0) == LARGE
    reader = Reader(store.core.path)
    try:
        f = BlobFile(reader, blob_id)
        tracemalloc.start()
        try:
            assert f.read(10) == LARGE[:10]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < len(LARGE) // 2
        rng = random.Random(3)
        for offset in [0, len(LARGE) - 1, len(LARGE), *rng.sample(range(len(LARGE)), 5)]:
            length = rng.randrange(1, 2 * blobs.CHUNK_SIZE)
            assert f.seek(offset) == offset
            assert f.read(length) == LARGE[offset : offset + length]
        f.seek(blobs.CHUNK_SIZE + 1)
        assert f.read() == LARGE[blobs.CHUNK_SIZE + 1 :]
    finally:
        reader.close()
