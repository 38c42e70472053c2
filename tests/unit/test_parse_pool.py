"""The parsing worker process gives the same items as parsing in the sync process (their
texts left to their sources), in the order of the calls, and its failure only moves the
parsing back here."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.model import tags
from bridge.store import props as P
from bridge.store import texts
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync import mail_fetch, parse_pool
from bridge.sync.mail_fetch import MailFetch
from bridge.sync.mail_props import apply_flags
from bridge.sync.parse_pool import ParsePool
from bridge.upstream.base import FetchedMessage, MailboxState


def message(n: int) -> bytes:
    return (
        f"From: a{n}@example.org\r\nTo: b@example.org\r\nSubject: message {n}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody {n} \u00e9\r\n"
        '--b\r\nContent-Type: application/octet-stream; name="f.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"
    ).encode()


def here(raw: bytes) -> NewItem:
    """A message without flags parsed here as the worker parses it."""
    item = item_from_rfc822(raw, texts=False)
    apply_flags(item, frozenset())
    return item


def parsed(n: int) -> list[NewItem]:
    return [here(message(n))]


def stored(items: list[NewItem]) -> list[NewItem]:
    """The items with their properties as the store keeps them (the rows the worker
    prepares are tested against the store's in test_item_prep.py)."""
    return [
        dataclasses.replace(i, props=json.loads(P.dumps(P.encode(i.props))), prepared=None)
        for i in items
    ]


def unflagged(raws: list[bytes]) -> list[tuple[bytes, frozenset[str]]]:
    return [(raw, frozenset()) for raw in raws]


def test_the_worker_leaves_the_texts_to_the_source() -> None:
    (item,) = parse_pool.parse_messages(unflagged([message(5)]))
    assert item.texts_in_source
    assert not set(item.props) & texts.TEXT_TAGS
    whole = item_from_rfc822(message(5))
    assert {tags.BODY, tags.TRANSPORT_MESSAGE_HEADERS} <= set(whole.props)
    # what the store reads back from the source is what a whole parse gives
    assert texts.texts_doc(message(5)) == P.encode(
        {t: v for t, v in whole.props.items() if t in texts.TEXT_TAGS}
    )
    local = dataclasses.replace(here(message(5)), source=None)
    assert stored([item]) == stored([local])


async def test_worker_items_equal_local_ones_in_call_order() -> None:
    pool = ParsePool()
    try:
        assert await pool.started()
        batches = [[message(b * 10 + i) for i in range(5)] for b in range(4)]
        results = await asyncio.gather(*(pool.parse(unflagged(batch)) for batch in batches))
    finally:
        await pool.close()
    for batch, items in zip(batches, results, strict=True):
        assert stored(items) == stored([here(raw) for raw in batch])
        assert [i.source for i in items] == batch


async def test_a_worker_tells_its_usage_at_its_end() -> None:
    pool = ParsePool()
    try:
        assert await pool.started()
        await pool.parse(unflagged([message(n) for n in range(50)]))
        assert pool.used == []  # told only at the end
    finally:
        await pool.close()
    [used] = pool.used
    assert used.cpu_s > 0
    assert used.peak_rss_mb is None or 5 < used.peak_rss_mb < 1000
    assert pool._worker is None


async def test_a_dead_worker_means_parsing_here(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ParsePool()
    try:
        assert await pool.started()
        await pool.parse(unflagged([message(0)]))
        worker = pool._worker
        assert worker is not None
        worker.process.kill()  # the worker dies between batches
        await asyncio.to_thread(worker.process.join)
        items = await pool.parse(unflagged([message(1)]))
        assert stored(items) == stored(parsed(1))
        assert pool._broken
    finally:
        await pool.close()
    assert pool._start() is not None  # a new sync run starts a new worker
    try:
        assert stored(await pool.parse(unflagged([message(3)]))) == stored(parsed(3))
    finally:
        await pool.close()


async def test_batches_parse_here_until_the_worker_is_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that is slow to start (a fork server still importing) holds nothing up:
    the batches parse here meanwhile (their rows left to the store), in order."""
    real = parse_pool._Worker._launch

    def slow(self: Any) -> bool:
        time.sleep(0.5)
        return bool(real(self))

    monkeypatch.setattr(parse_pool._Worker, "_launch", slow)
    pool = ParsePool()
    try:
        early = await pool.parse(unflagged([message(6), message(7)]))
        assert [i.prepared for i in early] == [None, None]  # (the worker prepares them)
        assert stored(early) == stored(parsed(6) + parsed(7))
        assert await pool.started()
        late = await pool.parse(unflagged([message(8)]))
        assert late[0].prepared is not None
        assert stored(late) == stored(parsed(8))
    finally:
        await pool.close()
    assert len(pool.used) == 1


async def test_a_worker_that_cannot_start_means_parsing_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: Any) -> None:
        raise OSError("no processes here")

    monkeypatch.setattr(type(parse_pool.workers.context().Process()), "start", refuse)
    pool = ParsePool()
    try:
        assert not await pool.started()
        items = await pool.parse(unflagged([message(9)]))
        assert stored(items) == stored(parsed(9))
        assert pool._broken
    finally:
        await pool.close()
    assert pool.used == []
    assert "no parsing worker process" in caplog.text


async def test_no_worker_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ParsePool) -> None:
        return None

    monkeypatch.setattr(parse_pool.ParsePool, "_start", refuse)
    pool = ParsePool()
    assert stored(await pool.parse(unflagged([message(2)]))) == stored(parsed(2))
    await pool.close()


async def test_parsed_items_are_written_in_store_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batches sent to the worker are small; what it parsed is written in batches of
    POOLED_WRITE_ITEMS items, in order, with the flags of each message."""
    monkeypatch.setattr(mail_fetch, "PARSE_BATCH_BYTES", 1)  # one message per batch
    monkeypatch.setattr(mail_fetch, "POOLED_WRITE_ITEMS", 3)
    inbox = store.folders.roles["inbox"]
    written: list[int] = []

    async def fetched() -> AsyncIterator[FetchedMessage]:
        for n in range(7):
            raw = message(n)
            yield FetchedMessage(n + 1, frozenset({"\\Seen"} if n % 2 else ()), None, raw, len(raw))

    pool = ParsePool()
    fetch = MailFetch(store, None, on_stored=written.append, pool=pool)  # type: ignore[arg-type]
    try:
        await fetch._pooled(inbox, "INBOX", MailboxState(1, 8, 7), fetched(), pool)
    finally:
        await pool.close()
    assert written == [3, 3, 1]
    links = await store.sync.linked_items("INBOX")
    assert sorted((i.upstream or {})["uid"] for i in links) == list(range(1, 8))
    for item in links:
        uid = int((item.upstream or {})["uid"])
        view = await store.queries.get(item.id)
        assert view.props.get(tags.SUBJECT) == f"message {uid - 1}"
        assert item.read == (uid % 2 == 0)


async def test_rows_are_left_to_the_store_when_asked() -> None:
    pool = ParsePool()
    try:
        assert await pool.started()
        kept = await pool.parse(unflagged([message(4)]), prepared=False)
        made = await pool.parse(unflagged([message(4)]))
    finally:
        await pool.close()
    assert kept[0].prepared is None and made[0].prepared is not None
    assert stored(kept) == stored(made) == stored(parsed(4))


@pytest.mark.parametrize(("ahead", "expected"), [(0, False), (100, True)])
async def test_the_worker_prepares_rows_only_while_it_keeps_up(
    store: Store, monkeypatch: pytest.MonkeyPatch, ahead: int, expected: bool
) -> None:
    """Batches queued at the worker (PARSE_AHEAD of them) mean it is the slower side: the
    next batches' rows are then prepared by the store, in this process."""
    monkeypatch.setattr(mail_fetch, "PARSE_BATCH_BYTES", 1)  # one message per batch
    monkeypatch.setattr(mail_fetch, "PARSE_AHEAD", ahead)
    asked: list[bool] = []
    real = mail_fetch.whole_items

    async def recording(*args: Any) -> list[NewItem]:
        asked.append(args[-1])
        items = await real(*args)
        assert all((i.prepared is not None) == args[-1] for i in items)
        return items

    monkeypatch.setattr(mail_fetch, "whole_items", recording)

    async def fetched() -> AsyncIterator[FetchedMessage]:
        for n in range(4):
            raw = message(n)
            yield FetchedMessage(n + 1, frozenset(), None, raw, len(raw))

    pool = ParsePool()
    fetch = MailFetch(store, None, pool=pool)  # type: ignore[arg-type]
    try:
        assert await pool.started()
        await fetch._pooled(
            store.folders.roles["inbox"], "INBOX", MailboxState(1, 5, 4), fetched(), pool
        )
    finally:
        await pool.close()
    assert asked == [expected] * 4
    assert len(await store.sync.linked_items("INBOX")) == 4
