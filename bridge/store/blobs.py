"""Chunked content (raw sources, attachment data). Chunks are fixed-size rows keyed by
blob id * 65536 + sequence number, so content of any size (up to 16 GiB a blob) is written
and read a chunk at a time, never whole in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import aiosqlite

CHUNK_SIZE = 256 * 1024
MAX_CHUNKS = 1 << 16


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


async def delete_many(conn: aiosqlite.Connection, blob_ids: Iterable[int]) -> None:
    rows = [(b,) for b in blob_ids]
    if rows:
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
        "INSERT INTO blobs (id, size) SELECT ?, size FROM blobs WHERE id = ?",
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
    """Yield the content chunk by chunk."""
    key = blob_id * MAX_CHUNKS
    end = key + MAX_CHUNKS
    while key < end:
        async with conn.execute(
            "SELECT id, data FROM blob_chunks WHERE id >= ? AND id < ? ORDER BY id LIMIT 1",
            (key, end),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return
        if row[1]:
            yield bytes(row[1])
        key = row[0] + 1


async def read_all(conn: aiosqlite.Connection, blob_id: int) -> bytes:
    return b"".join([chunk async for chunk in read(conn, blob_id)])
