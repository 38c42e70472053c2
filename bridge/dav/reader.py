"""What the WebDAV view reads, through connections of its own (one per worker thread, opened
by the store's connection factory with `query_only`), never through the event loop."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from bridge.store import blobs, texts
from bridge.store.db import connect_reader_sync
from bridge.store.packs import READ_BYTES, Packs

Row = sqlite3.Row

_FOLDERS = (
    "SELECT id, parent_id, role, display_name, container_class, created, modified, cn FROM folders"
)
# One query lists a folder: hot columns only, the client-given name, and for document items
# the attachment that is their content.
_MEMBERS = (
    "SELECT i.id, i.folder_id, i.message_class, i.subject, i.size, i.created, i.modified, "
    "i.cn, i.has_attach, i.source_type, i.source_blob, d.name AS dav_name, "
    "a.size AS doc_size, a.blob_id AS doc_blob, a.filename AS doc_filename, "
    "a.mime_tag AS doc_type "
    "FROM items i LEFT JOIN dav_names d ON d.item_id = i.id "
    "LEFT JOIN attachments a ON a.item_id = i.id AND a.num = 0 "
    "AND i.message_class >= 'IPM.Document' AND i.message_class < 'IPM.Documenu' "
    "WHERE i.associated = 0 AND "
)


class Reader:
    """Per-thread read connections to the store file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.packs = Packs(Packs.beside(path))  # read from only
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader_sync(self.path)
            texts.install_sync(conn, self.packs)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        return self.conn().execute(sql, args).fetchall()

    def row(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        row: Row | None = self.conn().execute(sql, args).fetchone()
        return row

    # -- tree ---------------------------------------------------------------------------

    def folders(self) -> list[Row]:
        return self.rows(_FOLDERS)

    def members(self, folder_id: int) -> list[Row]:
        return self.rows(_MEMBERS + "i.folder_id = ?", (folder_id,))

    def member(self, item_id: int) -> Row | None:
        return self.row(_MEMBERS + "i.id = ?", (item_id,))

    def named(self, folder_id: int, name: str) -> list[int]:
        """Items of a folder a client gave this name, ignoring case (lowest id first)."""
        rows = self.rows(
            "SELECT d.item_id FROM dav_names d JOIN items i ON i.id = d.item_id "
            "WHERE d.name = ? COLLATE NOCASE AND i.folder_id = ? AND i.associated = 0 "
            "ORDER BY d.item_id",
            (name, folder_id),
        )
        return [r[0] for r in rows]

    def documents_named(self, folder_id: int, filename: str) -> list[int]:
        """Document items (without a client-given name) whose file has this name."""
        rows = self.rows(
            "SELECT i.id FROM items i JOIN attachments a ON a.item_id = i.id AND a.num = 0 "
            "WHERE i.folder_id = ? AND i.message_class >= 'IPM.Document' "
            "AND i.message_class < 'IPM.Documenu' AND a.filename = ? "
            "AND NOT EXISTS (SELECT 1 FROM dav_names d WHERE d.item_id = i.id)",
            (folder_id, filename),
        )
        return [r[0] for r in rows]

    def item(self, item_id: int) -> Row | None:
        return self.row(f"SELECT {texts.ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,))

    def attachments(self, item_id: int) -> list[Row]:
        return self.rows(
            "SELECT num, filename, mime_tag, size, blob_id, props FROM attachments "
            "WHERE item_id = ? AND blob_id IS NOT NULL ORDER BY num",
            (item_id,),
        )

    def recipients(self, item_id: int) -> list[Row]:
        return self.rows(
            "SELECT props FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
        )

    # -- dead properties and locks --------------------------------------------------------

    def dead_props(self, obj: str) -> dict[str, str]:
        rows = self.rows("SELECT name, value FROM dav_props WHERE object = ?", (obj,))
        return {r[0]: r[1] for r in rows}

    def dead_props_of_items(self, folder_id: int) -> dict[str, dict[str, str]]:
        """Dead properties of every item of a folder (one query; usually none)."""
        out: dict[str, dict[str, str]] = {}
        for obj, name, value in self.rows(
            "SELECT p.object, p.name, p.value FROM dav_props p WHERE p.object GLOB 'm*' "
            "AND CAST(substr(p.object, 2) AS INTEGER) IN "
            "(SELECT id FROM items WHERE folder_id = ?)",
            (folder_id,),
        ):
            out.setdefault(obj, {})[name] = value
        return out

    def lock_entries(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.rows("SELECT key, value FROM dav_locks")]

    def blob_size(self, blob_id: int) -> int:
        row = self.row("SELECT size FROM blobs WHERE id = ?", (blob_id,))
        return 0 if row is None else int(row[0])

    def open_blob(self, blob_id: int) -> BlobFile:
        return BlobFile(self, blob_id)


class BlobFile:
    """A read-only file object over a blob: one chunk in memory at a time (of a blob that
    is a part of another, one chunk of that other blob, decoded). Its content is read from
    chunk rows (`_key` a chunk key) or from a pack (`_key` a position in the content)."""

    def __init__(self, reader: Reader, blob_id: int) -> None:
        self._reader = reader
        row = reader.row(blobs.PART_OF, (blob_id,))
        self._part = blobs.part_of(row)
        self._pack = blobs.packed(
            row if self._part is None else reader.row(blobs.PART_OF, (self._part.base,))
        )
        if self._pack is not None:
            self._first, self._end = (
                (0, self._pack.size) if self._part is None else (self._part.start, self._part.end)
            )
        elif self._part is None:
            self._first, self._end = blob_id * blobs.MAX_CHUNKS, (blob_id + 1) * blobs.MAX_CHUNKS
        else:
            first, last = self._part.range_keys()
            self._first, self._end = first, last + 1
        self._rewind()

    def _rewind(self) -> None:
        self._key = self._first
        self._buffer = b""
        self._eof = False
        self._decoder = None if self._part is None else self._part.decoder()

    def _next_chunk(self) -> None:
        data: bytes | None = None
        if self._pack is not None:
            if self._key < self._end:
                size = min(READ_BYTES, self._end - self._key)
                data = self._reader.packs.read(self._pack.pack, self._pack.offset + self._key, size)
                window, self._key = data, self._key + size
        elif (row := self._reader.row(blobs.NEXT_CHUNK, (self._key, self._end))) is not None:
            self._key = row[0] + 1
            data = bytes(row[1])
            window = data if self._part is None else self._part.window(row[0], data)
        if data is None:
            self._eof = True
            if self._decoder is not None:
                self._buffer += self._decoder.end()
            return
        self._buffer += window if self._decoder is None else self._decoder.feed(window)

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            self._next_chunk()
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        """Absolute seeks (for Range requests): in an ordinary blob to the chunk that holds
        `offset`; in a part of another, by decoding from its start."""
        if whence != 0:
            raise OSError("only absolute seeks are supported")
        self._rewind()
        skip = offset
        if self._part is None and self._pack is not None:
            self._key, skip = min(offset, self._end), 0
        elif self._part is None:
            seq, skip = divmod(offset, blobs.CHUNK_SIZE)
            self._key += seq
        while skip and not self._eof:
            self._next_chunk()
            dropped = min(skip, len(self._buffer))
            self._buffer = self._buffer[dropped:]
            skip -= dropped
        return offset

    def close(self) -> None:
        self._buffer = b""
        self._eof = True
