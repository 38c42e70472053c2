"""Chunked content (raw sources, attachment data). Chunks are fixed-size rows keyed by
blob id * 65536 + sequence number, so content of any size (up to 16 GiB a blob) is written
and read a chunk at a time, never whole in memory.

A blob may instead be a part of another blob (schema 16): an attachment of a synced
message whose content is base64 text in the message's source keeps only where that text
lies (`base`, `base_start`, `base_end`, `base_encoding`) and is decoded when read, a
chunk of the source at a time. Such a blob is made into an ordinary one before the blob
it is read from is deleted (`delete_many`), so a copy of an item keeps its attachments
when the original goes.

A blob may instead be kept in a pack file (schema 20, `store/packs.py`): content the
upstream gave, found by `pack` and `pack_offset`, with no chunk rows. A connection of a
store knows that store's packs (`bind`)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bridge.formats.mime_parts import Base64Decoder
from bridge.store.packs import Packs

CHUNK_SIZE = 256 * 1024
MAX_CHUNKS = 1 << 16
BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class SourcePart:
    """New attachment content kept as base64 text at source[start:end] of its item's
    source; decoded, it is `size` bytes long."""

    start: int
    end: int
    size: int


@dataclass(frozen=True, slots=True)
class PartOf:
    """Where a part-of blob is read from."""

    base: int
    start: int
    end: int
    encoding: str

    def range_keys(self) -> tuple[int, int]:
        """The first and last chunk keys of the base blob that hold the part."""
        return (
            self.base * MAX_CHUNKS + self.start // CHUNK_SIZE,
            self.base * MAX_CHUNKS + max(self.start, self.end - 1) // CHUNK_SIZE,
        )

    def window(self, key: int, chunk: bytes) -> bytes:
        """The part's text in the base blob's chunk with the key `key`."""
        offset = (key - self.base * MAX_CHUNKS) * CHUNK_SIZE
        return chunk[max(0, self.start - offset) : max(0, self.end - offset)]

    def decoder(self) -> Base64Decoder:
        """A decoder of the part's text, fed a window at a time."""
        if self.encoding != BASE64:
            raise ValueError(f"unknown encoding of a blob part: {self.encoding!r}")
        return Base64Decoder()


@dataclass(frozen=True, slots=True)
class Packed:
    """Where a blob kept in a pack lies."""

    pack: int
    offset: int
    size: int


# where a blob's content is: a part of another blob (columns 0-3), a pack (4-6), or chunks
PART_OF = (
    "SELECT base, base_start, base_end, base_encoding, pack, pack_offset, size "
    "FROM blobs WHERE id = ?"
)
# the next chunk of a blob from a key (the first parameter) to an end (the second, excluded)
NEXT_CHUNK = "SELECT id, data FROM blob_chunks WHERE id >= ? AND id < ? ORDER BY id LIMIT 1"


def part_of(row: Any) -> PartOf | None:
    """The PartOf of a row of PART_OF (None for an ordinary blob, or no row)."""
    if row is None or row[0] is None:
        return None
    base, start, end, encoding = row[0], row[1], row[2], row[3]
    assert isinstance(base, int) and isinstance(start, int) and isinstance(end, int)
    return PartOf(base, start, end, str(encoding))


def packed(row: Any) -> Packed | None:
    """The Packed of a row of PART_OF (None for a blob not in a pack, or no row)."""
    if row is None or row[4] is None:
        return None
    return Packed(int(row[4]), int(row[5]), int(row[6]))


_PACKS: weakref.WeakKeyDictionary[aiosqlite.Connection, Packs] = weakref.WeakKeyDictionary()


def bind(conn: aiosqlite.Connection, packs: Packs | None) -> None:
    """Blobs read through `conn` are read from `packs` when kept in a pack."""
    if packs is not None:
        _PACKS[conn] = packs


def packs_of(conn: aiosqlite.Connection) -> Packs:
    packs = _PACKS.get(conn)
    if packs is None:
        raise RuntimeError("a blob kept in a pack, read through a connection of no store")
    return packs


def chunk_key(blob_id: int, seq: int) -> int:
    if seq >= MAX_CHUNKS:
        raise ValueError(f"content larger than {MAX_CHUNKS * CHUNK_SIZE} bytes")
    return blob_id * MAX_CHUNKS + seq


def blob_rows(blob_id: int, data: bytes) -> tuple[tuple[int, int], list[tuple[int, bytes]]]:
    """The `blobs` row and the `blob_chunks` rows for in-memory content (bulk inserts)."""
    if len(data) <= CHUNK_SIZE:
        chunks = [(blob_id * MAX_CHUNKS, data)]
    else:
        chunks = [
            (chunk_key(blob_id, seq), data[i : i + CHUNK_SIZE])
            for seq, i in enumerate(range(0, len(data), CHUNK_SIZE))
        ]
    return (blob_id, len(data)), chunks


async def insert_many(
    conn: aiosqlite.Connection,
    blobs: list[tuple[int, int]],
    chunks: list[tuple[int, bytes]],
) -> None:
    if blobs:
        await conn.executemany("INSERT INTO blobs (id, size) VALUES (?, ?)", blobs)
        await conn.executemany("INSERT INTO blob_chunks (id, data) VALUES (?, ?)", chunks)


async def _materialize_parts_of(conn: aiosqlite.Connection, blob_ids: list[int]) -> None:
    """Make the part-of blobs read from `blob_ids` (and not among them) ordinary ones."""
    gone = set(blob_ids)
    dependents: list[int] = []
    for start in range(0, len(blob_ids), 500):
        batch = blob_ids[start : start + 500]
        marks = ",".join("?" * len(batch))
        async with conn.execute(
            f"SELECT id FROM blobs WHERE base IN ({marks}) AND base IS NOT NULL", batch
        ) as cur:
            dependents += [r[0] for r in await cur.fetchall() if r[0] not in gone]
    for blob_id in dependents:
        data = await read_all(conn, blob_id)
        row, chunks = blob_rows(blob_id, data)
        await conn.execute(
            "UPDATE blobs SET size = ?, base = NULL, base_start = NULL, base_end = NULL, "
            "base_encoding = NULL WHERE id = ?",
            (row[1], blob_id),
        )
        await conn.executemany("INSERT INTO blob_chunks (id, data) VALUES (?, ?)", chunks)


async def delete_many(conn: aiosqlite.Connection, blob_ids: Iterable[int]) -> None:
    rows = [(b,) for b in blob_ids]
    if rows:
        if (packs := _PACKS.get(conn)) is not None:
            packs.maybe_dead = True  # some were perhaps in a pack
        await _materialize_parts_of(conn, [r[0] for r in rows])
        await conn.executemany("DELETE FROM blobs WHERE id = ?", rows)
        await conn.executemany(
            "DELETE FROM blob_chunks "
            f"WHERE id >= ?1 * {MAX_CHUNKS} AND id < (?1 + 1) * {MAX_CHUNKS}",
            rows,
        )
        await conn.executemany("DELETE FROM pending_blobs WHERE blob_id = ?", rows)


async def copy(conn: aiosqlite.Connection, src: int, dst: int) -> None:
    """Duplicate a blob inside SQLite (no content passes through Python)."""
    await conn.execute(
        "INSERT INTO blobs (id, size, base, base_start, base_end, base_encoding, pack, "
        "pack_offset) SELECT ?, size, base, base_start, base_end, base_encoding, pack, "
        "pack_offset FROM blobs WHERE id = ?",
        (dst, src),
    )
    await conn.execute(
        f"INSERT INTO blob_chunks (id, data) SELECT id - ?1 * {MAX_CHUNKS} + ?2 * {MAX_CHUNKS}, "
        f"data FROM blob_chunks WHERE id >= ?1 * {MAX_CHUNKS} AND id < (?1 + 1) * {MAX_CHUNKS}",
        (src, dst),
    )


async def size_of(conn: aiosqlite.Connection, blob_id: int) -> int | None:
    async with conn.execute("SELECT size FROM blobs WHERE id = ?", (blob_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def read(conn: aiosqlite.Connection, blob_id: int) -> AsyncIterator[bytes]:
    """Yield the content chunk by chunk (a part-of blob's decoded from its base's chunks,
    one at a time)."""
    async with conn.execute(PART_OF, (blob_id,)) as cur:
        row = await cur.fetchone()
    part = part_of(row)
    if part is None:
        where = packed(row)
        if where is not None:
            async for data in packs_of(conn).chunks(where.pack, where.offset, 0, where.size):
                yield data
            return
        async for _key, data in _chunks(conn, blob_id * MAX_CHUNKS, (blob_id + 1) * MAX_CHUNKS):
            yield data
        return
    decoder = part.decoder()
    async with conn.execute(PART_OF, (part.base,)) as cur:
        base = packed(await cur.fetchone())
    if base is not None:
        pieces = packs_of(conn).chunks(base.pack, base.offset, part.start, part.end)
        async for window in pieces:
            if data := decoder.feed(window):
                yield data
    else:
        first, last = part.range_keys()
        async for key, chunk in _chunks(conn, first, last + 1):
            if data := decoder.feed(part.window(key, chunk)):
                yield data
    if tail := decoder.end():
        yield tail


async def _chunks(
    conn: aiosqlite.Connection, key: int, end: int
) -> AsyncIterator[tuple[int, bytes]]:
    """The chunk rows with keys key..end (excluded), one at a time."""
    while key < end:
        async with conn.execute(NEXT_CHUNK, (key, end)) as cur:
            row = await cur.fetchone()
        if row is None:
            return
        yield row[0], bytes(row[1])
        key = row[0] + 1


async def read_all(conn: aiosqlite.Connection, blob_id: int) -> bytes:
    return b"".join([chunk async for chunk in read(conn, blob_id)])
