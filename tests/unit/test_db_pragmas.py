"""Connection set-up: cache sizes are given in a form that means what it says.

SQLite turns a cache size in KiB into a number of pages with the page size in force when
it is set, and keeps that number when the page size changes. The writer's 8 MB set before
`page_size = 16384` was 30 MB of resident memory on a large pull (bench_mail_sync)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bridge.store import db


class Recording:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements.append(" ".join(sql.split()))
        return self.conn.execute(sql, *args)


def _configured(path: Path, readonly: bool) -> list[str]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        rec = Recording(conn)
        db._configure(rec, readonly=readonly)  # type: ignore[arg-type]
        return rec.statements
    finally:
        conn.close()


def test_the_writer_sizes_its_cache_once_the_page_size_is_read(tmp_path: Path) -> None:
    done = _configured(tmp_path / "s.sqlite", readonly=False)
    size = done.index("PRAGMA cache_size = -8000")
    assert size > done.index("PRAGMA page_size = 16384")
    assert size > done.index("PRAGMA journal_mode = WAL")


def test_a_reader_sizes_its_cache_in_pages(tmp_path: Path) -> None:
    _configured(tmp_path / "s.sqlite", readonly=False)  # the file, with 16 KiB pages
    done = _configured(tmp_path / "s.sqlite", readonly=True)
    sizes = [s for s in done if s.startswith("PRAGMA cache_size")]
    assert len(sizes) == 1
    assert int(sizes[0].rsplit("=", 1)[1]) > 0  # pages, whatever page size is read later
