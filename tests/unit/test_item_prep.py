"""Rows prepared away from the store (`item_prep.prepare`, in the parsing worker) are the
rows the store computes itself: the same document, hot columns, conversation id, sender,
recipients, attachments and categories, whether the source goes into a pack or into
SQLite."""

from __future__ import annotations

import base64
import copy
import sqlite3
from typing import Any

import pytest

from bridge.formats.mime import KEYWORDS
from bridge.model import tags
from bridge.store.core import LOCAL, UPSTREAM
from bridge.store.errors import InvalidValue
from bridge.store.item_prep import prepare
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync.mail_props import apply_flags
from bridge.sync.parse_pool import parse_messages

CONTENT = base64.encodebytes(bytes(range(256)) * 40).replace(b"\n", b"\r\n")
WITH_FILES = (
    b"From: Ann Example <ann@example.org>\r\nTo: Bob <bob@example.org>, c@example.org\r\n"
    b"Cc: Dee <dee@example.org>\r\nSubject: Re: the plan\r\nMessage-ID: <m1@example.org>\r\n"
    b"In-Reply-To: <m0@example.org>\r\nDate: Tue, 4 Mar 2025 10:00:00 +0100\r\n"
    b"Importance: high\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe body \xc3\xa9\r\n"
    b'--b\r\nContent-Type: application/pdf; name="big.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + CONTENT + b"--b\r\n"
    b'Content-Type: image/png; name="logo.png"\r\nContent-ID: <logo>\r\n'
    b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgo=\r\n--b--\r\n"
)
HTML = (
    b"From: eve@example.org\r\nTo: ann@example.org\r\nSubject: news\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
    b"--a\r\nContent-Type: text/plain\r\n\r\nhello\r\n--a\r\nContent-Type: text/html\r\n\r\n"
    b"<p>hello</p>\r\n--a--\r\n"
)
MESSAGES: list[tuple[bytes, frozenset[str]]] = [
    (WITH_FILES, frozenset({"\\Seen", "\\Answered"})),
    (HTML, frozenset({"\\Flagged"})),
    (b"Subject: bare\r\n\r\nno headers to speak of\r\n", frozenset()),
]
# Columns that differ between two copies of one item: their ids, numbers and times.
ITEM_IDS = {"id", "cn", "created_cn", "created", "modified", "source_blob"}


def here(raw: bytes, server_flags: frozenset[str]) -> NewItem:
    """The item as the sync process parses it, rows left to the store."""
    item = item_from_rfc822(raw, parts=True, texts=False)
    apply_flags(item, server_flags)
    return item


def rows(store: Store, item_id: int) -> dict[str, Any]:
    conn = sqlite3.connect(store.core.path)
    conn.row_factory = sqlite3.Row
    try:
        item = dict(conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone())
        return {
            "item": {k: v for k, v in item.items() if k not in ITEM_IDS},
            "recipients": [
                tuple(r)[1:]
                for r in conn.execute(
                    "SELECT * FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
                )
            ],
            "attachments": [
                {k: r[k] for k in r.keys() if k not in ("item_id", "blob_id")}  # noqa: SIM118
                for r in conn.execute(
                    "SELECT * FROM attachments WHERE item_id = ? ORDER BY num", (item_id,)
                )
            ],
            "categories": [
                r[0]
                for r in conn.execute(
                    "SELECT category FROM item_categories WHERE item_id = ? ORDER BY 1",
                    (item_id,),
                )
            ],
        }
    finally:
        conn.close()


@pytest.mark.parametrize("origin", [UPSTREAM, LOCAL])  # its source in a pack, or in SQLite
async def test_prepared_rows_are_the_rows_the_store_computes(store: Store, origin: str) -> None:
    prepared = parse_messages(MESSAGES)
    assert all(item.prepared is not None for item in prepared)
    for item, (raw, _) in zip(prepared, MESSAGES, strict=True):
        item.source = raw
    plain = [here(raw, fs) for raw, fs in MESSAGES]
    inbox = store.folders.roles["inbox"]
    async with store.core.write(origin) as tx:
        ids = await store.items.create_in(tx, inbox, [*prepared, *plain])
    for a, b in zip(ids[: len(MESSAGES)], ids[len(MESSAGES) :], strict=True):
        assert rows(store, a) == rows(store, b)
    first = rows(store, ids[0])
    assert first["item"]["subject"] == "Re: the plan"
    assert first["item"]["flags"] & 1  # read
    assert len(first["recipients"]) == 3 and len(first["attachments"]) == 2
    body = (await store.queries.get(ids[0])).props.get(tags.BODY)
    assert isinstance(body, str) and "the body" in body
    assert first["item"]["texts_in_source"] == (origin == UPSTREAM)


async def test_an_item_with_named_properties_is_left_to_the_store(store: Store) -> None:
    (tagged,) = parse_messages([(HTML, frozenset({"Work", "\\Seen"}))])
    assert tagged.named[KEYWORDS] == ["Work"]
    assert tagged.prepared is None  # the store's tag of Keywords is the store's own
    tagged.source = HTML
    inbox = store.folders.roles["inbox"]
    (iid,) = await store.items.create_many(inbox, [tagged], origin=UPSTREAM)
    assert rows(store, iid)["categories"] == ["Work"]


async def test_invalid_properties_are_left_to_the_store_to_refuse(store: Store) -> None:
    item = NewItem(props={tags.SUBJECT: "x", tags.MESSAGE_SIZE: 3})
    assert prepare(item) is None
    assert prepare(NewItem(props={tags.SUBJECT: "x"})) is not None
    with pytest.raises(InvalidValue, match="read-only"):
        await store.items.create_many(store.folders.roles["inbox"], [item], origin=UPSTREAM)


async def test_a_change_after_prepare_needs_it_dropped(store: Store) -> None:
    """What `prepared` says is what is stored: the fields are not read again."""
    (item,) = parse_messages([(HTML, frozenset())])
    item.source = HTML
    changed = copy.deepcopy(item)
    changed.props[tags.SUBJECT] = "changed"
    changed.prepared = None
    inbox = store.folders.roles["inbox"]
    a, b = await store.items.create_many(inbox, [item, changed], origin=UPSTREAM)
    assert rows(store, a)["item"]["subject"] == "news"
    assert rows(store, b)["item"]["subject"] == "changed"
