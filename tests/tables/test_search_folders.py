"""Search folders in the store: contents equal to the reference evaluator over the scope,
upkeep as items change, move and go, counts, notifications, recursive scopes, the
Reminders folder and the migration of an older store."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.model import evaluate, flags, tags
from bridge.model.named import NamedProp, PSETID_Common
from bridge.model.restrictions import parse
from bridge.store.errors import Conflict, InvalidValue
from bridge.store.events import Subscription
from bridge.store.items import NewItem
from bridge.store.search_folders import Criteria, members
from bridge.store.store import Store
from bridge.store.tables import spec
from bridge.sync.hierarchy import Hierarchy
from bridge.upstream.base import RemoteFolder
from tests.tables.conftest import LoopStore
from tests.tables.test_sql_agrees import items, restrictions

FIXTURES = Path(__file__).parent.parent / "fixtures"
REMINDER_SET = NamedProp(PSETID_Common, lid=0x8503)
BUDGET = {"content": {"prop": "PidTagSubject", "value": "budget", "match": "substring"}}
_names = itertools.count()


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


async def _expected(store: Store, scope: list[int], doc: dict[str, Any]) -> list[int]:
    """The reference evaluator over every item of the scope folders."""
    r = parse(doc, spec.resolver(store.core.named))
    out = []
    for fid in scope:
        listed, _ = await store.queries.list(fid, limit=1000)
        for item in listed:
            row = evaluate.Row(
                item.props,
                await store.queries.recipients(item.id),
                await store.queries.attachments(item.id),
            )
            if evaluate.matches(r, row):
                out.append(item.id)
    return sorted(out)


async def _counts(store: Store, fid: int) -> tuple[int, int]:
    folder = await store.folders.get(fid)
    return folder.content_count, folder.unread_count


async def _unread_of(store: Store, ids: list[int]) -> int:
    n = 0
    for iid in ids:
        props = (await store.queries.get(iid)).props
        n += not props[tags.MESSAGE_FLAGS] & flags.MSGFLAG_READ
    return n


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    top=st.lists(items(), max_size=8),
    below=st.lists(items(), max_size=6),
    doc=restrictions(),
    recursive=st.booleans(),
    changes=st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(["read", "move", "del"])), max_size=6
    ),
)
def test_contents_equal_the_evaluator_over_the_scope(
    loop_store: LoopStore,
    top: list[NewItem],
    below: list[NewItem],
    doc: dict[str, Any],
    recursive: bool,
    changes: list[tuple[int, str]],
) -> None:
    loop_store.run(_check(loop_store.store, top, below, doc, recursive, changes))


async def _check(
    store: Store,
    top: list[NewItem],
    below: list[NewItem],
    doc: dict[str, Any],
    recursive: bool,
    changes: list[tuple[int, str]],
) -> None:
    n = next(_names)
    inbox = store.folders.roles["inbox"]
    parent = await store.folders.create(inbox, f"scope{n}")
    child = await store.folders.create(parent, "child")
    elsewhere = await store.folders.create(inbox, f"elsewhere{n}")
    ids = await store.items.create_many(parent, top) + await store.items.create_many(child, below)
    sf = await store.search_folders.create(
        store.folders.roles["ipm_subtree"], f"search{n}", Criteria(doc, (parent,), recursive)
    )
    scope = [parent, child] if recursive else [parent]

    async def agree() -> None:
        got = await members(store.core.reader, sf)
        assert got == await _expected(store, scope, doc), doc
        assert await _counts(store, sf) == (len(got), await _unread_of(store, got))

    await agree()
    # the links follow the items as they change, move and go
    for index, action in changes:
        if not ids:
            break
        iid = ids[index % len(ids)]
        if action == "read":
            await store.items.update(iid, {tags.READ: True})
        elif action == "move":
            await store.items.move(iid, elsewhere if index % 2 else child)
        else:
            await store.items.delete(iid, hard=True)
            ids.remove(iid)
        await agree()
    await store.folders.delete(sf)  # later examples do not keep it up to date


async def _drain(sub: Subscription) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while True:
        try:
            event = await asyncio.wait_for(sub.get(), 0.05)
        except TimeoutError:
            return out
        out.append((event.type, event.data))


async def test_links_follow_changes_moves_and_deletes(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    other = await store.folders.create(inbox, "Other")
    a = await store.items.create(inbox, NewItem(props={tags.SUBJECT: "budget 2025"}))
    b = await store.items.create(inbox, NewItem(props={tags.SUBJECT: "lunch"}))
    sf = await store.search_folders.create(
        store.folders.roles["ipm_subtree"], "Budget", Criteria(BUDGET, (inbox,), False)
    )
    assert await members(store.core.reader, sf) == [a]
    assert await _counts(store, sf) == (1, 1)
    sub = store.bus.subscribe()

    # a change makes an item match: it enters, the folder's counts follow
    await store.items.update(b, {tags.SUBJECT: "budget review"})
    assert await members(store.core.reader, sf) == [a, b]
    assert await _counts(store, sf) == (2, 2)
    events = await _drain(sub)
    link = {"kind": "item", "id": b, "folder_id": sf, "search_folder": True}
    assert ("object_created", link) in events
    folder_events = [d for t, d in events if t == "object_modified" and d.get("kind") == "folder"]
    assert folder_events[-1]["id"] == sf
    assert (folder_events[-1]["total"], folder_events[-1]["unread"]) == (2, 2)

    # marking read changes the unread count and notifies a modification of the link
    await store.items.update(a, {tags.READ: True})
    assert await _counts(store, sf) == (2, 1)
    events = await _drain(sub)
    modified = [d for t, d in events if t == "object_modified" and d.get("kind") == "item"]
    assert {(d["id"], d["folder_id"]) for d in modified} >= {(a, inbox), (a, sf)}

    # moving out of the scope: the link goes
    await store.items.move(b, other)
    assert await members(store.core.reader, sf) == [a]
    assert await _counts(store, sf) == (1, 0)
    events = await _drain(sub)
    assert ("object_deleted", {**link, "id": b}) in events

    # deleting the item (to Deleted Items, outside the scope) removes the link
    await store.items.delete(a)
    assert await members(store.core.reader, sf) == []
    assert await _counts(store, sf) == (0, 0)
    # ... and the change feed of the search folder reports both departures
    changes = await store.search_folders.changes(sf, None)
    assert sorted(changes.deleted) == [a, b]
    assert changes.created == []
    sub.close()


async def test_change_feed_reports_entries_and_changes(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    sf = await store.search_folders.create(
        store.folders.roles["ipm_subtree"], "Budget", Criteria(BUDGET, (inbox,), False)
    )
    start = (await store.search_folders.changes(sf, None)).state
    a = await store.items.create(inbox, NewItem(props={tags.SUBJECT: "budget"}))
    feed = await store.search_folders.changes(sf, start)
    assert [v.id for v in feed.created] == [a]
    assert feed.created[0].folder_id == inbox  # the real folder
    await store.items.update(a, {tags.IMPORTANCE: 2})
    feed2 = await store.search_folders.changes(sf, feed.state)
    assert [v.id for v in feed2.modified] == [a] and feed2.created == []
    await store.items.update(a, {tags.SUBJECT: "lunch"})
    feed3 = await store.search_folders.changes(sf, feed2.state)
    assert feed3.deleted == [a] and feed3.modified == []


async def test_recursive_scope_and_folder_moves(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    projects = await store.folders.create(inbox, "Projects")
    deep = await store.folders.create(projects, "Deep")
    x = await store.items.create(projects, NewItem(props={tags.SUBJECT: "budget x"}))
    y = await store.items.create(deep, NewItem(props={tags.SUBJECT: "budget y"}))
    top = store.folders.roles["ipm_subtree"]
    flat = await store.search_folders.create(top, "Flat", Criteria(BUDGET, (projects,), False))
    tree = await store.search_folders.create(top, "Tree", Criteria(BUDGET, (projects,), True))
    assert await members(store.core.reader, flat) == [x]
    assert await members(store.core.reader, tree) == [x, y]
    # a folder created later inside the scope is searched too
    later = await store.folders.create(deep, "Later")
    z = await store.items.create(later, NewItem(props={tags.SUBJECT: "budget z"}))
    assert await members(store.core.reader, tree) == [x, y, z]
    # a subtree moved out of the scope takes its items out of the search folder
    await store.folders.update(deep, parent_id=inbox)
    assert await members(store.core.reader, tree) == [x]
    assert await _counts(store, tree) == (1, 1)
    await store.folders.update(deep, parent_id=projects)
    assert await members(store.core.reader, tree) == [x, y, z]
    # a deleted subtree (for good) leaves no links behind
    await store.folders.delete(deep, hard=True)
    assert await members(store.core.reader, tree) == [x]
    assert await _counts(store, tree) == (1, 1)
    # SetSearchCriteria: shallow again, other restriction
    await store.search_folders.set_criteria(
        tree,
        {"content": {"prop": "PidTagSubject", "value": "x", "match": "substring"}},
        None,
        False,
    )
    criteria = await store.search_folders.get_criteria(tree)
    assert criteria.scope == (projects,) and criteria.recursive is False
    assert await members(store.core.reader, tree) == [x]


async def test_links_are_not_items_of_their_own(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    a = await store.items.create(inbox, NewItem(props={tags.SUBJECT: "budget"}))
    top = store.folders.roles["ipm_subtree"]
    sf = await store.search_folders.create(top, "Budget", Criteria(BUDGET, (inbox,), False))
    with pytest.raises(Conflict):
        await store.items.create(sf, NewItem(props={tags.SUBJECT: "budget"}))
    with pytest.raises(Conflict):
        await store.items.move(a, sf)
    with pytest.raises(Conflict):
        await store.folders.create(sf, "Child")
    with pytest.raises(InvalidValue):  # a search folder cannot be searched
        await store.search_folders.create(top, "Meta", Criteria(BUDGET, (sf,), False))
    with pytest.raises(InvalidValue):
        await store.search_folders.create(top, "Nowhere", Criteria(BUDGET, (987654,), False))
    # deleting the search folder removes it, never the items it showed
    await store.folders.delete(sf)
    assert sf not in {f.id for f in await store.folders.all()}
    assert (await store.queries.get(a)).folder_id == inbox
    async with store.core.reader.execute("SELECT count(*) FROM search_log") as cur:
        assert (await cur.fetchone())[0] == 0
    async with store.core.reader.execute(
        "SELECT count(*) FROM search_members WHERE folder_id = ?", (sf,)
    ) as cur:
        assert (await cur.fetchone())[0] == 0


async def test_reminders_folder(store: Store) -> None:
    roles = store.folders.roles
    rem = roles["reminders"]
    folder = await store.folders.get(rem)
    assert folder.folder_type == flags.FOLDER_SEARCH
    assert folder.parent_id == roles["root"]
    assert folder.container_class == "Outlook.Reminder"
    criteria = await store.search_folders.get_criteria(rem)
    assert criteria.scope == (roles["ipm_subtree"],) and criteria.recursive
    due = await store.items.create(
        roles["tasks"], NewItem("IPM.Task", {tags.SUBJECT: "pay"}, {REMINDER_SET: True})
    )
    off = await store.items.create(
        roles["inbox"], NewItem(props={tags.SUBJECT: "no"}, named={REMINDER_SET: False})
    )
    draft = await store.items.create(
        roles["drafts"], NewItem(props={tags.SUBJECT: "draft"}, named={REMINDER_SET: True})
    )
    assert await members(store.core.reader, rem) == [due]
    assert off and draft
    # a reminder set later brings the item in; Deleted Items takes it out
    await store.items.update(off, named={REMINDER_SET: True})
    assert await members(store.core.reader, rem) == [due, off]
    await store.items.delete(off)
    assert await members(store.core.reader, rem) == [due]
    assert await _counts(store, rem) == (1, 1)
    with pytest.raises(Exception, match="belong to the store"):
        await store.search_folders.set_criteria(rem, BUDGET)


async def test_migration_adds_reminders_and_conversations(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.close()
    s = await Store.open(path)
    try:
        rem = s.folders.roles["reminders"]
        assert (await s.folders.get(rem)).folder_type == flags.FOLDER_SEARCH
        assert (await s.search_folders.get_criteria(rem)).recursive
        inbox = s.folders.roles["inbox"]
        listed, _ = await s.queries.list(inbox)
        assert listed and all(tags.CONVERSATION_ID in i.props for i in listed)
        # the counters moved past the folder the migration created
        assert await s.folders.create(inbox, "After") > rem
        iid = await s.items.create(
            inbox, NewItem(props={tags.SUBJECT: "x"}, named={REMINDER_SET: True})
        )
        assert await members(s.core.reader, rem) == [iid]
    finally:
        await s.close()


class _RecordingMail:
    """Just enough of a mail adapter for the hierarchy sync: records what it is asked."""

    def __init__(self, remote: list[RemoteFolder]) -> None:
        self.remote = remote
        self.calls: list[tuple[str, str]] = []

    async def list_folders(self) -> list[RemoteFolder]:
        return self.remote

    async def create_folder(self, name: str) -> None:
        self.calls.append(("create", name))
        self.remote.append(RemoteFolder(name, "/"))

    async def rename_folder(self, old: str, new: str) -> None:
        self.calls.append(("rename", new))

    async def delete_folder(self, name: str) -> None:
        self.calls.append(("delete", name))


async def test_search_folders_never_reach_the_mail_server(store: Store) -> None:
    top = store.folders.roles["ipm_subtree"]
    inbox = store.folders.roles["inbox"]
    real = await store.folders.create(top, "Real")
    sf = await store.search_folders.create(top, "Saved", Criteria(BUDGET, (inbox,), True))
    await store.folders.update(sf, name="Saved search")
    adapter = _RecordingMail([RemoteFolder("INBOX", "/", role="inbox")])
    hierarchy = Hierarchy(store, adapter)  # type: ignore[arg-type]
    synced = await hierarchy.sync()
    assert adapter.calls == [("create", "Real")]
    assert real in synced and sf not in synced
    assert store.folders.roles["reminders"] not in synced
    # a mailbox with the name of a local search folder is not linked to it
    adapter.remote.append(RemoteFolder("Saved search", "/"))
    synced = await hierarchy.sync()
    assert sf not in synced
    assert (await store.folders.get(sf)).folder_type == flags.FOLDER_SEARCH


async def test_reminders_leave_out_whole_subtrees(store: Store) -> None:
    roles = store.folders.roles
    rem = roles["reminders"]
    deep = await store.folders.create(
        await store.folders.create(roles["deleted"], "old projects"), "2023"
    )
    junk_sub = await store.folders.create(roles["junk"], "maybe")
    kept = await store.folders.create(roles["inbox"], "projects")
    reminder = {REMINDER_SET: True}
    in_deep = await store.items.create(deep, NewItem(props={tags.SUBJECT: "a"}, named=reminder))
    in_junk = await store.items.create(junk_sub, NewItem(props={tags.SUBJECT: "b"}, named=reminder))
    in_kept = await store.items.create(kept, NewItem(props={tags.SUBJECT: "c"}, named=reminder))
    assert in_deep and in_junk
    assert await members(store.core.reader, rem) == [in_kept]
    # a folder moved into Deleted Items takes its items out; moved back, they come back
    await store.folders.update(kept, parent_id=roles["deleted"])
    assert await members(store.core.reader, rem) == []
    await store.folders.update(kept, parent_id=roles["inbox"])
    assert await members(store.core.reader, rem) == [in_kept]
    # an item moved out of the subtree comes in
    await store.items.move(in_deep, roles["inbox"])
    assert await members(store.core.reader, rem) == sorted([in_kept, in_deep])
