"""A sync run that carries folder changes made here, cut at every step of it, against a
real Dovecot: the next run finishes the job with nothing lost and nothing twice.

`test_kill.py` kills a real `kbridge serve` at each step of a run carrying item changes.
This does the same for the folder changes (a deletion that must keep what another client
put below it, after a move out of it; a rename; a new folder with an item moved in) in
this process, to keep it short: the step raises an exception no handler takes, and the
store is closed and opened again before the next run, as after a restart (`cuts.py`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.model import tags
from bridge.store.store import Store
from bridge.upstream.imap import ImapAdapter
from tests.integration.conftest import Account, sync
from tests.integration.convergence import assert_converged
from tests.integration.cuts import Cut, collect_leftovers, cut_after, cut_at  # noqa: F401
from tests.integration.test_imap_folders import everything, folder_named, mailboxes, subjects
from tests.servers import dovecot as dv

MAX_STEPS = 40  # far more than one run of this scenario takes
# A cut run leaves what a killed process would leave behind (tasks and coroutines it
# never finished), which the garbage collector reports: not a failure of the bridge.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def prepare(path: Path, account: Account, below: bool) -> dict[str, str]:
    """A synced cache with folder changes made here, and (`below`) a new message put
    into the subfolder of the one deleted here by another client meanwhile. Returns
    subject → Message-ID of the messages that must each end up once."""
    m = account.client()
    ids = {}
    for box, subject in (
        ("Old", "moved out"),
        ("Old", "went with Old"),
        ("Old/Sub", "went with Sub"),
        ("Keep", "moved to New"),
        ("Ren", "renamed with Ren"),
    ):
        if box not in mailboxes(account):
            m.create(box)
        ids[subject] = f"<{subject.replace(' ', '.')}.{time.monotonic_ns()}@test>"
        dv.append(m, box, dv.message(subject, msgid=ids[subject]))
    store = await Store.open(path)
    try:
        await sync(store, account)
        found = await store.folders.all()
        fid = {f.display_name: f.id for f in found}
        items = {}
        for f in found:
            listed, _ = await store.queries.list(f.id)
            items.update({str(i.props.get(tags.SUBJECT)): i.id for i in listed})
        await store.items.move(items["moved out"], store.folders.roles["inbox"])
        await store.folders.delete(fid["Old"], hard=True)
        await store.folders.update(fid["Ren"], name="Renamed")
        new = await store.folders.create(store.folders.roles["ipm_subtree"], "New", "IPF.Note")
        await store.items.move(items["moved to New"], new)
    finally:
        await store.close()
    if below:
        ids["new below"] = f"<new.below.{time.monotonic_ns()}@test>"
        dv.append(m, "Old/Sub", dv.message("new below", msgid=ids["new below"]))
    del ids["went with Old"], ids["went with Sub"]
    return ids


async def check(path: Path, account: Account, ids: dict[str, str], step: str) -> None:
    store = await Store.open(path)
    try:
        report = await sync(store, account)  # after the restart
        assert not report.failed, (step, report)
        await assert_converged(store, account.client(), ids.values())
        assert subjects(account, "INBOX") == ["moved out"], step
        assert subjects(account, "New") == ["moved to New"], step
        assert subjects(account, "Keep") == [], step
        assert subjects(account, "Renamed") == ["renamed with Ren"], step
        assert "Ren" not in mailboxes(account), step
        found = await everything(store)
        if "new below" in ids:
            assert subjects(account, "Old") == [], step  # kept as the parent of Sub
            assert subjects(account, "Old/Sub") == ["new below"], step
            assert found["new below"][0] == "Sub", (step, found)
        else:
            assert not {"Old", "Old/Sub"} & mailboxes(account), step
            assert await folder_named(store, "Sub") is None, step
        assert "went with Old" not in found and "went with Sub" not in found, (step, found)
        assert await folder_named(store, "Ren") is None, step
        again = await sync(store, account)
        assert (again.pushed, again.fetched, again.failed) == (0, 0, []), (step, again)
    finally:
        await store.close()
        account.server.close_clients()


@pytest.mark.parametrize("below", [False, True], ids=["deleted", "kept for a new message"])
async def test_a_run_with_folder_changes_cut_at_every_step(
    dovecot: dv.Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, below: bool
) -> None:
    steps: list[str] = []
    for n in range(1, MAX_STEPS + 1):
        account = Account(dovecot, *dovecot.add_user())
        path = tmp_path / f"run{n}.sqlite"
        ids = await prepare(path, account, below)
        reached = cut_after(monkeypatch, n)
        store = await Store.open(path)
        try:
            try:
                await sync(store, account)
            except Cut as cut:
                steps.append(str(cut))
            else:
                break  # the run has fewer than n steps: every one of them was cut
        finally:
            await store.close()
            monkeypatch.undo()
        await check(path, account, ids, steps[-1])
        assert len(reached) == n
    else:
        raise AssertionError(f"a sync run took more than {MAX_STEPS} steps")
    assert len(steps) >= 6, steps  # the folder, move and pull steps were all reached


@pytest.mark.parametrize("source", ["Aaa", "Zzz"])
async def test_a_move_cut_after_the_server_made_it(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The run stops after the server moved the message, before the answer is kept:
    the next run finds the moved copy for the item, whichever mailbox it pulls first."""
    m = account.client()
    m.create(source)
    msgid = f"<moved.{time.monotonic_ns()}@test>"
    dv.append(m, source, dv.message("moved", msgid=msgid))
    await sync(store, account)
    fid = await folder_named(store, source)
    assert fid is not None
    (item,), _ = await store.queries.list(fid)
    await store.items.move(item.id, store.folders.roles["inbox"])

    cut_at(monkeypatch, "moved on the server")
    with pytest.raises(Cut):
        await sync(store, account)
    monkeypatch.undo()
    report = await sync(store, account)
    assert not report.failed, report
    await assert_converged(store, account.client(), [msgid])
    assert subjects(account, "INBOX") == ["moved"]
    assert (await store.queries.list(store.folders.roles["conflicts"]))[0] == []


async def test_a_refused_move_leaves_no_note_of_a_move_in_flight(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers NO to a MOVE (here: a mailbox it does not have), so nothing was
    moved: the item is not noted as moving. When another client then deletes the message,
    the local move meets that deletion as any other local change does (kept in
    Sync Issues/Conflicts), instead of being taken for a move whose answer was lost and
    uploaded to the mailbox it was moved to."""
    m = account.client()
    m.create("Src")
    msgid = f"<refused.{time.monotonic_ns()}@test>"
    dv.append(m, "Src", dv.message("refused", msgid=msgid))
    await sync(store, account)
    fid = await folder_named(store, "Src")
    assert fid is not None
    (item,), _ = await store.queries.list(fid)
    await store.items.move(item.id, store.folders.roles["inbox"])

    move = ImapAdapter.move

    async def refused(self: ImapAdapter, uid: int, mailbox: str) -> int | None:
        return await move(self, uid, "No such mailbox here")  # answered NO [TRYCREATE]

    monkeypatch.setattr(ImapAdapter, "move", refused)
    report = await sync(store, account)
    assert report.failed, report
    monkeypatch.undo()
    m.select("Src")
    m.uid("STORE", "1:*", "+FLAGS", "(\\Deleted)")
    m.expunge()

    report = await sync(store, account)
    assert not report.failed, report
    assert subjects(account, "INBOX") == []
    kept, _ = await store.queries.list(store.folders.roles["conflicts"])
    assert [i.props.get(tags.SUBJECT) for i in kept] == ["refused"]
    assert (await store.queries.list(store.folders.roles["inbox"]))[0] == []
    assert await store.queries.journal_pending() == 0
