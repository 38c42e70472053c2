"""Sync runs cut short in this process, for the tests that cut a run at every step.

`bridge.sync.crashpoint` names the steps of a run; `cut_after(n)` makes the nth step
raise `Cut`, an exception no handler of the bridge takes (it derives from BaseException),
so the run ends there as a killed process would: what the store committed stays, nothing
after it happens. The store is then closed and opened again, as after a restart.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.store.store import Store
from bridge.sync import crashpoint

Account = TypeVar("Account")


class Cut(BaseException):
    """The run ends here, as if the process had been killed."""


def cut_after(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Make the nth step of the next runs raise `Cut`; the steps reached are listed."""
    reached: list[str] = []

    def step(what: str) -> None:
        reached.append(what)
        if len(reached) == n:
            raise Cut(what)

    monkeypatch.setattr(crashpoint, "step", step)
    return reached


def cut_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the first step called `name` raise `Cut`."""

    def step(what: str) -> None:
        if what == name:
            raise Cut(what)

    monkeypatch.setattr(crashpoint, "step", step)


@pytest.fixture(autouse=True)
def collect_leftovers() -> Iterator[None]:
    """What the cut runs left behind is collected before the test ends, so that no later
    test is charged with it (modules using cuts import this fixture)."""
    yield
    gc.collect()


async def every_cut(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    prepare: Callable[[Store], Awaitable[Account]],
    run: Callable[[Store, Account], Awaitable[None]],
    outcome: Callable[[Store, Account], Awaitable[Any]],
    release: Callable[[Account], Awaitable[None]],
    max_steps: int,
) -> list[str]:
    """Cut a sync run at every one of its steps and judge each against the run uncut.

    `prepare` makes a fresh account, changes it here and on the server, and returns it;
    `run` is one sync run that must report no failure; `outcome` is what the run leaves
    (compared whole); `release` lets the account go. The reference runs twice uncut; each
    cut run is followed, after a restart, by two runs (what one run leaves to the next,
    done). Returns the steps cut after."""
    store = await Store.open(tmp_path / "reference.sqlite")
    account = await prepare(store)
    try:
        await run(store, account)
        await run(store, account)
        expected = await outcome(store, account)
    finally:
        await store.close()
        await release(account)
    steps: list[str] = []
    for n in range(1, max_steps + 1):
        path = tmp_path / f"cut{n}.sqlite"
        store = await Store.open(path)
        account = await prepare(store)
        try:
            cut_after(monkeypatch, n)
            try:
                await run(store, account)
            except Cut as cut:
                steps.append(str(cut))
            else:
                return steps  # the run has fewer than n steps: every one of them was cut
            finally:
                monkeypatch.undo()
                await store.close()
            store = await Store.open(path)  # restarted
            try:
                await run(store, account)
                await run(store, account)
                assert await outcome(store, account) == expected, steps[-1]
            finally:
                await store.close()
        finally:
            await release(account)
    raise AssertionError(f"a sync run took more than {max_steps} steps")
