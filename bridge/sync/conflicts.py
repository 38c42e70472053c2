"""Conflicts of the mail sync: the local version of an item kept aside in Sync
Issues/Conflicts, and the notification (`sync_conflict`) that tells of a conflict."""

from __future__ import annotations

from typing import Any

from bridge.store.core import UPSTREAM
from bridge.store.store import Store


async def keep_aside(store: Store, item_id: int, mailbox: str, reason: str) -> None:
    """The upstream no longer has what the item was linked to (or it never had the item):
    the local version goes to Sync Issues/Conflicts, without a link and without its pending
    changes, so it is neither uploaded again nor lost."""
    conflicts = store.folders.roles["conflicts"]
    await store.sync.set_item_links({item_id: None})
    await store.items.move(item_id, conflicts, origin=UPSTREAM)
    await store.sync.forget_item(item_id)
    publish(store, item_id, None, conflicts, mailbox, reason)


def publish(
    store: Store,
    item_id: int,
    winner_id: int | None,
    folder_id: int,
    mailbox: str,
    reason: str,
) -> None:
    """The notification of a conflict: `id` is the item kept aside (or resolved in place),
    `winner_id` the API id of the item that won, when one was kept."""
    event: dict[str, Any] = {
        "id": item_id,
        "folder_id": folder_id,
        "mailbox": mailbox,
        "reason": reason,
    }
    if winner_id is not None:
        event["winner_id"] = store.ids.api_id("item", winner_id)
    store.bus.publish([("sync_conflict", event)])
