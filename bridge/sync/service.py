"""The face the API sees of the sync engine: state, progress, "sync now"."""

from __future__ import annotations

from typing import Any

from bridge.store.store import Store
from bridge.sync.on_demand import NotAvailableOffline, is_partial


class NoUpstream(Exception):
    """A sync was asked for, but no upstream is configured (local-only mode)."""


class SyncService:
    """Base class; the engine of each upstream kind overrides `run_now` and `status`."""

    state = "local-only"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self) -> None:
        """Begin background work (nothing to do without an upstream)."""

    async def stop(self) -> None:
        """Stop background work; the store stays consistent."""

    async def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "upstream": None,
            "journal_pending": await self.store.queries.journal_pending(),
            "message": "no upstream configured: the cache is served as it is and changes "
            "stay in the journal",
        }

    async def run_now(self) -> dict[str, Any]:
        raise NoUpstream(
            "no upstream is configured; add an 'upstream' section to the config to sync"
        )

    async def set_offline(self, offline: bool) -> None:
        """The user's "work offline" switch; without an upstream there is nothing to switch."""
        raise NoUpstream("no upstream is configured: the bridge always works offline")

    async def confirm_empty(self, mailboxes: list[str]) -> list[str]:
        """Let the next run mirror mailboxes that were held because they came back empty
        from the server; returns those that were held."""
        raise NoUpstream("no mail upstream is configured: no mailbox is held")

    async def ensure_content(self, item_id: int) -> bool:
        """Make sure the whole message of an item is cached, fetching it from the upstream
        if it was stored with its headers only; returns whether it was fetched. Raises
        NotAvailableOffline when it is missing and cannot be fetched now."""
        if await is_partial(self.store, item_id):
            raise NotAvailableOffline(
                "this message was stored with its headers only and no upstream is "
                "configured to fetch the rest from"
            )
        return False
