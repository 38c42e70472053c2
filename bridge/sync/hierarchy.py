"""Folder hierarchy sync: local folder creations, renames, moves and deletions go up as
CREATE/RENAME/DELETE; upstream mailboxes appear, and vanish, locally. Returns the synced
folders with their mailbox names.

IMAP has no stable mailbox ids, so a rename made on the server arrives as a deletion and
a creation (the messages are fetched again).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from bridge.model.flags import FOLDER_SEARCH
from bridge.store.core import UPSTREAM
from bridge.store.errors import StoreError
from bridge.store.folders import Folder
from bridge.store.store import Store
from bridge.sync import crashpoint
from bridge.sync.dav_scope import dav_entry_ids
from bridge.upstream.base import MailAdapter, RemoteFolder, UpstreamError

log = logging.getLogger(__name__)

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


class Hierarchy:
    def __init__(self, store: Store, adapter: MailAdapter, delimiter: str = "/") -> None:
        self.store = store
        self.adapter = adapter
        self.delim = delimiter
        self.folders: dict[int, Folder] = {}
        self.links: dict[int, dict[str, Any]] = {}

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

    async def _push(self) -> None:
        entries = [e for e in await self.store.sync.journal() if e.kind == "folder"]
        dav = await dav_entry_ids(self.store, entries)  # carried out by the DAV engine
        entries = [e for e in entries if e.id not in dav]
        for entry in entries:
            fid = entry.object_id
            if entry.op == "folder_delete":
                refs = entry.payload.get("upstream") or []
                for name in sorted((str(r.get("mailbox")) for r in refs), key=len, reverse=True):
                    await self.adapter.delete_folder(name)
            elif fid in self.folders and self.folders[fid].role is None:
                want = self.mailbox_of(fid)
                have = self.links.get(fid, {}).get("mailbox")
                if want is not None and have is None:
                    await self.adapter.create_folder(want)
                    await self.store.sync.set_folder_link(fid, {"mailbox": want})
                elif want is not None and have is not None and want != have:
                    await self.adapter.rename_folder(str(have), want)
                    await self.store.sync.rename_mailbox(str(have), want, self.delim)
                elif want is None and have is not None:
                    await self.adapter.delete_folder(str(have))
                    await self.store.sync.set_folder_link(fid, None)
            crashpoint.step(f"folder change {entry.op} made on the server")
            await self.store.sync.remove_journal([entry.id])
            crashpoint.step(f"folder journal entry {entry.id} confirmed")
            await self._reload()

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
        for fid, ref in list(self.links.items()):
            if ref.get("mailbox") in names:
                continue
            if self.folders[fid].role is not None:
                await self.store.sync.set_folder_link(fid, None)
                continue
            with contextlib.suppress(StoreError):  # already gone with its parent
                await self.store.folders.delete(fid, hard=True, origin=UPSTREAM)
        await self._reload()
        by_mailbox = {str(ref["mailbox"]): fid for fid, ref in self.links.items()}
        for f in sorted(remote, key=lambda r: r.name.count(self.delim)):
            if f.name in by_mailbox:
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
