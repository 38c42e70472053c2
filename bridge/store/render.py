"""The properties a reader sees: stored ones merged with those the store computes
(entry ids, counts, sizes, times, the special-folder pointers)."""

from __future__ import annotations

import base64
import functools
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.model.codec import MAX_FILETIME, filetime_to_datetime, format_utc, to_json
from bridge.model.proptypes import PropType
from bridge.store import conversation
from bridge.store import props as P
from bridge.store.folders import Folder
from bridge.store.ids import IdCodec

FOLDER_RIGHTS_OWNER = 0x7FB
ACCESS_ALL = 0x3F
_BIN = PropType.BINARY
_NAIVE_EPOCH = datetime(1601, 1, 1)
_LAST_FILETIME = min(MAX_FILETIME, 2650467743999999999)  # 9999-12-31T23:59:59.9999999

# Store-object pointers (MAPI.md §1b) and the Inbox/Root ones.
STORE_POINTERS = {
    tags.IPM_SUBTREE_ENTRYID: "ipm_subtree",
    tags.IPM_OUTBOX_ENTRYID: "outbox",
    tags.IPM_WASTEBASKET_ENTRYID: "deleted",
    tags.IPM_SENTMAIL_ENTRYID: "sent",
}
INBOX_POINTERS = {
    tags.IPM_APPOINTMENT_ENTRYID: "calendar",
    tags.IPM_CONTACT_ENTRYID: "contacts",
    tags.IPM_JOURNAL_ENTRYID: "journal",
    tags.IPM_NOTE_ENTRYID: "notes",
    tags.IPM_TASK_ENTRYID: "tasks",
    tags.IPM_DRAFTS_ENTRYID: "drafts",
    tags.REM_ONLINE_ENTRYID: "reminders",
}
# PR_ADDITIONAL_REN_ENTRYIDS order (MS-OXOSFLD 2.2.4).
ADDITIONAL_REN = ("conflicts", "sync_issues", "local_failures", "server_failures", "junk")


def b64(value: bytes) -> Any:
    if type(value) is bytes:  # what to_json gives, without its checks (rows render many)
        return base64.b64encode(value).decode("ascii")
    return to_json(_BIN, value)


def systime(ft: int | None) -> Any:
    # what to_json(SYSTIME, …) gives, without its checks (rows render many): a naive
    # datetime's isoformat() is format_utc's text without the "Z"
    if ft is None:
        return None
    if type(ft) is int and 0 <= ft <= _LAST_FILETIME:
        return (_NAIVE_EPOCH + timedelta(microseconds=ft // 10)).isoformat() + "Z"
    return format_utc(filetime_to_datetime(ft))  # raises the codec's error


@functools.lru_cache(maxsize=4096)
def _folder_refs(ids: IdCodec, fid: int) -> tuple[str, str, str]:
    """An item's parent entry id and source key and its store's entry id (the same for
    every item of the folder)."""
    return (
        b64(ids.entry_id("folder", fid)),
        b64(ids.source_key("folder", fid)),
        b64(ids.store_entry_id()),
    )


def folder_pointers(ids: IdCodec, roles: dict[str, int]) -> P.JsonProps:
    out: P.JsonProps = {
        tag: b64(ids.entry_id("folder", roles[role])) for tag, role in INBOX_POINTERS.items()
    }
    out[tags.ADDITIONAL_REN_ENTRYIDS] = [
        b64(ids.entry_id("folder", roles[r])) for r in ADDITIONAL_REN
    ]
    return out


def store_props(ids: IdCodec, roles: dict[str, int], display_name: str) -> P.JsonProps:
    out: P.JsonProps = {
        tags.DISPLAY_NAME: display_name,
        tags.OBJECT_TYPE: flags.MAPI_STORE,
        tags.STORE_ENTRYID: b64(ids.store_entry_id()),
        tags.ENTRYID: b64(ids.store_entry_id()),
        tags.STORE_RECORD_KEY: b64(ids.store_guid.bytes),
        tags.RECORD_KEY: b64(ids.store_guid.bytes),
        tags.MAPPING_SIGNATURE: b64(ids.store_guid.bytes),
    }
    for tag, role in STORE_POINTERS.items():
        out[tag] = b64(ids.entry_id("folder", roles[role]))
    return out


def folder_props(ids: IdCodec, roles: dict[str, int], folder: Folder) -> P.JsonProps:
    out = dict(folder.props)
    eid = ids.entry_id("folder", folder.id)
    out.update(
        {
            tags.ENTRYID: b64(eid),
            tags.RECORD_KEY: b64(eid),
            tags.SOURCE_KEY: b64(ids.source_key("folder", folder.id)),
            tags.OBJECT_TYPE: flags.MAPI_FOLDER,
            tags.DISPLAY_NAME: folder.display_name,
            tags.FOLDER_TYPE: folder.folder_type,
            tags.CONTENT_COUNT: folder.content_count,
            tags.CONTENT_UNREAD: folder.unread_count,
            tags.ASSOC_CONTENT_COUNT: folder.assoc_count,
            tags.SUBFOLDERS: folder.has_children,
            tags.CREATION_TIME: systime(folder.created),
            tags.LAST_MODIFICATION_TIME: systime(folder.modified),
            tags.CHANGE_NUMBER: folder.cn,
            tags.RIGHTS: FOLDER_RIGHTS_OWNER,
            tags.ACCESS: ACCESS_ALL,
            tags.ACCESS_LEVEL: flags.ACCESS_LEVEL_MODIFY,
            tags.STORE_ENTRYID: b64(ids.store_entry_id()),
        }
    )
    if folder.container_class:
        out[tags.CONTAINER_CLASS] = folder.container_class
    if folder.parent_id is not None:
        out[tags.PARENT_ENTRYID] = b64(ids.entry_id("folder", folder.parent_id))
        out[tags.PARENT_SOURCE_KEY] = b64(ids.source_key("folder", folder.parent_id))
    if folder.role in ("inbox", "root"):
        out.update(folder_pointers(ids, roles))
    return out


def item_props(ids: IdCodec, row: aiosqlite.Row, texts: str | None = None) -> P.JsonProps:
    """Every property of an item row (`props` plus the computed ones, and the texts read
    from its source: `texts`, or the row's column of that name, `texts.ITEM_COLUMNS`)."""
    out = P.decode_doc(row["props"])
    # (`in row` would test the values of an sqlite3.Row, not its column names)
    if texts is None and "texts" in row.keys():  # noqa: SIM118
        texts = row["texts"]
    if texts is not None:
        out.update(P.decode_doc(texts))
    iid, fid = row["id"], row["folder_id"]
    eid = b64(ids.entry_id("item", iid))
    parent, parent_key, store_eid = _folder_refs(ids, fid)
    out.update(
        {
            tags.ENTRYID: eid,
            tags.RECORD_KEY: eid,
            tags.SOURCE_KEY: b64(ids.source_key("item", iid)),
            tags.PARENT_ENTRYID: parent,
            tags.PARENT_SOURCE_KEY: parent_key,
            tags.STORE_ENTRYID: store_eid,
            tags.OBJECT_TYPE: flags.MAPI_MESSAGE,
            tags.MESSAGE_CLASS: row["message_class"],
            tags.MESSAGE_FLAGS: row["flags"],
            tags.READ: bool(row["flags"] & flags.MSGFLAG_READ),
            tags.MESSAGE_SIZE: min(row["size"], 0x7FFFFFFF),
            tags.MESSAGE_SIZE_EXTENDED: row["size"],
            tags.HASATTACH: bool(row["has_attach"]),
            tags.ASSOCIATED: bool(row["associated"]),
            tags.CREATION_TIME: systime(row["created"]),
            tags.LAST_MODIFICATION_TIME: systime(row["modified"]),
            tags.CHANGE_NUMBER: row["cn"],
            tags.ACCESS: ACCESS_ALL,
            tags.ACCESS_LEVEL: flags.ACCESS_LEVEL_MODIFY,
        }
    )
    # (`in row` would test the values of an sqlite3.Row, not its column names)
    cid = row["conversation_id"] if "conversation_id" in row.keys() else None  # noqa: SIM118
    if cid is not None:
        out[tags.CONVERSATION_ID] = b64(cid)
    if tags.CONVERSATION_TOPIC not in out and isinstance(row["subject"], str):
        out[tags.CONVERSATION_TOPIC] = conversation.normalized_subject(row["subject"])
    return out
