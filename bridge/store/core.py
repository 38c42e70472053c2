"""The store core: connections, counters and the write transaction every change goes through.

Writes are serialized by one lock on one writer connection. A write transaction applies the
change, appends to the journal (unless the change came from the upstream), assigns change
numbers and collects notifications, which are published only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bridge.model.named import NamedProp
from bridge.store import blobs, db, migrations, texts
from bridge.store.errors import StoreOpenError
from bridge.store.events import EventBus
from bridge.store.ids import IdCodec
from bridge.store.named import NamedMap
from bridge.store.packs import Packs
from bridge.store.props import now_filetime

WAL_RESTART_FRAMES = 4096  # 64 MiB of 16 KiB pages
# A checkpoint waits this long after the commit that asked for it, so that the commits of
# a bulk write share one: each checkpoint syncs the database file to disk, and a page
# written by several commits (an index's, a folder's counts) is copied once.
CHECKPOINT_DELAY = 0.2  # s
COUNTERS = ("next_cn", "next_folder", "next_item", "next_blob")

# Where a change comes from: a local client (journaled for the upstream) or the upstream.
# Bookkeeping of the bridge itself (tokens, named-property ids) is not journaled either.
LOCAL = "local"
UPSTREAM = "upstream"
SYSTEM = "system"


class Tx:
    """One write transaction. Use through `StoreCore.write()`."""

    def __init__(self, core: StoreCore, origin: str) -> None:
        self.core = core
        self.conn = core.writer
        self.origin = origin
        self.now = now_filetime()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._counters = dict(core.counters)
        self._new_named: list[NamedProp] = []
        self._packing: list[tuple[int, int, bytes]] = []  # reserved, not yet being written
        self._pack_writes: list[asyncio.Future[None]] = []

    @property
    def journaled(self) -> bool:
        return self.origin == LOCAL

    @contextlib.contextmanager
    def as_origin(self, origin: str) -> Iterator[None]:
        """What the block writes comes from `origin` (journaled or not as that origin is):
        one transaction then records a local change and what the upstream did with it."""
        saved, self.origin = self.origin, origin
        try:
            yield
        finally:
            self.origin = saved

    def alloc(self, counter: str, n: int = 1) -> int:
        """Reserve `n` consecutive values of a counter; returns the first."""
        first = self._counters[counter]
        self._counters[counter] = first + n
        return first

    def cn(self) -> int:
        return self.alloc("next_cn")

    def emit(self, etype: str, **data: Any) -> None:
        self.events.append((etype, data))

    def pack(self, data: bytes | None) -> tuple[int, int] | None:
        """Where content the upstream gave is kept in the store's packs: (pack, offset),
        or None when it goes into SQLite (a local change, or a store without packs). The
        bytes are written by `start_pack_writes`, or at the latest before the commit."""
        packs = self.core.packs
        if packs is None or self.origin != UPSTREAM or not data:
            return None
        pack, offset = packs.hold(data)
        self._packing.append((pack, offset, data))
        return pack, offset

    def start_pack_writes(self) -> None:
        """Begin writing (and syncing) what `pack` reserved so far, beside the rest of the
        transaction."""
        if self._packing and self.core.packs is not None:
            self._pack_writes.append(self.core.packs.write(self._packing))
            self._packing = []

    async def _packs_durable(self) -> None:
        """Every packed byte of this transaction is on disk: its rows may then commit."""
        self.start_pack_writes()
        if self._pack_writes:
            writes, self._pack_writes = self._pack_writes, []
            await asyncio.gather(*writes)

    async def _abandon_packs(self) -> None:
        """A rolled-back transaction's pack writes end (as dead bytes) before the next."""
        if self.core.packs is not None:
            self.core.packs.let_go(self._packing)
        self._packing = []
        for write in self._pack_writes:
            with contextlib.suppress(BaseException):
                await write
        self._pack_writes = []

    async def journal(
        self,
        op: str,
        kind: str,
        object_id: int,
        folder_id: int | None,
        cn: int,
        payload: dict[str, Any] | None = None,
    ) -> None:
        if self.journaled:
            await self.conn.execute(
                "INSERT INTO journal (ts, op, kind, object_id, folder_id, cn, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.now, op, kind, object_id, folder_id, cn, json.dumps(payload or {})),
            )

    async def named_id(self, np: NamedProp, ptype: int | None) -> int:
        known = self.core.named.lookup(np)
        if known:
            return known[0]
        self._new_named.append(np)
        return await self.core.named.ensure(self.conn, np, ptype)

    async def _commit(self) -> None:
        changed = [(str(v), k) for k, v in self._counters.items() if self.core.counters[k] != v]
        if changed:
            await self.conn.executemany("UPDATE meta SET value = ? WHERE key = ?", changed)
        await self._packs_durable()
        await self.conn.commit()
        self.core.counters = self._counters

    def _rolled_back(self) -> None:
        for np in self._new_named:
            self.core.named.forget(np)


class StoreCore:
    """Connections and shared state of one open store."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        checkpointer: aiosqlite.Connection,
        packs: Packs | None = None,
    ):
        self.path = path
        self.packs = packs  # where content from the upstream is kept (None: in SQLite)
        for conn in (writer, reader, checkpointer):
            blobs.bind(conn, packs)
        self.writer = writer
        self.reader = reader
        # Copies the WAL back into the database on its own connection (and thread), so a
        # commit never waits for a checkpoint.
        self.checkpointer = checkpointer
        self._checkpoint: asyncio.Task[None] | None = None
        self._checkpoint_again = False
        self._closing = asyncio.Event()  # a checkpoint then runs without its delay
        self.named = NamedMap()
        self.bus = EventBus()
        self.counters: dict[str, int] = {}
        self.ids = IdCodec(uuid.UUID(int=0))
        self.fresh = False
        self._lock = asyncio.Lock()
        self._durable = False  # the writer's PRAGMA synchronous is FULL (else NORMAL)
        self._durable_scopes = 0  # `durable()` blocks open
        # Called after every commit (cheap, synchronous: e.g. waking the search indexer).
        self.on_commit: list[Callable[[], None]] = []
        # Called inside every write transaction just before it commits (search folders).
        self.before_commit: list[Callable[[Tx], Awaitable[None]]] = []

    @classmethod
    async def open(cls, path: Path) -> StoreCore:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await db.connect(path)
        try:
            fresh = await migrations.migrate(writer, str(path))
            if fresh:
                await _init_meta(writer)
            reader = await db.connect(path, readonly=True)
            checkpointer = await db.connect(path)
        except sqlite3.DatabaseError as exc:
            await writer.close()
            raise StoreOpenError(
                f"{path} cannot be read as a kbridge store ({exc}); it may be corrupt: "
                "restore it from a backup or move it away to start with an empty cache"
            ) from exc
        except BaseException:
            await writer.close()
            raise
        await writer.execute("PRAGMA wal_autocheckpoint = 0")
        await checkpointer.execute("PRAGMA cache_size = -1000")  # copies pages, reads none
        await writer.execute(f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * 16384}")
        core = cls(path, writer, reader, checkpointer, Packs(Packs.beside(path)))
        core.fresh = fresh
        try:
            for conn in (writer, reader):
                await texts.install(conn, core.packs)
            await core._load()
        except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
            await core.close()
            raise StoreOpenError(f"{path}: store metadata unreadable ({exc})") from exc
        return core

    async def _load(self) -> None:
        async with self.reader.execute("SELECT key, value FROM meta") as cur:
            meta = {row["key"]: row["value"] for row in await cur.fetchall()}
        self.ids = IdCodec(uuid.UUID(meta["store_guid"]))
        self.counters = {k: int(meta[k]) for k in COUNTERS}
        await self.named.load(self.reader)

    async def close(self) -> None:
        self._closing.set()
        if self._checkpoint is not None:
            await self._checkpoint
        await self.checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self.checkpointer.close()
        await self.reader.close()
        await self.writer.close()
        if self.packs is not None:
            await asyncio.to_thread(self.packs.close)

    async def checkpoints_done(self) -> None:
        """Wait until no checkpoint is due: what was committed is in the database file."""
        while self._checkpoint is not None and not self._checkpoint.done():
            await asyncio.shield(self._checkpoint)

    def _request_checkpoint(self) -> None:
        if self._checkpoint is not None and not self._checkpoint.done():
            self._checkpoint_again = True
            return
        self._checkpoint = asyncio.ensure_future(self._run_checkpoints())

    async def _run_checkpoints(self) -> None:
        """PASSIVE checkpoints run beside the writer, CHECKPOINT_DELAY after a commit asked
        for one; once the WAL has grown past WAL_RESTART_FRAMES a RESTART one makes the next
        writer start it over, so that it stays bounded during bulk imports. The RESTART
        runs between two write transactions of this store (it takes the write lock), so
        that neither waits for the other through SQLite's busy handler, which sleeps in
        steps of up to 100 ms. In the initial pull of 20,000 messages (ten restarts),
        the restarts then held the writer back for about 0.6 s in all, against about
        3 s with the busy handler."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), CHECKPOINT_DELAY)
            self._checkpoint_again = False
            try:
                async with self.checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                    row = await cur.fetchone()
                if row is not None and row[1] > WAL_RESTART_FRAMES:
                    async with self._lock:
                        await self.checkpointer.execute("PRAGMA wal_checkpoint(RESTART)")
            except sqlite3.Error:
                return  # retried after the next commit
            if not self._checkpoint_again:
                return

    @contextlib.contextmanager
    def durable(self) -> Iterator[None]:
        """Every write transaction that begins inside the block commits durably, whatever
        its origin: for the record of what the upstream cannot be asked to do twice (a
        message sent). Writes of other tasks meanwhile do too, which costs them only time."""
        self._durable_scopes += 1
        try:
            yield
        finally:
            self._durable_scopes -= 1

    async def _commit_durably(self, durable: bool) -> None:
        """Whether the next commit waits until its WAL frames are on disk (synchronous FULL)
        or not (NORMAL: it survives a crash of this process, but an OS crash or a power cut
        may undo it). A local change is the only copy of what the user did until the
        journal has carried it upstream: it commits durably. What the sync brings from the
        upstream is fetched again if lost, with the sync state of the same transactions:
        it commits without waiting for the disk, which a bulk pull would feel. Set between
        transactions (SQLite refuses it inside one), and only when it changes."""
        if durable != self._durable:
            await self.writer.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    @asynccontextmanager
    async def write(self, origin: str = LOCAL) -> AsyncIterator[Tx]:
        async with self._lock:
            tx = Tx(self, origin)
            await self._commit_durably(tx.journaled or self._durable_scopes > 0)
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                yield tx
                for before in self.before_commit:
                    await before(tx)
                await tx._commit()
            except BaseException:
                await self.writer.rollback()
                tx._rolled_back()
                await tx._abandon_packs()
                raise
        self._request_checkpoint()
        for hook in self.on_commit:
            hook()
        if tx.events:
            self.bus.publish(tx.events)

    async def meta(self, key: str) -> str | None:
        async with self.reader.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])


async def _init_meta(conn: aiosqlite.Connection) -> None:
    rows = [("store_guid", str(uuid.uuid4())), ("created", str(now_filetime()))]
    rows += [(k, "1") for k in COUNTERS]
    await conn.execute("BEGIN IMMEDIATE")
    await conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
    await conn.commit()
