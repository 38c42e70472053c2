"""Running the DAV sync: `DavRunner` keeps one adapter per configured CalDAV / CardDAV
endpoint and runs their engines side by side, recording a state per upstream;
`DavSyncService` is its background service (the loop of bridge/sync/loop.py, polling every
`sync.interval`); with a mail upstream too, it runs beside the mail service, so a DAV
server that is down does not hold up the mail sync, nor the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config.model import Config, FolderSync
from bridge.store.store import Store
from bridge.sync import workers
from bridge.sync.credentials import run_password_command
from bridge.sync.dav_engine import DavEngine
from bridge.sync.dav_parse import ParserPool
from bridge.sync.dav_scope import CALDAV_KINDS, CARDDAV_KINDS
from bridge.sync.loop import SyncLoop
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import Collection, DavAdapter, DavSettings

log = logging.getLogger(__name__)


@dataclass
class DavEndpoint:
    service: str  # "caldav" or "carddav"
    settings: DavSettings
    password_command: str | None = None
    state: str = "offline"
    message: str = "not connected yet"
    last_sync: float | None = None
    last_run: dict[str, Any] | None = None

    @property
    def kinds(self) -> frozenset[str]:
        return CALDAV_KINDS if self.service == "caldav" else CARDDAV_KINDS


@dataclass(frozen=True)
class DavOptions:
    policy: str = "keep-both"
    calendar_window_days: int | None = None
    folders: Mapping[str, FolderSync] = dataclasses.field(default_factory=dict)


def _default_adapter(settings: DavSettings) -> DavAdapter:
    from bridge.upstream.dav import HttpDavAdapter

    return HttpDavAdapter(settings)


class DavRunner:
    def __init__(
        self,
        store: Store,
        endpoints: list[DavEndpoint],
        options: DavOptions,
        adapter_factory: Callable[[DavSettings], DavAdapter] = _default_adapter,
    ) -> None:
        self.store = store
        self.endpoints = endpoints
        self.options = options
        self.adapter_factory = adapter_factory
        self._adapters: dict[tuple[str, str], DavAdapter] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._turns: dict[tuple[str, str], asyncio.Lock] = {}  # one server, one question

    async def run(self, *, strict: bool = False) -> None:
        """One run of every endpoint, all at once: the server answers one while the bridge
        stores what another sent (a CalDAV and a CardDAV pull touch different folders).
        Each failure is recorded on its endpoint; with `strict` the first one (in the order
        of the endpoints) is raised after all endpoints had their turn. Endpoints on the
        same account (same URL and login) share one connection and one listing."""
        listed: dict[tuple[str, str], list[Collection]] = {}
        workers.warm_up()  # a large pull's parsers are then ready when its data arrives
        parsers = ParserPool()
        try:
            failures = await asyncio.gather(
                *(self._run_guarded(ep, listed, parsers) for ep in self.endpoints)
            )
        finally:
            parsers.close()
        await self.store.collect_packs()  # the space of what the run deleted
        # A failed endpoint's connection is closed once no other run uses it.
        for key in dict.fromkeys(_key(ep) for ep in self.endpoints if ep.state != "online"):
            await self._close(key)
        first = next((f for f in failures if f is not None), None)
        if strict and first is not None:
            raise first

    async def _run_guarded(
        self,
        ep: DavEndpoint,
        listed: dict[tuple[str, str], list[Collection]],
        parsers: ParserPool,
    ) -> UpstreamError | None:
        """One endpoint's run; its failure is recorded on it and returned."""
        try:
            await self._run_one(ep, listed, parsers)
            ep.state, ep.message = "online", "in step with the server"
            return None
        except AuthFailed as exc:
            ep.state, ep.message = "auth-failed", f"{exc}; fix the password and sync again"
            return exc
        except ConnectFailed as exc:
            ep.state, ep.message = "offline", f"{exc}; retrying"
            return exc
        except UpstreamError as exc:
            ep.state, ep.message = "error", str(exc)
            return exc
        except Exception as exc:
            log.exception("DAV sync run failed")
            ep.state, ep.message = "error", f"internal error: {exc!r}"
            return UpstreamError(ep.message)

    async def _adapter(self, ep: DavEndpoint) -> DavAdapter:
        key = _key(ep)
        async with self._locks.setdefault(key, asyncio.Lock()):
            adapter = self._adapters.get(key)
            if adapter is None:
                if ep.password_command and not ep.settings.password:
                    password = await run_password_command(ep.password_command)
                    ep.settings = dataclasses.replace(ep.settings, password=password)
                adapter = self.adapter_factory(ep.settings)
                await adapter.connect()
                self._adapters[key] = adapter
            return adapter

    async def _shared_listing(
        self,
        ep: DavEndpoint,
        adapter: DavAdapter,
        listed: dict[tuple[str, str], list[Collection]],
    ) -> list[Collection] | None:
        """The account's collections, listed once for the endpoints that share it (None:
        the endpoint is alone on its account and its engine lists them)."""
        key = _key(ep)
        if sum(_key(other) == key for other in self.endpoints) < 2:
            return None
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in listed:
                services = {other.service for other in self.endpoints if _key(other) == key}
                refs = (await self.store.dav_refs.folder_refs()).values()
                first = not any(ref.get("dav") in services for ref in refs)
                listed[key] = await adapter.collections(first_sync=first)
            return listed[key]

    async def _run_one(
        self,
        ep: DavEndpoint,
        listed: dict[tuple[str, str], list[Collection]],
        parsers: ParserPool,
    ) -> None:
        adapter = await self._adapter(ep)
        ep.state = "syncing"
        engine = DavEngine(
            self.store,
            adapter,
            ep.service,
            ep.kinds,
            policy=self.options.policy,
            calendar_window_days=self.options.calendar_window_days,
            folders=self.options.folders,
            server_turn=self._turns.setdefault(_key(ep), asyncio.Lock()),
            parsers=parsers,
        )
        report = await engine.run(await self._shared_listing(ep, adapter, listed))
        ep.last_sync = time.time()
        ep.last_run = report.as_dict()

    def status(self) -> dict[str, Any]:
        return {
            ep.service: {
                "state": ep.state,
                "upstream": ep.settings.url,
                "message": ep.message,
                "last_sync": ep.last_sync,
                "last_run": ep.last_run,
            }
            for ep in self.endpoints
        }

    async def _close(self, key: tuple[str, str]) -> None:
        adapter = self._adapters.pop(key, None)
        if adapter is not None:
            with contextlib.suppress(Exception):
                await adapter.close()

    async def close(self) -> None:
        for key in list(self._adapters):
            await self._close(key)


def _key(ep: DavEndpoint) -> tuple[str, str]:
    """Endpoints with the same key share a connection: same server URL, same login."""
    return (ep.settings.url.rstrip("/"), ep.settings.username)


class DavSyncService(SyncLoop):
    """The background service of the CalDAV / CardDAV upstreams: the shared loop, polling
    every `sync.interval` (CalDAV and CardDAV have no push to wait on)."""

    def __init__(self, store: Store, runner: DavRunner, *, interval: float = 300.0) -> None:
        super().__init__(store, interval=interval)
        self.runner = runner

    async def status(self) -> dict[str, Any]:
        upstreams = self.runner.status()
        return {
            "state": self.state,
            "upstream": " ".join(dict.fromkeys(str(u["upstream"]) for u in upstreams.values())),
            "journal_pending": await self.store.queries.journal_pending(),
            "message": self.message,
            "work_offline": self.work_offline,
            "last_sync": self.last_sync,
            "upstreams": upstreams,
        }

    async def run_once(self) -> None:
        await self.runner.run(strict=True)
        self.last_sync = time.time()

    async def disconnect(self) -> None:
        await self.runner.close()


def dav_runner_for(store: Store, config: Config) -> DavRunner | None:
    """A runner for the CalDAV / CardDAV endpoints the config names (None: none)."""
    if config.upstream is None:
        return None
    endpoints = []
    for service in ("caldav", "carddav"):
        ep = getattr(config.upstream, service)
        if ep is None or not ep.url:
            continue
        settings = DavSettings(
            ep.url, ep.username, ep.password or "", verify_tls=ep.verify_tls, ca_file=ep.ca_file
        )
        endpoints.append(DavEndpoint(service, settings, ep.password_command))
    if not endpoints:
        return None
    options = DavOptions(
        policy=config.sync.conflict_policy,
        calendar_window_days=config.sync.calendar_window_days,
        folders=dict(config.sync.folders),
    )
    return DavRunner(store, endpoints, options)
