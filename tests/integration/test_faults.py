"""Network faults between the bridge and a real Dovecot, injected by a proxy: connections
reset in the middle of a FETCH literal, of an APPEND literal, of a STORE or a MOVE (before
the server acted, and after it acted but before its answer arrived), a stalled server, a
slow link. After the fault clears, one more sync makes cache and server agree, with no
message lost or duplicated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bridge.model import tags
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync.engine import Engine, Report
from bridge.sync.imap_service import ImapSyncService
from bridge.upstream.base import UpstreamError
from bridge.upstream.imap import ImapAdapter, ImapSettings
from tests.integration.conftest import Account, sync
from tests.integration.convergence import assert_converged
from tests.servers import dovecot as dv
from tests.servers.faultproxy import DOWN, UP, FaultProxy, proxy

TIMEOUT = 1.0  # the adapter's timeout behind the proxy: a stall is noticed fast
GUARD = 20.0  # no sync may take longer than this, whatever the fault


@pytest.fixture
def faults(account: Account) -> Iterator[FaultProxy]:
    with proxy(account.server.host, account.server.imap_port) as p:
        yield p


def via(account: Account, p: FaultProxy, timeout: float = TIMEOUT) -> ImapSettings:
    return ImapSettings(p.host, p.port, "none", account.user, account.password, timeout=timeout)


async def sync_via(store: Store, settings: ImapSettings) -> Report:
    adapter = ImapAdapter(settings)

    async def run() -> Report:
        await adapter.connect()
        try:
            return await Engine(store, adapter).run(adapter.delimiter or "/")
        finally:
            await adapter.close()

    return await asyncio.wait_for(run(), GUARD)


def seed(account: Account, n: int, *, mailbox: str = "INBOX", big: int = 0) -> list[str]:
    """`n` messages; the middle one carries a marker deep inside a `big`-byte body."""
    m = account.client()
    ids = []
    for i in range(n):
        msgid = f"<seed{i}.{time.monotonic_ns()}@test>"
        body = "hello\r\n"
        if i == n // 2 and big:
            pad = ("x" * 76 + "\r\n") * (big // 78 // 2)
            body = pad + "FETCH-CUT-MARK\r\n" + pad
        dv.append(m, mailbox, dv.message(f"m{i}", msgid=msgid, body=body))
        ids.append(msgid)
    return ids


async def test_reset_mid_fetch_literal(store: Store, any_account: Account) -> None:
    ids = seed(any_account, 12, big=200_000)
    with proxy(any_account.server.host, any_account.server.imap_port) as p:
        fired = p.reset_on(b"FETCH-CUT-MARK", DOWN)
        with pytest.raises(UpstreamError, match="connection"):
            await sync_via(store, via(any_account, p))
        assert fired.is_set() and p.resets == 1
        await sync_via(store, via(any_account, p))
        again = await sync_via(store, via(any_account, p))
    assert again.fetched == 0
    await assert_converged(store, any_account.client(), ids)


async def _offline_edits(store: Store, account: Account) -> list[str]:
    """Seed four messages, sync, then change each locally in a different way; returns the
    Message-IDs that must survive (m3 is deleted for good)."""
    ids = seed(account, 4)
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    by = {str(i.props[tags.SUBJECT]): i.id for i in items}
    await store.items.update(by["m0"], {tags.READ: True, tags.FLAG_STATUS: 2})
    archive = await store.folders.create(store.folders.roles["ipm_subtree"], "Archive")
    await store.items.move(by["m1"], archive)
    await store.items.delete(by["m2"])  # to Deleted Items
    await store.items.delete(by["m3"], hard=True)
    draft_id = f"<draft.{time.monotonic_ns()}@local>"
    body = "draft\r\n" + "y" * 20_000 + "\r\nPUSH-CUT-MARK\r\n" + "z" * 20_000 + "\r\n"
    raw = dv.message("draft", msgid=draft_id, body=body)
    await store.items.create(store.folders.roles["drafts"], item_from_rfc822(raw))
    return [*ids[:3], draft_id]


def _placed(snapshot: dict[str, dict[str, list[frozenset[str]]]], msgid: str) -> str:
    return next(name for name, box in snapshot.items() if msgid in box)


# Where a push is cut: before the server acted (a partial command or literal went up) or
# after it acted but before its answer came back.
PUSH_CUTS = [
    pytest.param(UP, b"PUSH-CUT-MARK", id="mid-append-literal"),
    pytest.param(DOWN, b"[APPENDUID ", id="append-done-answer-lost"),
    pytest.param(UP, b"UID STORE ", id="mid-store"),
    pytest.param(DOWN, b"FETCH (UID ", id="store-done-answer-lost"),
    pytest.param(UP, b"UID MOVE ", id="mid-move"),
    pytest.param(DOWN, b"[COPYUID ", id="move-done-answer-lost"),
    pytest.param(UP, b'CREATE "Archive"', id="mid-create"),
]


@pytest.mark.parametrize(("direction", "pattern"), PUSH_CUTS)
async def test_reset_mid_push(
    store: Store, account: Account, faults: FaultProxy, direction: str, pattern: bytes
) -> None:
    ids = await _offline_edits(store, account)
    fired = faults.reset_on(pattern, direction)
    with pytest.raises(UpstreamError):
        await sync_via(store, via(account, faults))
    assert fired.is_set()
    assert await store.queries.journal_pending() > 0  # not confirmed: still queued
    report = await sync_via(store, via(account, faults))
    assert not report.failed
    snap = await assert_converged(store, account.client(), ids)
    m0, m1, m2, draft = ids
    assert snap["INBOX"][m0] == [frozenset({"\\Seen", "\\Flagged"})]
    assert (_placed(snap, m1), _placed(snap, m2), _placed(snap, draft)) == (
        "Archive",
        "Trash",
        "Drafts",
    )
    again = await sync_via(store, via(account, faults))
    assert (again.fetched, again.pushed, again.deleted) == (0, 0, 0)


@pytest.mark.parametrize("msgid", [None, "<<<>>> x"], ids=["none", "no-id-in-it"])
async def test_a_draft_without_a_message_id_is_not_uploaded_twice(
    store: Store, account: Account, faults: FaultProxy, msgid: str | None
) -> None:
    """A draft made from properties only has no Message-ID (or one without an <id>): it
    keeps the one its upload is built with, so an upload whose answer was lost is found
    again, not made a second time."""
    await sync_via(store, via(account, faults))
    drafts = store.folders.roles["drafts"]
    props: dict[int, object] = {tags.SUBJECT: "no id yet"}
    if msgid is not None:
        props[tags.INTERNET_MESSAGE_ID] = msgid
    iid = await store.items.create(drafts, NewItem(props=props))
    fired = faults.reset_on(b"[APPENDUID ", DOWN)
    with pytest.raises(UpstreamError):
        await sync_via(store, via(account, faults))
    assert fired.is_set()
    report = await sync_via(store, via(account, faults))
    assert not report.failed, report
    m = account.client()
    m.select("Drafts", readonly=True)
    _, data = m.uid("SEARCH", "SUBJECT", '"no id yet"')
    assert len(data[0].split()) == 1, data
    items, _ = await store.queries.list(drafts)
    assert [i.id for i in items] == [iid]
    assert await store.queries.journal_pending() == 0


async def test_stalled_server_times_out(store: Store, account: Account, faults: FaultProxy) -> None:
    ids = seed(account, 6, big=100_000)
    # stalled before the greeting
    faults.stall()
    start = time.monotonic()
    with pytest.raises(UpstreamError, match=r"no answer|in time"):
        await sync_via(store, via(account, faults))
    assert time.monotonic() - start < 5 * TIMEOUT
    faults.clear()
    # stalled in the middle of a FETCH literal
    fired = faults.stall_on(b"FETCH-CUT-MARK", DOWN)
    start = time.monotonic()
    with pytest.raises(UpstreamError, match="in time"):
        await sync_via(store, via(account, faults))
    assert fired.is_set() and time.monotonic() - start < 5 * TIMEOUT
    faults.clear()
    await sync_via(store, via(account, faults))
    await assert_converged(store, account.client(), ids)
    # stalled while a message goes up
    raw = dv.message("up", body="a" * 30_000 + "PUSH-CUT-MARK" + "b" * 30_000 + "\r\n")
    await store.items.create(store.folders.roles["drafts"], item_from_rfc822(raw))
    fired = faults.stall_on(b"PUSH-CUT-MARK", UP)
    with pytest.raises(UpstreamError, match=r"in time|took nothing"):
        await sync_via(store, via(account, faults))
    assert fired.is_set()
    faults.clear()
    await sync_via(store, via(account, faults))
    snap = await assert_converged(store, account.client(), ids)
    assert sum(len(box) for box in snap.values()) == len(ids) + 1


async def _until(service: ImapSyncService, state: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while service.state != state:
        assert time.monotonic() < deadline, (service.state, service.message)
        await asyncio.sleep(0.05)


async def test_stalled_server_does_not_hang_the_service(
    store: Store, account: Account, faults: FaultProxy
) -> None:
    ids = seed(account, 3)
    service = ImapSyncService(store, via(account, faults), interval=60)
    faults.stall()
    await service.start()
    try:
        await service.run_now()
        await _until(service, "offline")
        assert "in time" in service.message or "no answer" in service.message
        faults.clear()
        await service.run_now()
        await _until(service, "online")
        await assert_converged(store, account.client(), ids)
        # the server hangs while the service sits in IDLE; a local change wakes it up
        faults.stall()
        items, _ = await store.queries.list(store.folders.roles["inbox"])
        await store.items.update(items[0].id, {tags.READ: True})
        await service.run_now()
        await _until(service, "offline")
        faults.clear()
        await service.run_now()
        await _until(service, "online")
    finally:
        await service.stop()
    await assert_converged(store, account.client(), ids)


async def test_slow_link_is_not_a_dead_one(
    store: Store, account: Account, faults: FaultProxy
) -> None:
    """At 100 kB/s a 300 kB message takes three timeouts to arrive, and as long to go up:
    both work, since the timeout counts from the last byte."""
    ids = seed(account, 3, big=300_000)
    raw = dv.message("slow upload", body="q" * 300_000 + "\r\n")
    draft = await store.items.create(store.folders.roles["drafts"], item_from_rfc822(raw))
    faults.throttle(100_000)
    start = time.monotonic()
    report = await sync_via(store, via(account, faults))
    assert time.monotonic() - start > 3 * TIMEOUT
    assert report.fetched == 3 and report.pushed == 1 and not report.failed
    faults.clear()
    item = await store.sync.item(draft)
    assert item is not None and item.message_id is not None
    await assert_converged(store, account.client(), [*ids, item.message_id])
