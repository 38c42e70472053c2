"""The sync service of an IMAP + SMTP upstream: the shared background loop (states, backoff,
"work offline", wake-ups) running the mail engine and draining the Outbox, with IDLE on the
Inbox between runs so that new mail arrives within seconds."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from bridge.config import SyncConfig
from bridge.store.store import Store
from bridge.sync.credentials import run_password_command
from bridge.sync.engine import Engine
from bridge.sync.loop import SyncLoop
from bridge.sync.on_demand import NotAvailableOffline, OnDemand, is_partial
from bridge.sync.outbox import Outbox
from bridge.upstream.base import MailAdapter, MailboxMark, UpstreamError, Watch
from bridge.upstream.imap import ImapAdapter, ImapSettings
from bridge.upstream.smtp import SmtpSettings

log = logging.getLogger(__name__)


class ImapSyncService(SyncLoop):
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
        sync_config: SyncConfig | None = None,
    ) -> None:
        super().__init__(store, interval=interval)
        self.sync_config = sync_config  # per-folder settings
        self.password_command = password_command
        self.smtp_password_command = smtp_password_command
        self.outbox = Outbox(store, smtp) if smtp is not None else None
        self.settings = settings
        self.policy = policy
        self.last_report: dict[str, Any] = {}
        self.confirmed_empty: set[str] = set()  # emptied mailboxes the user lets be mirrored
        self._adapter: ImapAdapter | None = None
        self._seen: dict[str, MailboxMark] | None = None  # server marks that started a run
        self.on_demand = OnDemand(store, self._connect_on_demand)

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
            "held": list(self.last_report.get("held", [])),
            "outbox": await self._outbox_status(),
            "upstreams": {},
        }

    async def _outbox_status(self) -> dict[str, Any] | None:
        if self.outbox is None:
            return None
        return {"queued": len(await self.outbox.queued()), "last_error": self.outbox.last_error}

    async def run_now(self) -> dict[str, Any]:
        if self.outbox is not None:
            self.outbox.retry_now()
        return await super().run_now()

    def going_online(self) -> None:
        if self.outbox is not None:
            self.outbox.retry_now()

    async def confirm_empty(self, mailboxes: list[str]) -> list[str]:
        """Let the next run mirror these held (emptied-on-the-server) mailboxes: their
        messages here are then deleted like any other server-side deletion. Returns the
        mailboxes that were held; the others are ignored."""
        held = set(self.last_report.get("held", []))
        confirmed = [m for m in mailboxes if m in held]
        self.confirmed_empty.update(confirmed)
        if confirmed:
            await self.run_now()
        return confirmed

    async def ensure_content(self, item_id: int) -> bool:
        if self.work_offline and await is_partial(self.store, item_id):
            raise NotAvailableOffline(
                "this message is not available offline (the bridge is working offline); "
                'go online (POST /api/v1/sync/offline with {"offline": false}) to fetch it'
            )
        return await self.on_demand.ensure(item_id)

    async def _connect_on_demand(self) -> MailAdapter:
        await self._password()
        adapter = ImapAdapter(self.settings)
        await adapter.connect()
        return adapter

    async def _password(self) -> None:
        if self.password_command and not self.settings.password:
            password = await run_password_command(self.password_command)
            self.settings = dataclasses.replace(self.settings, password=password)

    # -- one run ----------------------------------------------------------------------

    def online_message(self) -> str:
        held = self.last_report.get("held")
        if not held:
            return super().online_message()
        return (
            f"in step with the server except {', '.join(held)}: empty on the server, its"
            " messages are kept here until confirmed (POST /api/v1/sync/confirm-empty)"
        )

    async def run_once(self) -> None:
        if self._adapter is None or not self._adapter.alive:
            await self.disconnect()
            await self._password()
            adapter = ImapAdapter(self.settings)
            await adapter.connect()
            self._adapter = adapter
        engine = Engine(self.store, self._adapter, self.policy, self.sync_config)
        confirmed, self.confirmed_empty = self.confirmed_empty, set()
        engine.confirm_empty = confirmed
        try:
            report = await engine.run(self._adapter.delimiter or "/")
        except BaseException:
            self.confirmed_empty |= confirmed  # still wanted on the next run
            raise
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
        await self.store.collect_packs()  # the space of what the run deleted
        if self.outbox is not None:
            await self._drain(self.outbox)

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
            self.wake.set()

    async def between_runs(self) -> None:
        """Wait on the Inbox (with NOTIFY: on every mailbox) for a change, a wake-up or the
        interval, whichever is first."""
        adapter = self._adapter
        if adapter is None:
            return
        links = await self.store.sync.folder_links()
        inbox = links.get(self.store.folders.roles["inbox"])
        deadline = time.monotonic() + self.interval
        due = self.outbox.next_due() if self.outbox is not None else None
        if due is not None:
            deadline = min(deadline, due)
        watch = Watch(
            {
                str(ref["mailbox"]): (ref.get("uidvalidity"), ref.get("uidnext"), ref.get("modseq"))
                for ref in links.values()
                if ref.get("mailbox")
            },
            seen=self._seen,
        )
        try:
            if inbox is not None:
                state = await adapter.select(str(inbox["mailbox"]), readonly=True)
                watch.current[str(inbox["mailbox"])] = (
                    state.uidvalidity,
                    state.uidnext,
                    state.highestmodseq,
                )
            while not self.wake.is_set() and time.monotonic() < deadline:
                changed = await adapter.idle(
                    min(25.0, deadline - time.monotonic()), stop=self.wake, watch=watch
                )
                # a change seen on entering: once, not again and again if a run leaves
                # the cache's marks as they were (a held or unsynced mailbox)
                self._seen, watch.seen = dict(watch.current), dict(watch.current)
                if changed:
                    return
        except UpstreamError as exc:
            log.info("IDLE ended: %s", exc)
            await self.disconnect()
        except Exception:  # whatever the server sent, the loop goes on
            log.exception("IDLE failed")
            await self.disconnect()

    async def disconnect(self) -> None:
        if self._adapter is not None:
            adapter, self._adapter = self._adapter, None
            await adapter.close()
