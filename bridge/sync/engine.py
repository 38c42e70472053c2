"""One sync run against an IMAP-shaped upstream: the folder hierarchy, then each mailbox
pulled (QRESYNC → CONDSTORE → full UID/FLAGS listing, resync on a UIDVALIDITY change), then
the journal of local changes pushed, oldest first. Every decision comes from `plan`; this
module only carries the actions out and records their outcome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from bridge.formats.mime import KEYWORDS
from bridge.model import tags
from bridge.store.core import UPSTREAM
from bridge.store.errors import StoreError
from bridge.store.props import now_filetime
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.store.syncstate import LocalItem
from bridge.sync import plan
from bridge.sync.hierarchy import Hierarchy
from bridge.sync.push import Pusher
from bridge.upstream.base import FetchedMessage, MailAdapter, MailboxState

log = logging.getLogger(__name__)

CREATE_BATCH = 200


@dataclass
class Report:
    fetched: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    pushed: int = 0
    failed: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # mailbox → pull path used


def flags_of(item: LocalItem) -> plan.FlagSet:
    return plan.local_flags(item.read, item.flag_status, item.last_verb, item.categories)


def flag_props(fs: plan.FlagSet, last_verb: int | None) -> tuple[dict[int, Any], list[int]]:
    """Properties (set, delete) that give an item the flags `fs`."""
    set_props: dict[int, Any] = {tags.READ: plan.SEEN in fs}
    delete: list[int] = []
    if plan.FLAGGED in fs:
        set_props[tags.FLAG_STATUS] = plan.FLAG_STATUS_FLAGGED
    else:
        delete.append(tags.FLAG_STATUS)
    if plan.ANSWERED in fs:
        keep = last_verb in (plan.VERB_REPLY, plan.VERB_REPLY_ALL)
        set_props[tags.LAST_VERB_EXECUTED] = last_verb if keep else plan.VERB_REPLY
    elif plan.FORWARDED in fs:
        set_props[tags.LAST_VERB_EXECUTED] = plan.VERB_FORWARD
    elif last_verb in (plan.VERB_REPLY, plan.VERB_REPLY_ALL, plan.VERB_FORWARD):
        delete.append(tags.LAST_VERB_EXECUTED)
    return set_props, delete


def categories(fs: plan.FlagSet) -> list[str]:
    return sorted(f for f in fs if plan.is_category(f))


class Engine:
    def __init__(self, store: Store, adapter: MailAdapter, policy: str = "keep-both") -> None:
        self.store = store
        self.adapter = adapter
        self.policy = policy

    async def run(self, delimiter: str = "/") -> Report:
        report = Report()
        hierarchy = Hierarchy(self.store, self.adapter, delimiter)
        mailboxes = await hierarchy.sync()
        for fid, mailbox in mailboxes.items():
            await self.pull(fid, mailbox, report)
        await Pusher(self.store, self.adapter, hierarchy).run(report)
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
        if (
            same
            and modseq
            and modseq == state.highestmodseq
            and ref.get("uidnext") == state.uidnext
        ):
            report.paths[mailbox] = "unchanged"
            return
        items = await self.store.sync.linked_items(mailbox)
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
            every = await self.adapter.list_flags()
            listing = plan.Listing({m.uid: m.flags for m in every}, frozenset(m.uid for m in every))
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
            )
            for item in items
            if item.upstream is not None
        ]
        if any(k.uid < 0 for k in known) and listing.present is None:
            listing = plan.Listing(listing.changed, frozenset(await self.adapter.list_uids()))
        listing = dataclasses.replace(listing, observed_at=observed_at)
        await self._apply(fid, mailbox, state, plan.plan_pull(known, listing, self.policy), report)
        await self.store.sync.set_folder_link(
            fid,
            {
                "mailbox": mailbox,
                "uidvalidity": state.uidvalidity,
                "uidnext": state.uidnext,
                "modseq": state.highestmodseq,
            },
        )

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
    ) -> None:
        fetch = [a.uid for a in actions if isinstance(a, plan.Fetch)]
        links: dict[int, dict[str, Any] | None] = {}
        for action in actions:
            if isinstance(action, plan.SetFlags):
                item = await self.store.sync.item(action.item_id)
                if item is None or item.upstream is None:
                    continue
                if action.local_changed:
                    await self._apply_flags(item, action.local, report)
                links[item.id] = {**item.upstream, "flags": sorted(action.base)}
            elif isinstance(action, plan.FlagConflict):
                item = await self.store.sync.item(action.item_id)
                if item is None or item.upstream is None:
                    continue
                if action.keep_copy:
                    await self._keep_copy(item.id, mailbox)
                if action.local != flags_of(item):
                    await self._apply_flags(item, action.local, report)
                links[item.id] = {**item.upstream, "flags": sorted(action.base)}
                report.conflicts += 1
                if not action.keep_copy:
                    self._publish_conflict(
                        item.id,
                        None,
                        item.folder_id,
                        mailbox,
                        "flags changed here and on the server: "
                        + ("the local state wins" if action.local_wins else "the server wins"),
                    )
            elif isinstance(action, plan.DeleteLocal):
                await self._delete(action.item_id)
                report.deleted += 1
            elif isinstance(action, plan.KeepConflict):
                await self._conflict(action.item_id, mailbox)
                report.conflicts += 1
            elif isinstance(action, plan.Unlink):
                links[action.item_id] = None
        await self.store.sync.set_item_links(links)
        batch: list[FetchedMessage] = []
        async for msg in self.adapter.fetch(fetch):
            batch.append(msg)
            if len(batch) >= CREATE_BATCH:
                report.fetched += await self._create(fid, mailbox, state, batch)
                batch = []
        if batch:
            report.fetched += await self._create(fid, mailbox, state, batch)

    async def _create(
        self, fid: int, mailbox: str, state: MailboxState, batch: list[FetchedMessage]
    ) -> int:
        new = []
        for msg in batch:
            raw = msg.raw
            if raw is None or not raw.strip():
                raw = (
                    b"Subject: (message of %d bytes not downloaded: over the size limit)\r\n\r\n"
                    % msg.size
                )
            item = item_from_rfc822(raw)
            fs = plan.relevant(msg.flags)
            set_props, _ = flag_props(fs, None)
            item.props.update(set_props)
            cats = categories(fs)
            if cats:
                item.named[KEYWORDS] = cats
            else:
                item.named.pop(KEYWORDS, None)
            item.upstream = {
                "mailbox": mailbox,
                "uidvalidity": state.uidvalidity,
                "uid": msg.uid,
                "flags": sorted(fs),
                "modseq": msg.modseq,
            }
            new.append(item)
        await self.store.items.create_many(fid, new, origin=UPSTREAM)
        return len(new)

    async def _delete(self, item_id: int) -> None:
        with contextlib.suppress(StoreError):  # deleted locally meanwhile
            await self.store.items.delete(item_id, hard=True, origin=UPSTREAM)

    async def _conflict(self, item_id: int, mailbox: str) -> None:
        """Keep both: the upstream deleted the message, the local version goes to
        Sync Issues/Conflicts (without a link, so it is not uploaded again)."""
        conflicts = self.store.folders.roles["conflicts"]
        await self.store.sync.set_item_links({item_id: None})
        await self.store.items.move(item_id, conflicts, origin=UPSTREAM)
        await self.store.sync.forget_item(item_id)
        self._publish_conflict(
            item_id, None, conflicts, mailbox, "deleted on the server, changed here"
        )

    async def _apply_flags(self, item: LocalItem, flags: plan.FlagSet, report: Report) -> None:
        """Set the local item's flags and categories to `flags` (a change from the server)."""
        set_props, delete = flag_props(flags, item.last_verb)
        await self.store.items.update(
            item.id, set_props, delete, named={KEYWORDS: categories(flags)}, origin=UPSTREAM
        )
        report.updated += 1

    async def _keep_copy(self, winner_id: int, mailbox: str) -> None:
        """Keep both: copy the local version into Sync Issues/Conflicts, unlinked (it is
        not uploaded) and pointing at the winner through PidTagConflictEntryId."""
        conflicts = self.store.folders.roles["conflicts"]
        copy_id = await self.store.items.copy(winner_id, conflicts, origin=UPSTREAM)
        await self.store.sync.set_item_links({copy_id: None})
        await self.store.items.update(
            copy_id,
            {tags.CONFLICT_ENTRYID: self.store.ids.entry_id("item", winner_id)},
            origin=UPSTREAM,
        )
        self._publish_conflict(
            copy_id, winner_id, conflicts, mailbox, "flags changed here and on the server"
        )

    def _publish_conflict(
        self,
        item_id: int,
        winner_id: int | None,
        folder_id: int,
        mailbox: str,
        reason: str,
    ) -> None:
        """The notification of a conflict: `id` is the item kept aside (or resolved in
        place), `winner_id` the API id of the item that won, when one was kept."""
        event: dict[str, Any] = {
            "id": item_id,
            "folder_id": folder_id,
            "mailbox": mailbox,
            "reason": reason,
        }
        if winner_id is not None:
            event["winner_id"] = self.store.ids.api_id("item", winner_id)
        self.store.bus.publish([("sync_conflict", event)])
