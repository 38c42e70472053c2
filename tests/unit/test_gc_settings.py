"""The memory settings `kbridge serve` and the sync's worker processes run with
(bridge/collector.py)."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import platform
from typing import Any

import pytest

from bridge import collector, server
from bridge.sync import dav_parse, parse_pool


def test_tune_gc_freezes_what_is_loaded_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        collector.tune_gc()
        assert gc.get_threshold() == (20_000, 10, 10)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_server_runs_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def serve(config: Any, *, out: Any) -> None:
        calls.append("serve")

    monkeypatch.setattr(server, "tune_gc", lambda: calls.append("tune_gc"))
    monkeypatch.setattr(server, "tune_malloc", lambda: calls.append("tune_malloc"))
    monkeypatch.setattr(server, "serve", serve)
    server.run(object())  # type: ignore[arg-type]
    assert calls == ["tune_malloc", "tune_gc", "serve"]


def test_malloc_arenas_are_limited_where_the_c_library_is_glibc() -> None:
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert collector.glibc() == on_glibc
    assert collector.tune_malloc() == on_glibc  # mallopt accepted the setting


def test_the_mail_parsing_worker_runs_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(parse_pool, "tune_gc", lambda: calls.append("tune_gc"))
    here, there = multiprocessing.Pipe(duplex=True)
    here.send_bytes(b"")  # stop at once, telling the usage
    parse_pool.serve(there)
    assert calls == ["tune_gc"]
    assert here.recv_bytes() == parse_pool.HELLO
    assert isinstance(pickle.loads(here.recv_bytes()), parse_pool.WorkerUsage)
    here.close()


def test_the_dav_parsing_workers_run_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dav_parse.os, "cpu_count", lambda: 2)
    shared = dav_parse.ParserPool()
    shared.start(1)
    try:
        assert shared.pool is not None
        assert shared.pool.submit(gc.get_threshold).result(30) == (20_000, 10, 10)
    finally:
        shared.close()
