"""The one connection factory. Every connection to the cache is opened here, so that an
encrypting driver (SQLCipher via `sqlcipher3`) can replace stdlib sqlite3 in one place."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from bridge.store.errors import StoreOpenError

# "KBRG": marks the file as ours, so a foreign SQLite database is refused, not reused.
APPLICATION_ID = 0x4B425247

Connector = Callable[[], sqlite3.Connection]


def _sqlite3_connector(path: Path, *, readonly: bool) -> Connector:
    def connect() -> sqlite3.Connection:
        # A reader opens the file read-write but refuses writes (query_only): a `mode=ro`
        # connection cannot take part in the WAL index and misses other processes' commits.
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            _configure(conn, readonly=readonly)
        except BaseException:
            conn.close()
            raise
        return conn

    return connect


def _configure(conn: sqlite3.Connection, *, readonly: bool) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        # Takes effect only on a new file: 16 KiB pages halve the cost of storing raw
        # messages compared with the default 4 KiB.
        conn.execute("PRAGMA page_size = 16384")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a process crash; only an OS crash may lose the
        # last transactions, never corrupt the file. The store's writer commits local
        # changes with FULL instead (`StoreCore.write`).
        conn.execute("PRAGMA synchronous = NORMAL")
    # Cache sizes. SQLite turns a size in KiB into a number of pages with the page size
    # in force when it is set, and keeps that number when the file's page size becomes
    # known: before this order was fixed, the writer's 8 MB was set before its page size
    # and became 30 MB of 16 KiB pages (about 25 MB more at the peak of a large pull).
    # - The writing connections: 8 MB, set after `journal_mode` has read the page size.
    #   A bulk sync writes mostly blob pages that are never read back through them.
    # - A reader has not read the file yet: its size is a number of pages, 4,000 of the
    #   store's 16 KiB (64 MB at most, filled only by what the API reads; the table and
    #   search figures of bench_tables are measured with it).
    conn.execute("PRAGMA cache_size = 4000" if readonly else "PRAGMA cache_size = -8000")


async def connect(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    """Open a connection to the cache at `path`.

    The file is only ever opened through SQLite: closing any other descriptor of it would
    drop this process's POSIX locks, and another process could then take the WAL away."""
    try:
        raw = await asyncio.to_thread(_sqlite3_connector(path, readonly=readonly))
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StoreOpenError(
                f"{path} is not an SQLite database (corrupt or foreign file); "
                "move it away or point --data-dir at another directory"
            ) from exc
        raise StoreOpenError(f"cannot open {path}: {exc}") from exc
    conn = await aiosqlite.Connection(lambda: raw, 64)
    conn.row_factory = sqlite3.Row
    return conn


def connect_reader_sync(path: Path) -> sqlite3.Connection:
    """A blocking read-only (`query_only`) connection, for code that runs in worker threads
    (the WebDAV view). Rows are `sqlite3.Row`."""
    conn = _sqlite3_connector(path, readonly=True)()
    conn.row_factory = sqlite3.Row
    return conn
