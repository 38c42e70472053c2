"""Durability of commits: a local change (one the journal must carry to the upstream), and
what a `durable()` block writes, is on disk when its write returns, so that an OS crash or a
power cut cannot lose it; what the sync brings from the upstream, which a later sync
fetches again, commits without waiting for the disk."""

from __future__ import annotations

from bridge.store.core import LOCAL, SYSTEM, UPSTREAM, Tx
from bridge.store.items import NewItem
from bridge.store.store import Store

FULL, NORMAL = 2, 1  # PRAGMA synchronous


async def _synchronous_at_commit(store: Store, origins: list[str]) -> list[tuple[str, int]]:
    """The writer's `PRAGMA synchronous` inside each write transaction, just before it
    commits (the value that commit runs with)."""
    seen: list[tuple[str, int]] = []

    async def watch(tx: Tx) -> None:
        async with tx.conn.execute("PRAGMA synchronous") as cur:
            row = await cur.fetchone()
        assert row is not None
        seen.append((tx.origin, int(row[0])))

    store.core.before_commit.append(watch)
    try:
        inbox = store.folders.roles["inbox"]
        for n, origin in enumerate(origins):
            await store.items.create(
                inbox, NewItem("IPM.Note", {0x0037001F: f"m{n}"}), origin=origin
            )
    finally:
        store.core.before_commit.remove(watch)
    return seen


async def test_local_changes_commit_to_disk_and_upstream_ones_do_not_wait(store: Store) -> None:
    origins = [UPSTREAM, LOCAL, LOCAL, UPSTREAM, SYSTEM, LOCAL, UPSTREAM]
    seen = await _synchronous_at_commit(store, origins)
    assert seen == [(o, FULL if o == LOCAL else NORMAL) for o in origins]


async def test_writes_inside_a_durable_block_commit_to_disk_whatever_their_origin(
    store: Store,
) -> None:
    with store.durable():
        with store.durable():  # blocks nest
            inner = await _synchronous_at_commit(store, [UPSTREAM])
        outer = await _synchronous_at_commit(store, [SYSTEM])
    after = await _synchronous_at_commit(store, [UPSTREAM])
    assert (inner, outer, after) == ([(UPSTREAM, FULL)], [(SYSTEM, FULL)], [(UPSTREAM, NORMAL)])
