"""The parsing worker process gives the same items as parsing in the sync process, in the
order of the calls, and its failure only moves the parsing back here."""

from __future__ import annotations

import asyncio

import pytest

from bridge.store.rfc822 import item_from_rfc822
from bridge.sync import parse_pool
from bridge.sync.parse_pool import ParsePool


def message(n: int) -> bytes:
    return (
        f"From: a{n}@example.org\r\nTo: b@example.org\r\nSubject: message {n}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody {n} \u00e9\r\n"
        '--b\r\nContent-Type: application/octet-stream; name="f.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"
    ).encode()


async def test_worker_items_equal_local_ones_in_call_order() -> None:
    pool = ParsePool()
    try:
        batches = [[message(b * 10 + i) for i in range(5)] for b in range(4)]
        results = await asyncio.gather(*(pool.parse(batch) for batch in batches))
    finally:
        await pool.close()
    for batch, items in zip(batches, results, strict=True):
        assert items == [item_from_rfc822(raw) for raw in batch]
        assert [i.source for i in items] == batch


async def test_a_dead_worker_means_parsing_here(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ParsePool()
    try:
        await pool.parse([message(0)])
        worker = pool._worker
        assert worker is not None
        worker.process.kill()  # the worker dies between batches
        await asyncio.to_thread(worker.process.join)
        items = await pool.parse([message(1)])
        assert items == [item_from_rfc822(message(1))]
        assert pool._broken
    finally:
        await pool.close()
    assert pool._start() is not None  # a new sync run starts a new worker
    try:
        assert await pool.parse([message(3)]) == [item_from_rfc822(message(3))]
    finally:
        await pool.close()


async def test_no_worker_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ParsePool) -> None:
        return None

    monkeypatch.setattr(parse_pool.ParsePool, "_start", refuse)
    pool = ParsePool()
    assert await pool.parse([message(2)]) == [item_from_rfc822(message(2))]
    await pool.close()
