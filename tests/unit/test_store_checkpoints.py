"""WAL checkpoints: the commits of a bulk write share one (each syncs the database file),
and what they wrote still reaches the database file."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.store import core as core_module
from bridge.store.items import NewItem
from bridge.store.store import Store


async def test_a_burst_of_commits_shares_one_checkpoint(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = store.core.checkpointer
    run = checkpointer.execute
    passive: list[str] = []

    def counting(sql: str, *args: Any) -> Any:
        if "PASSIVE" in sql:
            passive.append(sql)
        return run(sql, *args)

    monkeypatch.setattr(checkpointer, "execute", counting)
    monkeypatch.setattr(core_module, "CHECKPOINT_DELAY", 30.0)  # longer than the burst
    inbox = store.folders.roles["inbox"]
    if store.core._checkpoint is not None:  # the one the store's opening asked for
        await store.core._checkpoint
    passive.clear()
    for n in range(20):
        await store.items.create(inbox, NewItem("IPM.Note", {0x0037001F: f"m{n}"}))
    assert passive == []  # none yet: the first commit's checkpoint waits
    monkeypatch.setattr(core_module, "CHECKPOINT_DELAY", 0.0)
    store.core._closing.set()  # ends the wait now, as closing the store does
    task = store.core._checkpoint
    assert task is not None
    await asyncio.wait_for(task, 30)
    assert len(passive) == 1
    async with checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
        row = await cur.fetchone()
    assert row is not None and row[1] == row[2]  # every frame of the WAL is in the file


async def test_the_wal_restarts_between_write_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RESTART checkpoint holds the store's write lock: no write transaction is open
    while it runs, so neither side waits for the other through the busy handler."""
    checkpointer = store.core.checkpointer
    run = checkpointer.execute
    restarts: list[bool] = []  # whether the write lock was held, at each RESTART

    def watching(sql: str, *args: Any) -> Any:
        if "RESTART" in sql:
            restarts.append(store.core._lock.locked())
        return run(sql, *args)

    monkeypatch.setattr(checkpointer, "execute", watching)
    monkeypatch.setattr(core_module, "WAL_RESTART_FRAMES", 1)  # every checkpoint restarts
    monkeypatch.setattr(core_module, "CHECKPOINT_DELAY", 0.0)
    inbox = store.folders.roles["inbox"]
    ids = []
    for n in range(5):
        item = NewItem("IPM.Note", {0x0037001F: f"m{n}", 0x1000001F: "x" * 20000})
        ids.append(await store.items.create(inbox, item))
        task = store.core._checkpoint
        if task is not None:
            await asyncio.wait_for(task, 30)
    assert restarts and all(restarts)
    for item_id in ids:  # what was written before each restart is all there
        assert (await store.queries.get(item_id)).props[0x1000001F] == "x" * 20000


async def test_checkpoints_done_waits_until_the_wal_is_in_the_file(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_module, "CHECKPOINT_DELAY", 0.2)
    inbox = store.folders.roles["inbox"]
    await store.items.create(inbox, NewItem("IPM.Note", {0x0037001F: "to be copied"}))
    task = store.core._checkpoint
    assert task is not None and not task.done()  # due, after its delay
    await asyncio.wait_for(store.core.checkpoints_done(), 30)
    assert task.done()
    async with store.core.checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
        row = await cur.fetchone()
    assert row is not None and row[1] == row[2]
    await store.core.checkpoints_done()  # none due: returns at once
