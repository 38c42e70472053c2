"""Pack files: the raw content the upstream gives (a message's source, an event's iCalendar
text) kept outside SQLite, in append-only files beside the database (`<db>-packs/`).

Content in SQLite is written twice, into the WAL and then by the checkpoint into the
database file, and read back in between; a pack is written once. The pull of 20,000
messages (545 MB of sources) of the mail benchmark took about 0.9 s less CPU time, and
about as much less time, than with the sources in SQLite.

- A blob kept in a pack has `pack` and `pack_offset` in its `blobs` row (schema 20) and no
  chunk rows; `blobs.read` reads it from here.
- Space is reserved in the event loop (`reserve`, no I/O) so that the rows of a write
  transaction can be made at once; the bytes are written and synced to disk by one thread
  of this object, each at its reserved offset, beside the inserts, and the transaction
  commits only once they are (`Tx.pack`). A committed row therefore always points at durable
  bytes; what a failed or rolled-back transaction reserved stays as dead bytes.
- Packs are never rewritten in place. `collect` deletes packs nothing points at any more
  and copies the live content of a mostly dead one into the current pack, one pack a call
  (the old file is then deleted by the next call, after the reads begun before it).
- Copies of a blob (an item copied) share its bytes: the space is dead only when no row
  points at it.

Only content the server also has is packed (the write transactions of the sync): it is
what bulk pulls write, and the store's own writes keep their paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from bridge.store.errors import StoreError

if TYPE_CHECKING:
    from bridge.store.core import StoreCore, Tx

log = logging.getLogger(__name__)

PACK_BYTES = 64 << 20  # a new pack is begun when the next content would pass this size
READ_BYTES = 256 * 1024  # content is read this much at a time
COPY_BYTES = 4 << 20  # ... and copied this much at a time by `collect`
DEAD_SHARE = 0.5  # a pack with more dead bytes than this share of its size is compacted
SUFFIX = ".pack"


class PackDamaged(StoreError):
    """A pack lacks content a row points at (the cache's files were damaged or cut)."""


class Packs:
    """The pack files of one store."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # guards the two fields below
        self._current: int | None = None  # the pack appended to (None: not looked up yet)
        self._end = 0  # where the next reservation begins in it
        # used in the thread of the packs only (and by `close`, after it)
        self._handles: dict[int, BinaryIO] = {}  # packs open for writing
        # content reserved and not written yet, by (pack, offset): read from here meanwhile
        # (by its own transaction: a search folder's restriction on its texts, say)
        self._unwritten: dict[tuple[int, int], bytes] = {}
        self._executor: ThreadPoolExecutor | None = None
        # blobs were deleted since `collect` last looked (it looks at least once)
        self.maybe_dead = True

    @staticmethod
    def beside(db_path: Path) -> Path:
        return db_path.with_name(db_path.name + "-packs")

    def path(self, pack: int) -> Path:
        return self.directory / f"{pack:08d}{SUFFIX}"

    def files(self) -> dict[int, int]:
        """The packs on disk: id -> size in bytes."""
        found: dict[int, int] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                stem, dot, ext = entry.name.partition(".")
                if dot and "." + ext == SUFFIX and stem.isdigit():
                    found[int(stem)] = entry.stat().st_size
        return found

    @property
    def current(self) -> int | None:
        return self._current

    # -- writing ----------------------------------------------------------------------

    def hold(self, data: bytes) -> tuple[int, int]:
        """`reserve` space for `data`, readable at once (before `write` gets it to disk)."""
        where = self.reserve(len(data))
        self._unwritten[where] = data
        return where

    def let_go(self, pieces: list[tuple[int, int, bytes]]) -> None:
        """Forget held content that is written, or that will never be."""
        for pack, offset, _ in pieces:
            self._unwritten.pop((pack, offset), None)

    def reserve(self, size: int) -> tuple[int, int]:
        """(pack, offset) where `size` bytes will be written. No I/O but the first time."""
        with self._lock:
            if self._current is None:
                found = self.files()
                self._current = max(found, default=0)
                self._end = found.get(self._current, 0)
            if self._end and self._end + size > PACK_BYTES:
                self._current += 1
                self._end = 0
            where = (self._current, self._end)
            self._end += size
            return where

    def write(self, pieces: list[tuple[int, int, bytes]]) -> asyncio.Future[None]:
        """Write each (pack, offset, data) in the thread of the packs, in the order of the
        calls, and sync it to disk: the bytes are durable when the future is done."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._writer(), self._write, pieces)

    def _writer(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="kbridge-packs")
        return self._executor

    def _handle(self, pack: int) -> BinaryIO:
        handle = self._handles.get(pack)
        if handle is None:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                _sync_directory(self.directory.parent)
            path = self.path(pack)
            created = not path.exists()
            handle = open(path, "r+b" if not created else "w+b")  # noqa: SIM115 (kept open)
            if created:
                _sync_directory(self.directory)
            for old in list(self._handles):
                self._handles.pop(old).close()  # the pack written before is done with
            self._handles[pack] = handle
        return handle

    def _write(self, pieces: list[tuple[int, int, bytes]]) -> None:
        handle: BinaryIO | None = None
        try:
            for pack, offset, data in pieces:
                if handle is None or pack not in self._handles:
                    if handle is not None:
                        _sync_file(handle)  # before `_handle` closes it
                    handle = self._handle(pack)
                if handle.tell() != offset:
                    handle.seek(offset)
                handle.write(data)
            if handle is not None:
                _sync_file(handle)
        finally:
            self.let_go(pieces)

    def close(self) -> None:
        """Blocking: finish the writes, close the files."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    # -- reading ----------------------------------------------------------------------

    def read(self, pack: int, offset: int, size: int) -> bytes:
        """Blocking: `size` bytes at `offset` of a pack."""
        held = self._unwritten.get((pack, offset))
        if held is not None and len(held) >= size:
            return held[:size]
        with self._open(pack) as f:
            return self._read_at(f, pack, offset, size)

    async def chunks(self, pack: int, offset: int, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end of the content at `offset` of a pack, READ_BYTES at a time, from
        one open file (a pack deleted meanwhile is still read where the OS allows it)."""
        held = self._unwritten.get((pack, offset))
        if held is not None and len(held) >= end:
            for at in range(start, end, READ_BYTES):
                yield held[at : min(end, at + READ_BYTES)]
            return
        f = await asyncio.to_thread(self._open, pack)
        try:
            for at in range(start, end, READ_BYTES):
                size = min(READ_BYTES, end - at)
                yield await asyncio.to_thread(self._read_at, f, pack, offset + at, size)
        finally:
            f.close()

    def _open(self, pack: int) -> BinaryIO:
        try:
            return open(self.path(pack), "rb")  # (closed by the callers)
        except FileNotFoundError:
            raise PackDamaged(
                f"{self.path(pack)} is missing: the cache's files were damaged"
            ) from None

    def _read_at(self, f: BinaryIO, pack: int, offset: int, size: int) -> bytes:
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise PackDamaged(
                f"{self.path(pack)} lacks {size - len(data)} bytes of content at offset "
                f"{offset}: the cache's files were damaged"
            )
        return data


def _sync_file(handle: BinaryIO) -> None:
    handle.flush()
    sync = getattr(os, "fdatasync", os.fsync)  # Windows and macOS have only fsync
    sync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable (POSIX; Windows cannot open a directory)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- collecting dead space --------------------------------------------------------------

LIVE = (
    "SELECT pack, SUM(size) FROM (SELECT DISTINCT pack, pack_offset, size FROM blobs "
    "WHERE pack IS NOT NULL) GROUP BY pack"
)


async def collect(core: StoreCore) -> None:
    """Delete the packs no row points at, and compact one whose dead bytes are more than
    DEAD_SHARE of it: its live content is copied into the current pack and its rows
    pointed there. A look through the reader first: the write transaction, in which no
    other can reserve space meanwhile, is taken only when there is something to do."""
    packs = core.packs
    if packs is None or not packs.maybe_dead or not packs.files():
        return
    packs.maybe_dead = False  # (a deletion from now on sets it again)
    async with core.reader.execute(LIVE) as cur:
        live = {int(r[0]): int(r[1]) for r in await cur.fetchall()}
    if not any(_waste(packs, packs.files(), live)):
        return
    from bridge.store.core import SYSTEM  # (core imports this module)

    async with core.write(SYSTEM) as tx:
        async with tx.conn.execute(LIVE) as cur:
            live = {int(r[0]): int(r[1]) for r in await cur.fetchall()}
        gone, sparse = _waste(packs, packs.files(), live)
        if sparse:  # (the file is deleted by a later call: a read may have it open)
            await _compact(tx, packs, sparse[0])
            packs.maybe_dead = True
    for pack in gone:
        try:
            packs.path(pack).unlink(missing_ok=True)
        except OSError:  # open by a reader (Windows): deleted by a later call
            packs.maybe_dead = True
            log.info("pack %s still in use; deleted later", pack)


def _waste(
    packs: Packs, on_disk: dict[int, int], live: dict[int, int]
) -> tuple[list[int], list[int]]:
    """(packs nothing points at, packs mostly dead), never the current one."""
    current = packs.current if packs.current is not None else max(on_disk, default=None)
    gone = [p for p in on_disk if p not in live and p != current]
    sparse = [
        p
        for p, size in on_disk.items()
        if p in live and p != current and live[p] < size * (1 - DEAD_SHARE)
    ]
    return gone, sparse


async def _compact(tx: Tx, packs: Packs, pack: int) -> None:
    async with tx.conn.execute(
        "SELECT DISTINCT pack_offset, size FROM blobs WHERE pack = ? ORDER BY pack_offset",
        (pack,),
    ) as cur:
        extents = [(int(r[0]), int(r[1])) for r in await cur.fetchall()]
    moves = []
    for offset, size in extents:
        new_pack, new_offset = packs.reserve(size)
        for at in range(0, size, COPY_BYTES):
            data = await asyncio.to_thread(
                packs.read, pack, offset + at, min(COPY_BYTES, size - at)
            )
            await packs.write([(new_pack, new_offset + at, data)])
        moves.append((new_pack, new_offset, pack, offset))
    await tx.conn.executemany(
        "UPDATE blobs SET pack = ?, pack_offset = ? WHERE pack = ? AND pack_offset = ?", moves
    )
    log.info("pack %s compacted: %d pieces of content copied", pack, len(moves))
