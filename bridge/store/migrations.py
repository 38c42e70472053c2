"""Numbered schema migrations, applied at open and recorded in `PRAGMA user_version`."""

from __future__ import annotations

import re
from importlib import resources

import aiosqlite

from bridge.store.db import APPLICATION_ID
from bridge.store.errors import StoreOpenError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[int, str]]:
    """(version, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("bridge.store.schema").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    if [v for v, _ in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("migrations must be numbered 0001, 0002, ... without gaps")
    return found


LATEST = len(available())


async def current_version(conn: aiosqlite.Connection) -> tuple[int, int, int]:
    """(application_id, user_version, number of tables) of the open database."""
    async with conn.execute("PRAGMA application_id") as cur:
        app_row = await cur.fetchone()
    async with conn.execute("PRAGMA user_version") as cur:
        ver_row = await cur.fetchone()
    async with conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'") as cur:
        tbl_row = await cur.fetchone()
    assert app_row and ver_row and tbl_row
    return int(app_row[0]), int(ver_row[0]), int(tbl_row[0])


async def migrate(conn: aiosqlite.Connection, path: str, target: int = LATEST) -> bool:
    """Bring the database to `target`. Returns True when the database was new."""
    app_id, version, tables = await current_version(conn)
    fresh = app_id == 0 and version == 0 and tables == 0
    if not fresh and app_id != APPLICATION_ID:
        raise StoreOpenError(
            f"{path} is an SQLite database of another program (application_id "
            f"0x{app_id:08X}); point --data-dir at a directory of its own"
        )
    if version > LATEST:
        raise StoreOpenError(
            f"{path} was written by a newer kbridge (schema {version}, this one knows "
            f"{LATEST}); upgrade kbridge"
        )
    if fresh:
        await conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for number, sql in available():
        if version < number <= target:
            try:
                await conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            except Exception as exc:
                if conn.in_transaction:
                    await conn.rollback()
                raise StoreOpenError(f"{path}: migration {number:04d} failed: {exc}") from exc
    return fresh
