"""The one connection factory. Every connection to the cache is opened here, so that an
encrypting driver (SQLCipher via `sqlcipher3`) can replace stdlib sqlite3 in one place."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from bridge.store.errors import StoreOpenError

# "KBRG": marks the file as ours, so a foreign SQLite database is refused, not reused.
APPLICATION_ID = 0x4B425247
SQLITE_MAGIC = b"SQLite format 3\x00"

Connector = Callable[[], sqlite3.Connection]


def _sqlite3_connector(path: Path, *, readonly: bool) -> Connector:
    def connect() -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(
                f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        _configure(conn, readonly=readonly)
        return conn

    return connect


def _configure(conn: sqlite3.Connection, *, readonly: bool) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -16000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a process crash; only an OS crash may lose the
        # last transactions, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")


def check_file(path: Path) -> None:
    """Refuse a file that is not an SQLite database before SQLite touches it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise StoreOpenError(
            f"{path} is not an SQLite database (corrupt or foreign file); "
            "move it away or point --data-dir at another directory"
        )


async def connect(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    """Open a connection to the cache at `path`."""
    check_file(path)
    conn = aiosqlite.Connection(_sqlite3_connector(path, readonly=readonly), 64)
    try:
        await conn
    except sqlite3.DatabaseError as exc:
        raise StoreOpenError(f"cannot open {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn
