"""Two-way mail sync against a real Dovecot: initial pull, server-side edits, local edits,
UIDVALIDITY reset, offline edits replayed, new mail through IDLE."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.formats.mime import KEYWORDS
from bridge.model import tags
from bridge.store import blobs
from bridge.store.core import UPSTREAM
from bridge.store.items import Items, NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync.engine import Engine
from bridge.sync.imap_service import ImapSyncService
from bridge.upstream.imap import ImapAdapter
from tests.integration.conftest import Account, sync
from tests.integration.cuts import Cut
from tests.servers import dovecot as dv


async def subjects(store: Store, role: str) -> dict[str, bool]:
    items, _ = await store.queries.list(store.folders.roles[role], limit=500)
    return {str(i.props.get(tags.SUBJECT)): bool(i.props.get(tags.READ)) for i in items}


def server_flags(account: Account, mailbox: str) -> dict[str, set[str]]:
    m = account.client()
    m.select(f'"{mailbox}"')
    _, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out: dict[str, set[str]] = {}
    for part in data:
        if isinstance(part, tuple):
            subject = part[1].decode().split(":", 1)[1].strip()
            flags = part[0].decode().split("FLAGS (", 1)[1].split(")", 1)[0].split()
            out[subject] = set(flags) - {"\\Recent"}
    return out


async def until_online(service: ImapSyncService) -> None:
    """Ask for a run and wait until the service is online (then idling between runs)."""
    await service.run_now()
    for _ in range(100):
        if service.state == "online":
            break
        await asyncio.sleep(0.05)
    assert service.state == "online", service.message


async def test_initial_pull_and_server_edits(store: Store, any_account: Account) -> None:
    m = any_account.client()
    for i in range(3):
        dv.append(m, "INBOX", dv.message(f"m{i}"), "\\Seen" if i == 1 else "")
    m.create("Projects/Alpha")
    dv.append(m, "Projects/Alpha", dv.message("alpha"))
    report = await sync(store, any_account)
    assert report.fetched == 4
    assert await subjects(store, "inbox") == {"m0": False, "m1": True, "m2": False}
    names = {f.display_name: f for f in await store.folders.all()}
    assert names["Alpha"].parent_id == names["Projects"].id

    # server-side edits by another client: flags, a keyword, an expunge, new mail
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Seen Work)")
    m.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    m.expunge()
    dv.append(m, "INBOX", dv.message("m3"))
    report = await sync(store, any_account)
    assert await subjects(store, "inbox") == {"m0": True, "m1": True, "m3": False}
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    cats = [(await store.sync.item(i.id)).categories for i in items]  # type: ignore[union-attr]
    assert frozenset({"Work"}) in cats
    again = await sync(store, any_account)
    assert again.fetched == again.deleted == again.updated == 0


async def test_each_pull_path_is_used(store: Store, any_account: Account) -> None:
    m = any_account.client()
    dv.append(m, "INBOX", dv.message("a"))
    await sync(store, any_account)
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    report = await sync(store, any_account)
    server = any_account.server
    caps = m.capability()[1][0].decode()
    expected = "qresync" if "QRESYNC" in caps else "condstore" if "CONDSTORE" in caps else "full"
    assert report.paths["INBOX"] == expected, server.imap_port
    assert report.updated == 1


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ "flags" once for each listing of a mailbox's flags (`list_flags`)."""
    calls: list[str] = []
    real = ImapAdapter.list_flags

    async def list_flags(self: ImapAdapter, changed_since: int | None = None) -> Any:
        calls.append("flags")
        return await real(self, changed_since)

    monkeypatch.setattr(ImapAdapter, "list_flags", list_flags)
    return calls


async def test_a_first_pull_lists_uids_only_and_takes_the_flags_from_the_messages(
    store: Store, any_account: Account, listed: list[str]
) -> None:
    """Nothing in the cache can be one of a new mailbox's messages: where the server
    has ESEARCH, its UIDs are listed as ranges, without their flags, and each message
    brings its own. Once the cache holds items of it, a full listing has the flags again."""
    m = any_account.client()
    dv.append(m, "INBOX", dv.message("read"), "\\Seen")
    dv.append(m, "INBOX", dv.message("flagged"), "\\Flagged Work")
    dv.append(m, "INBOX", dv.message("unread"))
    report = await sync(store, any_account)
    assert report.fetched == 3 and report.paths["INBOX"] == "full"
    esearch = "ESEARCH" in m.capability()[1][0].decode()
    assert (listed == []) == esearch  # (without it, each mailbox is listed with its flags)
    listed.clear()
    assert await subjects(store, "inbox") == {"read": True, "flagged": False, "unread": False}
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    local = {str(i.props.get(tags.SUBJECT)): await store.sync.item(i.id) for i in items}
    assert local["flagged"] is not None and local["flagged"].categories == frozenset({"Work"})
    assert local["flagged"].upstream is not None
    assert set(local["flagged"].upstream["flags"]) == {"\\Flagged", "Work"}

    m.select("INBOX")
    m.uid("STORE", "3", "+FLAGS", "(\\Seen)")
    report = await sync(store, any_account)
    assert await subjects(store, "inbox") == {"read": True, "flagged": False, "unread": True}
    assert ("flags" in listed) == (report.paths["INBOX"] in ("full", "condstore"))


async def test_a_uid_listing_short_of_what_select_said_is_not_trusted(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first pull's UID listing with fewer messages than SELECT counted (a broken
    server, or mail arriving in between) gives way to the full listing: nothing is left
    out of the cache for good."""
    real = ImapAdapter.list_uids

    async def short(self: ImapAdapter) -> set[int]:
        return set(sorted(await real(self))[1:])

    monkeypatch.setattr(ImapAdapter, "list_uids", short)
    m = account.client()
    for i in range(3):
        dv.append(m, "INBOX", dv.message(f"s{i}"), "\\Seen" if i == 0 else "")
    report = await sync(store, account)
    assert report.fetched == 3
    assert await subjects(store, "inbox") == {"s0": True, "s1": False, "s2": False}


async def test_a_first_pull_with_changes_here_pending_lists_the_flags(
    store: Store, account: Account, listed: list[str]
) -> None:
    """A local change still to go up may be matched to a server message by the flags of
    the listing: then the first pull lists them."""
    dv.append(account.client(), "INBOX", dv.message("there"), "\\Seen")
    await store.items.create(store.folders.roles["drafts"], item_from_rfc822(dv.message("here")))
    await sync(store, account)
    assert "flags" in listed
    assert await subjects(store, "inbox") == {"there": True}


async def test_local_edits_reach_the_server(store: Store, account: Account) -> None:
    m = account.client()
    for i in range(3):
        dv.append(m, "INBOX", dv.message(f"m{i}"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    by_subject = {i.props[tags.SUBJECT]: i.id for i in items}
    await store.items.update(by_subject["m0"], {tags.READ: True, tags.FLAG_STATUS: 2})
    archive = await store.folders.create(store.folders.roles["ipm_subtree"], "Archive")
    await store.items.move(by_subject["m1"], archive)
    await store.items.delete(by_subject["m2"], hard=True)
    draft = dv.message("my draft", msgid="<draft-1@local>")
    await store.items.create(store.folders.roles["drafts"], item_from_rfc822(draft))
    report = await sync(store, account)
    assert not report.failed
    assert await store.queries.journal_pending() == 0
    assert server_flags(account, "INBOX") == {"m0": {"\\Seen", "\\Flagged"}}
    assert set(server_flags(account, "Archive")) == {"m1"}
    assert set(server_flags(account, "Drafts")) == {"my draft"}
    # nothing comes back twice
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0
    assert set(await subjects(store, "drafts")) == {"my draft"}


async def test_uidvalidity_reset_converges_without_duplicates(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Lists")
    raws = [dv.message(f"l{i}") for i in range(3)]
    for raw in raws:
        dv.append(m, "Lists", raw)
    await sync(store, account)
    folder = next(f for f in await store.folders.all() if f.display_name == "Lists")
    items, _ = await store.queries.list(folder.id)
    await store.items.update(items[0].id, {tags.READ: True})  # pending local change
    # the server recreates the mailbox: new UIDVALIDITY, same messages
    m.delete("Lists")
    await asyncio.sleep(1.1)  # UIDVALIDITY is a timestamp in Dovecot
    m.create("Lists")
    for raw in raws:
        dv.append(m, "Lists", raw)
    report = await sync(store, account)
    assert report.fetched == 0, report
    items, total = await store.queries.list(folder.id)
    assert total == 3
    assert sorted(set(server_flags(account, "Lists"))) == ["l0", "l1", "l2"]
    assert any("\\Seen" in f for f in server_flags(account, "Lists").values())


async def test_offline_edits_replayed_after_reconnect(store: Store, account: Account) -> None:
    m = account.client()
    dv.append(m, "INBOX", dv.message("x"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    offline = Account(account.server, account.user, "wrong-password-offline")
    settings = offline.settings()
    settings = type(settings)(settings.host, 1, "none", account.user, account.password)
    service = ImapSyncService(store, settings, interval=60)
    await service.start()
    try:
        await service.run_now()
        for _ in range(100):
            if service.state == "offline" and "retrying" in service.message:
                break
            await asyncio.sleep(0.05)
        assert service.state == "offline"
        await store.items.update(items[0].id, {tags.READ: True})
        await store.folders.create(store.folders.roles["inbox"], "Later")
        assert await store.queries.journal_pending() == 2
    finally:
        await service.stop()
    await sync(store, account)  # back online
    assert await store.queries.journal_pending() == 0
    assert server_flags(account, "INBOX") == {"x": {"\\Seen"}}
    assert "INBOX/Later" in str(m.list()[1])


async def test_service_idle_brings_new_mail_within_two_seconds(
    store: Store, account: Account
) -> None:
    service = ImapSyncService(store, account.settings(), interval=60)
    sub = store.bus.subscribe()
    await service.start()
    try:
        await until_online(service)
        await asyncio.sleep(0.3)  # the loop is in IDLE now
        m = account.client()
        start = time.monotonic()
        await asyncio.to_thread(dv.append, m, "INBOX", dv.message("pushed"))
        while True:
            event = await asyncio.wait_for(sub.get(), 2.0 - (time.monotonic() - start))
            if event.type == "new_mail":
                break
        assert time.monotonic() - start < 2.0
        assert "pushed" in await subjects(store, "inbox")
        status = await service.status()
        assert status["state"] in ("online", "syncing")
    finally:
        sub.close()
        await service.stop()


async def test_going_offline_during_idle_ends_it_cleanly(
    store: Store, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's switch closes the connection the loop is idling on: the IDLE ends as a
    closed connection, not as an internal error (it wrote DONE on a closed connection),
    and the connection is closed, with no LOGOUT sent into the IDLE."""
    service = ImapSyncService(store, account.settings(), interval=60)
    await service.start()
    try:
        await until_online(service)
        await asyncio.sleep(0.3)  # the loop is in IDLE now
        adapter = service._adapter
        assert adapter is not None
        with caplog.at_level(logging.INFO, logger="bridge"):
            await service.set_offline(True)
            await asyncio.sleep(0.3)  # the loop leaves IDLE
        assert service.state == "offline"
        assert not adapter.alive and adapter.conn.writer is None
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
    finally:
        await service.stop()


async def test_notify_brings_mail_of_any_folder_within_two_seconds(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Lists")
    service = ImapSyncService(store, account.settings(), interval=60)
    await service.start()
    try:
        await until_online(service)
        assert service._adapter is not None and service._adapter.caps.notify
        await asyncio.sleep(0.3)  # the loop is in IDLE now, with NOTIFY set
        folder = next(f for f in await store.folders.all() if f.display_name == "Lists")
        start = time.monotonic()
        await asyncio.to_thread(dv.append, m, "Lists", dv.message("elsewhere"))
        while time.monotonic() - start < 2.0:
            items, _ = await store.queries.list(folder.id)
            if items:
                break
            await asyncio.sleep(0.05)
        assert [i.props[tags.SUBJECT] for i in items] == ["elsewhere"]
        # a mailbox made by another client shows up as quickly
        start = time.monotonic()
        await asyncio.to_thread(m.create, '"Made elsewhere"')
        names: set[str] = set()
        while time.monotonic() - start < 2.0 and "Made elsewhere" not in names:
            await asyncio.sleep(0.05)
            names = {f.display_name for f in await store.folders.all()}
        assert "Made elsewhere" in names
    finally:
        await service.stop()


async def test_auth_failure_is_reported(store: Store, account: Account) -> None:
    settings = account.settings()
    bad = type(settings)(settings.host, settings.port, "none", account.user, "nope")
    service = ImapSyncService(store, bad, interval=60)
    await service.start()
    try:
        await service.run_now()
        for _ in range(100):
            if service.state == "auth-failed":
                break
            await asyncio.sleep(0.05)
        assert service.state == "auth-failed"
        assert "rejected the login" in (await service.status())["message"]
    finally:
        await service.stop()


async def _conflicting_edit(store: Store, account: Account) -> int:
    """A message read everywhere; then flagged here and, meanwhile, marked unread and
    categorised on the server. Returns the local item id."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("c"), "\\Seen")
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    item_id = items[0].id
    await store.items.update(item_id, {tags.FLAG_STATUS: 2})
    m.select("INBOX")
    m.uid("STORE", "1", "-FLAGS", "(\\Seen)")
    m.uid("STORE", "1", "+FLAGS", "(Work)")
    return item_id


async def _local_state(store: Store, item_id: int) -> set[str]:
    item = await store.sync.item(item_id)
    assert item is not None
    out = set(item.categories)
    if item.read:
        out.add("\\Seen")
    if item.flag_status == 2:
        out.add("\\Flagged")
    return out


async def test_conflict_keep_both_copies_local_version(store: Store, account: Account) -> None:
    item_id = await _conflicting_edit(store, account)
    sub = store.bus.subscribe()
    try:
        report = await sync(store, account, "keep-both")
        event = None
        while event is None or event.type != "sync_conflict":
            event = await asyncio.wait_for(sub.get(), 2.0)
    finally:
        sub.close()
    assert report.conflicts == 1 and not report.failed
    assert server_flags(account, "INBOX") == {"c": {"Work"}}
    assert await _local_state(store, item_id) == {"Work"}
    copies, total = await store.queries.list(store.folders.roles["conflicts"])
    assert total == 1
    copy = copies[0]
    link = base64.b64decode(str(copy.props.get(tags.CONFLICT_ENTRYID)))  # as the API shows it
    assert link == store.ids.entry_id("item", item_id)
    assert await _local_state(store, copy.id) == {"\\Seen", "\\Flagged"}
    assert event.data["winner_id"] == store.ids.api_id("item", item_id)
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account, "keep-both")
    assert again.conflicts == 0 and again.fetched == 0 and again.pushed == 0


async def test_a_keep_both_conflict_stopped_midway_keeps_one_copy(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped while it settles a flag conflict under keep-both leaves either the
    copy and the server's flags or neither: the next run makes one copy, not a second."""
    item_id = await _conflicting_edit(store, account)
    update_in = Items.update_in

    async def stop(self: Items, *args: Any, **kwargs: Any) -> list[int]:
        raise Cut("the flags of the winner")

    monkeypatch.setattr(Items, "update_in", stop)
    with pytest.raises(Cut):
        await sync(store, account, "keep-both")
    monkeypatch.setattr(Items, "update_in", update_in)
    report = await sync(store, account, "keep-both")
    assert report.conflicts == 1 and not report.failed
    copies, total = await store.queries.list(store.folders.roles["conflicts"])
    assert total == 1
    assert await _local_state(store, copies[0].id) == {"\\Seen", "\\Flagged"}
    assert await _local_state(store, item_id) == {"Work"}
    assert server_flags(account, "INBOX") == {"c": {"Work"}}
    again = await sync(store, account, "keep-both")
    assert again.conflicts == 0 and again.pushed == 0


async def test_conflict_server_wins(store: Store, account: Account) -> None:
    item_id = await _conflicting_edit(store, account)
    report = await sync(store, account, "server-wins")
    assert report.conflicts == 1 and not report.failed
    assert server_flags(account, "INBOX") == {"c": {"Work"}}
    assert await _local_state(store, item_id) == {"Work"}
    assert (await store.queries.list(store.folders.roles["conflicts"]))[1] == 0
    assert await store.queries.journal_pending() == 0


async def test_conflict_local_wins(store: Store, account: Account) -> None:
    item_id = await _conflicting_edit(store, account)
    report = await sync(store, account, "local-wins")
    assert report.conflicts == 1 and not report.failed
    assert server_flags(account, "INBOX") == {"c": {"\\Seen", "\\Flagged"}}
    assert await _local_state(store, item_id) == {"\\Seen", "\\Flagged"}
    assert (await store.queries.list(store.folders.roles["conflicts"]))[1] == 0
    assert await store.queries.journal_pending() == 0


async def test_conflict_newer_wins(store: Store, account: Account) -> None:
    # the local change was made before the pull observed the server's change: server wins
    item_id = await _conflicting_edit(store, account)
    report = await sync(store, account, "newer-wins")
    assert report.conflicts == 1 and not report.failed
    assert server_flags(account, "INBOX") == {"c": {"Work"}}
    assert await _local_state(store, item_id) == {"Work"}
    assert (await store.queries.list(store.folders.roles["conflicts"]))[1] == 0
    assert await store.queries.journal_pending() == 0


@pytest.mark.parametrize(("policy", "comes_back"), [("keep-both", True), ("local-wins", False)])
async def test_deleted_here_changed_on_the_server(
    store: Store, any_account: Account, policy: str, comes_back: bool
) -> None:
    """Deleted here while the server flagged it: keep-both lets the server's change win (the
    message comes back, nothing is lost); local-wins expunges it. An unchanged message
    deleted here is never fetched again before its expunge."""
    m = any_account.client()
    dv.append(m, "INBOX", dv.message("changed"))
    dv.append(m, "INBOX", dv.message("unchanged"))
    await sync(store, any_account, policy)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    for item in items:
        await store.items.delete(item.id, hard=True)
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    report = await sync(store, any_account, policy)
    assert report.fetched == (1 if comes_back else 0)
    expected = {"changed": {"\\Flagged"}} if comes_back else {}
    assert server_flags(any_account, "INBOX") == expected
    assert set(await subjects(store, "inbox")) == set(expected)
    assert await store.queries.journal_pending() == 0


async def test_deleted_here_before_a_uidvalidity_reset(store: Store, account: Account) -> None:
    m = account.client()
    m.create("Lists")
    raws = [dv.message(f"l{i}") for i in range(3)]
    for raw in raws:
        dv.append(m, "Lists", raw)
    await sync(store, account)
    folder = next(f for f in await store.folders.all() if f.display_name == "Lists")
    items, _ = await store.queries.list(folder.id)
    gone = next(i for i in items if i.props[tags.SUBJECT] == "l0")
    await store.items.delete(gone.id, hard=True)
    m.delete("Lists")
    await asyncio.sleep(1.1)  # UIDVALIDITY is a timestamp in Dovecot
    m.create("Lists")
    for raw in raws:
        dv.append(m, "Lists", raw)
    report = await sync(store, account)
    assert report.fetched == 0, report
    assert sorted(server_flags(account, "Lists")) == ["l1", "l2"]
    assert (await store.queries.list(folder.id))[1] == 2
    assert await store.queries.journal_pending() == 0


async def test_an_emptied_mailbox_is_not_mirrored_until_confirmed(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Archive")
    for i in range(12):
        dv.append(m, "Archive", dv.message(f"a{i}"))
    await sync(store, account)
    m.select("Archive")
    m.uid("STORE", "1:*", "+FLAGS", "(\\Deleted)")
    m.expunge()
    report = await sync(store, account)
    assert report.held == ["Archive"] and report.deleted == 0
    folder = next(f for f in await store.folders.all() if f.display_name == "Archive")
    assert (await store.queries.list(folder.id))[1] == 12
    adapter = await account.adapter()
    try:
        engine = Engine(store, adapter)
        engine.confirm_empty = {"Archive"}
        report = await engine.run(adapter.delimiter or "/")
    finally:
        await adapter.close()
    assert report.held == [] and report.deleted == 12
    assert (await store.queries.list(folder.id))[1] == 0


async def test_the_service_mirrors_an_emptied_mailbox_once_the_user_confirms(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Old")
    for i in range(12):
        dv.append(m, "Old", dv.message(f"o{i}"))
    await sync(store, account)
    folder = next(f for f in await store.folders.all() if f.display_name == "Old")
    m.select("Old")
    m.uid("STORE", "1:*", "+FLAGS", "(\\Deleted)")
    m.expunge()
    service = ImapSyncService(store, account.settings(), interval=60)
    await service.start()
    try:
        status = await _settled(service)
        assert status["held"] == ["Old"] and "until confirmed" in status["message"]
        assert (await store.queries.list(folder.id))[1] == 12
        assert await service.confirm_empty(["Nope"]) == []
        assert await service.confirm_empty(["Old", "Nope"]) == ["Old"]
        status = await _settled(service)
        assert status["held"] == []  # (a follow-up run may have ended since the deleting one)
        assert (await store.queries.list(folder.id))[1] == 0
        # the mailbox goes on syncing as any other
        dv.append(m, "Old", dv.message("back"))
        await service.run_now()
        await _settled(service)
        assert (await store.queries.list(folder.id))[1] == 1
    finally:
        await service.stop()


async def _settled(service: ImapSyncService) -> dict[str, Any]:
    """The status once the run asked for (or under way) has ended."""
    await service.run_now()
    for _ in range(200):
        await asyncio.sleep(0.05)
        if service.state != "syncing":
            break
    status = await service.status()
    assert status["state"] == "online", status
    return status


async def test_move_into_a_mailbox_reset_in_the_same_run(store: Store, account: Account) -> None:
    """The move's new link takes the UIDVALIDITY this run's pull saw, not the one the
    hierarchy loaded before it; a flag change made later still reaches the server."""
    m = account.client()
    m.create("Work")
    dv.append(m, "INBOX", dv.message("mover"))
    await sync(store, account)
    m.delete("Work")
    await asyncio.sleep(1.1)  # UIDVALIDITY is a timestamp in Dovecot
    m.create("Work")
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    work = next(f for f in await store.folders.all() if f.display_name == "Work")
    await store.items.move(items[0].id, work.id)
    assert not (await sync(store, account)).failed
    await store.items.update(items[0].id, {tags.FLAG_STATUS: 2})
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0
    assert server_flags(account, "Work") == {"mover": {"\\Flagged"}}
    assert (await store.queries.list(work.id))[1] == 1


async def test_large_pull_parses_in_a_worker_process(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull large enough for the parsing worker stores the same items as one parsed in the
    sync process (the threshold is lowered so that a few messages take that path)."""
    from bridge.sync import mail_fetch, parse_pool

    def here(messages: list[tuple[bytes, frozenset[str]]]) -> Any:
        raise AssertionError("parsed in the sync process, not in the worker")

    monkeypatch.setattr(parse_pool, "parse_messages", here)  # the worker has its own copy
    real_parse = parse_pool.ParsePool.parse

    async def parse_once_started(self: parse_pool.ParsePool, *args: Any) -> Any:
        assert await self.started()  # (before, batches parse here: tested in unit tests)
        return await real_parse(self, *args)

    monkeypatch.setattr(parse_pool.ParsePool, "parse", parse_once_started)
    monkeypatch.setattr(mail_fetch, "MIN_MESSAGES", 2)
    monkeypatch.setattr(mail_fetch, "CREATE_BATCH", 2)  # several batches in flight
    m = account.client()
    raw = (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: with a file\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody text\r\n"
        b'--b\r\nContent-Type: application/pdf; name="f.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )
    dv.append(m, "INBOX", raw, "\\Seen")
    content = bytes(range(256)) * 40  # large enough to be read from the source
    encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
    dv.append(m, "INBOX", raw.replace(b"JVBERi0=\r\n", encoded).replace(b"a file", b"big"))
    for i in range(6):
        dv.append(m, "INBOX", dv.message(f"w{i}"))
    report = await sync(store, account)
    assert report.fetched == 8
    assert await subjects(store, "inbox") == {
        "with a file": True,
        "with big": False,
        **{f"w{i}": False for i in range(6)},
    }
    items, _ = await store.queries.list(store.folders.roles["inbox"], limit=50)
    found = {str(i.props.get(tags.SUBJECT)): i.id for i in items}
    view = await store.queries.get(found["with a file"])
    assert view.props.get(tags.BODY) == "body text"
    _, blob_id, size = await store.queries.attachment(found["with a file"], 0)
    assert size == 5 and blob_id is not None
    # the large one is read from the message's source, not stored a second time
    _, big_blob, size = await store.queries.attachment(found["with big"], 0)
    assert size == len(content) and big_blob is not None
    assert await blobs.read_all(store.core.reader, big_blob) == content
    async with store.core.reader.execute(
        "SELECT b.base, i.source_blob, (SELECT count(*) FROM blob_chunks c "
        "WHERE c.id >= b.id * 65536 AND c.id < (b.id + 1) * 65536) "
        "FROM blobs b, items i WHERE b.id = ? AND i.id = ?",
        (big_blob, found["with big"]),
    ) as cur:
        base, source_blob, chunks = tuple(await cur.fetchone())
    assert base == source_blob and source_blob is not None and chunks == 0
    source_blob, _, _ = await store.queries.source(found["w3"])
    assert source_blob is not None


CATEGORIES = ["Red Category", "D\u016fle\u017eit\u00e9", "R&D", "a (b) [c]"]


async def test_categories_of_any_name_are_one_keyword_each_both_ways(
    store: Store, tmp_path: Path, any_account: Account
) -> None:
    """Outlook's category names hold spaces, accents and brackets; an IMAP keyword is an
    atom. Each category stays one keyword on the server, and comes back as it was."""
    m = any_account.client()
    dv.append(m, "INBOX", dv.message("tagged"))
    await sync(store, any_account)
    [item] = (await store.queries.list(store.folders.roles["inbox"]))[0]
    await store.items.update(item.id, named={KEYWORDS: CATEGORIES})
    report = await sync(store, any_account)
    assert report.pushed == 1 and not report.failed
    m.select("INBOX")
    assert m.uid("SEARCH", "ALL")[1] == [b"1"]  # flags stored, not the message uploaded again
    on_server = server_flags(any_account, "INBOX")["tagged"]
    assert len(on_server) == len(CATEGORIES) and "R&D" in on_server
    assert all(flag.isascii() and " " not in flag for flag in on_server)
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(Team&ACA-A)")  # as another client that encodes so
    fresh = await Store.open(tmp_path / "fresh.sqlite")
    try:
        await sync(fresh, any_account)
        [copy] = (await fresh.queries.list(fresh.folders.roles["inbox"]))[0]
        got = await fresh.sync.item(copy.id)
        assert got is not None and sorted(got.categories) == sorted([*CATEGORIES, "Team A"])
    finally:
        await fresh.close()
    again = await sync(store, any_account)
    assert again.pushed == 0 and not again.failed
    here = await store.sync.item(item.id)
    assert here is not None and sorted(here.categories) == sorted([*CATEGORIES, "Team A"])


async def test_a_line_break_in_a_value_cannot_smuggle_a_command(account: Account) -> None:
    """A Message-ID comes from the cache, where an API client may have set it. Its line
    breaks would end the SEARCH and start commands of the client's choosing."""
    m = account.client()
    m.create("Victim")
    adapter = await account.adapter()
    try:
        await adapter.select("INBOX")
        found = await adapter.search_message_id("<a@b>\r\nX1 DELETE Victim\r\nX2 NOOP")
        assert found == []
        assert (await adapter.select("INBOX")).uidvalidity  # the session is still in step
    finally:
        await adapter.close()
    assert m.select("Victim")[0] == "OK"


LONG = "Waiting for approval from the finance department"  # 70 characters as a keyword


async def test_a_category_the_server_will_not_take_stays_here_and_blocks_nothing(
    store: Store, account: Account
) -> None:
    """Dovecot refuses a keyword over 50 characters, and with it the whole STORE or APPEND.
    The read state and the other categories still reach the server; the long category
    stays on the item, run after run."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("long one"))
    await sync(store, account)
    [item] = (await store.queries.list(store.folders.roles["inbox"]))[0]
    await store.items.update(item.id, {tags.READ: True}, named={KEYWORDS: ["Short", LONG]})
    draft = await store.items.create(
        store.folders.roles["drafts"],
        NewItem(props={tags.SUBJECT: "long draft"}, named={KEYWORDS: [LONG, "Short"]}),
    )
    for _ in range(2):
        report = await sync(store, account)
        assert not report.failed, report.failed
        assert server_flags(account, "INBOX")["long one"] == {"\\Seen", "Short"}
        assert server_flags(account, "Drafts")["long draft"] == {"Short"}
        for iid in (item.id, draft):
            got = await store.sync.item(iid)
            assert got is not None and sorted(got.categories) == sorted(["Short", LONG])
    assert report.pushed == 0 and report.updated == 0


async def test_an_edited_message_replaces_its_server_copy_once(
    store: Store, account: Account
) -> None:
    """An edit of the content (a draft saved again, a subject changed) goes up as a new
    message and the old one expunged. The item used to lose its link to the new one, so the
    next pull fetched it again: two items."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("orig"))

    drafts = store.folders.roles["drafts"]
    draft = await store.items.create(drafts, item_from_rfc822(dv.message("draft v1")))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.update(items[0].id, {tags.SUBJECT: "edited", tags.READ: True})
    await store.items.update(draft, {tags.SUBJECT: "draft v2"})
    report = await sync(store, account)
    assert not report.failed and report.pushed == 2, report
    assert server_flags(account, "INBOX") == {"edited": {"\\Seen"}}
    assert server_flags(account, "Drafts") == {"draft v2": set()}
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0, again
    assert await subjects(store, "inbox") == {"edited": True}
    assert await subjects(store, "drafts") == {"draft v2": False}
    inbox, total = await store.queries.list(store.folders.roles["inbox"])
    assert total == 1
    assert (await store.sync.item(inbox[0].id)) is not None
    assert (await store.sync.item(inbox[0].id)).upstream is not None  # type: ignore[union-attr]


async def test_an_edit_uploaded_by_a_stopped_run_replaces_the_old_copy_once(
    store: Store, account: Account
) -> None:
    """A run stopped after the APPEND of an edited message, before noting it: the next
    run's pull takes that upload for the item's new copy (not a message of its own), and
    the push leaves one copy with the latest content."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("v1", msgid="<edit-1@test>"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.update(items[0].id, {tags.SUBJECT: "v2"})
    dv.append(m, "INBOX", dv.message("v2", msgid="<edit-1@test>"))  # the stopped upload
    await store.items.update(items[0].id, {tags.SUBJECT: "v3"})  # edited again meanwhile
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert set(server_flags(account, "INBOX")) == {"v3"}
    assert await subjects(store, "inbox") == {"v3": False}
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0, again


async def test_a_message_moved_away_and_back_is_not_taken_for_the_upload_of_an_edit(
    store: Store, account: Account
) -> None:
    """Another client moves a message out of its mailbox and back (a new UID, the old one
    gone) while it is edited here. The message with its Message-ID used to be taken for
    the edit's upload, whose confirmation a stopped run lost; the item, its old copy gone,
    then went into Conflicts, and the server's message never reached the cache. An edit's
    upload is linked before its old copy is expunged: with the old copy gone, the message
    is another's, and is pulled."""
    m = account.client()
    m.create("Work")
    dv.append(m, "INBOX", dv.message("v1", msgid="<away-1@test>"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.update(items[0].id, {tags.SUBJECT: "edited here"})
    m.select("INBOX")
    assert m.uid("MOVE", "1", "Work")[0] == "OK"
    m.select("Work")
    assert m.uid("MOVE", "1", "INBOX")[0] == "OK"
    report = await sync(store, account)
    assert not report.failed, report
    assert set(server_flags(account, "INBOX")) == {"v1"}
    assert await subjects(store, "inbox") == {"v1": False}
    assert set(await subjects(store, "conflicts")) == {"edited here"}  # the local version
    again = await sync(store, account)
    assert not again.failed and again.fetched == 0 and again.pushed == 0, again
    assert await subjects(store, "inbox") == {"v1": False}


async def test_a_replaced_copy_in_a_mailbox_gone_from_the_server_blocks_nothing(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Gone")
    dv.append(m, "INBOX", dv.message("kept"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    item = await store.sync.item(items[0].id)
    assert item is not None and item.upstream is not None
    old = {"mailbox": "Gone", "uidvalidity": 1, "uid": 1}
    await store.sync.set_item_links({item.id: {**item.upstream, "replaces": old}})
    await store.items.update(item.id, {tags.READ: True})
    m.delete("Gone")
    report = await sync(store, account)
    assert not report.failed, report
    assert server_flags(account, "INBOX") == {"kept": {"\\Seen"}}
    after = await store.sync.item(item.id)
    assert after is not None and after.upstream is not None
    assert "replaces" not in after.upstream


async def test_a_message_made_here_and_edited_before_its_upload_goes_up_as_edited(
    store: Store, account: Account
) -> None:
    """Imported as a raw message, then edited before any run: the upload used its stale
    raw source, so the server had the old subject while the cache showed the new one."""

    drafts = store.folders.roles["drafts"]
    item = await store.items.create(drafts, item_from_rfc822(dv.message("before")))
    await store.items.update(item, {tags.SUBJECT: "after"})
    report = await sync(store, account)
    assert not report.failed, report
    assert set(server_flags(account, "Drafts")) == {"after"}
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0, again
    assert await subjects(store, "drafts") == {"after": False}


async def test_answered_and_forwarded_both_stay_on_the_server(
    store: Store, account: Account
) -> None:
    """A message both answered and forwarded is one last verb here. Marking it read used to
    take $Forwarded off the server, and forwarding an answered one took \\Answered off."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("both"), "\\Answered $Forwarded")
    dv.append(m, "INBOX", dv.message("answered"), "\\Answered")
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    by = {i.props[tags.SUBJECT]: i.id for i in items}
    await store.items.update(by["both"], {tags.READ: True})
    await store.items.update(by["answered"], {tags.LAST_VERB_EXECUTED: 104})  # forwarded
    report = await sync(store, account)
    assert not report.failed, report
    assert server_flags(account, "INBOX") == {
        "both": {"\\Seen", "\\Answered", "$Forwarded"},
        "answered": {"\\Answered", "$Forwarded"},
    }
    again = await sync(store, account)
    assert again.fetched == 0 and again.pushed == 0 and again.updated == 0, again


async def test_a_deletion_takes_the_old_copy_an_edit_replaces_too(
    store: Store, account: Account
) -> None:
    """Deleted here while its edit's old copy still waited to be expunged (a run stopped
    in between): the deletion expunges both, and the old version does not come back."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("old version", msgid="<both@test>"))
    dv.append(m, "INBOX", dv.message("new version", msgid="<both@test>"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    by = {i.props[tags.SUBJECT]: i.id for i in items}
    old = await store.sync.item(by["old version"])
    new = await store.sync.item(by["new version"])
    assert old is not None and new is not None and new.upstream is not None
    await store.items.delete(old.id, hard=True, origin="upstream")  # as the stopped run left it
    replaces = {k: old.upstream[k] for k in ("mailbox", "uidvalidity", "uid")}  # type: ignore[index]
    await store.sync.set_item_links({new.id: {**new.upstream, "replaces": replaces}})
    await store.items.delete(new.id, hard=True)
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert server_flags(account, "INBOX") == {}
    again = await sync(store, account)
    assert again.fetched == 0 and await subjects(store, "inbox") == {}


def after_the_plan(
    monkeypatch: pytest.MonkeyPatch, store: Store, item_id: int, change: dict[int, Any]
) -> list[object]:
    """Make the user change the item once, in the next pull, between its plan and the
    plan's application (right after `Engine._adopt`); the list returned gets an entry
    when it happened."""
    adopt = Engine._adopt
    done: list[object] = []

    async def user_changes_it(self: Engine, *args: Any) -> Any:
        out = await adopt(self, *args)
        if not done:
            done.append(await store.items.update(item_id, change))
        return out

    monkeypatch.setattr(Engine, "_adopt", user_changes_it)
    return done


async def test_a_local_change_made_while_a_pull_runs_is_not_overwritten(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client flags a message; the user reads it here after the pull planned the
    flag's coming down and before it applied it. The pull plans the item again as it is
    then: changed on both sides, a conflict (keep-both: the server's state in place, the
    local version kept in Sync Issues/Conflicts), not the user's change silently undone."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("busy"))
    await sync(store, account)
    (item,), _ = await store.queries.list(store.folders.roles["inbox"])
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    done = after_the_plan(monkeypatch, store, item.id, {tags.READ: True})
    report = await sync(store, account)
    assert done and not report.failed, report
    assert report.conflicts == 1
    now = await store.queries.get(item.id)
    assert (now.props[tags.READ], now.props.get(tags.FLAG_STATUS)) == (False, 2)
    (kept,), _ = await store.queries.list(store.folders.roles["conflicts"])
    assert kept.props[tags.READ] is True and kept.props.get(tags.FLAG_STATUS) is None
    assert server_flags(account, "INBOX")["busy"] == {"\\Flagged"}
    again = await sync(store, account)
    assert (again.pushed, again.updated, again.conflicts) == (0, 0, 0)


async def test_a_local_change_made_while_a_flag_change_is_written_is_not_overwritten(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the user reads the message after the pull read the item to apply
    the server's flag, before it wrote it: that write used to set the flags as read
    before, undoing the user's change. It now finds the item changed, reads and plans it
    again: the same conflict."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("racing"))
    await sync(store, account)
    (item,), _ = await store.queries.list(store.folders.roles["inbox"])
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    update = Items.update
    done: list[object] = []

    async def user_reads_it_first(self: Items, item_id: int, *args: Any, **kw: Any) -> Any:
        if not done and item_id == item.id and kw.get("origin") == UPSTREAM:
            done.append(await update(self, item_id, {tags.READ: True}))
        return await update(self, item_id, *args, **kw)

    monkeypatch.setattr(Items, "update", user_reads_it_first)
    report = await sync(store, account)
    assert done and not report.failed, report
    assert report.conflicts == 1
    now = await store.queries.get(item.id)
    assert (now.props[tags.READ], now.props.get(tags.FLAG_STATUS)) == (False, 2)
    (kept,), _ = await store.queries.list(store.folders.roles["conflicts"])
    assert kept.props[tags.READ] is True and kept.props.get(tags.FLAG_STATUS) is None
    assert server_flags(account, "INBOX")["racing"] == {"\\Flagged"}
    again = await sync(store, account)
    assert (again.pushed, again.updated, again.conflicts) == (0, 0, 0)


async def test_a_local_change_made_while_a_pull_deletes_the_message_is_kept(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client deletes a message; the user flags it here after the pull planned the
    deletion and before it applied it: changed here and deleted there, the item is kept in
    Sync Issues/Conflicts (keep-both), not deleted with the change."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("going"))
    await sync(store, account)
    (item,), _ = await store.queries.list(store.folders.roles["inbox"])
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    done = after_the_plan(monkeypatch, store, item.id, {tags.FLAG_STATUS: 2})
    report = await sync(store, account)
    assert done and not report.failed, report
    (kept,), _ = await store.queries.list(store.folders.roles["conflicts"])
    assert kept.props[tags.SUBJECT] == "going" and kept.props.get(tags.FLAG_STATUS) == 2


async def test_a_local_change_made_while_a_deletion_is_written_is_kept(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the user flags the message after the pull last read it clean, as its
    deletion is written: that deletion used to take the change with it. It now finds the
    item changed, and plans it again: kept in Sync Issues/Conflicts."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("going too"))
    await sync(store, account)
    (item,), _ = await store.queries.list(store.folders.roles["inbox"])
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    delete = Items.delete
    done: list[object] = []

    async def user_flags_it_first(self: Items, item_id: int, **kw: Any) -> Any:
        if not done and item_id == item.id and kw.get("origin") == UPSTREAM:
            done.append(await store.items.update(item_id, {tags.FLAG_STATUS: 2}))
        return await delete(self, item_id, **kw)

    monkeypatch.setattr(Items, "delete", user_flags_it_first)
    report = await sync(store, account)
    assert done and not report.failed, report
    (kept,), _ = await store.queries.list(store.folders.roles["conflicts"])
    assert kept.props[tags.SUBJECT] == "going too" and kept.props.get(tags.FLAG_STATUS) == 2


async def test_moves_on_a_server_without_move_or_uidplus(
    store: Store, dovecot_minimal: dv.Dovecot
) -> None:
    """COPY + EXPUNGE, both ways: nothing left behind, nothing twice, the flags kept."""
    account = Account(dovecot_minimal, *dovecot_minimal.add_user())
    adapter = await account.adapter()
    assert not adapter.caps.move and not adapter.caps.uidplus
    await adapter.close()
    m = account.client()
    dv.append(m, "INBOX", dv.message("stays"))
    dv.append(m, "INBOX", dv.message("goes", msgid="<goes@test>"))
    await sync(store, account)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    goes = next(i.id for i in items if i.props[tags.SUBJECT] == "goes")
    archive = await store.folders.create(store.folders.roles["ipm_subtree"], "Archive")
    await store.items.update(goes, {tags.FLAG_STATUS: 2})
    await store.items.move(goes, archive)
    report = await sync(store, account)
    assert not report.failed, report
    assert server_flags(account, "INBOX") == {"stays": set()}
    assert server_flags(account, "Archive") == {"goes": {"\\Flagged"}}
    m.select("INBOX")
    _, data = m.uid("SEARCH", "DELETED")
    assert data == [b""]  # expunged, not left flagged \Deleted
    await store.items.move(goes, store.folders.roles["inbox"])
    report = await sync(store, account)
    assert not report.failed, report
    assert server_flags(account, "INBOX") == {"stays": set(), "goes": {"\\Flagged"}}
    assert server_flags(account, "Archive") == {}
    again = await sync(store, account)
    assert (again.pushed, again.fetched) == (0, 0)
    dovecot_minimal.close_clients()
