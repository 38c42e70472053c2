"""Folder hierarchy sync: local folder creations, renames, moves and deletions go up as
CREATE/RENAME/DELETE; upstream mailboxes appear, and vanish, locally. Returns the synced
folders with their mailbox names.

IMAP has no stable mailbox ids, so a rename made on the server arrives as a deletion and
a creation (the messages are fetched again).
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.model.flags import FOLDER_SEARCH
from bridge.store.core import UPSTREAM
from bridge.store.errors import Conflict, StoreError
from bridge.store.folders import Folder
from bridge.store.store import Store
from bridge.store.syncstate import LOST, JournalEntry
from bridge.sync import conflicts, crashpoint
from bridge.sync.dav_scope import dav_entry_ids
from bridge.sync.mail_fetch import PARTLY_STORED
from bridge.upstream.base import ConnectFailed, MailAdapter, RemoteFolder, UpstreamError

log = logging.getLogger(__name__)

RENAME_SAMPLE = 20  # cached messages compared at their UIDs before a rename is followed

DEFAULT_MAILBOX = {
    "inbox": "INBOX",
    "sent": "Sent",
    "drafts": "Drafts",
    "deleted": "Trash",
    "junk": "Junk",
}
NOT_MAIL = frozenset(
    {
        "root",
        "ipm_subtree",
        "outbox",
        "calendar",
        "contacts",
        "tasks",
        "notes",
        "journal",
        "sync_issues",
        "conflicts",
        "local_failures",
        "server_failures",
        "reminders",
    }
)


class _Waits(Exception):
    """A folder change that cannot be made yet, and is no failure."""


class Hierarchy:
    def __init__(self, store: Store, adapter: MailAdapter, delimiter: str = "/") -> None:
        self.store = store
        self.adapter = adapter
        self.delim = delimiter
        self.folders: dict[int, Folder] = {}
        self.links: dict[int, dict[str, Any]] = {}
        self.failed: list[str] = []  # folder changes the server refused this run
        self.deleting: set[str] = set()  # mailboxes whose deletion waits for `finish`

    async def _reload(self) -> None:
        self.folders = {f.id: f for f in await self.store.folders.all()}
        links = await self.store.sync.folder_links()
        self.links = {
            fid: ref for fid, ref in links.items() if fid in self.folders and "mailbox" in ref
        }

    def mailbox_of(self, fid: int) -> str | None:
        """The mailbox a local folder maps to (None: the folder is not synced)."""
        f = self.folders.get(fid)
        # Search folders are local only: never a mailbox, and so never created upstream.
        if f is None or f.role in NOT_MAIL or f.folder_type == FOLDER_SEARCH:
            return None
        if f.role in DEFAULT_MAILBOX:
            return str(self.links.get(fid, {}).get("mailbox") or DEFAULT_MAILBOX[f.role])
        if f.container_class and not f.container_class.startswith("IPF.Note"):
            return None
        parent = self.folders.get(f.parent_id) if f.parent_id is not None else None
        if parent is None:
            return None
        name = f.display_name.replace(self.delim, "_")
        if parent.role == "ipm_subtree":
            return name
        above = self.mailbox_of(parent.id)
        return None if above is None else above + self.delim + name

    async def sync(self) -> dict[int, str]:
        await self._reload()
        await self._push()
        remote = await self.adapter.list_folders()
        await self._pull(remote)
        await self._reload()
        closed = {f.name for f in remote if not f.selectable}
        return {
            fid: str(ref["mailbox"])
            for fid, ref in self.links.items()
            if ref["mailbox"] not in closed
        }

    # -- local → upstream -------------------------------------------------------------

    async def finish(self) -> None:
        """After the item replay: the deletions that waited for messages moved out."""
        if self.deleting:
            self.deleting = set()
            await self._push(only="folder_delete")

    async def _push(self, only: str | None = None) -> None:
        entries = [
            e
            for e in await self.store.sync.journal()
            if e.kind == "folder" and (only is None or e.op == only)
        ]
        dav = await dav_entry_ids(self.store, entries)  # carried out by the DAV engine
        entries = [e for e in entries if e.id not in dav]
        for entry in entries:
            try:
                await self._push_entry(entry)
            except ConnectFailed:
                raise
            except _Waits:
                self.deleting |= {
                    str(r.get("mailbox")) for r in entry.payload.get("upstream") or []
                }
                continue
            except UpstreamError as exc:  # (a name the server refuses, say)
                log.warning(
                    "folder %d: %s not made on the server: %s", entry.object_id, entry.op, exc
                )
                self.failed.append(f"{self.store.ids.api_id('folder', entry.object_id)}: {exc}")
                continue  # kept in the journal, tried again next run; the rest goes on
            crashpoint.step(f"folder change {entry.op} made on the server")
            await self.store.sync.remove_journal([entry.id])
            crashpoint.step(f"folder journal entry {entry.id} confirmed")
            await self._reload()

    async def _push_entry(self, entry: JournalEntry) -> None:
        fid = entry.object_id
        if entry.op == "folder_delete":
            if not await self._delete_mailboxes(entry.payload.get("upstream") or []):
                raise _Waits
        elif fid in self.folders and self.folders[fid].role is None:
            want = self.mailbox_of(fid)
            have = self.links.get(fid, {}).get("mailbox")
            if want is not None and have is None:
                await self.adapter.create_folder(want)
                await self.store.sync.set_folder_link(fid, {"mailbox": want})
            elif want is not None and have is not None and want != have:
                if await self._rename(str(have), want):
                    await self.store.sync.rename_mailbox(str(have), want, self.delim)
            elif want is None and have is not None:
                await self.adapter.delete_folder(str(have))
                await self.store.sync.set_folder_link(fid, None)

    async def _delete_mailboxes(self, refs: list[dict[str, Any]]) -> bool:
        """Delete the mailboxes of a folder deleted here, deepest first, but not what the
        user did not see: a mailbox that has messages since the last pull (another
        client's) loses only the others and stays, to come back here with them; so do its
        parents. False when a mailbox must wait: a message moved out of it here has not
        left it yet (the item replay moves it, then `finish` deletes); its parents wait
        with it."""
        kept: list[str] = []
        waiting: list[str] = []
        for ref in sorted(refs, key=lambda r: len(str(r.get("mailbox"))), reverse=True):
            name = str(ref.get("mailbox"))
            below = [n for n in kept + waiting if n.startswith(name + self.delim)]
            try:
                state = await self.adapter.select(name)
            except ConnectFailed:
                raise
            except UpstreamError:
                if name in {f.name for f in await self.adapter.list_folders()}:
                    raise
                continue  # gone already
            present = await self.adapter.list_uids()
            if ref.get("uidvalidity") is None:
                new: set[int] = set()  # never pulled: nothing to tell apart
            elif ref["uidvalidity"] != state.uidvalidity:
                new = set(present)
            else:
                new = {u for u in present if u >= int(ref.get("uidnext") or 0)}
            moved_out = {
                int(i.upstream["uid"])
                for i in await self.store.sync.linked_items(name)
                if i.upstream and i.upstream.get("uidvalidity") == state.uidvalidity
            } & set(present)
            if not (new or moved_out or below):
                await self.adapter.delete_folder(name)
                continue
            seen = sorted(set(present) - new - moved_out)
            if seen:
                await self.adapter.expunge(seen)
            if new or any(n in kept for n in below):
                if new:
                    log.warning(
                        "mailbox %s not deleted: it has %d message(s) not seen here", name, len(new)
                    )
                kept.append(name)
            else:
                waiting.append(name)
        return not waiting

    async def _rename(self, old: str, new: str) -> bool:
        """RENAME a mailbox; False when the server no longer has it (another client
        deleted or renamed it first): then the server's change wins, as the pull finds it
        (a rename followed, or the folder gone with its local work kept)."""
        try:
            await self.adapter.rename_folder(old, new)
        except ConnectFailed:
            raise
        except UpstreamError:
            if old in {f.name for f in await self.adapter.list_folders()}:
                raise
            log.warning("mailbox %s is gone from the server: its rename to %s is dropped", old, new)
            return False
        return True

    # -- upstream → local -------------------------------------------------------------

    async def _pull(self, remote: list[RemoteFolder]) -> None:
        names = {f.name for f in remote}
        roles = self.store.folders.roles
        for f in remote:
            role = f.role
            if role is None:
                role = next((r for r, n in DEFAULT_MAILBOX.items() if n == f.name), None)
            if role in DEFAULT_MAILBOX and role in roles:
                fid = roles[role]
                if self.links.get(fid, {}).get("mailbox") != f.name and (
                    self.links.get(fid, {}).get("mailbox") not in names or f.role is not None
                ):
                    await self.store.sync.set_folder_link(fid, {"mailbox": f.name})
        await self._reload()
        await self._follow_renames(remote)
        for fid, ref in list(self.links.items()):
            if ref.get("mailbox") in names or fid not in self.folders:
                continue  # (a folder not there went with its parent)
            if self.folders[fid].role is not None:
                await self.store.sync.set_folder_link(fid, None)
                continue
            await self._delete_gone(fid, str(ref["mailbox"]), names)
            await self._reload()
        by_mailbox = {str(ref["mailbox"]): fid for fid, ref in self.links.items()}
        for f in sorted(remote, key=lambda r: r.name.count(self.delim)):
            if f.name in by_mailbox or f.name in self.deleting:
                continue
            parent_name, _, leaf = f.name.rpartition(self.delim)
            parent = by_mailbox.get(parent_name) if parent_name else roles["ipm_subtree"]
            if parent is None:
                log.info("mailbox %s skipped: its parent is not synced", f.name)
                continue
            existing = next(
                (
                    c
                    for c in self.folders.values()
                    if c.parent_id == parent
                    and c.display_name.lower() == leaf.lower()
                    and c.folder_type != FOLDER_SEARCH
                ),
                None,
            )
            try:
                if existing is not None and existing.id not in self.links:
                    fid = existing.id
                    await self.store.sync.set_folder_link(fid, {"mailbox": f.name})
                elif existing is None:
                    fid = await self.store.folders.create(
                        parent, leaf, "IPF.Note", origin=UPSTREAM, upstream={"mailbox": f.name}
                    )
                else:
                    continue
            except (StoreError, UpstreamError) as exc:
                log.warning("mailbox %s not mirrored: %s", f.name, exc)
                continue
            by_mailbox[f.name] = fid
            await self._reload()

    def _subtree(self, fid: int) -> set[int]:
        """The folder and every folder below it."""
        found, todo = {fid}, [fid]
        while todo:
            parent = todo.pop()
            for f in self.folders.values():
                if f.parent_id == parent and f.id not in found:
                    found.add(f.id)
                    todo.append(f.id)
        return found

    async def _delete_gone(self, fid: int, mailbox: str, names: set[str]) -> None:
        """Delete the folder of a mailbox gone from the server, its local work kept first
        (`_keep_local_work`), and again if more is done here meanwhile."""
        for attempt in range(1, conflicts.WRITE_ATTEMPTS + 1):
            mark = await self.store.sync.journal_mark()  # (read first)
            await self._keep_local_work(fid, mailbox, names)
            try:
                await self.store.folders.delete(
                    fid, hard=True, origin=UPSTREAM, unchanged_since=mark
                )
            except Conflict:  # changed here since its local work was kept
                if attempt == conflicts.WRITE_ATTEMPTS:
                    raise
                await self._reload()
                continue
            except StoreError:  # already gone with its parent
                pass
            return

    async def _keep_local_work(self, fid: int, mailbox: str, names: set[str]) -> None:
        """The mailbox of a folder is gone from the server (deleted or renamed by another
        client): before the folder goes, with its subfolders, nothing that waits to go up
        goes with it. Of their items, those the server has elsewhere (moved in here, not
        yet moved there) go back to the folder of that mailbox; the others with local
        changes, or never uploaded, go to Sync Issues/Conflicts. Items moved out of the
        mailbox here lose their link to it (`LOST`): the server may have moved them
        elsewhere before, which a pull then finds; else they are uploaded where they are. Deletions
        of its messages are dropped: the server deleted them with it."""
        doomed = self._subtree(fid)
        lost = {str(self.links[f]["mailbox"]) for f in doomed if f in self.links} | {mailbox}
        home = {
            str(ref["mailbox"]): f
            for f, ref in self.links.items()
            if f not in doomed and ref.get("mailbox") in names
        }
        dirty = await self.store.sync.dirty_items()
        for item in await self.store.sync.items_in(sorted(doomed)):
            link = item.upstream or {}
            on_server = "uid" in link and str(link.get("mailbox")) not in lost
            if on_server and str(link["mailbox"]) in home:
                back = home[str(link["mailbox"])]
                await self.store.items.move(item.id, back, origin=UPSTREAM)
                conflicts.publish(
                    self.store,
                    item.id,
                    None,
                    back,
                    "moved here into a folder deleted on the server: back where the server has it",
                    mailbox=mailbox,
                )
            elif item.id in dirty or "uid" not in link:
                log.warning(
                    "item %d kept in Sync Issues: %s is gone from the server", item.id, mailbox
                )
                await conflicts.keep_aside(
                    self.store, item.id, "its folder was deleted on the server", mailbox=mailbox
                )
        moved_out: dict[int, dict[str, Any] | None] = {
            # (with what the cache lacks of a partly stored message: it is still so)
            i.id: {LOST: name, **{k: v for k, v in i.upstream.items() if k in PARTLY_STORED}}
            for name in lost
            for i in await self.store.sync.linked_items(name)
            if i.folder_id not in doomed and i.upstream is not None
        }
        await self.store.sync.set_item_links(moved_out)
        deletions = [
            e.id
            for e in await self.store.sync.journal()
            if e.op == "item_delete" and (e.payload.get("upstream") or {}).get("mailbox") in lost
        ]
        await self.store.sync.remove_journal(deletions)

    # -- mailboxes renamed on the server ----------------------------------------------------

    async def _follow_renames(self, remote: list[RemoteFolder]) -> None:
        """IMAP has no mailbox ids, but a renamed mailbox keeps its UIDVALIDITY and its
        UIDs (RFC 3501 RENAME; Dovecot and Cyrus do). A synced mailbox gone from the list
        whose UIDVALIDITY a new one has, holding the same messages at the UIDs checked, was
        renamed; so was one whose messages (by Message-ID) a new one holds under another
        UIDVALIDITY (then the pull matches the UIDs anew). The local
        folder follows (name and place), keeping its items and their pending changes, and
        nothing is fetched again. Anything less certain is left to the usual way: the old
        folder goes (its local work kept), the new one is fetched."""
        names = {f.name for f in remote}
        tried: set[str] = set()
        while True:
            gone = [
                (fid, str(ref["mailbox"]), ref.get("uidvalidity"))
                for fid, ref in self.links.items()
                if ref.get("mailbox") not in names
                and fid in self.folders
                and self.folders[fid].role is None
            ]
            linked = {str(ref["mailbox"]) for ref in self.links.values()}
            fresh = [
                f
                for f in sorted(remote, key=lambda r: r.name.count(self.delim))
                if f.name not in linked and f.name not in tried and f.selectable
            ]
            if not gone or not fresh:
                return
            new = fresh[0].name
            tried.add(new)
            state = await self.adapter.select(new, readonly=True)
            match = None
            for fid, old, uidvalidity in gone:
                if uidvalidity == state.uidvalidity and await self._same_messages(
                    old, state.uidvalidity
                ):
                    match = fid, old
                    break
            if match is None:  # renamed and reset, or made anew with the same messages
                match = await self._same_message_ids([(fid, old) for fid, old, _ in gone])
            if match is not None and await self._move_folder(match[0], new):
                await self.store.sync.rename_mailbox(match[1], new, self.delim)
                log.info("mailbox %s was renamed on the server to %s: followed", match[1], new)
                await self._reload()

    async def _same_messages(self, old: str, uidvalidity: int) -> bool:
        """Whether the selected mailbox (with `old`'s UIDVALIDITY) has, at the UIDs of
        (some of) the messages cached from `old`, the same messages (by Message-ID), where
        it has any: a message gone since is no evidence against it, another one is."""
        cached = {
            int(i.upstream["uid"]): i.message_id
            for i in await self.store.sync.linked_items(old)
            if i.upstream and i.upstream.get("uidvalidity") == uidvalidity and i.message_id
        }
        if not cached:
            return True  # nothing cached that could be mistaken
        sample = sorted(cached)[-RENAME_SAMPLE:]
        there = await self.adapter.message_ids(sample)
        return all(cached[uid] == msgid for uid, msgid in there.items())

    async def _same_message_ids(self, gone: list[tuple[int, str]]) -> tuple[int, str] | None:
        """The gone mailbox (folder, name) that the most of the selected one's messages
        come from (by Message-ID: cached here, or deleted here and not yet expunged), if
        any does. Taking it for renamed is safe even if it was not: the pull matches its
        messages by Message-ID, as after a UIDVALIDITY change, and what is not there goes
        as it would with the mailbox (or aside, when changed here)."""
        there = set((await self.adapter.message_ids()).values())
        if not there:
            return None
        journal = await self.store.sync.journal()
        best, most = None, 0
        for fid, old in gone:
            cached = {i.message_id for i in await self.store.sync.linked_items(old)}
            cached |= {  # those deleted here: the server may still have them
                e.payload.get("message_id")
                for e in journal
                if e.op == "item_delete" and (e.payload.get("upstream") or {}).get("mailbox") == old
            }
            common = len(there & {str(m) for m in cached if m})
            if common > most:
                best, most = (fid, old), common
        return best

    async def _move_folder(self, fid: int, mailbox: str) -> bool:
        """Give the folder the name and place of `mailbox`; False if it cannot have them."""
        parent_name, _, leaf = mailbox.rpartition(self.delim)
        by_mailbox = {str(ref["mailbox"]): f for f, ref in self.links.items()}
        parent = (
            by_mailbox.get(parent_name) if parent_name else self.store.folders.roles["ipm_subtree"]
        )
        if parent is None or parent in self._subtree(fid):
            return False
        try:
            await self.store.folders.update(fid, name=leaf, parent_id=parent, origin=UPSTREAM)
        except StoreError as exc:
            log.info("mailbox %s: the folder cannot follow the rename (%s)", mailbox, exc)
            return False
        return True
