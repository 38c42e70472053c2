"""Journal replay: each item with pending local changes is brought upstream to its current
local state (`plan.plan_push`), oldest change first. An entry leaves the journal only after
the server confirmed what it asked for; a retried APPEND first looks the message up by
Message-ID, so a crash between APPEND and bookkeeping does not duplicate it (an item that
has none, or one without an <id>, keeps the one its upload is built with).

An edited message goes up again (from its properties) and its old copy is expunged: the
item is linked to the new copy with the old one noted (`REPLACES`) until the expunge, so a
run that stops in between is finished by the next. An upload of an edit that a stopped run
did not get to link is found by the pull (and linked, replacing the old copy) or by the
next upload (same Message-ID, no item linked to it: expunged once the new copy is up).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from typing import Any

from bridge.model import tags
from bridge.store.core import UPSTREAM
from bridge.store.errors import NotFound
from bridge.store.store import Store
from bridge.store.syncstate import AWAITS, LOST, MOVING, REPLACES, JournalEntry, LocalItem
from bridge.sync import crashpoint, plan
from bridge.sync.dav_scope import dav_entry_ids
from bridge.sync.hierarchy import Hierarchy
from bridge.sync.mail_fetch import PARTLY_STORED, content_of, replace_content
from bridge.sync.mail_props import flags_of
from bridge.upstream.base import ConnectFailed, MailAdapter, MessageGone, Refused, UpstreamError

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


class _Awaited(Exception):
    """The item's server copy is yet to come (`AWAITS`, or `LOST` for a partly stored
    message, which has only part of itself to go up from): its changes wait for it."""


class Pusher:
    def __init__(self, store: Store, adapter: MailAdapter, hierarchy: Hierarchy) -> None:
        self.store = store
        self.adapter = adapter
        self.hierarchy = hierarchy
        self._uidvalidity: dict[str, int] = {}
        self._not_content: frozenset[str] = frozenset()
        self._message_id: str | None = None  # of the item being pushed, if it is deleted
        self._copied_from: int | None = None  # the item the one being pushed copies

    async def run(self, report: Any) -> None:
        self._not_content = self.store.sync.not_content_keys()
        groups: dict[int, list[JournalEntry]] = {}
        entries = await self.store.sync.journal()
        dav = await dav_entry_ids(self.store, entries)  # carried out by the DAV engine
        for entry in entries:
            if entry.kind == "item" and entry.id not in dav:
                groups.setdefault(entry.object_id, []).append(entry)
        for item_id, entries in groups.items():
            try:
                await self._push(item_id, entries)
            except ConnectFailed:
                raise
            except _Awaited:
                continue
            except UpstreamError as exc:
                log.warning("item %s not pushed: %s", item_id, exc)
                report.failed.append(f"{self.store.ids.api_id('item', item_id)}: {exc}")
                continue
            await self.store.sync.remove_journal([e.id for e in entries])
            report.pushed += 1
            crashpoint.step(f"journal entries of item {item_id} confirmed")

    async def _push(self, item_id: int, entries: list[JournalEntry]) -> None:
        item = await self.store.sync.item(item_id)
        if item is not None and item.upstream and AWAITS in item.upstream:
            raise _Awaited
        if item is not None and item.upstream and LOST in item.upstream and content_of(item):
            raise _Awaited  # only part of it is here: the pull finds the server's copy
        if item is not None and item.upstream and REPLACES in item.upstream:
            item = await self._finish_replacement(item)
        ref_data = item.upstream if item is not None else None
        if ref_data is None and item is None:
            for e in reversed(entries):
                if e.payload.get("upstream"):
                    ref_data = e.payload["upstream"]
                    break
            if ref_data and REPLACES in ref_data:  # deleted with its edit half done
                self._message_id = None  # (the old copy is not searched for)
                await self._act(plan.Expunge(_replaced(ref_data)), None, None)
            if ref_data and AWAITS in ref_data:
                await self._expunge_awaited(str(ref_data[AWAITS]), entries)
                return
        ref = None
        if ref_data and "uid" in ref_data:
            ref = plan.Ref(
                str(ref_data["mailbox"]),
                int(ref_data.get("uidvalidity") or 0),
                int(ref_data["uid"]),
                frozenset(ref_data.get("flags") or ()),
            )
        target = self.hierarchy.mailbox_of(item.folder_id) if item is not None else None
        if target is not None and item is not None and item.folder_id in self.hierarchy.links:
            # the mailbox the folder is linked to, which its name may not tell (a rename
            # the server refused)
            target = str(self.hierarchy.links[item.folder_id]["mailbox"])
        elif target is not None and item is not None:
            folder = self.hierarchy.folders.get(item.folder_id)
            if folder is None or folder.role is not None:
                target = None  # a default folder the server has no mailbox for
            else:
                # a folder of the user's the server should have but has not (it refused
                # to make it): the item waits, rather than leave the server
                raise UpstreamError(f"its folder is not on the server ({target})")
        local = flags_of(item) if item is not None else frozenset()
        self._message_id = next(
            (str(e.payload["message_id"]) for e in entries if e.payload.get("message_id")), None
        )
        self._copied_from = next(
            (int(e.payload["copied_from"]) for e in entries if e.payload.get("copied_from")), None
        )
        content = (
            item is not None and ref is not None and content_edited(entries, self._not_content)
        )
        if (
            content
            and item is not None
            and ref is not None
            and (item.upstream or {}).get("content")
        ):
            whole = await self._complete(item, ref)
            if whole is None:
                log.warning("item %s: edited, but not uploaded: its message is too large", item_id)
                content = False
            else:
                item, ref = whole, _ref(whole)
        for action in plan.plan_push(ref, item is not None, target, local, content):
            await self._act(action, item, ref)
            if isinstance(action, plan.Move | plan.Append) and item is not None:
                item = await self.store.sync.item(item.id)
                ref = _ref(item)

    async def _expunge_awaited(self, mailbox: str, entries: list[JournalEntry]) -> None:
        """A sent item deleted here before the copy the server files was found: that copy
        goes as soon as it is there (found by Message-ID; until then the deletion waits,
        and the pull does not fetch it)."""
        msgid = next(
            (str(e.payload["message_id"]) for e in entries if e.payload.get("message_id")), None
        )
        uidvalidity = await self._select_if_there(mailbox)
        if msgid is None or uidvalidity is None:
            return  # nothing to find it by, or no such mailbox any more
        taken = await self._taken(mailbox, uidvalidity)
        found = [u for u in await self.adapter.search_message_id(msgid) if u not in taken]
        if not found:
            raise _Awaited
        await self.adapter.expunge(found[:1])
        crashpoint.step("expunged on the server")

    async def _finish_replacement(self, item: LocalItem) -> LocalItem | None:
        """A run stopped between the upload of an edited item and the expunge of its old
        copy: expunge that now."""
        assert item.upstream is not None
        ref = _replaced(item.upstream)
        self._message_id = None  # never searched for: the new copy has the same Message-ID
        try:
            await self._act(plan.Expunge(ref), item, None)
        except ConnectFailed:
            raise
        except UpstreamError as exc:  # (its mailbox is gone from the server, say)
            log.warning("item %d: its old copy in %s not expunged: %s", item.id, ref.mailbox, exc)
            link = {k: v for k, v in item.upstream.items() if k != REPLACES}
            await self.store.sync.set_item_links({item.id: link})
        return await self.store.sync.item(item.id)

    async def _complete(self, item: LocalItem, ref: plan.Ref) -> LocalItem | None:
        """An item edited here whose message is only partly cached, made whole first, the
        edit kept on the server's whole message (`replace_content`): uploaded as it was,
        it would replace the message on the server by the part the cache has. None when
        the message is too large to be fetched whole (the edit then stays here)."""
        if await self._select_if_there(ref.mailbox) != ref.uidvalidity:
            raise UpstreamError(
                f"edited here, its message is to be fetched whole first, and {ref.mailbox} "
                "has changed on the server; the next pull finds it"
            )
        got = [m async for m in self.adapter.fetch([ref.uid])]
        if got and got[0].raw is None and got[0].header is not None:  # over the size limit
            return None
        if not got or not await replace_content(self.store, item, got[0]):
            raise UpstreamError(
                "edited here, its message is to be fetched whole first, and the server did "
                "not give it"
            )
        crashpoint.step(f"item {item.id} made whole before its upload")
        whole = await self.store.sync.item(item.id)
        if whole is None:
            raise UpstreamError("deleted here while its message was fetched")
        return whole

    async def _select(self, mailbox: str) -> int:
        if self.adapter_selected() != mailbox or mailbox not in self._uidvalidity:
            state = await self.adapter.select(mailbox)
            self._uidvalidity[mailbox] = state.uidvalidity
        return self._uidvalidity[mailbox]

    async def _select_if_there(self, mailbox: str) -> int | None:
        """`_select`, or None when the server has no such mailbox (any more)."""
        try:
            return await self._select(mailbox)
        except ConnectFailed:
            raise
        except UpstreamError:
            if mailbox in {f.name for f in await self.adapter.list_folders()}:
                raise
            return None

    def adapter_selected(self) -> str | None:
        return getattr(self.adapter, "selected", None)

    async def _act(
        self, action: plan.PushAction, item: LocalItem | None, ref: plan.Ref | None
    ) -> None:
        if isinstance(action, plan.Expunge):
            uidvalidity = await self._select_if_there(action.ref.mailbox)
            if uidvalidity is None:
                pass  # the mailbox is gone, with the message (deleted here or there)
            elif uidvalidity == action.ref.uidvalidity:
                await self.adapter.expunge([action.ref.uid])
                crashpoint.step("expunged on the server")
            elif item is None and self._message_id:
                # the mailbox was reset since: the message is found by its Message-ID
                taken = await self._taken(action.ref.mailbox, uidvalidity)
                found = await self.adapter.search_message_id(self._message_id)
                found = [u for u in found if u not in taken]
                if found:
                    await self.adapter.expunge(found[:1])
                    crashpoint.step("expunged on the server")
            now = _ref(item)
            if item is not None and now is not None and now.at == action.ref.at:
                # (after a re-upload the item is linked to its new copy: that link stays)
                await self.store.sync.set_item_links({item.id: None})
            elif item is not None and item.upstream and REPLACES in item.upstream:
                link = {k: v for k, v in item.upstream.items() if k != REPLACES}
                await self.store.sync.set_item_links({item.id: link})
        elif isinstance(action, plan.StoreFlags):
            assert item is not None and ref is not None
            if await self._select(ref.mailbox) != ref.uidvalidity:
                # kept in the journal: the next pull relinks the message, then it goes up
                raise UpstreamError(f"{ref.mailbox} was reset; the change waits for a pull")
            add = {f for f in action.add}
            remove = {f for f in action.remove}
            await self.adapter.store_flags(ref.uid, add, remove)
            crashpoint.step("flags stored on the server")
            on_server = flags_of(item) - self.adapter.last_refused  # the item keeps them
            await self.store.sync.set_item_links(
                {item.id: {**(item.upstream or {}), "flags": sorted(on_server)}}
            )
        elif isinstance(action, plan.Move):
            assert item is not None
            uidvalidity = await self._select_if_there(action.ref.mailbox)
            new_uid = None
            if uidvalidity is not None and uidvalidity == action.ref.uidvalidity:
                # noted first: if the answer is lost, the next pull of the mailbox moved
                # to takes the copy there for the item (`Engine._in_flight`)
                moving = {**(item.upstream or {}), MOVING: action.mailbox}
                await self.store.sync.set_item_links({item.id: moving})
                try:
                    new_uid = await self.adapter.move(action.ref.uid, action.mailbox)
                except MessageGone:
                    new_uid = None
                except Refused:  # nothing moved: no answer to wait for
                    await self.store.sync.set_item_links({item.id: item.upstream})
                    raise
            if new_uid is None:
                await self._append(item, action.mailbox, action.ref.base, replaces=None)
                return
            crashpoint.step("moved on the server")
            target_uv = await self._target_uidvalidity(action.mailbox)
            partly = {k: v for k, v in (item.upstream or {}).items() if k in PARTLY_STORED}
            await self.store.sync.set_item_links(
                {
                    item.id: {
                        "mailbox": action.mailbox,
                        "uidvalidity": target_uv,
                        "uid": new_uid,
                        "flags": sorted(action.ref.base),
                        **partly,  # what the cache lacks of the message, as before
                    }
                }
            )
        elif isinstance(action, plan.Append):
            assert item is not None
            await self._append(item, action.mailbox, action.flags, replaces=ref)

    async def _whole_original(self) -> tuple[bytes, dict[str, Any]] | None:
        """A copy made here of a partly stored message (headers only, or headers and
        text) has only that part to go up from: the server's whole message is taken
        instead, with the part of the original's reference that says what the cache lacks
        (None if it is not such a copy, or the server's message cannot be had)."""
        original = (
            await self.store.sync.item(self._copied_from) if self._copied_from is not None else None
        )
        link = original.upstream if original is not None else None
        if not link or "uid" not in link or not link.get("content"):
            return None
        try:
            if await self._select(str(link["mailbox"])) == link.get("uidvalidity"):
                fetched = [m async for m in self.adapter.fetch([int(link["uid"])])]
                for msg in fetched:
                    if msg.raw is not None:
                        kept: dict[str, Any] = {k: link[k] for k in PARTLY_STORED if k in link}
                        return msg.raw, kept
        except ConnectFailed:
            raise
        except UpstreamError as exc:
            log.warning("the original of a copy could not be fetched: %s", exc)
        return None

    async def _taken(self, mailbox: str, uidvalidity: int) -> set[int]:
        """UIDs of the mailbox some local item is linked to."""
        return {
            int(i.upstream["uid"])
            for i in await self.store.sync.linked_items(mailbox)
            if i.upstream and i.upstream.get("uidvalidity") == uidvalidity
        }

    async def _target_uidvalidity(self, mailbox: str) -> int:
        if mailbox in self._uidvalidity:
            return self._uidvalidity[mailbox]
        # as this run's pull left it (the hierarchy's copy predates the pulls)
        for ref in (await self.store.sync.folder_links()).values():
            if ref.get("mailbox") == mailbox and ref.get("uidvalidity"):
                return int(ref["uidvalidity"])
        state = await self.adapter.select(mailbox)
        self._uidvalidity[mailbox] = state.uidvalidity
        return state.uidvalidity

    async def _append(
        self, item: LocalItem, mailbox: str, flags: plan.FlagSet, *, replaces: plan.Ref | None
    ) -> None:
        """Upload an item, unless an earlier attempt already did (same Message-ID, a UID
        no other item is linked to). An item that has a copy on the server already
        (`replaces`: its content was edited) is uploaded from its properties, and linked to
        the new copy with the old one noted, until that is expunged: if the run stops in
        between, the next finishes it (`_finish_replacement`) and no pull fetches the old
        copy as a message of its own."""
        rebuild = replaces is not None
        whole = None if rebuild or item.has_source else await self._whole_original()
        raw = (
            whole[0]
            if whole is not None
            else await self.store.sync.source(item.id, rebuild=rebuild or not item.has_source)
        )
        kept = await self._keep_message_id(item, raw)
        if kept is None:
            return  # deleted here meanwhile: it goes up no more
        item = kept
        uidvalidity = await self._select(mailbox)
        uid = None
        refused: frozenset[str] = frozenset()  # flags the server would not take
        taken = {
            int(i.upstream["uid"])
            for i in await self.store.sync.linked_items(mailbox)
            if i.upstream and i.upstream.get("uidvalidity") == uidvalidity
        }
        found = []
        if item.message_id:
            found = [
                u for u in await self.adapter.search_message_id(item.message_id) if u not in taken
            ]
        orphans: list[int] = []
        if rebuild:
            # an edit's uploads that a stopped run did not get to link (the copy replaced,
            # linked to this item, is taken): they go once this one is up
            orphans = found
        elif found:
            uid = found[-1]
            await self.adapter.store_flags(uid, flags, ())
            refused = self.adapter.last_refused
        if uid is None:
            uid = await self.adapter.append(mailbox, raw, flags)
            crashpoint.step("appended on the server")
            refused = self.adapter.last_refused
            if refused and uid is not None:  # appended without its keywords: one by one
                await self.adapter.store_flags(uid, refused, ())
                refused = self.adapter.last_refused
            if uid is None and item.message_id:
                self._uidvalidity.pop(mailbox, None)
                await self._select(mailbox)
                found = [
                    u
                    for u in await self.adapter.search_message_id(item.message_id)
                    if u not in taken and u not in orphans
                ]
                uid = found[-1] if found else None
        link: dict[str, Any] | None = None
        if uid is not None:
            link = {
                "mailbox": mailbox,
                "uidvalidity": uidvalidity,
                "uid": uid,
                "flags": sorted(flags - refused),
            }
            if whole is not None:  # as partly stored as the original
                link.update(whole[1])
            if replaces is not None:
                link[REPLACES] = {
                    "mailbox": replaces.mailbox,
                    "uidvalidity": replaces.uidvalidity,
                    "uid": replaces.uid,
                }
        await self.store.sync.set_item_links({item.id: link})
        crashpoint.step("upload linked")
        if orphans and uid is not None:
            await self._select(mailbox)
            await self.adapter.expunge(orphans)
            crashpoint.step("earlier uploads expunged")

    async def _keep_message_id(self, item: LocalItem, raw: bytes) -> LocalItem | None:
        """An item without a Message-ID (made from properties only), or with one that is
        none (no <id> in it), goes up with one made for it: the item keeps that, so that
        an upload whose answer is lost is found again by it, not made twice."""
        ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
        head = raw[: min(ends)] if ends else raw  # (the header block: no copy of the body)
        found = _MESSAGE_ID.search(head)
        msgid = found.group(1).decode("ascii", "replace") if found else None
        if msgid is None or msgid == item.message_id:
            return item
        with contextlib.suppress(NotFound):
            await self.store.items.update(
                item.id, {tags.INTERNET_MESSAGE_ID: msgid}, origin=UPSTREAM
            )
        return await self.store.sync.item(item.id)  # (None: deleted here meanwhile)


def content_edited(entries: Iterable[JournalEntry], not_content: frozenset[str]) -> bool:
    """Whether an item's pending changes touch more than its flags and categories (the
    keys `not_content`, `SyncState.not_content_keys`): then its message is uploaded again
    (and the old copy expunged)."""
    return any(
        e.op == "item_update" and set(e.payload.get("tags") or []) - not_content for e in entries
    )


def _replaced(link: dict[str, Any]) -> plan.Ref:
    """The old copy an edited item's link notes (`REPLACES`)."""
    old = link[REPLACES]
    return plan.Ref(str(old["mailbox"]), int(old["uidvalidity"]), int(old["uid"]), frozenset())


def _ref(item: LocalItem | None) -> plan.Ref | None:
    if item is None or not item.upstream or "uid" not in item.upstream:
        return None
    up = item.upstream
    return plan.Ref(
        str(up["mailbox"]),
        int(up.get("uidvalidity") or 0),
        int(up["uid"]),
        frozenset(up.get("flags") or ()),
    )
