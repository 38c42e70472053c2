"""Which folders, items and journal entries belong to the CalDAV / CardDAV side of the sync
and which to the mail side, so that each journal entry is carried out by exactly one
engine.

A folder is a DAV folder when its container class is one of calendars, tasks, contacts
or notes, or when it is linked to a collection; a search folder never is. An item's
entries belong to DAV when the item is in a DAV folder or linked to a DAV resource (then
moving it out of its folder, or deleting it, is a DELETE on the DAV server); the entries
of an item that no longer exists follow the reference its deletion recorded. An item made
in a DAV folder and deleted into Deleted Items before it went up is DAV's too (there is
nothing to do for it: it stays local, as a synced one does once its resource is gone). A folder
deletion goes to DAV as long as it recorded a DAV reference; the DAV engine then leaves
only the mail references in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.model import classes, flags
from bridge.store.dav_refs import is_dav_ref
from bridge.store.folders import Folder
from bridge.store.store import Store
from bridge.store.syncstate import JournalEntry
from bridge.upstream.dav_base import ADDRESSBOOK, CALENDAR, NOTES, TASKS

KIND_OF_CLASS = {
    classes.IPF_APPOINTMENT: CALENDAR,
    classes.IPF_TASK: TASKS,
    classes.IPF_CONTACT: ADDRESSBOOK,
    classes.IPF_STICKYNOTE: NOTES,
}
CLASS_OF_KIND = {kind: cc for cc, kind in KIND_OF_CLASS.items()}
ROLE_OF_KIND = {CALENDAR: "calendar", TASKS: "tasks", ADDRESSBOOK: "contacts", NOTES: "notes"}
CALDAV_KINDS = frozenset({CALENDAR, TASKS, NOTES})
CARDDAV_KINDS = frozenset({ADDRESSBOOK})


def kind_of(folder: Folder) -> str | None:
    """The collection kind a folder's container class maps to (None: not a DAV class, or a
    search folder: its contents are links to items elsewhere, and it stays local)."""
    if folder.folder_type == flags.FOLDER_SEARCH:
        return None
    cc = folder.container_class or ""
    for prefix, kind in KIND_OF_CLASS.items():
        if cc == prefix or cc.startswith(prefix + "."):
            return kind
    return None


def is_dav_folder(folder: Folder) -> bool:
    return kind_of(folder) is not None or is_dav_ref(folder.upstream)


def _payload_refs(entry: JournalEntry) -> list[Any]:
    up = entry.payload.get("upstream")
    if isinstance(up, list):
        return up
    return [up] if up else []


def split_entries(
    entries: Iterable[JournalEntry],
    folders: Mapping[int, Folder],
    places: Mapping[int, tuple[int, dict[str, Any] | None]],
    trash: set[int],
) -> set[int]:
    """Ids of the journal entries that belong to the DAV side.

    `places` maps each existing item to (its folder, its reference); `trash` holds Deleted
    Items and the folders below it."""
    entries = list(entries)
    dav_folders = {fid for fid, f in folders.items() if is_dav_folder(f)}
    by_item: dict[int, list[JournalEntry]] = {}
    out: set[int] = set()
    for e in entries:
        if e.kind == "item":
            by_item.setdefault(e.object_id, []).append(e)
        elif e.op == "folder_delete":
            if any(is_dav_ref(r) for r in _payload_refs(e)):
                out.add(e.id)
        elif e.object_id in dav_folders:
            out.add(e.id)
    for item_id, group in by_item.items():
        place = places.get(item_id)
        if place is not None:
            folder_id, ref = place
            dav = folder_id in dav_folders or is_dav_ref(ref)
            if not dav and not ref and folder_id in trash:
                # made in a DAV folder and deleted into Deleted Items before it went up:
                # it stays there, as a synced one does once its resource is deleted
                dav = any(e.folder_id in dav_folders for e in group)
        else:
            dav = any(is_dav_ref(r) for e in group for r in _payload_refs(e)) or any(
                e.folder_id in dav_folders for e in group
            )
        if dav:
            out.update(e.id for e in group)
    return out


async def dav_entry_ids(store: Store, entries: list[JournalEntry]) -> set[int]:
    """`split_entries` with the store's current folders and items."""
    folders = {f.id: f for f in await store.folders.all()}
    places = await store.dav_refs.places(e.object_id for e in entries if e.kind == "item")
    trash = set(await store.folders.descendants(store.folders.roles["deleted"]))
    return split_entries(entries, folders, places, trash)
