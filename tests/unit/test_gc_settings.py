"""The collector settings `kbridge serve` runs with (bridge/server.py)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from bridge import server


def test_tune_gc_freezes_what_is_loaded_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        server.tune_gc()
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
    monkeypatch.setattr(server, "serve", serve)
    server.run(object())  # type: ignore[arg-type]
    assert calls == ["tune_gc", "serve"]
