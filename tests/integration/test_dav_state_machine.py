"""The CalDAV / CardDAV sync as a state machine (Hypothesis), against a real Radicale:
random local changes through the store (new events and contacts, new names, deletions,
hard or into Deleted Items, moves between two calendars or two address books), a second
client's changes over plain HTTP (new resources, changed ones, deletions, moves to the
other collection), expired sync tokens, interleaved with sync runs (by a runner kept
between runs, as the background service keeps one, or by a new one).

A model follows each object: its version on the server, here, and at the last sync. A
sync run settles it by the conflict policy, keep-both (the default) or server-wins: a
change on one side only goes to the other; changed on both sides, the server's version
(or its deletion) wins in place, and under keep-both the local one is kept in Sync
Issues/Conflicts (moved there when the server deleted the object, copied when it changed
it); deleted here and changed on the server, the server's version comes back (README,
Limits: a 412 on a DELETE lets the server's newer version come back).

At every step no UID is twice in a synced folder. After two final syncs: every collection
and its folder hold the same objects, each UID once, with the same names, and they are the
model's (nothing made and not deleted is lost, nothing deleted comes back unasked);
Sync Issues/Conflicts holds exactly the local versions the model kept aside; no DAV entry
is left in the journal.

KBRIDGE_DAV_SM_EXAMPLES sets the number of examples (CI: a few); KBRIDGE_DAV_SM_SHRINK=1
shrinks a failure (slow: every step talks to the server).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bridge.model import classes, tags
from bridge.store.items import NewItem
from bridge.store.store import Store
from bridge.sync.dav_scope import dav_entry_ids
from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import DavSettings
from tests.integration.test_dav_sync import Other, appointment, ical, vcard, vevent
from tests.servers import radicale as rad

# collection → (kind, display name); the first of each kind links to the default folder
COLLECTIONS = {
    "calendar": ("event", "Calendar"),
    "work": ("event", "Work"),
    "contacts": ("contact", "Contacts"),
    "friends": ("contact", "Friends"),
}
KINDS = ("event", "contact")
MAX_OBJECTS = 15
SEEDS = 2

# Which object a change is made to: the first few more often, for changes on both sides.
PICK = st.integers(0, 2) | st.integers(0, MAX_OBJECTS)

Place = tuple[str, str]  # (collection, name)


@dataclass
class Obj:
    key: int
    kind: str
    uid: str | None = None  # None: made here and not uploaded yet
    item_id: int | None = None  # the local item while it has no UID
    base: Place | None = None  # both sides at the last sync
    server: Place | None = None
    local: Place | None = None
    dirty: bool = False  # edited or deleted here since the last sync (not moved)
    log: list[str] = field(default_factory=list)


def _ext(kind: str) -> str:
    return ".vcf" if kind == "contact" else ".ics"


def _colls(kind: str) -> list[str]:
    return [c for c, (k, _) in COLLECTIONS.items() if k == kind]


def _fields(data: bytes) -> tuple[str | None, str | None]:
    """(UID, SUMMARY or FN) of a resource."""
    text = re.sub(r"\r?\n[ \t]", "", data.decode())
    uid = re.search(r"^UID[^:\r\n]*:(.*)$", text, re.MULTILINE)
    name = re.search(r"^(?:SUMMARY|FN)[^:\r\n]*:(.*)$", text, re.MULTILINE)
    return (uid.group(1).strip() if uid else None, name.group(1).strip() if name else None)


class DavSyncMachine(RuleBasedStateMachine):
    server: ClassVar[rad.Radicale]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="kbridge-dav-sm-"))
        self.user, self.password = self.server.add_user()
        self.other: Other = self.run(self._other())
        self.store: Store = self.run(Store.open(self.tmp / "store.sqlite"))
        self.policy = "keep-both"
        self.runner = self._runner()
        self.objs: list[Obj] = []
        self.aside: list[str] = []  # names of the local versions kept in Conflicts
        self.names = 0
        self.expired = 0
        self.trace: list[str] = []
        for coll, (kind, name) in COLLECTIONS.items():
            if kind == "event":
                self.run(self.other.mkcalendar(coll, name, "VEVENT"))
            else:
                self.run(self.other.mkaddressbook(coll, name))
        for n in range(SEEDS):
            for kind in KINDS:
                self._server_new(kind, _colls(kind)[n % 2])
        self._sync()
        refs = self.run(self.store.dav_refs.folder_refs())
        self.folders = {
            coll: next(f for f, ref in refs.items() if ref["href"] == self.other.href(coll))
            for coll in COLLECTIONS
        }

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _other(self) -> Other:
        return Other(self.server, self.user, self.password)

    def _runner(self) -> DavRunner:
        settings = DavSettings(self.other.base + "/", self.user, self.password)
        return DavRunner(
            self.store,
            [DavEndpoint("caldav", settings), DavEndpoint("carddav", settings)],
            DavOptions(policy=self.policy),
            adapter_factory=HttpDavAdapter,
        )

    def _name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def _note(self, obj: Obj | None, what: str) -> None:
        line = f"{len(self.trace)}: {what}"
        self.trace.append(line)
        if obj is not None:
            obj.log.append(line)

    # -- the sync -------------------------------------------------------------------------

    def _sync(self, fresh: bool = False) -> None:
        if fresh:
            self.run(self.runner.close())
            self.runner = self._runner()
        self.run(asyncio.wait_for(self.runner.run(strict=True), 60))
        for service, st_ in self.runner.status().items():
            run = st_["last_run"]
            assert not run["failed"] and not run["malformed"], (service, run, self.trace)
        self._note(None, f"sync{' (new runner)' if fresh else ''}")
        # What was made here now has a UID.
        for obj in self.objs:
            if obj.uid is None and obj.item_id is not None:
                item = self.run(self.store.dav_refs.item(obj.item_id))
                if item is not None and item.uid and not (item.upstream or {}).get("pending"):
                    obj.uid = item.uid
        for obj in self.objs:
            self._settle(obj)

    def _settle(self, obj: Obj) -> None:
        """The model of one run (keep-both or server-wins)."""
        local_changed = obj.dirty or obj.local != obj.base
        server_changed = obj.server != obj.base
        if local_changed and server_changed:
            if obj.local is not None and self.policy == "keep-both":
                # The server's version (or its deletion) wins, the local one is kept aside
                # (also when both sides moved it to the same place).
                self.aside.append(obj.local[1])
            # Deleted here and changed there: the server's version comes back.
            obj.local = obj.server
        elif local_changed:
            obj.server = obj.local
        elif server_changed:
            obj.local = obj.server
        obj.base = obj.local
        obj.dirty = False

    @initialize(policy=st.sampled_from(["keep-both", "keep-both", "server-wins"]))
    def conflict_policy(self, policy: str) -> None:
        self.policy = policy
        self.run(self.runner.close())
        self.runner = self._runner()
        self._note(None, f"policy {policy}")

    @rule()
    def sync(self) -> None:
        self._sync()

    @rule()
    def sync_with_a_new_runner(self) -> None:
        self._sync(fresh=True)

    @precondition(lambda self: self.expired < 2)
    @rule()
    def expire_sync_tokens(self) -> None:
        """Radicale forgets the tokens it handed out when its cache goes."""
        home = self.server.root / "collections" / "collection-root" / self.user
        for cache in home.rglob(".Radicale.cache"):
            shutil.rmtree(cache / "sync-token", ignore_errors=True)
        self.expired += 1
        self._note(None, "sync tokens expired")

    # -- local changes --------------------------------------------------------------------

    def _pick(self, i: int, side: str) -> Obj | None:
        """The i-th object (the same for both sides), if it is on that side."""
        obj = self.objs[i % len(self.objs)]
        return obj if getattr(obj, side) is not None else None

    async def _local_item(self, obj: Obj) -> tuple[int, int] | None:
        """(item id, folder id) of the object's item in a synced folder, if there."""
        synced = tuple(self.folders.values())
        marks = ",".join("?" * len(synced))
        if obj.uid is not None:
            sql = (
                f"SELECT id, folder_id FROM items WHERE folder_id IN ({marks}) "
                "AND json_extract(upstream, '$.dav_uid') = ?"
            )
            args: tuple[Any, ...] = (*synced, obj.uid)
        else:
            sql = f"SELECT id, folder_id FROM items WHERE folder_id IN ({marks}) AND id = ?"
            args = (*synced, obj.item_id)
        async with self.store.core.reader.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    @precondition(lambda self: len(self.objs) < MAX_OBJECTS)
    @rule(kind=st.sampled_from(KINDS), n=st.integers(0, 1))
    def local_create(self, kind: str, n: int) -> None:
        coll = _colls(kind)[n]
        name = self._name("L")
        if kind == "event":
            new = appointment(name, 1 + self.names % 28)
        else:
            new = NewItem(classes.IPM_CONTACT, {tags.SUBJECT: name, tags.DISPLAY_NAME: name})
        item_id = self.run(self.store.items.create(self.folders[coll], new))
        obj = Obj(len(self.objs), kind, item_id=item_id, local=(coll, name))
        self.objs.append(obj)
        self._note(obj, f"local create {kind} {name} in {coll} (item {item_id})")

    @rule(i=PICK)
    def local_edit(self, i: int) -> None:
        obj = self._pick(i, "local")
        found = self.run(self._local_item(obj)) if obj is not None else None
        if obj is None or obj.local is None or found is None:
            return
        name = self._name("E")
        props: dict[int, Any] = {tags.SUBJECT: name}
        if obj.kind == "contact":
            props[tags.DISPLAY_NAME] = name
        self.run(self.store.items.update(found[0], props))
        obj.local = (obj.local[0], name)
        obj.dirty = True
        self._note(obj, f"local edit {obj.uid or obj.item_id} → {name}")

    @rule(i=PICK, hard=st.booleans())
    def local_delete(self, i: int, hard: bool) -> None:
        obj = self._pick(i, "local")
        found = self.run(self._local_item(obj)) if obj is not None else None
        if obj is None or found is None:
            return
        self.run(self.store.items.delete(found[0], hard=hard))
        obj.local = None
        obj.dirty = True
        self._note(obj, f"local delete {obj.uid or obj.item_id} (hard={hard})")

    @rule(i=PICK)
    def local_move(self, i: int) -> None:
        """To the other calendar or address book."""
        obj = self._pick(i, "local")
        found = self.run(self._local_item(obj)) if obj is not None else None
        if obj is None or obj.local is None or found is None:
            return
        here = next(c for c, f in self.folders.items() if f == found[1])
        (there,) = [c for c in _colls(obj.kind) if c != here]
        self.run(self.store.items.move(found[0], self.folders[there]))
        obj.local = (there, obj.local[1])  # (away and back again is no change)
        self._note(obj, f"local move {obj.uid or obj.item_id} {here} → {there}")

    # -- the other client ---------------------------------------------------------------

    def _resource(self, kind: str, uid: str, name: str) -> bytes:
        return vcard(uid, name) if kind == "contact" else ical(vevent(uid, name))

    def _server_new(self, kind: str, coll: str) -> None:
        name = self._name("S")
        uid = f"sm-{name.lower()}"
        self.run(self.other.put(coll, uid + _ext(kind), self._resource(kind, uid, name)))
        obj = Obj(len(self.objs), kind, uid=uid, server=(coll, name))
        self.objs.append(obj)
        self._note(obj, f"server create {kind} {uid} {name} in {coll}")

    async def _server_etag(self, obj: Obj) -> str | None:
        assert obj.server is not None and obj.uid is not None
        path = self.other.href(obj.server[0], obj.uid + _ext(obj.kind))
        status, _, etag = await self.other.request("GET", path)
        return etag if status == 200 else None

    @precondition(lambda self: len(self.objs) < MAX_OBJECTS)
    @rule(kind=st.sampled_from(KINDS), n=st.integers(0, 1))
    def server_create(self, kind: str, n: int) -> None:
        self._server_new(kind, _colls(kind)[n])

    @rule(i=PICK)
    def server_edit(self, i: int) -> None:
        obj = self._pick(i, "server")
        etag = self.run(self._server_etag(obj)) if obj is not None else None
        if obj is None or obj.server is None or obj.uid is None or etag is None:
            return
        name = self._name("T")
        coll = obj.server[0]
        data = self._resource(obj.kind, obj.uid, name)
        self.run(self.other.put(coll, obj.uid + _ext(obj.kind), data, etag))
        obj.server = (coll, name)
        self._note(obj, f"server edit {obj.uid} → {name}")

    @rule(i=PICK)
    def server_move(self, i: int) -> None:
        """To the other calendar or address book: made there, then deleted here."""
        obj = self._pick(i, "server")
        etag = self.run(self._server_etag(obj)) if obj is not None else None
        if obj is None or obj.server is None or obj.uid is None or etag is None:
            return
        here, name = obj.server
        (there,) = [c for c in _colls(obj.kind) if c != here]
        resource = obj.uid + _ext(obj.kind)
        self.run(self.other.put(there, resource, self._resource(obj.kind, obj.uid, name)))
        self.run(self.other.delete(here, resource))
        obj.server = (there, name)
        self._note(obj, f"server move {obj.uid} {here} → {there}")

    @rule(i=PICK)
    def server_delete(self, i: int) -> None:
        obj = self._pick(i, "server")
        etag = self.run(self._server_etag(obj)) if obj is not None else None
        if obj is None or obj.server is None or obj.uid is None or etag is None:
            return
        self.run(self.other.delete(obj.server[0], obj.uid + _ext(obj.kind)))
        obj.server = None
        self._note(obj, f"server delete {obj.uid}")

    # -- checks ---------------------------------------------------------------------------

    @invariant()
    def no_uid_twice_here(self) -> None:
        """At any time, no UID is in a synced folder twice."""
        for coll, fid in self.folders.items():
            uids = [u for u, _ in self.run(self._local_contents(fid)) if u is not None]
            assert len(uids) == len(set(uids)), (coll, uids, self.trace)

    async def _local_contents(self, fid: int) -> list[tuple[str | None, str]]:
        async with self.store.core.reader.execute(
            "SELECT json_extract(upstream, '$.dav_uid'), subject FROM items "
            "WHERE folder_id = ? AND associated = 0",
            (fid,),
        ) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def _server_contents(self, coll: str) -> list[tuple[str | None, str | None]]:
        return [_fields(data) for data in (await self.other.members(coll)).values()]

    def teardown(self) -> None:
        try:
            self._sync()
            self._sync()
            self.run(self._check())
        except AssertionError:
            print("\n".join(self.trace))  # (shown with the failure)
            raise
        finally:
            self.run(self.runner.close())
            self.run(self.other.close())
            self.run(self.store.close())
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def _check(self) -> None:
        trace = "\n".join(self.trace)
        for coll, fid in self.folders.items():
            server = await self._server_contents(coll)
            local = await self._local_contents(fid)
            server_uids = [u for u, _ in server]
            local_uids = [u for u, _ in local]
            assert len(server_uids) == len(set(server_uids)), (coll, server, trace)
            assert len(local_uids) == len(set(local_uids)), (coll, local, trace)
            assert None not in local_uids, (coll, local, trace)  # all uploaded
            want = {
                o.uid or f"item {o.item_id}": o.local[1]
                for o in self.objs
                if o.local is not None and o.local[0] == coll
            }
            assert dict(server) == want, (coll, "server", sorted(server), want, trace)
            assert dict(local) == want, (coll, "local", sorted(local), want, trace)
        aside = await self._local_contents(self.store.folders.roles["conflicts"])
        assert sorted(n for _, n in aside) == sorted(self.aside), (aside, self.aside, trace)
        # (An item made here and deleted into Deleted Items before a sync leaves entries
        # for the mail side, which has no upstream here.)
        journal = await self.store.sync.journal()
        assert not await dav_entry_ids(self.store, journal), (journal, trace)


@pytest.fixture(scope="module")
def radicale_sm() -> Iterator[rad.Radicale]:
    server = rad.start()
    yield server
    server.stop()


def test_dav_sync_state_machine(radicale_sm: rad.Radicale) -> None:
    DavSyncMachine.server = radicale_sm
    run_state_machine_as_test(
        DavSyncMachine,
        settings=settings(
            max_examples=int(os.environ.get("KBRIDGE_DAV_SM_EXAMPLES", "30")),
            stateful_step_count=20,
            deadline=None,
            database=None,
            # No shrinking (bounded even on failure) unless asked for, when hunting.
            phases=(Phase.explicit, Phase.generate)
            + ((Phase.shrink,) if os.environ.get("KBRIDGE_DAV_SM_SHRINK") else ()),
            suppress_health_check=list(HealthCheck),
        ),
    )
