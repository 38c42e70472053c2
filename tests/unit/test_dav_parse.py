"""Parsing fetched resources in worker processes: the same items and the same refusals as
in the sync process, and a large pull through the engine that uses them."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from bridge.store.item_base import NewItem
from bridge.store.store import Store
from bridge.sync import dav_parse
from bridge.sync.dav_parse import ResourceParser, parse_many
from bridge.upstream.dav_base import ADDRESSBOOK, CALENDAR
from tests.unit.test_dav_engine import Setup, card, event

BROKEN = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n"


def _same(a: dav_parse.Parsed, b: dav_parse.Parsed) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (a.message_class, a.props, a.named, a.source) == (
        b.message_class,
        b.props,
        b.named,
        b.source,
    )


async def test_workers_parse_as_this_process_does() -> None:
    datas = [event(f"e{i}", f"Event {i}") for i in range(5)] + [BROKEN, b"\xff\xfe junk"]
    parser = ResourceParser(0, workers=2)
    try:
        assert parser.parallel
        got = await parser.parse(CALENDAR, datas)
        cards = await parser.parse(ADDRESSBOOK, [card("c", "Cy"), b"BEGIN:VCARD\r\n"])
    finally:
        parser.close()
    want = parse_many(CALENDAR, datas)
    assert len(got) == len(want) == 7
    assert all(_same(a, b) for a, b in zip(got, want, strict=True))
    assert isinstance(got[0], NewItem) and isinstance(got[5], str) and isinstance(got[6], str)
    assert isinstance(cards[0], NewItem) and isinstance(cards[1], str)


async def test_small_pulls_parse_here() -> None:
    parser = ResourceParser(10)
    assert not parser.parallel
    [item] = await parser.parse(CALENDAR, [event("a", "A")])
    assert isinstance(item, NewItem)
    parser.close()


@pytest.mark.parametrize(
    ("cores", "all_arrived", "workers"),
    [(2, False, 0), (2, True, 2), (1, True, 0), (3, False, 2), (8, True, 2), (8, False, 2)],
)
def test_workers_on_two_cores_only_once_everything_arrived(
    monkeypatch: pytest.MonkeyPatch, cores: int, all_arrived: bool, workers: int
) -> None:
    monkeypatch.setattr(dav_parse.os, "cpu_count", lambda: cores)
    parser = ResourceParser(dav_parse.POOL_FROM, all_arrived=all_arrived)
    try:
        assert parser.parallel is (workers > 0)
        assert parser.workers == workers
        assert not ResourceParser(dav_parse.POOL_FROM - 1, all_arrived=all_arrived).parallel
    finally:
        parser.close()


async def test_a_large_pull_through_worker_processes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dav_parse, "POOL_FROM", 2)
    s = Setup(store)
    await s.connect()
    for i in range(250):
        await s.put(CALENDAR, f"e{i}.ics", event(f"e{i}", f"Event {i:03d}"))
    await s.put(CALENDAR, "bad.ics", BROKEN)
    report = await s.run()
    assert report.fetched == 250
    assert [m.split(":")[0] for m in report.malformed] == [f"{s.coll(CALENDAR)}bad.ics"]
    assert await s.subjects("calendar") == [f"Event {i:03d}" for i in range(250)]
    again = await s.run()
    assert again.fetched == 0 and not again.malformed


async def test_a_run_pool_starts_its_workers_before_any_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dav_parse.os, "cpu_count", lambda: 2)
    shared = dav_parse.ParserPool()
    shared.start()
    try:
        assert shared.pool is not None and shared.workers == 2
        shared.wait_started()
        # Both workers are on their way before the first resource is handed over.
        assert len(shared.pool._processes) == 2
        first = ResourceParser(dav_parse.POOL_FROM, all_arrived=True, shared=shared)
        assert first.pool is shared.pool and first.workers == 2
        [item] = await first.parse(CALENDAR, [event("a", "A")])
        assert isinstance(item, NewItem)
        first.close()  # a pull's end leaves the run's workers to the next pull
        second = ResourceParser(dav_parse.POOL_FROM, shared=shared)
        [card_item] = await second.parse(ADDRESSBOOK, [card("c", "Cy")])
        assert isinstance(card_item, NewItem)
        # A small pull parses here, started workers or not.
        assert not ResourceParser(dav_parse.POOL_FROM - 1, shared=shared).parallel
    finally:
        shared.close()
    assert shared.pool is None


def test_a_run_pool_starts_its_workers_without_holding_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Starting workers can wait on a fork server still importing: the event loop that
    calls `start` must not wait with it (it has the request to send)."""
    monkeypatch.setattr(dav_parse.os, "cpu_count", lambda: 2)
    release = threading.Event()
    submitted: list[object] = []

    def slow_submit(self: object, fn: object, *args: object) -> Future[object]:
        release.wait(10)
        submitted.append(fn)
        return Future()

    monkeypatch.setattr(dav_parse.ProcessPoolExecutor, "submit", slow_submit)
    shared = dav_parse.ParserPool()
    shared.start()
    returned_first = not submitted  # start() came back while the workers were starting
    release.set()
    shared.wait_started()
    try:
        assert returned_first
        assert submitted == [dav_parse.os.getpid] * 2
    finally:
        shared.close()


def test_a_run_pool_on_one_core_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dav_parse.os, "cpu_count", lambda: 1)
    shared = dav_parse.ParserPool()
    shared.start()
    assert shared.pool is None
    assert not ResourceParser(dav_parse.POOL_FROM, all_arrived=True, shared=shared).parallel
