"""Worker processes of the sync: where there is a fork server, a worker starts with the
format converters already imported (it does not spend its first half second on them)."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from bridge.sync import workers


def _loaded(name: str) -> bool:
    return name in sys.modules


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(),
    reason="this platform has no fork server: workers are spawned",
)
def test_a_worker_has_the_converters_before_its_first_task() -> None:
    workers.warm_up()
    ctx = workers.context()
    assert ctx.get_start_method() == "forkserver"
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(_loaded, "bridge.sync.dav_parse").result(timeout=60)
        assert not pool.submit(_loaded, "bridge.no_such_module").result(timeout=60)


def test_the_fork_server_imports_what_the_sync_process_has_of_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new worker imports the program's main module again; with the package's modules
    already in the fork server, that import costs it next to nothing."""
    monkeypatch.setitem(sys.modules, "bridge.__main__", sys.modules["bridge.sync.workers"])
    monkeypatch.setitem(sys.modules, "bridgework", sys.modules["bridge.sync.workers"])
    names = workers.preload()
    assert names[: len(workers.PRELOAD)] == workers.PRELOAD
    assert "bridge.sync.workers" in names and "bridge" in names
    assert "bridge.__main__" not in names  # importing it would run the program
    assert "bridgework" not in names and "pytest" not in names
    assert len(names) == len(set(names))
