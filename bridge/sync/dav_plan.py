"""Decide, then act, for CalDAV / CardDAV: pure functions that turn (stored references,
local changes, what the server reported) into actions. No I/O here.

Three decisions:
- `plan_hierarchy`: collections ↔ folders (the first collection of each kind links to the
  store's default folder of that kind; others become folders of their own; folders made,
  renamed or deleted on one side are made, renamed or deleted on the other);
- `plan_pull`: what a sync-collection delta or a full ETag listing means for the cached
  items of one collection (fetch, delete, keep aside as a conflict, keep the local
  version);
- `plan_push`: what one item with pending local changes needs on the server (PUT with
  If-None-Match or If-Match, DELETE with If-Match, or both for a move between
  collections).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.sync.plan import local_is_newer

POLICIES = ("keep-both", "server-wins", "local-wins", "newer-wins")

# -- hierarchy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteCollection:
    href: str
    name: str
    kind: str


@dataclass(frozen=True)
class LocalFolder:
    id: int
    name: str
    kind: str | None  # collection kind of its container class (None: not a DAV folder)
    role: str | None  # default-folder role of the kind ("calendar", ...), else None
    href: str | None = None  # linked collection
    linked_name: str | None = None  # the collection's name when last synced
    in_trash: bool = False  # in (or below) Deleted Items
    renamed: bool = False  # has a pending local change (rename) not yet pushed
    has_items: bool = False


@dataclass(frozen=True)
class LinkFolder:
    folder_id: int
    href: str


@dataclass(frozen=True)
class CreateLocal:
    href: str
    name: str
    kind: str


@dataclass(frozen=True)
class RenameLocal:
    folder_id: int
    name: str


@dataclass(frozen=True)
class RemoveLocal:
    """The collection is gone from the server: a default folder is unlinked (and
    emptied of what the server no longer has), any other folder deleted."""

    folder_id: int
    href: str
    keep_folder: bool


@dataclass(frozen=True)
class CreateRemote:
    folder_id: int
    kind: str
    name: str


@dataclass(frozen=True)
class RenameRemote:
    folder_id: int
    href: str
    name: str


@dataclass(frozen=True)
class DeleteRemote:
    href: str
    folder_id: int | None  # the folder still linked to it (in Deleted Items), if any


HierarchyAction = (
    LinkFolder
    | CreateLocal
    | RenameLocal
    | RemoveLocal
    | CreateRemote
    | RenameRemote
    | DeleteRemote
)


def plan_hierarchy(
    remote: Iterable[RemoteCollection],
    local: Iterable[LocalFolder],
    kinds: Iterable[str],
    deleted_hrefs: Iterable[str] = (),
    disabled: Iterable[str] = (),
) -> list[HierarchyAction]:
    """`kinds`: the collection kinds this engine serves; `deleted_hrefs`: collections whose
    folders were deleted here; `disabled`: collections not to sync (left alone)."""
    served = frozenset(kinds)
    off = frozenset(disabled)
    remote_list = sorted((c for c in remote if c.kind in served), key=lambda c: c.href)
    by_href = {c.href: c for c in remote_list}
    folders = [f for f in local if f.kind in served or (f.href is not None and f.kind is None)]
    actions: list[HierarchyAction] = []
    gone = {h for h in deleted_hrefs if h in by_href}
    for href in sorted(gone):
        actions.append(DeleteRemote(href, None))
    linked: dict[str, LocalFolder] = {}
    for f in folders:
        if f.href is None:
            continue
        if f.href in gone:
            continue
        if f.href not in by_href:
            actions.append(RemoveLocal(f.id, f.href, keep_folder=f.role is not None or f.in_trash))
            continue
        if f.in_trash:
            actions.append(DeleteRemote(f.href, f.id))
            continue
        linked[f.href] = f
        c = by_href[f.href]
        if f.role is not None or f.href in off:
            continue
        if f.renamed and f.name != f.linked_name:
            actions.append(RenameRemote(f.id, f.href, f.name))
        elif c.name != f.linked_name and c.name != f.name:
            actions.append(RenameLocal(f.id, c.name))
    roles_linked = {f.kind for f in linked.values() if f.role is not None}
    free_roles = {
        f.kind: f
        for f in folders
        if f.role is not None and f.href is None and f.kind not in roles_linked
    }
    free_named = {
        (f.kind, f.name.lower()): f
        for f in folders
        if f.role is None and f.href is None and not f.in_trash and f.kind is not None
    }
    taken: set[int] = set()
    for c in remote_list:
        if c.href in linked or c.href in gone or c.href in off:
            continue
        role_folder = free_roles.pop(c.kind, None)
        if role_folder is not None:
            actions.append(LinkFolder(role_folder.id, c.href))
            taken.add(role_folder.id)
            continue
        same = free_named.pop((c.kind, c.name.lower()), None)
        if same is not None:
            actions.append(LinkFolder(same.id, c.href))
            taken.add(same.id)
        else:
            actions.append(CreateLocal(c.href, c.name, c.kind))
    for f in folders:
        if f.href is not None or f.id in taken or f.in_trash or f.kind is None:
            continue
        if f.role is not None and not f.has_items:
            continue  # an empty default folder waits for a collection of its kind
        actions.append(CreateRemote(f.id, f.kind, f.name))
    return actions


# -- pull ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A resource as the server reported it."""

    href: str
    etag: str | None


@dataclass(frozen=True)
class KnownItem:
    """A cached item linked to a resource of the collection being pulled."""

    item_id: int
    href: str
    etag: str | None
    dirty: bool = False  # has local changes not yet confirmed by the server
    changed_at: int | None = None  # FILETIME of the latest pending local change
    pending: bool = False  # an upload was started but not confirmed


@dataclass(frozen=True)
class Fetch:
    """Fetch a resource: new (`item_id` None) or replacing the cached item. `conflict`:
    None (no local change), "keep-both" (copy the local version aside first) or
    "server-wins" (the local change is dropped)."""

    href: str
    item_id: int | None = None
    conflict: str | None = None


@dataclass(frozen=True)
class SetEtag:
    """Remember the server's ETag without fetching: our own upload seen again, or the
    local version wins and will be written over this one (If-Match this ETag)."""

    item_id: int
    href: str
    etag: str | None
    conflict: bool = False


@dataclass(frozen=True)
class DeleteLocal:
    item_id: int


@dataclass(frozen=True)
class KeepConflict:
    """Deleted on the server, changed here: the local version goes to Conflicts."""

    item_id: int


@dataclass(frozen=True)
class Unlink:
    """Deleted on the server, the local change wins: uploaded again as new."""

    item_id: int


@dataclass(frozen=True)
class Unskip:
    """A resource set aside earlier (window, malformed) is gone or changed."""

    href: str


PullAction = Fetch | SetEtag | DeleteLocal | KeepConflict | Unlink | Unskip


def conflict_after_plan(policy: str) -> str | None:
    """The `Fetch.conflict` of an item changed here after the pull planned to fetch the
    server's change of it (not changed before): the local change is then the newer one.
    None when the local version wins (it goes up over the server's)."""
    return policy if policy in ("keep-both", "server-wins") else None


def local_wins(policy: str, k: KnownItem, observed_at: int | None) -> bool:
    if policy == "local-wins":
        return True
    if policy == "newer-wins":
        return local_is_newer(k.changed_at, observed_at)
    return False


def plan_pull(
    known: Iterable[KnownItem],
    changed: Iterable[Member],
    removed: Iterable[str] | None,
    skipped: Mapping[str, str | None],
    policy: str,
    observed_at: int | None = None,
) -> list[PullAction]:
    """`removed` None means `changed` is the full listing: every known resource missing
    from it is gone. `skipped`: href → ETag of resources set aside earlier."""
    by_href = {k.href: k for k in known}
    members = {m.href: m for m in changed}
    if removed is None:
        gone = {h for h, k in by_href.items() if h not in members and not k.pending}
        unskip = {h for h in skipped if h not in members}
    else:
        gone = {h for h in removed if h in by_href and not by_href[h].pending}
        unskip = {h for h in removed if h in skipped}
    actions: list[PullAction] = []
    for href in sorted(gone):
        k = by_href[href]
        if not k.dirty or policy == "server-wins":
            actions.append(DeleteLocal(k.item_id))
        elif policy == "keep-both":
            actions.append(KeepConflict(k.item_id))
        elif local_wins(policy, k, observed_at):
            actions.append(Unlink(k.item_id))
        else:
            actions.append(DeleteLocal(k.item_id))
    for href in sorted(unskip):
        actions.append(Unskip(href))
    for href in sorted(members):
        m = members[href]
        cur = by_href.get(href)
        if cur is None:
            if href in skipped and skipped[href] == m.etag and m.etag is not None:
                continue
            if href in skipped:
                actions.append(Unskip(href))
            actions.append(Fetch(href))
            continue
        if cur.pending:
            actions.append(SetEtag(cur.item_id, href, m.etag))
            continue
        if m.etag is not None and m.etag == cur.etag:
            continue
        if not cur.dirty:
            actions.append(Fetch(href, cur.item_id))
        elif policy == "keep-both":
            actions.append(Fetch(href, cur.item_id, "keep-both"))
        elif local_wins(policy, cur, observed_at):
            actions.append(SetEtag(cur.item_id, href, m.etag, conflict=True))
        else:
            actions.append(Fetch(href, cur.item_id, "server-wins"))
    return actions


# -- push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRef:
    """Where an item lives on the server."""

    href: str
    etag: str | None
    collection: str
    uid: str | None
    pending: bool = False
    moved_from: str | None = None  # the resource a pending move still has to delete
    moved_etag: str | None = None


@dataclass(frozen=True)
class Create:
    """PUT If-None-Match: * at <UID>.<ext> in `collection`."""

    collection: str


@dataclass(frozen=True)
class Update:
    """PUT If-Match: `etag` at `href`."""

    href: str
    etag: str | None


@dataclass(frozen=True)
class Delete:
    """DELETE (If-Match: `etag` when known)."""

    href: str
    etag: str | None


PushAction = Create | Update | Delete


def plan_push(
    ref: ItemRef | None, exists: bool, target: str | None, content_changed: bool
) -> list[PushAction]:
    """Bring one item with pending changes upstream to its local state. `target`: the
    collection of the item's current folder (None: not a synced DAV folder). The actions
    act on the current state, so replaying them after a crash is harmless."""
    # The old place of a move cut short (PUT done, DELETE not yet) is deleted in any case.
    finish: list[PushAction] = []
    if ref is not None and ref.moved_from is not None:
        finish.append(Delete(ref.moved_from, ref.moved_etag))
    if not exists or target is None:
        if ref is None:
            return []
        return [Delete(ref.href, None if ref.pending else ref.etag), *finish]
    if ref is None:
        return [Create(target)]
    if ref.pending:
        actions: list[PushAction] = [Create(target)]
        if ref.collection != target:
            actions.append(Delete(ref.href, None))
        return actions + finish
    if ref.collection != target:
        return [Create(target), Delete(ref.href, ref.etag), *finish]
    if content_changed:
        return [Update(ref.href, ref.etag), *finish]
    return finish
