"""Collections ↔ folders for one DAV upstream: carries out `dav_plan.plan_hierarchy` and
returns the synced folders with their collections.

Collections are flat on a DAV server; a collection that has no folder yet becomes one
directly below the top of the store (or links to the default folder of its kind when
that has none). Folders of a DAV container class made anywhere become collections.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bridge.store.core import UPSTREAM
from bridge.store.dav_refs import is_dav_ref
from bridge.store.errors import Conflict, NotFound, StoreError
from bridge.store.folders import Folder
from bridge.store.store import Store
from bridge.store.syncstate import JournalEntry
from bridge.sync import conflicts, dav_plan
from bridge.sync.dav_report import DavReport
from bridge.sync.dav_scope import CLASS_OF_KIND, ROLE_OF_KIND, kind_of
from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import Collection, DavAdapter, ResourceGone

log = logging.getLogger(__name__)


def folder_path(folders: dict[int, Folder], fid: int, top: int) -> str:
    """A folder's path below the top of the store ("Calendar", "Work/Team")."""
    parts: list[str] = []
    f = folders.get(fid)
    while f is not None and f.id != top:
        parts.append(f.display_name)
        f = folders.get(f.parent_id) if f.parent_id is not None else None
    return "/".join(reversed(parts))


class DavHierarchy:
    def __init__(
        self,
        store: Store,
        adapter: DavAdapter,
        service: str,
        kinds: frozenset[str],
        enabled: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.service = service
        self.kinds = kinds
        self.enabled = enabled
        self.folders: dict[int, Folder] = {}
        self.refs: dict[int, dict[str, Any]] = {}
        self.trash: set[int] = set()

    async def reload(self) -> None:
        self.folders = {f.id: f for f in await self.store.folders.all()}
        self.refs = {
            fid: ref
            for fid, ref in (await self.store.dav_refs.folder_refs()).items()
            if ref.get("dav") == self.service and fid in self.folders
        }
        self.trash = set(await self.store.folders.descendants(self.store.folders.roles["deleted"]))

    def path(self, fid: int) -> str:
        return folder_path(self.folders, fid, self.store.folders.roles["ipm_subtree"])

    def owns_folder(self, fid: int) -> bool:
        f = self.folders.get(fid)
        if f is None:
            return False
        return fid in self.refs or kind_of(f) in self.kinds

    async def sync(
        self,
        entries: list[JournalEntry],
        report: DavReport,
        listed: list[Collection] | None = None,
    ) -> dict[int, tuple[Collection, dict[str, Any]]]:
        """Run the hierarchy step; returns folder id → (collection, reference) of every
        folder to pull and push. `listed`: the server's collections when already known."""
        await self.reload()
        if listed is None:
            listed = await self.adapter.collections(first_sync=not self.refs)
        remote = [c for c in listed if c.kind in self.kinds]
        by_href = {c.href: c for c in remote}
        renamed = {e.object_id for e in entries if e.kind == "folder" and e.op == "folder_update"}
        deletions = [e for e in entries if e.kind == "folder" and e.op == "folder_delete"]
        deleted_hrefs = [
            str(r["href"])
            for e in deletions
            for r in e.payload.get("upstream") or []
            if is_dav_ref(r) and r.get("dav") == self.service
        ]
        local = []
        for f in self.folders.values():
            kind = kind_of(f)
            ref = self.refs.get(f.id)
            if ref is None and (kind not in self.kinds or not self._on(f.id)):
                continue  # not a DAV folder, or one switched off in sync.folders
            local.append(
                dav_plan.LocalFolder(
                    id=f.id,
                    name=f.display_name,
                    kind=kind if kind in self.kinds else None,
                    role=f.role if f.role in ROLE_OF_KIND.values() else None,
                    href=str(ref["href"]) if ref else None,
                    linked_name=str(ref.get("name")) if ref and ref.get("name") else None,
                    in_trash=f.id in self.trash,
                    renamed=f.id in renamed,
                    has_items=f.content_count > 0,
                )
            )
        disabled = {
            c.href for c in remote if not self.enabled(c.name) and c.href not in self._linked()
        }
        disabled |= {str(ref["href"]) for fid, ref in self.refs.items() if not self._on(fid)}
        actions = dav_plan.plan_hierarchy(
            [dav_plan.RemoteCollection(c.href, c.name, c.kind) for c in remote],
            local,
            self.kinds,
            deleted_hrefs,
            disabled,
        )
        failures = len(report.failed)
        for action in actions:
            try:
                await self._act(action, by_href, report)
            except (ConnectFailed, AuthFailed):
                raise
            except (UpstreamError, StoreError) as exc:
                log.warning("DAV %s: %s failed: %s", self.service, action, exc)
                report.failed.append(f"{type(action).__name__}: {exc}")
        # The plan is idempotent: after a failure every entry stays for the next run.
        done = len(report.failed) == failures
        for e in entries:
            if e.kind != "folder" or not done:
                continue
            if e.op == "folder_delete":
                refs = e.payload.get("upstream") or []
                rest = [r for r in refs if not (is_dav_ref(r) and r.get("dav") == self.service)]
                if any(is_dav_ref(r) for r in rest) or any(
                    isinstance(r, dict) and r.get("mailbox") for r in rest
                ):
                    await self.store.dav_refs.set_journal_payload(
                        e.id, {**e.payload, "upstream": rest}
                    )
                    continue
            await self.store.sync.remove_journal([e.id])
        await self.reload()
        out: dict[int, tuple[Collection, dict[str, Any]]] = {}
        for fid, ref in self.refs.items():
            c = by_href.get(str(ref["href"]))
            if c is not None and fid not in self.trash and self._on(fid):
                out[fid] = (c, ref)
        return out

    def _linked(self) -> set[str]:
        return {str(ref["href"]) for ref in self.refs.values()}

    def _on(self, fid: int) -> bool:
        return self.enabled(self.path(fid))

    def _ref(self, c: Collection, **extra: Any) -> dict[str, Any]:
        return {"dav": self.service, "href": c.href, "kind": c.kind, "name": c.name, **extra}

    async def _act(
        self,
        action: dav_plan.HierarchyAction,
        by_href: dict[str, Collection],
        report: DavReport,
    ) -> None:
        links = self.store.sync
        if isinstance(action, dav_plan.LinkFolder):
            await links.set_folder_link(action.folder_id, self._ref(by_href[action.href]))
        elif isinstance(action, dav_plan.CreateLocal):
            c = by_href[action.href]
            top = self.store.folders.roles["ipm_subtree"]
            name = action.name.strip() or "Calendar"
            for n in range(1, 100):
                candidate = name if n == 1 else f"{name} ({n})"
                try:
                    await self.store.folders.create(
                        top,
                        candidate,
                        CLASS_OF_KIND[c.kind],
                        origin=UPSTREAM,
                        upstream=self._ref(c),
                    )
                    break
                except Conflict:
                    continue
        elif isinstance(action, dav_plan.RenameLocal):
            with contextlib.suppress(Conflict):
                await self.store.folders.update(action.folder_id, name=action.name, origin=UPSTREAM)
            ref = self.refs[action.folder_id]
            await links.set_folder_link(action.folder_id, {**ref, "name": action.name})
        elif isinstance(action, dav_plan.RemoveLocal):
            await self._remove_local(action, report)
        elif isinstance(action, dav_plan.CreateRemote):
            c = await self.adapter.create_collection(action.kind, action.name)
            await links.set_folder_link(action.folder_id, self._ref(c))
            by_href[c.href] = c
        elif isinstance(action, dav_plan.RenameRemote):
            await self.adapter.rename_collection(action.href, action.name)
            ref = self.refs[action.folder_id]
            await links.set_folder_link(action.folder_id, {**ref, "name": action.name})
        elif isinstance(action, dav_plan.DeleteRemote):
            with contextlib.suppress(ResourceGone):
                await self.adapter.delete_collection(action.href)
            if action.folder_id is not None:
                await links.set_folder_link(action.folder_id, None)
            await self._unlink_items(action.href)
            await self.store.dav_refs.forget_collection(action.href)

    async def _unlink_items(self, href: str) -> None:
        items = await self.store.dav_refs.linked_to(href)
        await self.store.sync.set_item_links({i.id: None for i in items})

    async def _remove_local(self, action: dav_plan.RemoveLocal, report: DavReport) -> None:
        """The collection is gone from the server. Of the items in its folder, or linked
        to it: one moved here out of it keeps its place, unlinked, and goes up to its new
        folder's collection; one moved here into it from a collection the server still
        has goes back to that collection's folder (its move is void); the others with
        local changes are kept in Sync Issues/Conflicts; the rest goes with the
        collection. What is changed here meanwhile is kept as well: the folder goes only
        once nothing in it was."""
        for attempt in range(1, conflicts.WRITE_ATTEMPTS + 1):
            try:
                await self._remove_local_once(action, report)
            except Conflict:  # changed here since it was read
                if attempt == conflicts.WRITE_ATTEMPTS:
                    raise
                continue
            return

    async def _remove_local_once(self, action: dav_plan.RemoveLocal, report: DavReport) -> None:
        mark = await self.store.sync.journal_mark()  # (read first)
        dirty = await self.store.sync.dirty_items()
        linked = {i.id for i in await self.store.dav_refs.linked_to(action.href)}
        in_folder = {i.id for i in await self.store.dav_refs.items_in(action.folder_id)}
        places = await self.store.dav_refs.places(linked | in_folder)
        folder_of = {
            str(ref["href"]): fid for fid, ref in self.refs.items() if fid != action.folder_id
        }
        for item_id in sorted(linked | in_folder):
            folder_id, ref = places.get(item_id, (action.folder_id, None))
            if item_id in linked and folder_id != action.folder_id and folder_id in self.refs:
                await self.store.sync.set_item_links({item_id: None})  # uploaded where it is
                continue
            home = folder_of.get(str((ref or {}).get("collection")))
            if item_id not in linked and ref and home is not None:
                with contextlib.suppress(StoreError):
                    await self.store.items.move(item_id, home, origin=UPSTREAM)
                continue
            deleted = False
            if item_id in linked and item_id not in dirty:
                try:
                    with contextlib.suppress(NotFound):
                        await self.store.items.delete(
                            item_id, hard=True, origin=UPSTREAM, unchanged_since=mark
                        )
                    deleted = True
                except Conflict:  # changed here since it was read
                    dirty.add(item_id)
            if item_id in dirty:
                await conflicts.keep_aside(
                    self.store,
                    item_id,
                    "its collection was deleted on the server, changed here",
                    collection=action.href,
                )
                report.conflicts += 1
            report.deleted += deleted
        await self.store.dav_refs.forget_collection(action.href)
        if action.keep_folder:
            await self.store.sync.set_folder_link(action.folder_id, None)
        else:
            try:
                await self.store.folders.delete(
                    action.folder_id, hard=True, origin=UPSTREAM, unchanged_since=mark
                )
            except Conflict:
                raise
            except StoreError:  # already gone
                pass
