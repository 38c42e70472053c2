"""Fetched .ics / .vcf resources → items, for a pull: in this process for a few, in worker
processes for many (an initial sync of thousands) on a machine with cores to spare, so
that parsing, which is most of a large pull's CPU time, runs beside the HTTP reads and the
SQLite writes instead of between them.

A resource that cannot become an item comes back as its error message. Workers come from
bridge/sync/workers.py (forked by a fork server that has the converters imported, or
spawned); a pool that breaks (a worker killed) is given up and the rest is parsed here.

The workers of a first pull in one query are started before the query is sent
(`ParserPool.start`) and shared by the run's pulls: a worker's start (a fork and the
import of the program's main module, or a whole new interpreter where workers are
spawned) then happens while the server works on its answer instead of after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bridge.collector import tune_gc
from bridge.store.calendar_items import ItemDataError, item_from_ical, item_from_vcard
from bridge.store.item_base import NewItem
from bridge.sync.workers import context as workers_context
from bridge.upstream.dav_base import ADDRESSBOOK, NOTES

log = logging.getLogger(__name__)

POOL_FROM = 1000  # resources to parse in one pull before worker processes pay off
CHUNK = 100  # resources per task handed to a worker

Parsed = NewItem | str  # the item, or why the resource is not one


def convert(kind: str, data: bytes) -> NewItem:
    """The item a resource of a collection of `kind` becomes; ItemDataError if none."""
    if kind == ADDRESSBOOK:
        return item_from_vcard(data)
    return item_from_ical(data, notes=kind == NOTES)


def parse_one(kind: str, data: bytes) -> Parsed:
    """The item a resource of a collection of `kind` becomes, or the reason it cannot."""
    try:
        return convert(kind, data)
    except ItemDataError as exc:
        return str(exc)
    except Exception as exc:  # a hostile resource must not stop the run
        return f"unreadable: {exc!r}"[:300]


def parse_many(kind: str, datas: Sequence[bytes]) -> list[Parsed]:
    return [parse_one(kind, d) for d in datas]


def worker_count(*, all_arrived: bool) -> int:
    """How many parse workers a large pull gets on this machine.

    While the server still answers (multigets), one core is left to the rest (the event
    loop, SQLite, a server on the same machine): on two cores, workers then only add their
    overhead (measured with bench_dav_sync). When everything has arrived (a first pull in
    one query), two workers parse beside the store writes, even on two cores: the writes
    leave them most of a core (measured: 10.6–12.7 s instead of 12.6–14.1 s for 10,000
    events and 5,000 contacts)."""
    cores = os.cpu_count() or 1
    if all_arrived:
        return min(2, cores) if cores > 1 else 0
    return min(2, cores - 1) if cores > 2 else 0


class ParserPool:
    """Worker processes shared by the pulls of one sync run; `close()` ends them."""

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.workers = 0
        self._starter: threading.Thread | None = None

    def start(self, count: int | None = None) -> None:
        """Start `count` workers (None: those of a first pull in one query), each on its
        way (the pool starts a worker per task it is given while none is idle). They are
        started from a thread: a fork server still importing what it preloads would hold
        the event loop, and with it the request whose answer the workers are for."""
        if self.pool is not None:
            return
        count = worker_count(all_arrived=True) if count is None else count
        if count <= 0:
            return
        self.pool = ProcessPoolExecutor(
            max_workers=count, mp_context=workers_context(), initializer=tune_gc
        )
        self.workers = count
        self._starter = threading.Thread(
            target=_spawn, args=(self.pool, count), name="kbridge-parsers", daemon=True
        )
        self._starter.start()

    def wait_started(self) -> None:
        """Until every worker is on its way (or failed to start)."""
        if self._starter is not None:
            self._starter.join()
            self._starter = None

    def close(self) -> None:
        self.wait_started()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


def _spawn(pool: ProcessPoolExecutor, count: int) -> None:
    with contextlib.suppress(Exception):  # a pool that cannot start fails its first parse
        for _ in range(count):
            pool.submit(os.getpid)


class ResourceParser:
    """Parses for one pull, in the run's started workers (`shared`) or in its own;
    `close()` ends its own."""

    def __init__(
        self,
        expected: int,
        workers: int | None = None,
        *,
        all_arrived: bool = False,
        shared: ParserPool | None = None,
    ) -> None:
        count = workers if workers is not None else worker_count(all_arrived=all_arrived)
        self.workers = count
        self.pool: Executor | None = None
        self._own: ParserPool | None = None
        if workers is None and expected >= POOL_FROM and shared is not None and shared.pool:
            self.pool, self.workers = shared.pool, shared.workers
        elif (expected >= POOL_FROM and count > 0) or workers is not None:
            self._own = ParserPool()
            self._own.start(max(1, count))
            self.pool = self._own.pool

    @property
    def parallel(self) -> bool:
        return self.pool is not None

    async def parse(self, kind: str, datas: Sequence[bytes]) -> list[Parsed]:
        if self.pool is None:
            return parse_many(kind, datas)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, parse_many, kind, list(datas))
        except BrokenProcessPool:
            log.warning("DAV: parser processes failed; parsing in the sync process")
            self.close()
            return parse_many(kind, datas)

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None
        self.pool = None
