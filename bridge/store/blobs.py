"""Chunked content (raw sources, attachment data). Chunks are fixed-size rows, so content of
any size is written and read a chunk at a time, never whole in memory."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import aiosqlite

CHUNK_SIZE = 256 * 1024


def split(data: bytes) -> list[bytes]:
    if not data:
        return [b""]
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


def blob_rows(
    blob_id: int, data: bytes
) -> tuple[tuple[int, int, str], list[tuple[int, int, bytes]]]:
    """The `blobs` row and the `blob_chunks` rows for in-memory content (bulk inserts)."""
    chunks = split(data)
    return (
        (blob_id, len(data), hashlib.sha256(data).hexdigest()),
        [(blob_id, seq, chunk) for seq, chunk in enumerate(chunks)],
    )


async def insert_many(
    conn: aiosqlite.Connection,
    blobs: list[tuple[int, int, str]],
    chunks: list[tuple[int, int, bytes]],
) -> None:
    if blobs:
        await conn.executemany("INSERT INTO blobs (id, size, sha256) VALUES (?, ?, ?)", blobs)
        await conn.executemany(
            "INSERT INTO blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)", chunks
        )


async def copy(conn: aiosqlite.Connection, src: int, dst: int) -> None:
    """Duplicate a blob inside SQLite (no content passes through Python)."""
    await conn.execute(
        "INSERT INTO blobs (id, size, sha256) SELECT ?, size, sha256 FROM blobs WHERE id = ?",
        (dst, src),
    )
    await conn.execute(
        "INSERT INTO blob_chunks (blob_id, seq, data) "
        "SELECT ?, seq, data FROM blob_chunks WHERE blob_id = ?",
        (dst, src),
    )


async def size_of(conn: aiosqlite.Connection, blob_id: int) -> int | None:
    async with conn.execute("SELECT size FROM blobs WHERE id = ?", (blob_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def read(conn: aiosqlite.Connection, blob_id: int) -> AsyncIterator[bytes]:
    """Yield the content chunk by chunk."""
    seq = 0
    while True:
        async with conn.execute(
            "SELECT data FROM blob_chunks WHERE blob_id = ? AND seq = ?", (blob_id, seq)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return
        if row[0]:
            yield bytes(row[0])
        seq += 1


async def read_all(conn: aiosqlite.Connection, blob_id: int) -> bytes:
    return b"".join([chunk async for chunk in read(conn, blob_id)])


class Hasher:
    """Running size and SHA-256 of a streamed blob."""

    def __init__(self) -> None:
        self.size = 0
        self._sha = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._sha.update(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
