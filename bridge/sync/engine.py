"""One sync run against an IMAP-shaped upstream: the folder hierarchy, then each mailbox
pulled (QRESYNC → CONDSTORE → full UID/FLAGS listing, resync on a UIDVALIDITY change), then
the journal of local changes pushed, oldest first. Every decision comes from `plan`; this
module only carries the actions out and records their outcome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config import FolderSync, SyncConfig
from bridge.formats.mime import KEYWORDS
from bridge.store.core import UPSTREAM
from bridge.store.errors import Conflict, NotFound
from bridge.store.items import PropChange
from bridge.store.props import now_filetime
from bridge.store.store import Store
from bridge.store.syncstate import AWAITS, MOVING, REPLACES, JournalEntry, LocalItem
from bridge.sync import conflicts, crashpoint, plan, workers
from bridge.sync.hierarchy import Hierarchy
from bridge.sync.mail_fetch import (
    FULL_SETTINGS,
    PARTLY_STORED,
    MailFetch,
    content_of,
    folder_settings,
    settings_key,
)
from bridge.sync.mail_props import categories, flag_props, flags_of
from bridge.sync.parse_pool import ParsePool
from bridge.sync.push import Pusher, content_edited
from bridge.upstream.base import MailAdapter, MailboxState

log = logging.getLogger(__name__)


@dataclass
class Report:
    fetched: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    pushed: int = 0
    failed: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # mailbox → pull path used
    held: list[str] = field(default_factory=list)  # emptied mailboxes not mirrored


@dataclass(frozen=True)
class Planned:
    """What a pull's plan was made from, to plan an item again when the user changed it
    between the plan and its application (the pull then merges with the item as it is)."""

    known: Mapping[int, plan.Known]
    listing: plan.Listing
    policy: str

    def again(
        self, action: plan.SetFlags | plan.FlagConflict, local: plan.FlagSet
    ) -> plan.SetFlags | plan.FlagConflict | None:
        """`action`, or the item's action planned with its flags as they are now (`local`)
        if they changed since; None when there is then nothing to apply."""
        k = self.known.get(action.item_id)
        if k is None or k.local == local:
            return action
        now = dataclasses.replace(k, local=local, dirty=True, changed_at=now_filetime())
        one = plan.Listing(
            {k.uid: self.listing.changed[k.uid]}, observed_at=self.listing.observed_at
        )
        for again in plan.plan_pull([now], one, self.policy):
            if isinstance(again, plan.SetFlags | plan.FlagConflict):
                return again
        return None

    def gone(self, action: plan.DeleteLocal, changed_at: int | None) -> plan.PullAction:
        """`action`, or the action for the message gone from the server planned with the
        item changed here since the plan (`changed_at`: its latest pending change)."""
        k = self.known.get(action.item_id)
        if k is None or k.dirty or changed_at is None:
            return action
        now = dataclasses.replace(k, dirty=True, changed_at=changed_at)
        one = plan.Listing({}, vanished=frozenset({k.uid}), observed_at=self.listing.observed_at)
        return next(iter(plan.plan_pull([now], one, self.policy)), action)


class Engine:
    def __init__(
        self,
        store: Store,
        adapter: MailAdapter,
        policy: str = "keep-both",
        sync_config: SyncConfig | None = None,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.policy = policy
        self.sync_config = sync_config  # per-folder settings (None: every folder in full)
        self.settings: dict[int, FolderSync] = {}
        self.confirm_empty: set[str] = set()  # emptied mailboxes the user lets be mirrored
        self.pool = ParsePool()  # started by the first large pull, closed by `run`

    async def run(self, delimiter: str = "/") -> Report:
        report = Report()
        workers.warm_up()  # a large pull's parser then starts in milliseconds
        hierarchy = Hierarchy(self.store, self.adapter, delimiter)
        mailboxes = await hierarchy.sync()
        report.failed.extend(hierarchy.failed)
        self.settings = folder_settings(self.sync_config, hierarchy.folders, mailboxes)
        try:
            with self.store.search.bulk():  # the text is indexed after the pull
                for fid, mailbox in mailboxes.items():
                    if self.settings[fid].mode == "off":
                        report.paths[mailbox] = "off"
                        continue
                    await self.pull(fid, mailbox, report)
        finally:
            await self.pool.close()
        await Pusher(self.store, self.adapter, hierarchy).run(report)
        await hierarchy.finish()
        report.failed.extend(f for f in hierarchy.failed if f not in report.failed)
        return report

    # -- pull -------------------------------------------------------------------------

    async def pull(self, fid: int, mailbox: str, report: Report) -> None:
        ref = (await self.store.sync.folder_links()).get(fid, {})
        uidvalidity, modseq = ref.get("uidvalidity"), ref.get("modseq")
        caps = self.adapter.caps
        qresync = (uidvalidity, modseq) if caps.qresync and uidvalidity and modseq else None
        observed_at = now_filetime()
        state = await self.adapter.select(mailbox, qresync=qresync)
        same = uidvalidity == state.uidvalidity
        settings = self.settings.get(fid, FULL_SETTINGS)
        if (
            same
            and modseq
            and modseq == state.highestmodseq
            and ref.get("uidnext") == state.uidnext
            and ref.get("settings", settings_key(FULL_SETTINGS)) == settings_key(settings)
        ):
            report.paths[mailbox] = "unchanged"
            return
        items = await self.store.sync.linked_items(mailbox)
        here = sum(1 for i in items if (i.upstream or {}).get("uidvalidity") == state.uidvalidity)
        if plan.looks_emptied(here, state.exists, same) and mailbox not in self.confirm_empty:
            log.warning("%s is empty on the server: its %d messages are kept here", mailbox, here)
            report.held.append(mailbox)
            report.paths[mailbox] = "held"
            return
        dirty = await self.store.sync.dirty_times()
        if uidvalidity and not same:
            items = await self._relink(mailbox, state, items)
        if same and qresync and state.highestmodseq:
            listing = plan.Listing(
                {u: m.flags for u, m in state.changed.items()}, vanished=state.vanished
            )
            report.paths[mailbox] = "qresync"
        elif same and caps.condstore and modseq and state.highestmodseq:
            changed = await self.adapter.list_flags(modseq)
            present = frozenset(await self.adapter.list_uids())
            listing = plan.Listing({m.uid: m.flags for m in changed}, present)
            report.paths[mailbox] = "condstore"
        else:
            listing = await self._full_listing(mailbox, state, bool(items or dirty))
            report.paths[mailbox] = "full"
        known = [
            plan.Known(
                item.id,
                int(item.upstream["uid"])
                if item.upstream.get("uidvalidity") == state.uidvalidity
                else -item.id,
                frozenset(item.upstream.get("flags") or ()),
                flags_of(item),
                item.id in dirty,
                dirty.get(item.id),
                MOVING in item.upstream,
            )
            for item in items
            if item.upstream is not None
        ]
        if any(k.uid < 0 for k in known) and listing.present is None:
            listing = plan.Listing(listing.changed, frozenset(await self.adapter.list_uids()))
        listing = dataclasses.replace(listing, observed_at=observed_at)
        actions = plan.plan_pull(known, listing, self.policy)
        planned_count = len(actions)
        actions = await self._adopt(fid, mailbox, state, listing, actions, dirty)
        if len(actions) < planned_count:  # items linked to messages here: completed below
            items = await self.store.sync.linked_items(mailbox)  # if partly stored
        actions = await self._deleted_here(mailbox, state, listing, actions)
        if dirty and any(isinstance(a, plan.Fetch) for a in actions):
            # (an old copy an edit replaces is noted only while the edit is pending)
            replaced = await self.store.sync.replaced_uids(mailbox, state.uidvalidity)
            actions = [a for a in actions if not (isinstance(a, plan.Fetch) and a.uid in replaced)]
        planned = Planned({k.item_id: k for k in known}, listing, self.policy)
        await self._apply(fid, mailbox, state, actions, report, planned)
        if any(content_of(i) for i in items):
            fetcher = MailFetch(self.store, self.adapter, settings)
            report.fetched += await fetcher.complete(state, items)
        await self.store.sync.set_folder_link(
            fid,
            {
                "mailbox": mailbox,
                "uidvalidity": state.uidvalidity,
                "uidnext": state.uidnext,
                "modseq": state.highestmodseq,
                "settings": settings_key(settings),
            },
        )
        crashpoint.step(f"{mailbox} pulled")

    async def _full_listing(
        self, mailbox: str, state: MailboxState, known_here: bool
    ) -> plan.Listing:
        """Every message of the selected mailbox, with its flags. A first pull, with
        nothing here that is or may become one of its messages, needs their UIDs only
        (each fetched message brings its flags): where the server lists them as ranges
        (ESEARCH; a plain SEARCH answers in one line, too long for a large mailbox) and
        they are as many as SELECT said (else the full listing tells)."""
        if (
            self.adapter.caps.esearch
            and not known_here
            and not await self.store.sync.awaited_items(mailbox)
        ):
            present = frozenset(await self.adapter.list_uids())
            if len(present) == state.exists:
                return plan.Listing(dict.fromkeys(present, frozenset()), present)
        every = await self.adapter.list_flags()
        return plan.Listing({m.uid: m.flags for m in every}, frozenset(m.uid for m in every))

    async def _adopt(
        self,
        fid: int,
        mailbox: str,
        state: MailboxState,
        listing: plan.Listing,
        actions: list[plan.PullAction],
        dirty: dict[int, int],
    ) -> list[plan.PullAction]:
        """A new server message may be a local item's own upload whose confirmation was
        lost (a dropped connection after APPEND, a stopped run): link it instead of
        fetching a copy. An upload of an edited item that is linked to its old copy still
        becomes its new copy, replacing the old one (push: `REPLACES`). A message with the
        Message-ID of an item whose server copy is not known is that copy (`LOST`: moved
        out here of a mailbox gone since, and moved there by another client; `AWAITS`:
        sent mail the server filed itself)."""
        fetch = [a.uid for a in actions if isinstance(a, plan.Fetch)]
        if not fetch:
            return actions
        unlinked = await self.store.sync.unlinked_items(fid) if dirty else []
        uploads = {i.message_id: i.id for i in unlinked if i.id in dirty and i.message_id}
        awaited = await self.store.sync.awaited_items(mailbox)
        uploads |= {i.message_id: i.id for i in awaited if i.message_id}
        edited = await self._in_flight(fid, mailbox, state, listing, dirty) if dirty else {}
        if not uploads and not edited:
            return actions
        server = await self.adapter.message_ids(fetch)
        adopted = plan.adopt(uploads, server)
        rest = {uid: m for uid, m in server.items() if uid not in adopted.values()}
        replaced = plan.adopt({m: i.id for m, i in edited.items()}, rest)
        links: dict[int, dict[str, Any] | None] = {}
        was = {i.id: i.upstream or {} for i in awaited}
        for item_id, uid in (*adopted.items(), *replaced.items()):
            links[item_id] = {
                "mailbox": mailbox,
                "uidvalidity": state.uidvalidity,
                "uid": uid,
                "flags": sorted(plan.relevant(listing.changed.get(uid, ()))),
                # (a partly stored message whose copy was lost sight of is still so)
                **{k: v for k, v in was.get(item_id, {}).items() if k in PARTLY_STORED},
            }
        for item in edited.values():
            if item.id in replaced and item.upstream is not None:
                old = {k: item.upstream[k] for k in ("mailbox", "uidvalidity", "uid")}
                # (a copy moved here lacks what the cached one lacked)
                partly = {k: v for k, v in item.upstream.items() if k in PARTLY_STORED}
                links[item.id] = {**(links[item.id] or {}), **partly, REPLACES: old}
        await self.store.sync.set_item_links(links)
        crashpoint.step(f"{mailbox}: uploads found on the server linked")
        taken = {*adopted.values(), *replaced.values()}
        return [a for a in actions if not (isinstance(a, plan.Fetch) and a.uid in taken)]

    async def _in_flight(
        self,
        fid: int,
        mailbox: str,
        state: MailboxState,
        listing: plan.Listing,
        dirty: dict[int, int],
    ) -> dict[str, LocalItem]:
        """Message-ID → item, of the folder's items linked to a server copy whose edited
        content waits to be uploaded, or which were moved here from another mailbox (a
        MOVE whose answer was lost leaves the copy here, and the old one gone: `MOVING`).
        An edit's upload is linked before its old copy is expunged: an item whose old copy
        is gone has no upload in flight, and a message with its Message-ID is another's
        (the old copy moved away and back by another client, say)."""
        candidates = [
            i
            for i in await self.store.sync.items_in([fid])
            if i.id in dirty
            and i.message_id
            and i.upstream
            and "uid" in i.upstream
            and REPLACES not in i.upstream
        ]
        if not candidates:
            return {}
        entries: dict[int, list[JournalEntry]] = {}
        for e in await self.store.sync.journal():
            if e.kind == "item":
                entries.setdefault(e.object_id, []).append(e)
        not_content = self.store.sync.not_content_keys()
        return {
            str(i.message_id): i
            for i in candidates
            if (i.upstream or {}).get(MOVING) == mailbox
            or (  # (a partly stored message is made whole before its edit goes up)
                content_of(i) is None
                and content_edited(entries.get(i.id, []), not_content)
                and not _old_copy_gone(i, mailbox, state, listing)
            )
        }

    async def _deleted_here(
        self,
        mailbox: str,
        state: MailboxState,
        listing: plan.Listing,
        actions: list[plan.PullAction],
    ) -> list[plan.PullAction]:
        """Messages deleted here but not yet expunged upstream are not fetched again,
        unless the server changed them since (`plan.plan_deleted`). A deletion made before
        a UIDVALIDITY change finds its message by Message-ID, and so does the deletion of
        a sent item made before the copy the server files came (`AWAITS`): that copy is
        the item deleted, never a change of another client's."""
        fetch = sorted(a.uid for a in actions if isinstance(a, plan.Fetch))
        pending, awaited = [], []
        for e in await self.store.sync.journal() if fetch else []:
            ref = e.payload.get("upstream") or {}
            if e.op != "item_delete":
                continue
            if ref.get("mailbox") == mailbox:
                pending.append(e)
            elif ref.get(AWAITS) == mailbox and e.payload.get("message_id"):
                awaited.append(str(e.payload["message_id"]))
        if not pending and not awaited:
            return actions
        by_msgid: dict[str, int] = {}
        if awaited or any(
            e.payload["upstream"].get("uidvalidity") != state.uidvalidity for e in pending
        ):
            for uid, msgid in sorted((await self.adapter.message_ids(fetch)).items()):
                by_msgid.setdefault(msgid, uid)
        deleted, owner = [], {}
        for e in pending:
            ref = e.payload["upstream"]
            at = (
                int(ref["uid"])
                if ref.get("uidvalidity") == state.uidvalidity and "uid" in ref
                else by_msgid.get(str(e.payload.get("message_id") or ""))
            )
            if at is not None:
                deleted.append(plan.Deleted((e.id,), at, frozenset(ref.get("flags") or ())))
                owner[e.id] = e.object_id
        skip, undone = plan.plan_deleted(deleted, listing, self.policy)
        skip |= {by_msgid[m] for m in awaited if m in by_msgid}  # the push expunges them
        for d in undone:
            log.info("%s: message %d deleted here, changed on the server: kept", mailbox, d.uid)
            for entry_id in d.entry_ids:
                await self.store.sync.forget_item(owner[entry_id])
        return [a for a in actions if not (isinstance(a, plan.Fetch) and a.uid in skip)]

    async def _relink(
        self, mailbox: str, state: MailboxState, items: list[LocalItem]
    ) -> list[LocalItem]:
        """UIDVALIDITY changed: match the cached messages to the new UIDs by Message-ID so
        nothing is fetched twice and no pending local change is lost."""
        log.info("%s: UIDVALIDITY changed, matching messages by Message-ID", mailbox)
        by_msgid: dict[str, list[int]] = {}
        for uid, msgid in sorted((await self.adapter.message_ids()).items()):
            by_msgid.setdefault(msgid, []).append(uid)
        links: dict[int, dict[str, Any] | None] = {}
        for item in items:
            uids = by_msgid.get(item.message_id or "")
            if uids and item.upstream is not None:
                links[item.id] = {
                    **item.upstream,
                    "uid": uids.pop(0),
                    "uidvalidity": state.uidvalidity,
                }
        await self.store.sync.set_item_links(links)
        return await self.store.sync.linked_items(mailbox)

    async def _apply(
        self,
        fid: int,
        mailbox: str,
        state: MailboxState,
        actions: list[plan.PullAction],
        report: Report,
        planned: Planned | None = None,
    ) -> None:
        fetch = [a.uid for a in actions if isinstance(a, plan.Fetch)]
        links: dict[int, dict[str, Any] | None] = {}
        deletions = planned is not None and any(isinstance(a, plan.DeleteLocal) for a in actions)
        mark = await self.store.sync.journal_mark() if deletions else 0  # (read first)
        dirty_now = await self.store.sync.dirty_times() if deletions else {}
        for action in actions:
            if isinstance(action, plan.DeleteLocal) and planned is not None:
                action = planned.gone(action, dirty_now.get(action.item_id))
            if isinstance(action, plan.SetFlags | plan.FlagConflict):
                for attempt in range(1, conflicts.WRITE_ATTEMPTS + 1):
                    try:
                        await self._apply_flags_of(action, planned, mailbox, report, links)
                    except Conflict:  # changed here since it was read: read and planned again
                        if attempt == conflicts.WRITE_ATTEMPTS:
                            raise
                        continue
                    break
            if isinstance(action, plan.DeleteLocal):
                again = await self._delete(action, planned, dirty_now, mark)
                if again is None:
                    report.deleted += 1
                    crashpoint.step(f"{mailbox}: deletion applied")
                    continue
                action = again
            if isinstance(action, plan.KeepConflict):
                await conflicts.keep_aside(
                    self.store,
                    action.item_id,
                    "deleted on the server, changed here",
                    mailbox=mailbox,
                )
                report.conflicts += 1
                crashpoint.step(f"{mailbox}: conflict kept aside")
            elif isinstance(action, plan.Unlink):
                links[action.item_id] = None
        await self.store.sync.set_item_links(links)
        crashpoint.step(f"{mailbox}: flag changes applied")

        def stored(count: int) -> None:
            report.fetched += count

        settings = self.settings.get(fid, FULL_SETTINGS)
        await MailFetch(self.store, self.adapter, settings, stored, self.pool).store_new(
            fid, mailbox, state, fetch
        )

    async def _apply_flags_of(
        self,
        action: plan.SetFlags | plan.FlagConflict,
        planned: Planned | None,
        mailbox: str,
        report: Report,
        links: dict[int, dict[str, Any] | None],
    ) -> None:
        """Apply a change of a message's flags on the server (or a conflict of them) to
        its item as it is now (planned again if its flags changed here since the plan).
        Conflict when the item changes here before the change is written."""
        item = await self.store.sync.item(action.item_id)
        if item is None or item.upstream is None:
            return
        if planned is not None:
            again = planned.again(action, flags_of(item))
            if again is None:
                links[item.id] = {**item.upstream, "flags": sorted(action.base)}
                return
            action = again
        if isinstance(action, plan.SetFlags):
            if action.local_changed:
                await self._update(item, self._flag_change(item, action.local))
                report.updated += 1
            links[item.id] = {**item.upstream, "flags": sorted(action.base)}
            return
        change = None
        if action.local != flags_of(item):
            change = self._flag_change(item, action.local)
        if action.keep_copy:
            await conflicts.keep_copy(
                self.store, item.id, "flags changed here and on the server", change, mailbox=mailbox
            )
        elif change is not None:
            await self._update(item, change)
        report.updated += change is not None
        links[item.id] = {**item.upstream, "flags": sorted(action.base)}
        report.conflicts += 1
        if not action.keep_copy:
            conflicts.publish(
                self.store,
                item.id,
                None,
                item.folder_id,
                "flags changed here and on the server: "
                + ("the local state wins" if action.local_wins else "the server wins"),
                mailbox=mailbox,
            )

    async def _delete(
        self,
        action: plan.DeleteLocal,
        planned: Planned | None,
        dirty_now: Mapping[int, int],
        mark: int,
    ) -> plan.PullAction | None:
        """Apply the deletion of a message on the server to its item: None once done. An
        item that was not changed here when it was last read (`planned`, `dirty_now`,
        read after the journal's `mark`) is deleted only if it still is not; if it is,
        its action planned again is returned (a conflict, a local version that wins) or
        done (a deletion the policy wants)."""
        k = planned.known.get(action.item_id) if planned is not None else None
        clean = k is not None and not k.dirty and action.item_id not in dirty_now
        try:
            with contextlib.suppress(NotFound):  # deleted here meanwhile
                await self.store.items.delete(
                    action.item_id,
                    hard=True,
                    origin=UPSTREAM,
                    unchanged_since=mark if clean else None,
                )
        except Conflict:  # changed here since it was read
            assert planned is not None
            again = planned.gone(action, now_filetime())
            if not isinstance(again, plan.DeleteLocal):
                return again
            with contextlib.suppress(NotFound):
                await self.store.items.delete(action.item_id, hard=True, origin=UPSTREAM)
        return None

    @staticmethod
    def _flag_change(item: LocalItem, flags: plan.FlagSet) -> PropChange:
        """What makes the local item's flags and categories `flags`."""
        set_props, delete = flag_props(flags, item.last_verb)
        return PropChange(set_props, delete, {KEYWORDS: categories(flags)})

    async def _update(self, item: LocalItem, change: PropChange) -> None:
        """Make a change from the server to the item as it was read (Conflict if it has
        changed here since)."""
        await self.store.items.update(
            item.id,
            change.set_props,
            change.delete_tags,
            named=change.named,
            origin=UPSTREAM,
            if_cn=item.cn,
        )


def _old_copy_gone(
    item: LocalItem, mailbox: str, state: MailboxState, listing: plan.Listing
) -> bool:
    """Whether the server copy an item is linked to is known to be gone from `mailbox`."""
    up = item.upstream or {}
    return (
        up.get("mailbox") == mailbox
        and up.get("uidvalidity") == state.uidvalidity
        and listing.gone(int(up["uid"]))
    )
