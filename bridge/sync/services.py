"""The sync service the config asks for. With a mail upstream and CalDAV / CardDAV ones,
`CombinedSyncService` runs both loops side by side and shows them to the API as one: the
"work offline" switch and "sync now" reach both, and the state is the most urgent of the
two (syncing while either syncs; else auth-failed, error, offline, online in that order)."""

from __future__ import annotations

from typing import Any

from bridge.config import Config
from bridge.store.store import Store
from bridge.sync.dav_service import DavSyncService, dav_runner_for
from bridge.sync.imap_service import ImapSyncService
from bridge.sync.service import SyncService
from bridge.upstream.imap import ImapSettings
from bridge.upstream.smtp import SmtpSettings

URGENCY = ("syncing", "auth-failed", "error", "offline", "online")


class CombinedSyncService(SyncService):
    def __init__(self, store: Store, mail: ImapSyncService, dav: DavSyncService) -> None:
        super().__init__(store)
        self.mail = mail
        self.dav = dav

    @property
    def state(self) -> str:  # type: ignore[override]
        states = {self.mail.state, self.dav.state}
        return next((s for s in URGENCY if s in states), self.mail.state)

    @property
    def work_offline(self) -> bool:
        return self.mail.work_offline

    async def start(self) -> None:
        await self.mail.start()
        await self.dav.start()

    async def stop(self) -> None:
        await self.dav.stop()
        await self.mail.stop()

    async def status(self) -> dict[str, Any]:
        out = await self.mail.status()
        dav = await self.dav.status()
        out["state"] = self.state
        if self.dav.state not in ("online", "syncing") and not self.work_offline:
            out["message"] = f"{out['message']}; calendars and contacts: {self.dav.message}"
        out["upstream"] = f"{out['upstream']} {dav['upstream']}"
        out["upstreams"] = dav["upstreams"]
        return out

    async def run_now(self) -> dict[str, Any]:
        await self.mail.run_now()
        await self.dav.run_now()
        return await self.status()

    async def set_offline(self, offline: bool) -> None:
        await self.mail.set_offline(offline)
        await self.dav.set_offline(offline)

    async def ensure_content(self, item_id: int) -> bool:
        return await self.mail.ensure_content(item_id)

    async def confirm_empty(self, mailboxes: list[str]) -> list[str]:
        return await self.mail.confirm_empty(mailboxes)


def for_config(store: Store, config: Config) -> SyncService:
    """IMAP + SMTP, CalDAV / CardDAV, both side by side, or none (local only)."""
    if config.upstream is None:
        return SyncService(store)
    interval = float(config.sync.interval)
    runner = dav_runner_for(store, config)
    dav = DavSyncService(store, runner, interval=interval) if runner is not None else None
    ep, sp = config.upstream.imap, config.upstream.smtp
    if ep is None or sp is None:  # calendars and contacts only
        return dav if dav is not None else SyncService(store)
    settings = ImapSettings(
        ep.host,
        ep.port,
        ep.tls,
        ep.username,
        ep.password or "",
        verify_tls=ep.verify_tls,
        ca_file=ep.ca_file,
    )
    smtp = SmtpSettings(
        sp.host,
        sp.port,
        sp.tls,
        sp.username,
        sp.password or "",
        verify_tls=sp.verify_tls,
        saves_sent=sp.saves_sent,
        ca_file=sp.ca_file,
    )
    mail = ImapSyncService(
        store,
        settings,
        interval=interval,
        policy=config.sync.conflict_policy,
        password_command=ep.password_command,
        smtp=smtp,
        smtp_password_command=sp.password_command,
        sync_config=config.sync,
    )
    return mail if dav is None else CombinedSyncService(store, mail, dav)
