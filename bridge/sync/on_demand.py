"""On-demand fetching: the whole message of an item stored with its headers only (or its
headers and text), fetched when a client asks for what is not cached.

The API and the WebDAV view ask through the sync service (`SyncService.ensure_content`),
never the upstream directly. Offline, or with the upstream unreachable, the answer is
`NotAvailableOffline`, which the API turns into 503 `urn:kbridge:problem:not-available-offline`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bridge.store.store import Store
from bridge.sync.mail_fetch import content_of, replace_content
from bridge.upstream.base import MailAdapter, UpstreamError

log = logging.getLogger(__name__)

RETRY_AFTER = 60  # seconds a client is asked to wait before trying again


class NotAvailableOffline(Exception):
    """What the client asked for is not in the cache and cannot be fetched now."""

    def __init__(self, detail: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


async def is_partial(store: Store, item_id: int) -> bool:
    """Whether part of the item's message is not cached."""
    item = await store.sync.item(item_id)
    return item is not None and content_of(item) is not None


class OnDemand:
    """Fetches whole messages over a connection of its own (the background sync keeps its
    connection for the run and IDLE), one request at a time."""

    def __init__(self, store: Store, connect: Callable[[], Awaitable[MailAdapter]]) -> None:
        self.store = store
        self.connect = connect
        self._lock = asyncio.Lock()

    async def ensure(self, item_id: int) -> bool:
        """Cache the whole message of the item if it is missing; returns whether it was
        fetched. Raises NotAvailableOffline when it cannot be had."""
        item = await self.store.sync.item(item_id)
        if item is None or content_of(item) is None:
            return False
        async with self._lock:
            item = await self.store.sync.item(item_id)  # fetched while waiting?
            if item is None or content_of(item) is None or item.upstream is None:
                return False
            ref = item.upstream
            if "uid" not in ref:  # its server copy is lost sight of (`LOST`)
                raise NotAvailableOffline(
                    "this message is not available offline and its copy on the server is "
                    "being looked for; the next sync run finds it",
                    retry_after=5,
                )
            try:
                adapter = await self.connect()
            except UpstreamError as exc:
                raise NotAvailableOffline(
                    f"this message is not available offline and the server cannot be "
                    f"reached ({exc}); try again when the bridge is online"
                ) from exc
            try:
                state = await adapter.select(str(ref["mailbox"]), readonly=True)
                if state.uidvalidity != ref.get("uidvalidity"):
                    raise NotAvailableOffline(
                        "the server's mailbox was reset; the message is fetched again by "
                        "the next sync run",
                        retry_after=5,
                    )
                got = [m async for m in adapter.fetch([int(ref["uid"])])]
            except UpstreamError as exc:
                raise NotAvailableOffline(
                    f"fetching this message from the server failed ({exc}); try again later"
                ) from exc
            finally:
                await adapter.close()
            if not got or not await replace_content(self.store, item, got[0]):
                raise NotAvailableOffline(
                    "the message is no longer on the server; the next sync run removes it",
                    retry_after=5,
                )
            log.info("item %s: whole message fetched on demand", item_id)
            return True
