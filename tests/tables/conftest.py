"""A store on its own event loop, for Hypothesis tests (which are synchronous)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.store.store import Store

T = TypeVar("T")


class LoopStore:
    """A store and the loop it lives on; `run(coro)` runs a coroutine to completion."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store: Store = self.run(Store.open(path))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()


@pytest.fixture(scope="module")
def loop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopStore]:
    ls = LoopStore(tmp_path_factory.mktemp("tables") / "store.sqlite")
    try:
        yield ls
    finally:
        ls.close()
