"""The background loop every upstream's sync service shares: a connectivity state machine
(online, syncing, offline, auth-failed, error), exponential backoff with jitter after a
failure, the user's "work offline" switch, and wake-ups when a local change lands in the
journal (debounced). A subclass says what one run is (`run_once`), how to wait between runs
(`between_runs`: a plain sleep, or IMAP IDLE) and how to drop its connections
(`disconnect`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from bridge.store.store import Store
from bridge.sync.service import SyncService
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
DEBOUNCE = 0.3
STOP_WAIT = 10.0  # s
OFFLINE_MESSAGE = "working offline (switched by the user)"


class SyncLoop(SyncService):
    def __init__(self, store: Store, *, interval: float = 300.0) -> None:
        super().__init__(store)
        self.interval = interval
        self.state = "offline"
        self.message = "not connected yet"
        self.work_offline = False
        self.last_sync: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._failures = 0

    # -- what a subclass provides -----------------------------------------------------

    async def run_once(self) -> None:
        """One sync run; raises AuthFailed, ConnectFailed or UpstreamError on failure."""
        raise NotImplementedError

    def online_message(self) -> str:
        return "in step with the server"

    async def between_runs(self) -> None:
        """Wait after a good run until the next one is due or a wake-up comes."""
        await self.sleep(self.interval)

    async def disconnect(self) -> None:
        """Drop the upstream connections (the next run opens new ones)."""

    def going_online(self) -> None:
        """Called when the user switches back online (before the wake-up)."""

    # -- the service face -------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())
        self._watch = asyncio.ensure_future(self._watch_local())

    async def stop(self) -> None:
        for task in (self._watch, self._task):
            if task is not None:
                task.cancel()
                # bounded: a stop (and the shutdown behind it) never waits on a stuck step
                done, _ = await asyncio.wait({task}, timeout=STOP_WAIT)
                if not done:
                    log.warning("the sync loop did not stop within %g s; left behind", STOP_WAIT)
        await self.disconnect()

    async def run_now(self) -> dict[str, Any]:
        if not self.work_offline:
            self.state, self.message = "syncing", "sync requested"
        self._wake.set()
        return await self.status()

    async def set_offline(self, offline: bool) -> None:
        self.work_offline = offline
        if offline:
            self.state, self.message = "offline", OFFLINE_MESSAGE
            await self.disconnect()
        else:
            self.state, self.message = "syncing", "going online"
            self._failures = 0
            self.going_online()
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if self.work_offline:
                self.state, self.message = "offline", OFFLINE_MESSAGE
                await self.sleep(None)
                continue
            delay: float | None = self.interval
            self._wake.clear()
            self.state = "syncing"
            try:
                await self.run_once()
                self._failures = 0
                self.state, self.message = "online", self.online_message()
            except AuthFailed as exc:
                self.state, self.message = "auth-failed", f"{exc}; fix the password and sync again"
                delay = None
            except ConnectFailed as exc:
                self.state, self.message = "offline", f"{exc}; retrying"
                delay = self._backoff()
            except UpstreamError as exc:
                self.state, self.message = "error", str(exc)
                delay = self._backoff()
            except Exception as exc:  # a hostile upstream must not end the loop
                log.exception("sync run failed")
                self.state, self.message = "error", f"internal error: {exc!r}"
                delay = self._backoff()
            if self.state == "online":
                await self.between_runs()
            else:
                await self.disconnect()
                await self.sleep(delay)

    def _backoff(self) -> float:
        self._failures += 1
        base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        return float(base * random.uniform(0.5, 1.0))

    @property
    def wake(self) -> asyncio.Event:
        return self._wake

    async def sleep(self, delay: float | None) -> None:
        """Wait `delay` seconds (None: until woken) or until a wake-up, whichever is first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def _watch_local(self) -> None:
        """Wake the loop shortly after a local change lands in the journal; during a run
        too, so the loop runs again at once for the new change."""
        sub = self.store.bus.subscribe()
        try:
            while True:
                await sub.get()
                await asyncio.sleep(DEBOUNCE)
                if (
                    self.state in ("online", "syncing")
                    and await self.store.queries.journal_pending()
                ):
                    self._wake.set()
        finally:
            sub.close()
