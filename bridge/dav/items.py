"""Items in the WebDAV tree: their content (raw source, document file, or rendered), PUT
(streamed into a blob for documents), DELETE, MOVE, COPY, and their attachments."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_MEDIATYPE_NOT_SUPPORTED,
    HTTP_NOT_FOUND,
    HTTP_SERVICE_UNAVAILABLE,
    HTTP_UNPROCESSABLE_ENTITY,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from bridge.dav import content, names
from bridge.dav.mapiprops import PropertiesMixin
from bridge.dav.provider import FolderResource, StoreProvider, unix_time
from bridge.dav.reader import BlobFile
from bridge.dav.tree import FolderNode, Member
from bridge.dav.uploads import BlobSink, Buffer
from bridge.model.codec import from_json
from bridge.store import props as P
from bridge.store import render as R
from bridge.sync.on_demand import NotAvailableOffline

_QUEUE_DEPTH = 4


def _is_document(row: Any) -> bool:
    return str(row["message_class"]).startswith("IPM.Document") and row["doc_blob"] is not None


def _py(doc: dict[int, Any]) -> dict[int, Any]:
    return {t: from_json(t & 0xFFFF, v) for t, v in doc.items()}


class _Writable:
    """PUT handling shared by new (pending) and existing items."""

    provider: StoreProvider
    environ: dict[str, Any]
    folder: FolderNode
    name: str
    _content_type: str | None = None

    def begin_write(self, *, content_type: str | None = None) -> Any:
        FolderResource(self.provider, self.environ, self.folder).check_writable()
        self._content_type = content_type
        try:
            kind = content.kind_of(self.name, content_type, self.folder.container_class)
        except content.ContentError as exc:
            raise DAVError(exc.status, exc.reason) from None
        if kind == content.DOC:
            self._sink = BlobSink(self.provider, self._commit_document)
            return self._sink
        return Buffer(self.provider.max_buffered, lambda data: self.commit(data, kind))

    def end_write(self, *, with_errors: bool) -> None:
        sink = getattr(self, "_sink", None)
        if with_errors and sink is not None:
            sink.abort()

    def commit(self, data: bytes, kind: str | None = None) -> None:
        if kind is None:
            kind = content.kind_of(self.name, self._content_type, self.folder.container_class)
        if kind == content.DOC:
            blob_id = self.provider.write(self.provider.store.items.stream_blob(_once(data)))
            self._commit_document(blob_id)
            return
        try:
            item = content.parse(kind, self.name, data, self.folder.container_class)
        except content.ContentError as exc:
            status = (
                HTTP_UNPROCESSABLE_ENTITY if exc.status == 422 else HTTP_MEDIATYPE_NOT_SUPPORTED
            )
            raise DAVError(status, exc.reason) from None
        self._store(item, None)

    def _commit_document(self, blob_id: int) -> None:
        item, att = content.document(self.name, self._content_type)
        self._store(item, (att, blob_id))

    def _store(self, item: Any, attachment: Any) -> None:
        raise NotImplementedError


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class PendingItem(_Writable, DAVNonCollection):  # type: ignore[misc]
    """The target of a PUT to a new name: nothing is stored until the body is complete."""

    def __init__(
        self, provider: StoreProvider, environ: dict[str, Any], folder: FolderNode, name: str
    ):
        tree = provider.tree(environ)
        super().__init__(f"{provider.folder_path(tree, folder).rstrip('/')}/{name}", environ)
        self.provider, self.folder, self.name = provider, folder, name
        self.item_id: int | None = None

    def _store(self, item: Any, attachment: Any) -> None:
        self.item_id = self.provider.write(
            self.provider.store.dav.create(self.folder.id, self.name, item, attachment),
            self.environ,
        )

    def get_content_length(self) -> int:
        return 0

    def get_content_type(self) -> str:
        return "application/octet-stream"

    def get_content(self) -> Any:
        return io.BytesIO(b"")

    def get_etag(self) -> str | None:
        if self.item_id is None:
            return None
        row = self.provider.reader.member(self.item_id)
        return (
            None
            if row is None
            else f"{self.provider.store.ids.api_id('item', self.item_id)}-{row['cn']}"
        )

    def support_etag(self) -> bool:
        return True


class ItemResource(_Writable, PropertiesMixin, DAVNonCollection):  # type: ignore[misc]
    def __init__(
        self, provider: StoreProvider, environ: dict[str, Any], folder: FolderNode, member: Member
    ):
        tree = provider.tree(environ)
        super().__init__(f"{provider.folder_path(tree, folder).rstrip('/')}/{member.name}", environ)
        self.provider, self.folder, self.member = provider, folder, member
        self.name = member.name
        self.row: Any = member.row
        self.item_id = member.id
        self.obj = provider.store.ids.api_id("item", self.item_id)
        self._rendered: bytes | None = None
        self._checked = False  # whether a missing message body was looked for

    # -- live properties ------------------------------------------------------------------

    def get_content_length(self) -> int | None:
        if _is_document(self.row):
            return int(self.row["doc_size"])
        if self.environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            self._ensure_cached()
        if self.row["source_blob"] is not None:
            return int(self.row["size"])
        if self.environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return len(self._render())
        return None

    def get_content_type(self) -> str:
        if _is_document(self.row):
            return str(self.row["doc_type"] or "application/octet-stream")
        ext = names.extension_for(self.row["message_class"], self.row["source_type"])
        return names.CONTENT_TYPES.get(ext, "application/octet-stream")

    def get_creation_date(self) -> float:
        return unix_time(self.row["created"])

    def get_last_modified(self) -> float:
        return unix_time(self.row["modified"])

    def get_etag(self) -> str:
        return f"{self.obj}-{self.row['cn']}"

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return self.row["source_blob"] is not None or _is_document(self.row)

    def get_display_name(self) -> str:
        return self.name

    def dead_props(self) -> dict[str, str]:
        return self.provider.tree(self.environ).dead_props(self.folder, self.obj)

    # -- content --------------------------------------------------------------------------

    def get_content(self) -> Any:
        if _is_document(self.row):
            return BlobFile(self.provider.reader, int(self.row["doc_blob"]))
        self._ensure_cached()
        if self.row["source_blob"] is not None:
            return BlobFile(self.provider.reader, int(self.row["source_blob"]))
        return io.BytesIO(self._render())

    def _ensure_cached(self) -> None:
        """A message stored with its headers only is fetched through the sync service
        before a GET answers; 503 while that cannot be done (offline)."""
        sync = self.provider.sync
        if sync is None or self.row["source_blob"] is not None or self._checked:
            return
        self._checked = True
        try:
            fetched = self.provider.write(sync.ensure_content(self.item_id))
        except NotAvailableOffline as exc:
            raise DAVError(HTTP_SERVICE_UNAVAILABLE, str(exc)) from None
        if fetched:
            blob, _, size = self.provider.write(self.provider.store.queries.source(self.item_id))
            row = dict(zip(self.row.keys(), tuple(self.row), strict=True))
            row["source_blob"], row["size"] = blob, size
            self.row = row

    def _render(self) -> bytes:
        if self._rendered is None:
            reader = self.provider.reader
            full = reader.item(self.item_id)
            if full is None:
                raise DAVError(HTTP_NOT_FOUND)
            props = _py(R.item_props(self.provider.store.ids, full))
            recipients = [_py(P.decode_doc(r[0])) for r in reader.recipients(self.item_id)]
            atts = [
                (_py(P.decode_doc(a["props"])), BlobFile(reader, a["blob_id"]).read())
                for a in reader.attachments(self.item_id)
            ]
            ext = names.extension_for(self.row["message_class"], self.row["source_type"])
            self._rendered = content.render(
                props, recipients, atts, ext, self.obj, self.provider.store.core.named
            )
        return self._rendered

    def _store(self, item: Any, attachment: Any) -> None:
        self.provider.write(
            self.provider.store.dav.replace(self.item_id, item, attachment), self.environ
        )

    # -- delete, move, copy ---------------------------------------------------------------

    def delete(self) -> None:
        FolderResource(self.provider, self.environ, self.folder).check_writable()
        self.provider.write(self.provider.store.items.delete(self.item_id, hard=True), self.environ)
        self.remove_all_locks(recursive=False)

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> list[Any]:
        FolderResource(self.provider, self.environ, self.folder).check_writable()
        folder, name = self.provider.target(dest_path, self.environ)
        old = self.provider.tree(self.environ).member(folder, name)
        self.provider.write(
            self.provider.store.dav.move(
                self.item_id, folder.id, name, replace=old.id if old else None
            ),
            self.environ,
        )
        self.remove_all_locks(recursive=False)
        return []

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        folder, name = self.provider.target(dest_path, self.environ)
        old = self.provider.tree(self.environ).member(folder, name)
        self.provider.write(
            self.provider.store.dav.copy(
                self.item_id, folder.id, name, replace=old.id if old else None
            ),
            self.environ,
        )

    # -- MAPI properties ------------------------------------------------------------------

    def mapi_props(self) -> dict[int, Any]:
        full = self.provider.reader.item(self.item_id)
        if full is None:
            raise DAVError(HTTP_NOT_FOUND)
        return R.item_props(self.provider.store.ids, full)

    def mapi_write(
        self, set_props: dict[int, Any], named: dict[Any, Any], delete: list[int]
    ) -> None:
        FolderResource(self.provider, self.environ, self.folder).check_writable()
        self.provider.write(
            self.provider.store.items.update(self.item_id, set_props, delete, named=named),
            self.environ,
        )


class AttachmentCollection(DAVCollection):  # type: ignore[misc]
    """`Item.eml.attachments/`: an item's attachments, read-only."""

    def __init__(
        self, provider: StoreProvider, environ: dict[str, Any], folder: FolderNode, member: Member
    ):
        tree = provider.tree(environ)
        parent = provider.folder_path(tree, folder).rstrip("/")
        path = f"{parent}/{member.name}{names.ATTACHMENTS_SUFFIX}"
        super().__init__(path, environ)
        self.provider, self.item_id = provider, member.id
        rows = provider.reader.attachments(member.id)
        wanted = [
            (int(r["num"]), names.escape(str(r["filename"] or f"attachment {r['num']}")))
            for r in rows
        ]
        unique = {num: name for num, name in _unique_by_num(wanted)}
        self.members = {unique[int(r["num"])]: r for r in rows}

    def get_member_names(self) -> list[str]:
        return list(self.members)

    def get_member(self, name: str) -> Any:
        row = self.members.get(name)
        return (
            None
            if row is None
            else AttachmentResource(f"{self.path}/{name}", self.environ, self.provider, row)
        )

    def create_empty_resource(self, name: str) -> Any:
        raise DAVError(HTTP_FORBIDDEN, "attachments are read-only here")

    def create_collection(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, "attachments are read-only here")

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, "attachments are read-only here")


def _unique_by_num(wanted: list[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    out = []
    for num, name in wanted:
        if name.casefold() in seen:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem} [{num}].{ext}" if dot and stem else f"{name} [{num}]"
        seen.add(name.casefold())
        out.append((num, name))
    return out


class AttachmentResource(DAVNonCollection):  # type: ignore[misc]
    def __init__(self, path: str, environ: dict[str, Any], provider: StoreProvider, row: Any):
        super().__init__(path, environ)
        self.provider, self.row = provider, row

    def get_content_length(self) -> int:
        return int(self.row["size"])

    def get_content_type(self) -> str:
        return str(self.row["mime_tag"] or "application/octet-stream")

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        return BlobFile(self.provider.reader, int(self.row["blob_id"]))

    def begin_write(self, *, content_type: str | None = None) -> Any:
        raise DAVError(HTTP_FORBIDDEN, "attachments are read-only here")

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, "attachments are read-only here")
