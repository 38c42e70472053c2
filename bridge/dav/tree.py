"""The per-request view of the tree: folders by path, a folder's members (one query, cached
for the request), visibility for folder-limited tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.dav import names
from bridge.dav.reader import Reader, Row


@dataclass(slots=True)
class FolderNode:
    id: int
    parent_id: int | None
    role: str | None
    display_name: str
    container_class: str | None
    created: int
    modified: int
    cn: int
    children: dict[str, FolderNode] = field(default_factory=dict)  # dav name → child


@dataclass(slots=True)
class Member:
    """An item as listed: its name and the columns its live properties come from."""

    name: str
    row: Row

    @property
    def id(self) -> int:
        return int(self.row["id"])


class Tree:
    """Folders and members as one request sees them. `visible` is None (every folder) or the
    folder ids a folder-limited token may see; their ancestors can be walked through but
    show nothing else."""

    def __init__(self, reader: Reader, top_role: str, visible: set[int] | None) -> None:
        self.reader = reader
        self.top_role = top_role
        self.visible = visible
        self._members: dict[int, list[Member]] = {}
        self._dead: dict[int, dict[str, dict[str, str]]] = {}
        self.top: FolderNode
        self.by_id: dict[int, FolderNode] = {}
        self.reload()

    def reload(self) -> None:
        """Forget what was read (after a write in this request)."""
        self._members.clear()
        self._dead.clear()
        rows = self.reader.folders()
        self.by_id = {
            r["id"]: FolderNode(
                r["id"],
                r["parent_id"],
                r["role"],
                r["display_name"],
                r["container_class"],
                r["created"],
                r["modified"],
                r["cn"],
            )
            for r in rows
        }
        walkable = self._walkable()
        kids: dict[int, list[FolderNode]] = {}
        for node in self.by_id.values():
            if node.parent_id is not None and node.id in walkable:
                kids.setdefault(node.parent_id, []).append(node)
        for parent_id, nodes in kids.items():
            parent = self.by_id[parent_id]
            taken: set[str] = set()
            for node in sorted(nodes, key=lambda n: n.id):
                name = names.escape(node.display_name)
                if name.casefold() in taken:
                    name = f"{name} [f{node.id}]"
                taken.add(name.casefold())
                parent.children[name] = node
        self.top = next(n for n in self.by_id.values() if n.role == self.top_role)

    def _walkable(self) -> set[int]:
        if self.visible is None:
            return set(self.by_id)
        out = set(self.visible)
        for fid in self.visible:
            node = self.by_id.get(fid)
            while node is not None and node.parent_id is not None:
                out.add(node.parent_id)
                node = self.by_id.get(node.parent_id)
        return out

    def can_see(self, folder_id: int) -> bool:
        return self.visible is None or folder_id in self.visible

    def child(self, folder: FolderNode, name: str) -> FolderNode | None:
        node = folder.children.get(name)
        if node is not None:
            return node
        wanted = names.unescape(name).casefold()
        for child in folder.children.values():
            if child.display_name.casefold() == wanted:
                return child
        return None

    def members(self, folder: FolderNode) -> list[Member]:
        cached = self._members.get(folder.id)
        if cached is not None:
            return cached
        if not self.can_see(folder.id):
            self._members[folder.id] = []
            return []
        rows = self.reader.members(folder.id)
        wanted = [(int(r["id"]), item_name(r)) for r in rows]
        taken = {n.casefold() for n in folder.children}
        unique = names.unique(wanted, taken)
        out = [Member(unique[int(r["id"])], r) for r in rows]
        self._members[folder.id] = out
        return out

    def member(self, folder: FolderNode, name: str) -> Member | None:
        """One member by name, without listing the folder when the name says which item."""
        if folder.id in self._members or not self.can_see(folder.id):
            return self._scan(folder, name)
        candidates = set(self.reader.named(folder.id, name))
        item_id = names.id_in_name(name)
        if item_id is not None:
            candidates.add(item_id)
        if not candidates:
            candidates.update(self.reader.documents_named(folder.id, names.unescape(name)))
        for cid in sorted(candidates):
            row = self.reader.member(cid)
            if row is None or row["folder_id"] != folder.id:
                continue
            listed = item_name(row)
            if listed != name and names.with_id(listed, cid) != name:
                continue
            folded = listed.casefold()
            if any(n.casefold() == folded for n in folder.children) or (
                len(self.reader.named(folder.id, listed)) > 1
            ):
                return self._scan(folder, name)  # a collision: the listing decides
            return Member(listed, row) if listed == name else None
        return None

    def _scan(self, folder: FolderNode, name: str) -> Member | None:
        return next((m for m in self.members(folder) if m.name == name), None)

    def dead_props(self, folder: FolderNode, obj: str) -> dict[str, str]:
        if folder.id not in self._dead:
            self._dead[folder.id] = self.reader.dead_props_of_items(folder.id)
        return self._dead[folder.id].get(obj, {})


def item_name(row: Row | dict[str, Any]) -> str:
    """The name an item is listed under, before disambiguation."""
    if row["dav_name"]:
        return str(row["dav_name"])
    if row["doc_filename"] and str(row["message_class"]).startswith("IPM.Document"):
        return names.escape(str(row["doc_filename"]))
    ext = names.extension_for(row["message_class"], row["source_type"])
    return names.derived_item_name(int(row["id"]), row["subject"], ext)
