"""Sync runs cut short in this process, for the tests that cut a run at every step.

`bridge.sync.crashpoint` names the steps of a run; `cut_after(n)` makes the nth step
raise `Cut`, an exception no handler of the bridge takes (it derives from BaseException),
so the run ends there as a killed process would: what the store committed stays, nothing
after it happens. The store is then closed and opened again, as after a restart.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bridge.sync import crashpoint


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
