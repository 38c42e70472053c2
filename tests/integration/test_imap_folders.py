"""Mailboxes deleted or renamed on the server (by another client) while the local folder
holds work that has not gone up yet, against a real Dovecot: nothing of it is lost, and a
rename is followed without fetching the messages again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.model import tags
from bridge.store.core import UPSTREAM
from bridge.store.folders import Folders
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from tests.integration.conftest import Account, sync
from tests.integration.test_imap_sync import server_flags
from tests.servers import dovecot as dv


async def folder_named(store: Store, name: str) -> int | None:
    return next((f.id for f in await store.folders.all() if f.display_name == name), None)


async def everything(store: Store) -> dict[str, tuple[str, bool]]:
    """Subject → (folder name, read) of every item of the store."""
    out: dict[str, tuple[str, bool]] = {}
    for f in await store.folders.all():
        items, _ = await store.queries.list(f.id, limit=500)
        for i in items:
            out[str(i.props.get(tags.SUBJECT))] = (f.display_name, bool(i.props.get(tags.READ)))
    return out


def mailboxes(account: Account) -> set[str]:
    _, data = account.client().list()
    return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in data if line}


async def test_an_item_made_here_survives_its_folder_deleted_on_the_server(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Proj")
    dv.append(m, "Proj", dv.message("p0"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    mine = item_from_rfc822(dv.message("mine", msgid="<mine@local>"))
    await store.items.create(proj, mine)  # not uploaded yet
    events = store.bus.subscribe()
    m.delete("Proj")
    report = await sync(store, account)
    assert not report.failed, report
    assert await folder_named(store, "Proj") is None
    found = await everything(store)
    assert found["mine"][0] == "Conflicts"
    assert "p0" not in found  # the server's copy went with the mailbox
    assert "Proj" not in mailboxes(account)  # not brought back
    assert await store.queries.journal_pending() == 0
    kinds = []
    while not events._queue.empty():
        kinds.append((await events.get()).type)
    events.close()
    assert "sync_conflict" in kinds
    again = await sync(store, account)
    assert again.pushed == 0 and again.fetched == 0 and not again.failed


async def test_an_item_made_here_as_its_folder_is_deleted_survives(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user makes an item in a folder whose mailbox another client deleted, after
    the run kept the folder's local work, as it deletes the folder: that deletion used to
    take the new item with it. It now finds the folder changed, and keeps its work again."""
    m = account.client()
    m.create("Proj")
    dv.append(m, "Proj", dv.message("p0"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    m.delete("Proj")
    delete = Folders.delete
    done: list[int] = []

    async def user_makes_an_item_first(self: Folders, folder_id: int, **kw: Any) -> None:
        if not done and folder_id == proj and kw.get("origin") == UPSTREAM:
            mine = item_from_rfc822(dv.message("late", msgid="<late@local>"))
            done.append(await store.items.create(folder_id, mine))
        await delete(self, folder_id, **kw)

    monkeypatch.setattr(Folders, "delete", user_makes_an_item_first)
    report = await sync(store, account)
    assert done and not report.failed, report
    assert await folder_named(store, "Proj") is None
    assert (await everything(store))["late"][0] == "Conflicts"
    assert await store.queries.journal_pending() == 0


async def test_a_message_moved_into_a_folder_deleted_on_the_server_goes_back(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Dest")
    dv.append(m, "INBOX", dv.message("i0"))
    await sync(store, account)
    dest = await folder_named(store, "Dest")
    assert dest is not None
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.update(items[0].id, {tags.READ: True})
    await store.items.move(items[0].id, dest)
    m.delete("Dest")
    report = await sync(store, account)
    assert not report.failed, report
    # the server has it in the Inbox: there it stays, with the change made here
    assert (await everything(store))["i0"] == ("Inbox", True)
    assert server_flags(account, "INBOX") == {"i0": {"\\Seen"}}
    again = await sync(store, account)
    assert again.pushed == 0 and again.fetched == 0 and not again.failed
    assert server_flags(account, "INBOX") == {"i0": {"\\Seen"}}


async def test_work_in_a_subfolder_survives_its_parent_deleted_on_the_server(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("Top")
    m.create("Top/Sub")
    dv.append(m, "Top/Sub", dv.message("s0"))
    dv.append(m, "Top/Sub", dv.message("s1"))
    await sync(store, account)
    sub = await folder_named(store, "Sub")
    assert sub is not None
    items, _ = await store.queries.list(sub)
    changed = next(i.id for i in items if i.props[tags.SUBJECT] == "s0")
    await store.items.update(changed, {tags.READ: True})
    m.delete("Top/Sub")
    m.delete("Top")
    report = await sync(store, account)
    assert not report.failed, report
    found = await everything(store)
    assert found["s0"] == ("Conflicts", True)  # changed here: kept
    assert "s1" not in found  # unchanged: went with the mailbox
    assert await folder_named(store, "Top") is None


async def test_moves_out_of_and_deletions_in_a_mailbox_deleted_on_the_server(
    store: Store, account: Account
) -> None:
    """A message moved out here is uploaded where it is now (the server's copy went with
    the mailbox); a deletion made here has nothing left to do, and does not fail."""
    m = account.client()
    m.create("Old")
    dv.append(m, "Old", dv.message("out"))
    dv.append(m, "Old", dv.message("bin"))
    await sync(store, account)
    old = await folder_named(store, "Old")
    assert old is not None
    items, _ = await store.queries.list(old)
    by_subject = {i.props[tags.SUBJECT]: i.id for i in items}
    await store.items.move(by_subject["out"], store.folders.roles["inbox"])
    await store.items.delete(by_subject["bin"], hard=True)
    m.delete("Old")
    report = await sync(store, account)
    assert not report.failed, report
    assert set(server_flags(account, "INBOX")) == {"out"}
    assert (await everything(store))["out"][0] == "Inbox"
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert again.pushed == 0 and again.fetched == 0 and not again.failed
    assert set(server_flags(account, "INBOX")) == {"out"}


async def test_a_rename_on_the_server_is_followed_with_nothing_fetched_again(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("A")
    m.create("A/Inner")
    for i in range(3):
        dv.append(m, "A", dv.message(f"a{i}"))
    dv.append(m, "A/Inner", dv.message("deep"))
    await sync(store, account)
    a, inner = await folder_named(store, "A"), await folder_named(store, "Inner")
    assert a is not None and inner is not None
    before, _ = await store.queries.list(a)
    await store.items.update(before[0].id, {tags.READ: True})  # waits to go up
    m.rename("A", "B")
    report = await sync(store, account)
    assert not report.failed, report
    assert report.fetched == 0, report
    assert await folder_named(store, "B") == a  # the same folder, renamed
    assert await folder_named(store, "A") is None
    assert await folder_named(store, "Inner") == inner
    after, _ = await store.queries.list(a)
    assert sorted(i.id for i in after) == sorted(i.id for i in before)
    subject = before[0].props[tags.SUBJECT]
    assert server_flags(account, "B")[subject] == {"\\Seen"}
    assert set(server_flags(account, "B/Inner")) == {"deep"}
    assert "A" not in mailboxes(account)
    # and back here: a rename made here goes up as before
    await store.folders.update(a, name="C")
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert {"C", "C/Inner"} <= mailboxes(account)


async def test_a_mailbox_made_anew_with_the_same_messages_is_followed_too(
    store: Store, account: Account
) -> None:
    """Deleted, and another made with the same messages (a new UIDVALIDITY, as a rename
    and a reset, or a copy of everything, make it): the folder follows, its messages are
    matched by Message-ID, nothing is fetched again, and the change made here goes up."""
    m = account.client()
    m.create("X")
    raws = [dv.message(f"x{i}") for i in range(2)]
    for raw in raws:
        dv.append(m, "X", raw)
    await sync(store, account)
    x = await folder_named(store, "X")
    assert x is not None
    items, _ = await store.queries.list(x)
    await store.items.update(items[0].id, {tags.READ: True})
    m.delete("X")
    await asyncio.sleep(1.1)  # Dovecot's UIDVALIDITY is a timestamp
    m.create("Y")
    for raw in raws:
        dv.append(m, "Y", raw)
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert await folder_named(store, "Y") == x
    assert await folder_named(store, "X") is None
    subject = str(items[0].props[tags.SUBJECT])
    assert server_flags(account, "Y")[subject] == {"\\Seen"}
    conflicts, _ = await store.queries.list(store.folders.roles["conflicts"])
    assert conflicts == []


async def test_a_new_mailbox_with_other_messages_is_not_taken_for_a_rename(
    store: Store, account: Account
) -> None:
    m = account.client()
    m.create("X")
    dv.append(m, "X", dv.message("x0"))
    await sync(store, account)
    x = await folder_named(store, "X")
    m.delete("X")
    m.create("Y")
    dv.append(m, "Y", dv.message("y0"))
    report = await sync(store, account)
    assert not report.failed and report.fetched == 1, report
    y = await folder_named(store, "Y")
    assert y is not None and y != x
    assert await folder_named(store, "X") is None
    assert set(await everything(store)) == {"y0"}


async def test_renamed_here_and_renamed_or_deleted_there_the_server_wins(
    store: Store, account: Account
) -> None:
    """The RENAME of a mailbox another client renamed or deleted first fails; that used to
    fail every sync run from then on. Now the server's change wins."""
    m = account.client()
    m.create("W")
    m.create("V")
    dv.append(m, "W", dv.message("w0"))
    dv.append(m, "V", dv.message("v0"))
    await sync(store, account)
    w, v = await folder_named(store, "W"), await folder_named(store, "V")
    assert w is not None and v is not None
    await store.folders.update(w, name="Mine")
    await store.folders.update(v, name="Ours")
    m.rename("W", "Theirs")
    m.delete("V")
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert await folder_named(store, "Theirs") == w
    assert await folder_named(store, "Ours") is None
    assert {"Mine", "Ours", "W", "V"}.isdisjoint(mailboxes(account))
    assert (await everything(store)) == {"w0": ("Theirs", False)}
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert not again.failed and again.fetched == 0 and again.pushed == 0, again


async def test_a_folder_the_server_will_not_make_blocks_nothing_else(
    store: Store, account: Account
) -> None:
    """A folder name the server refuses (too long for Dovecot once encoded) used to fail
    every run from then on, new mail included. Now that folder's change is reported and
    kept for the next run; a message moved into it stays on the server meanwhile."""
    m = account.client()
    dv.append(m, "INBOX", dv.message("moved"))
    await sync(store, account)
    long = await store.folders.create(store.folders.roles["ipm_subtree"], "ä" * 200)
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.move(items[0].id, long)
    dv.append(m, "INBOX", dv.message("new mail"))
    report = await sync(store, account)
    assert report.fetched == 1, report
    assert any("too long" in f for f in report.failed), report.failed
    assert any("not on the server" in f for f in report.failed), report.failed
    assert set(server_flags(account, "INBOX")) == {"moved", "new mail"}  # nothing expunged
    assert (await everything(store))["moved"][0] == "ä" * 200
    await store.folders.update(long, name="Short")
    report = await sync(store, account)
    assert not report.failed, report
    assert set(server_flags(account, "Short")) == {"moved"}
    assert set(server_flags(account, "INBOX")) == {"new mail"}
    assert await store.queries.journal_pending() == 0


async def test_deletions_made_here_follow_a_mailbox_made_anew(
    store: Store, account: Account
) -> None:
    """Every cached message of the folder deleted here, the mailbox renamed and reset on
    the server: the deletions' Message-IDs still tell the mailboxes apart, and the
    messages do not come back."""
    m = account.client()
    m.create("X")
    raws = [dv.message(f"x{i}") for i in range(2)]
    for raw in raws:
        dv.append(m, "X", raw)
    await sync(store, account)
    x = await folder_named(store, "X")
    assert x is not None
    items, _ = await store.queries.list(x)
    for item in items:
        await store.items.delete(item.id, hard=True)
    m.delete("X")
    await asyncio.sleep(1.1)  # Dovecot's UIDVALIDITY is a timestamp
    m.create("Y")
    for raw in raws:
        dv.append(m, "Y", raw)
    report = await sync(store, account)
    assert not report.failed and report.fetched == 0, report
    assert await folder_named(store, "Y") == x
    assert server_flags(account, "Y") == {}
    assert await everything(store) == {}


async def test_a_rename_is_followed_when_its_cached_messages_left_meanwhile(
    store: Store, account: Account
) -> None:
    """Renamed, and the one message cached from it moved away by the other client: no
    message contradicts the rename, so it is followed, and a draft filed here goes up into
    the renamed mailbox (not aside into Sync Issues)."""
    m = account.client()
    m.create("Work")
    dv.append(m, "Work", dv.message("w0"))
    await sync(store, account)
    work = await folder_named(store, "Work")
    assert work is not None
    await store.items.create(work, item_from_rfc822(dv.message("filed", msgid="<filed@x>")))
    m.select("Work")
    m.uid("MOVE", "1", "INBOX")
    m.select("INBOX")
    m.rename("Work", "Done")
    report = await sync(store, account)
    assert not report.failed, report
    assert await folder_named(store, "Done") == work
    assert set(server_flags(account, "Done")) == {"filed"}
    assert set(server_flags(account, "INBOX")) == {"w0"}
    found = await everything(store)
    assert found == {"filed": ("Done", False), "w0": ("Inbox", False)}


async def test_a_rename_the_server_refuses_leaves_items_in_the_folders_mailbox(
    store: Store, account: Account
) -> None:
    """Renamed here to a name another mailbox has on the server: the RENAME is refused and
    reported; a message moved into the folder meanwhile goes to the folder's own mailbox,
    not into that other one."""
    m = account.client()
    m.create("A")
    dv.append(m, "INBOX", dv.message("mine"))
    await sync(store, account)
    a = await folder_named(store, "A")
    assert a is not None
    await store.folders.update(a, name="B")
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.move(items[0].id, a)
    m.create("B")  # another client, before this one's rename goes up
    report = await sync(store, account)
    assert any("RENAME" in f for f in report.failed), report.failed
    assert set(server_flags(account, "A")) == {"mine"}
    assert server_flags(account, "B") == {}


def subjects(account: Account, mailbox: str) -> list[str]:
    """The subjects of the mailbox's messages, one per copy."""
    m = account.client()
    m.select(f'"{mailbox}"', readonly=True)
    _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [p[1].decode().split(":", 1)[1].strip() for p in data if isinstance(p, tuple)]


async def test_moved_here_and_moved_there_before_its_mailbox_went_one_copy_stays(
    store: Store, account: Account
) -> None:
    """Moved to Deleted Items here; moved to INBOX by another client, which then deleted
    the mailbox. The message the server has in INBOX is the one moved here: it is taken
    for it (and moved to Trash), not uploaded again beside it."""
    m = account.client()
    m.create("Old")
    dv.append(m, "Old", dv.message("both", msgid="<both@test>"))
    await sync(store, account)
    old = await folder_named(store, "Old")
    assert old is not None
    (item,), _ = await store.queries.list(old)
    await store.items.delete(item.id)  # into Deleted Items
    m.select("Old")
    typ, _ = m.uid("MOVE", "1:*", "INBOX")
    assert typ == "OK"
    m.close()
    m.delete("Old")
    report = await sync(store, account)
    assert not report.failed, report
    on_server = subjects(account, "INBOX") + subjects(account, "Trash")
    assert on_server == ["both"], on_server
    mine = [
        f.display_name
        for f in await store.folders.all()
        for i in (await store.queries.list(f.id))[0]
        if i.props.get(tags.SUBJECT) == "both"
    ]
    assert mine == ["Deleted Items"], mine
    assert subjects(account, "Trash") == ["both"]  # the move made here holds
    again = await sync(store, account)
    assert again.pushed == 0 and again.fetched == 0 and not again.failed


async def test_a_folder_deleted_here_keeps_what_another_client_put_in_it(
    store: Store, account: Account
) -> None:
    """Deleted here for good while another client put a message into it: the messages
    the user saw go, the new one stays, on the server and here."""
    m = account.client()
    m.create("Proj")
    dv.append(m, "Proj", dv.message("seen"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    await store.folders.delete(proj, hard=True)
    dv.append(m, "Proj", dv.message("new there"))
    report = await sync(store, account)
    assert not report.failed, report
    on_server = {box: subjects(account, box) for box in mailboxes(account)}
    assert [s for box in on_server.values() for s in box] == ["new there"], on_server
    found = await everything(store)
    assert "new there" in found and "seen" not in found, found
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert again.pushed == 0 and again.fetched == 0 and not again.failed


async def test_a_folder_deleted_here_after_moves_and_deletions_out_of_it(
    store: Store, account: Account
) -> None:
    """A message moved out of the folder before it was deleted leaves the mailbox by a
    MOVE (not lost with it, not uploaded again); one deleted in it first goes with it;
    the mailbox is deleted in the same run and does not come back."""
    m = account.client()
    m.create("Proj")
    dv.append(m, "Proj", dv.message("keep", msgid="<keep@test>"))
    dv.append(m, "Proj", dv.message("drop"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    items, _ = await store.queries.list(proj)
    by_subject = {i.props[tags.SUBJECT]: i.id for i in items}
    await store.items.move(by_subject["keep"], store.folders.roles["inbox"])
    await store.items.delete(by_subject["drop"], hard=True)
    await store.folders.delete(proj, hard=True)
    report = await sync(store, account)
    assert not report.failed, report
    assert "Proj" not in mailboxes(account)
    assert subjects(account, "INBOX") == ["keep"]
    found = await everything(store)
    assert found["keep"][0] == "Inbox" and "drop" not in found
    assert await folder_named(store, "Proj") is None
    assert await store.queries.journal_pending() == 0
    again = await sync(store, account)
    assert (again.pushed, again.fetched, again.failed) == (0, 0, [])
    assert await folder_named(store, "Proj") is None


async def test_a_folder_deleted_here_after_a_deletion_in_it(store: Store, account: Account) -> None:
    m = account.client()
    m.create("Proj")
    dv.append(m, "Proj", dv.message("drop"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    (item,), _ = await store.queries.list(proj)
    await store.items.delete(item.id, hard=True)
    await store.folders.delete(proj, hard=True)
    report = await sync(store, account)
    assert not report.failed, report
    assert "Proj" not in mailboxes(account)
    assert await store.queries.journal_pending() == 0


async def test_a_folder_made_here_and_there_with_the_same_name_becomes_one(
    store: Store, account: Account
) -> None:
    await sync(store, account)
    mine = await store.folders.create(store.folders.roles["ipm_subtree"], "Same", "IPF.Note")
    await store.items.create(mine, item_from_rfc822(dv.message("from here", msgid="<h@l>")))
    m = account.client()
    m.create("Same")
    dv.append(m, "Same", dv.message("from there"))
    report = await sync(store, account)
    assert not report.failed, report
    assert sorted(subjects(account, "Same")) == ["from here", "from there"]
    found = await everything(store)
    assert found["from here"][0] == found["from there"][0] == "Same", found
    assert [f.display_name for f in await store.folders.all()].count("Same") == 1
    again = await sync(store, account)
    assert (again.pushed, again.fetched, again.failed) == (0, 0, [])


async def test_a_parent_deleted_here_stays_for_what_another_client_put_below_it(
    store: Store, account: Account
) -> None:
    """The parent stays on the server for its subfolder's new message, but without the
    messages the user deleted with it."""
    m = account.client()
    m.create("Proj")
    m.create("Proj/Sub")
    dv.append(m, "Proj", dv.message("seen above"))
    dv.append(m, "Proj/Sub", dv.message("seen below"))
    await sync(store, account)
    proj = await folder_named(store, "Proj")
    assert proj is not None
    await store.folders.delete(proj, hard=True)
    dv.append(m, "Proj/Sub", dv.message("new below"))
    report = await sync(store, account)
    assert not report.failed, report
    assert subjects(account, "Proj") == []
    assert subjects(account, "Proj/Sub") == ["new below"]
    found = await everything(store)
    assert found["new below"][0] == "Sub"
    assert "seen above" not in found and "seen below" not in found, found
    again = await sync(store, account)
    assert (again.pushed, again.fetched, again.failed) == (0, 0, [])
