"""The wsgidav provider over the store: path resolution and folder collections. It runs in
worker threads; it reads through `Reader` and writes by running store coroutines on the
server's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVProvider

from bridge.dav import names
from bridge.dav.mapiprops import PropertiesMixin
from bridge.dav.reader import Reader
from bridge.dav.tree import FolderNode, Tree
from bridge.model import classes
from bridge.store import errors
from bridge.store import render as R
from bridge.store.folders import _FOLDER_COLUMNS, Folder
from bridge.store.store import Store
from bridge.sync.service import SyncService

T = TypeVar("T")
TREE_KEY = "kbridge.tree"
VISIBLE_KEY = "kbridge.visible_folders"
TOP_ROLE = "ipm_subtree"


_EPOCH_AS_FILETIME = 116_444_736_000_000_000


def unix_time(ft: int) -> float:
    """FILETIME (100 ns ticks since 1601) → POSIX seconds."""
    return (ft - _EPOCH_AS_FILETIME) / 10_000_000


class StoreProvider(DAVProvider):  # type: ignore[misc]
    def __init__(self, store: Store, reader: Reader, max_buffered: int) -> None:
        super().__init__()
        self.store = store
        self.reader = reader
        self.max_buffered = max_buffered
        self.loop: asyncio.AbstractEventLoop | None = None
        # Fetches what is not cached (an item stored with its headers only) on a GET.
        self.sync: SyncService | None = None
        # PROPFIND of a folder (Depth 0 or 1) is answered by `propfind`; off, wsgidav's
        # generic handler answers it (the tests compare the two).
        self.fast_propfind = True

    def __repr__(self) -> str:
        return "kbridge store"

    def is_readonly(self) -> bool:
        return False

    def write(self, coro: Coroutine[Any, Any, T], environ: dict[str, Any] | None = None) -> T:
        """Run a store write on the event loop and wait for it (from a worker thread)."""
        assert self.loop is not None, "the WebDAV mount is not started"
        try:
            result = asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        except errors.NotFound as exc:
            raise DAVError(HTTP_NOT_FOUND, str(exc)) from None
        except errors.Forbidden as exc:
            raise DAVError(HTTP_FORBIDDEN, str(exc)) from None
        except errors.Conflict as exc:
            raise DAVError(HTTP_CONFLICT, str(exc)) from None
        except errors.InvalidValue as exc:
            status = HTTP_REQUEST_ENTITY_TOO_LARGE if "larger than" in str(exc) else HTTP_CONFLICT
            raise DAVError(status, str(exc)) from None
        if environ is not None and TREE_KEY in environ:
            environ[TREE_KEY].reload()
        return result

    def custom_request_handler(
        self, environ: dict[str, Any], start_response: Any, default_handler: Any
    ) -> Any:
        if environ["REQUEST_METHOD"] == "PROPFIND" and self.fast_propfind:
            from bridge.dav import propfind

            answer = propfind.handle(self, environ, start_response, default_handler)
            if answer is not None:
                return answer
        return default_handler(environ, start_response)

    def tree(self, environ: dict[str, Any]) -> Tree:
        tree: Tree | None = environ.get(TREE_KEY)
        if tree is None:
            tree = Tree(self.reader, TOP_ROLE, environ.get(VISIBLE_KEY))
            environ[TREE_KEY] = tree
        return tree

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        from bridge.dav.items import AttachmentCollection, ItemResource

        tree = self.tree(environ)
        segments = [s for s in path.strip("/").split("/") if s]
        node = tree.top
        for i, seg in enumerate(segments):
            child = tree.child(node, seg)
            if child is not None:
                node = child
                continue
            rest = segments[i + 1 :]
            member = tree.member(node, seg)
            if member is not None:
                return None if rest else ItemResource(self, environ, node, member)
            if seg.endswith(names.ATTACHMENTS_SUFFIX) and len(rest) <= 1:
                member = tree.member(node, seg[: -len(names.ATTACHMENTS_SUFFIX)])
                if member is None or not member.row["has_attach"]:
                    return None
                coll = AttachmentCollection(self, environ, node, member)
                return coll.get_member(rest[0]) if rest else coll
            return None
        return FolderResource(self, environ, node)

    def folder_path(self, tree: Tree, node: FolderNode) -> str:
        parts: list[str] = []
        while node.id != tree.top.id and node.parent_id is not None:
            parent = tree.by_id[node.parent_id]
            parts.append(next(n for n, c in parent.children.items() if c.id == node.id))
            node = parent
        return "/" + "/".join(reversed(parts))

    def target(self, dest_path: str, environ: dict[str, Any]) -> tuple[FolderNode, str]:
        """The folder and name a destination path names (its parent must be a folder)."""
        parent_path, _, name = dest_path.rstrip("/").rpartition("/")
        parent = self.get_resource_inst(parent_path or "/", environ)
        if not isinstance(parent, FolderResource):
            raise DAVError(HTTP_CONFLICT, "the destination's parent is not a folder")
        parent.check_writable()
        return parent.node, name


class FolderResource(PropertiesMixin, DAVCollection):  # type: ignore[misc]
    def __init__(self, provider: StoreProvider, environ: dict[str, Any], node: FolderNode):
        tree = provider.tree(environ)
        path = provider.folder_path(tree, node)
        super().__init__(path, environ)
        self.provider = provider
        self.node = node
        self.obj = provider.store.ids.api_id("folder", node.id)

    def check_writable(self) -> None:
        if not self.provider.tree(self.environ).can_see(self.node.id):
            raise DAVError(HTTP_FORBIDDEN, "this token is limited to other folders")

    # -- live properties ------------------------------------------------------------------

    def get_display_name(self) -> str:
        return self.node.display_name

    def get_creation_date(self) -> float:
        return unix_time(self.node.created)

    def get_last_modified(self) -> float:
        return unix_time(self.node.modified)

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    # -- members --------------------------------------------------------------------------

    def get_member_names(self) -> list[str]:
        tree = self.provider.tree(self.environ)
        return list(self.node.children) + [m.name for m in tree.members(self.node)]

    def get_member_list(self) -> list[Any]:
        from bridge.dav.items import ItemResource

        tree = self.provider.tree(self.environ)
        out: list[Any] = [
            FolderResource(self.provider, self.environ, c) for c in self.node.children.values()
        ]
        out += [
            ItemResource(self.provider, self.environ, self.node, m) for m in tree.members(self.node)
        ]
        return out

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(f"{self.path.rstrip('/')}/{name}", self.environ)

    # -- writes ---------------------------------------------------------------------------

    def create_empty_resource(self, name: str) -> Any:
        from bridge.dav.items import PendingItem

        self.check_writable()
        pending = PendingItem(self.provider, self.environ, self.node, name)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            return pending
        pending.commit(b"")  # LOCK of an unmapped URL: an empty resource
        return self.get_member(name)

    def create_collection(self, name: str) -> None:
        self.check_writable()
        store = self.provider.store
        display = names.unescape(name)
        self.provider.write(
            store.folders.create(self.node.id, display, classes.IPF_NOTE), self.environ
        )

    def support_recursive_delete(self) -> bool:
        return True

    def delete(self) -> None:
        self.check_writable()
        self.provider.write(
            self.provider.store.folders.delete(self.node.id, hard=True), self.environ
        )
        self.remove_all_locks(recursive=True)

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> list[Any]:
        self.check_writable()
        parent, name = self.provider.target(dest_path, self.environ)
        store = self.provider.store
        self.provider.write(
            store.folders.update(self.node.id, name=names.unescape(name), parent_id=parent.id),
            self.environ,
        )
        self.remove_all_locks(recursive=True)
        return []

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """COPY of a collection creates it at the destination (members are copied one by one
        after it); its dead properties come along."""
        parent, name = self.provider.target(dest_path, self.environ)
        store = self.provider.store
        existing = self.provider.tree(self.environ).child(parent, name)
        if existing is not None:  # COPY over a collection: kept, its extra members removed
            fid = existing.id
        else:
            fid = self.provider.write(
                store.folders.create(
                    parent.id, names.unescape(name), self.node.container_class or classes.IPF_NOTE
                ),
                self.environ,
            )
        self.provider.write(
            store.dav.copy_dead_props(self.obj, store.ids.api_id("folder", fid)), self.environ
        )

    # -- MAPI properties ------------------------------------------------------------------

    def mapi_props(self) -> dict[int, Any]:
        row = self.provider.reader.row(
            f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE id = ?", (self.node.id,)
        )
        if row is None:
            raise DAVError(HTTP_NOT_FOUND)
        store = self.provider.store
        return R.folder_props(store.ids, store.folders.roles, Folder.from_row(row))

    def mapi_write(
        self, set_props: dict[int, Any], named: dict[Any, Any], delete: list[int]
    ) -> None:
        self.check_writable()
        if named:
            raise DAVError(HTTP_CONFLICT, "named properties cannot be set on folders")
        self.provider.write(
            self.provider.store.folders.update(
                self.node.id, set_props=set_props, delete_props=delete
            ),
            self.environ,
        )
