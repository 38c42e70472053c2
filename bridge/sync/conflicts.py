"""Conflicts of the sync, mail and DAV alike: the local version of an item kept aside in
Sync Issues/Conflicts (moved there, or copied and pointing at the winner), and the
notification (`sync_conflict`) that tells of a conflict. `where` names the upstream place
in the event: `mailbox=` for mail, `collection=` for a DAV collection."""

from __future__ import annotations

from typing import Any

from bridge.store.core import UPSTREAM
from bridge.store.errors import StoreError
from bridge.store.items import PropChange
from bridge.store.store import Store

# Tries of a write of the upstream's state (a version, flags, a deletion) that changes
# made here in the meantime get in the way of: each try reads what it is written over
# again and meets the change as the conflict it now is. Past them the run fails, and the
# next one meets the change again.
WRITE_ATTEMPTS = 3


async def keep_aside(store: Store, item_id: int, reason: str, **where: str) -> None:
    """The upstream no longer has what the item was linked to (or it never had the item):
    the local version goes to Sync Issues/Conflicts, without a link and without its pending
    changes, so it is neither uploaded again nor lost."""
    aside = store.folders.roles["conflicts"]
    try:  # in one transaction (`settle`)
        await store.items.settle_conflict(
            item_id, copy_to=None, move_to=aside, unlink=True, origin=UPSTREAM
        )
    except StoreError:  # deleted here meanwhile
        await store.sync.forget_item(item_id)
    publish(store, item_id, None, aside, reason, **where)


async def keep_copy(
    store: Store, winner_id: int, reason: str, change: PropChange | None = None, **where: str
) -> None:
    """Keep both: the local version is copied into Sync Issues/Conflicts, unlinked (it is
    not uploaded) and pointing at the winner through PidTagConflictEntryId; `change`, the
    upstream's state, is made to the winner in the same transaction (a run stopped midway
    then meets the conflict again, and keeps one copy, not two)."""
    aside = store.folders.roles["conflicts"]
    copy_id = await store.items.settle_conflict(  # one transaction: never half a copy
        winner_id, copy_to=aside, move_to=None, forget=False, change=change, origin=UPSTREAM
    )
    assert copy_id is not None
    publish(store, copy_id, winner_id, aside, reason, **where)


async def settle(
    store: Store, item_id: int, reason: str, *, keep: bool, back_to: int, **where: str
) -> None:
    """The upstream's version of an item wins over local changes and is about to replace
    them: with `keep` (keep-both), the local version is copied into Sync Issues/Conflicts
    as `keep_copy` does; the item goes back to `back_to`, its pending changes dropped. All
    in one store transaction (`Items.settle_conflict`): a run stopped midway leaves either
    nothing done (the next pull meets the conflict again) or all of it (the next pull
    brings the upstream's version in, as any change of a synced item)."""
    aside = store.folders.roles["conflicts"]
    copy_id = await store.items.settle_conflict(
        item_id, copy_to=aside if keep else None, move_to=back_to, origin=UPSTREAM
    )
    if copy_id is not None:
        publish(store, copy_id, item_id, aside, reason, **where)


def publish(
    store: Store, item_id: int, winner_id: int | None, folder_id: int, reason: str, **where: str
) -> None:
    """The notification of a conflict: `id` is the item kept aside (or resolved in place),
    `winner_id` the API id of the item that won, when one was kept."""
    event: dict[str, Any] = {"id": item_id, "folder_id": folder_id, **where, "reason": reason}
    if winner_id is not None:
        event["winner_id"] = store.ids.api_id("item", winner_id)
    store.bus.publish([("sync_conflict", event)])
