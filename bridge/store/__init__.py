"""The offline cache: SQLite through aiosqlite, one writer, numbered migrations."""
