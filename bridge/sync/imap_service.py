"""The sync service of an IMAP upstream: a background loop with a connectivity state
machine (online, syncing, offline, auth-failed, error), exponential backoff with jitter, a
"work offline" switch, and IDLE on the Inbox between runs so that new mail arrives within
seconds. Local changes wake it up (debounced)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from typing import Any

from bridge.config import Config, SyncConfig
from bridge.store.store import Store
from bridge.sync.dav_service import DavRunner, DavSyncService, dav_runner_for
from bridge.sync.engine import Engine
from bridge.sync.on_demand import NotAvailableOffline, OnDemand, is_partial
from bridge.sync.outbox import Outbox
from bridge.sync.service import SyncService
from bridge.upstream.base import AuthFailed, ConnectFailed, MailAdapter, UpstreamError
from bridge.upstream.imap import ImapAdapter, ImapSettings
from bridge.upstream.smtp import SmtpSettings

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
DEBOUNCE = 0.3


class ImapSyncService(SyncService):
    def __init__(
        self,
        store: Store,
        settings: ImapSettings,
        *,
        interval: float = 300.0,
        policy: str = "keep-both",
        password_command: str | None = None,
        smtp: SmtpSettings | None = None,
        smtp_password_command: str | None = None,
        dav: DavRunner | None = None,
        sync_config: SyncConfig | None = None,
    ) -> None:
        super().__init__(store)
        self.sync_config = sync_config  # per-folder settings
        self.dav = dav  # CalDAV / CardDAV, run after each mail run
        self.password_command = password_command
        self.smtp_password_command = smtp_password_command
        self.outbox = Outbox(store, smtp) if smtp is not None else None
        self.settings = settings
        self.interval = interval
        self.policy = policy
        self.state = "offline"
        self.message = "not connected yet"
        self.work_offline = False
        self.last_sync: float | None = None
        self.last_report: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._adapter: ImapAdapter | None = None
        self.on_demand = OnDemand(store, self._connect_on_demand)
        self._failures = 0

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())
        self._watch = asyncio.ensure_future(self._watch_local())

    async def stop(self) -> None:
        for task in (self._watch, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self._disconnect()
        if self.dav is not None:
            await self.dav.close()

    async def status(self) -> dict[str, Any]:
        s = self.settings
        return {
            "state": self.state,
            "upstream": f"imap://{s.username}@{s.host}:{s.port}",
            "journal_pending": await self.store.queries.journal_pending(),
            "message": self.message,
            "work_offline": self.work_offline,
            "last_sync": self.last_sync,
            "last_run": self.last_report,
            "outbox": await self._outbox_status(),
            "upstreams": self.dav.status() if self.dav is not None else {},
        }

    async def _outbox_status(self) -> dict[str, Any] | None:
        if self.outbox is None:
            return None
        return {"queued": len(await self.outbox.queued()), "last_error": self.outbox.last_error}

    async def run_now(self) -> dict[str, Any]:
        if not self.work_offline:
            self.state = "syncing"
            self.message = "sync requested"
        if self.outbox is not None:
            self.outbox.retry_now()
        self._wake.set()
        return await self.status()

    async def ensure_content(self, item_id: int) -> bool:
        if self.work_offline and await is_partial(self.store, item_id):
            raise NotAvailableOffline(
                "this message is not available offline (the bridge is working offline); "
                'go online (POST /api/v1/sync/offline with {"offline": false}) to fetch it'
            )
        return await self.on_demand.ensure(item_id)

    async def _connect_on_demand(self) -> MailAdapter:
        if self.password_command and not self.settings.password:
            password = await run_password_command(self.password_command)
            self.settings = dataclasses.replace(self.settings, password=password)
        adapter = ImapAdapter(self.settings)
        await adapter.connect()
        return adapter

    async def set_offline(self, offline: bool) -> None:
        self.work_offline = offline
        if offline:
            self.state, self.message = "offline", "working offline (switched by the user)"
            await self._disconnect()
            if self.dav is not None:
                await self.dav.close()
        else:
            self.state, self.message = "syncing", "going online"
            self._failures = 0
            if self.outbox is not None:
                self.outbox.retry_now()
        self._wake.set()

    # -- loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if self.work_offline:
                self.state, self.message = "offline", "working offline (switched by the user)"
                await self._sleep(None)
                continue
            delay: float | None = self.interval
            try:
                await self._run_once()
                self._failures = 0
                self.state, self.message = "online", "in step with the server"
                if self.last_report.get("held"):
                    self.message += (
                        f" except {', '.join(self.last_report['held'])}: empty on the server,"
                        " its messages are kept here until confirmed"
                    )
            except AuthFailed as exc:
                self.state, self.message = "auth-failed", f"{exc}; fix the password and sync again"
                delay = None
            except ConnectFailed as exc:
                self.state, self.message = "offline", f"{exc}; retrying"
                delay = self._backoff()
            except UpstreamError as exc:
                self.state, self.message = "error", str(exc)
                delay = self._backoff()
            except Exception as exc:
                log.exception("sync run failed")
                self.state, self.message = "error", f"internal error: {exc!r}"
                delay = self._backoff()
            if self.state != "online":
                await self._disconnect()
                await self._sleep(delay)
            else:
                await self._idle()

    def _backoff(self) -> float:
        self._failures += 1
        base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        return float(base * random.uniform(0.5, 1.0))

    async def _sleep(self, delay: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def _run_once(self) -> None:
        self._wake.clear()
        self.state = "syncing"
        if self._adapter is None or not self._adapter.alive:
            await self._disconnect()
            if self.password_command and not self.settings.password:
                password = await run_password_command(self.password_command)
                self.settings = dataclasses.replace(self.settings, password=password)
            adapter = ImapAdapter(self.settings)
            await adapter.connect()
            self._adapter = adapter
        report = await Engine(self.store, self._adapter, self.policy, self.sync_config).run(
            self._adapter.delimiter or "/"
        )
        self.last_sync = time.time()
        self.last_report = {
            "fetched": report.fetched,
            "updated": report.updated,
            "deleted": report.deleted,
            "pushed": report.pushed,
            "conflicts": report.conflicts,
            "failed": report.failed,
            "held": report.held,
        }
        if self.outbox is not None:
            await self._drain(self.outbox)
        if self.dav is not None:
            await self.dav.run()  # failures stay on the DAV upstream's own status

    async def _drain(self, outbox: Outbox) -> None:
        """Send the submitted items; sent ones moved to Sent Items, and the run after
        this one (at once) uploads their copies."""
        if self.smtp_password_command and not outbox.settings.password:
            password = await run_password_command(self.smtp_password_command)
            outbox.settings = dataclasses.replace(outbox.settings, password=password)
        sent = await outbox.drain(self._adapter)
        self.last_report.update(
            {"sent": sent.sent, "send_failed": sent.failed, "send_deferred": sent.deferred}
        )
        if sent.sent and not outbox.settings.saves_sent:
            self._wake.set()

    async def _idle(self) -> None:
        """Wait on the Inbox for new mail, a wake-up or the interval, whichever is first."""
        adapter = self._adapter
        if adapter is None:
            return
        inbox = (await self.store.sync.folder_links()).get(self.store.folders.roles["inbox"])
        deadline = time.monotonic() + self.interval
        due = self.outbox.next_due() if self.outbox is not None else None
        if due is not None:
            deadline = min(deadline, due)
        try:
            if inbox is not None:
                await adapter.select(str(inbox["mailbox"]), readonly=True)
            while not self._wake.is_set() and time.monotonic() < deadline:
                if await adapter.idle(min(25.0, deadline - time.monotonic()), stop=self._wake):
                    return
        except UpstreamError as exc:
            log.info("IDLE ended: %s", exc)
            await self._disconnect()
        except Exception:  # whatever the server sent, the loop goes on
            log.exception("IDLE failed")
            await self._disconnect()

    async def _watch_local(self) -> None:
        """Wake the loop shortly after a local change lands in the journal."""
        sub = self.store.bus.subscribe()
        try:
            while True:
                await sub.get()
                await asyncio.sleep(DEBOUNCE)
                if self.state == "online" and await self.store.queries.journal_pending():
                    self._wake.set()
        finally:
            sub.close()

    async def _disconnect(self) -> None:
        if self._adapter is not None:
            adapter, self._adapter = self._adapter, None
            await adapter.close()


async def run_password_command(command: str) -> str:
    """The first line printed by the configured password command."""
    proc = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()[:200]
        raise AuthFailed(f"password_command exited with {proc.returncode}: {detail}")
    return out.decode(errors="replace").splitlines()[0] if out.strip() else ""


def for_config(store: Store, config: Config) -> SyncService:
    """The sync service the config asks for: IMAP when an upstream is set, else none."""
    if config.upstream is None:
        return SyncService(store)
    dav = dav_runner_for(store, config)
    ep = config.upstream.imap
    if ep is None or config.upstream.smtp is None:  # calendars and contacts only
        if dav is None:
            return SyncService(store)
        return DavSyncService(store, dav, interval=float(config.sync.interval))
    settings = ImapSettings(
        ep.host, ep.port, ep.tls, ep.username, ep.password or "", verify_tls=ep.verify_tls
    )
    sp = config.upstream.smtp
    smtp = SmtpSettings(
        sp.host,
        sp.port,
        sp.tls,
        sp.username,
        sp.password or "",
        verify_tls=sp.verify_tls,
        saves_sent=sp.saves_sent,
    )
    return ImapSyncService(
        store,
        settings,
        interval=float(config.sync.interval),
        policy=config.sync.conflict_policy,
        password_command=ep.password_command,
        smtp=smtp,
        smtp_password_command=sp.password_command,
        dav=dav,
        sync_config=config.sync,
    )
