"""A message pulled whole from the upstream keeps its texts (header block, plain and HTML
bodies) in its source only (`store/texts.py`): every way of reading an item shows them as
if they were stored, and changing one keeps the others."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest

from bridge.formats.mime import parse_message
from bridge.model import tags
from bridge.store import search, texts
from bridge.store.core import LOCAL, UPSTREAM
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from tests.api.helpers import Api

TEXTS = ("PidTagBody", "PidTagHtml", "PidTagTransportMessageHeaders")
RAW = (
    "From: Zoë <z@example.org>\r\nTo: b@example.org\r\nSubject: quarterly figures\r\n"
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
    '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
    "--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "The needle is in the hay, caf=E9.\r\n"
    "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<p>The needle is in the hay, caf\u00e9.</p>\r\n--a--\r\n"
    '--m\r\nContent-Type: application/octet-stream; name="f.bin"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--m--\r\n"
).encode()


async def pulled(store: Store, raw: bytes = RAW, folder: str = "inbox") -> int:
    """An item as the sync stores a message it pulled (row id)."""
    async with store.core.write(UPSTREAM) as tx:
        fid = store.folders.roles[folder]
        (iid,) = await store.items.create_in(tx, fid, [item_from_rfc822(raw, texts=False)])
    return iid


async def stored(store: Store, raw: bytes = RAW) -> int:
    """The same message with its texts in its document (a local import)."""
    async with store.core.write(LOCAL) as tx:
        fid = store.folders.roles["inbox"]
        (iid,) = await store.items.create_in(tx, fid, [item_from_rfc822(raw)])
    return iid


def aid(store: Store, iid: int) -> str:
    return store.ids.api_id("item", iid)


async def row(store: Store, iid: int) -> tuple[dict[str, Any], int]:
    async with store.core.reader.execute(
        "SELECT props, texts_in_source FROM items WHERE id = ?", (iid,)
    ) as cur:
        found = await cur.fetchone()
    assert found is not None
    return json.loads(found[0]), found[1]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the sources whose texts are read from now on."""
    reads: list[int] = []
    real = texts.texts_doc

    def counted(raw: bytes) -> dict[str, Any]:
        reads.append(len(raw))
        return real(raw)

    monkeypatch.setattr(texts, "texts_doc", counted)
    return reads


def texts_of(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in TEXTS if k in props}


async def test_a_pulled_message_reads_as_if_its_texts_were_stored(store: Store, api: Api) -> None:
    pid, sid = await pulled(store), await stored(store)
    doc, in_source = await row(store, pid)
    assert in_source == 1
    assert not {key for key in doc if key.startswith(("0x1000", "0x1013", "0x007D"))}
    assert (await row(store, sid))[1] == 0
    mine = (await api.get(f"/api/v1/items/{aid(store, pid)}"))["props"]
    theirs = (await api.get(f"/api/v1/items/{aid(store, sid)}"))["props"]
    assert set(texts_of(mine)) == set(TEXTS)
    assert texts_of(mine) == texts_of(theirs)
    assert "needle is in the hay, café" in mine["PidTagBody"]
    assert mine["PidTagTransportMessageHeaders"].startswith("From: Zoë")
    # with named columns, and in the folder's listing and change feed
    only = await api.get(
        f"/api/v1/items/{aid(store, pid)}", params={"columns": "PidTagBody,PidTagSubject"}
    )
    assert only["props"]["PidTagBody"] == mine["PidTagBody"]
    inbox = (await api.roles())["inbox"]
    listed = await api.get(f"/api/v1/folders/{inbox}/items")
    feed = await api.get(f"/api/v1/folders/{inbox}/changes")
    for entries in (listed["items"], feed["created"]):
        items = {i["id"]: i["props"] for i in entries}
        assert texts_of(items[aid(store, pid)]) == texts_of(theirs)


async def test_views_restrictions_sorts_and_search_read_pulled_texts(
    store: Store, api: Api
) -> None:
    pid = await pulled(store)
    other = await pulled(store, RAW.replace(b"needle", b"thread").replace(b"quarterly", b"x"))
    inbox = (await api.roles())["inbox"]
    needle = {"content": {"prop": "PidTagBody", "value": "needle", "match": "substring"}}
    vid = (
        await api.post(
            f"/api/v1/folders/{inbox}/views",
            json={
                "columns": ["PidTagSubject", "PidTagBody", "PidTagHtml"],
                "restriction": needle,
                "sort": {"keys": [{"prop": "PidTagBody", "order": "asc"}]},
            },
        )
    )["id"]
    rows = (await api.get(f"/api/v1/views/{vid}/rows?count=10"))["rows"]
    assert [r["props"]["PidTagSubject"] for r in rows] == ["quarterly figures"]
    assert "needle" in rows[0]["props"]["PidTagBody"]
    assert rows[0]["props"]["PidTagHtml"] not in (None, {"error": "0x8004010F"})
    # once the index is up to date, its prefilter and the test agree
    await store.search.wait_current()
    again = await api.post(
        f"/api/v1/folders/{inbox}/views", json={"columns": ["PidTagSubject"], "restriction": needle}
    )
    rows = (await api.get(f"/api/v1/views/{again['id']}/rows?count=10"))["rows"]
    assert [r["props"]["PidTagSubject"] for r in rows] == ["quarterly figures"]
    exist = await api.post(
        f"/api/v1/folders/{inbox}/views",
        json={"columns": ["PidTagSubject"], "restriction": {"exist": "PidTagHtml"}},
    )
    assert len((await api.get(f"/api/v1/views/{exist['id']}/rows?count=10"))["rows"]) == 2
    found = await api.get("/api/v1/search?q=needle&columns=PidTagSubject")
    assert [i["id"] for i in found["items"]] == [aid(store, pid)]
    found = await api.get("/api/v1/search?q=thread&columns=PidTagSubject")
    assert [i["id"] for i in found["items"]] == [aid(store, other)]


async def test_a_search_folder_on_the_body_takes_pulled_messages(store: Store, api: Api) -> None:
    roles = await api.roles()
    needle = {"content": {"prop": "PidTagBody", "value": "needle", "match": "substring"}}
    sf = await api.post(
        "/api/v1/folders",
        json={
            "name": "Needles",
            "parent_id": roles["ipm_subtree"],
            "search": {"restriction": needle, "folders": [roles["inbox"]]},
        },
    )
    pid = await pulled(store)  # kept up to date in the transaction that creates it
    await pulled(store, RAW.replace(b"needle", b"thread"))
    listed = await api.get(f"/api/v1/folders/{sf['id']}/items")
    assert [i["id"] for i in listed["items"]] == [aid(store, pid)]


async def test_changing_a_text_keeps_the_others(store: Store, api: Api) -> None:
    pid = await pulled(store)
    path = f"/api/v1/items/{aid(store, pid)}"
    before = texts_of((await api.get(path))["props"])
    await api.patch(path, json={"props": {"PidTagSubject": "renamed"}})
    assert (await row(store, pid))[1] == 1  # other properties leave the texts where they are
    assert texts_of((await api.get(path))["props"]) == before
    await api.patch(path, json={"props": {"PidTagBody": "new words"}})
    assert (await row(store, pid))[1] == 0
    after = texts_of((await api.get(path))["props"])
    assert after == {**before, "PidTagBody": "new words"}
    await api.patch(path, json={"delete": ["PidTagHtml"]})
    after = texts_of((await api.get(path))["props"])
    assert after == {k: v for k, v in before.items() if k != "PidTagHtml"} | {
        "PidTagBody": "new words"
    }


async def test_deleting_a_text_of_a_pulled_message_keeps_the_others(store: Store, api: Api) -> None:
    pid = await pulled(store)
    path = f"/api/v1/items/{aid(store, pid)}"
    before = texts_of((await api.get(path))["props"])
    await api.patch(path, json={"delete": ["PidTagBody"]})
    after = texts_of((await api.get(path))["props"])
    assert after == {k: v for k, v in before.items() if k != "PidTagBody"}


async def test_a_copy_keeps_the_texts_when_the_original_goes(store: Store, api: Api) -> None:
    pid = await pulled(store)
    before = texts_of((await api.get(f"/api/v1/items/{aid(store, pid)}"))["props"])
    inbox = (await api.roles())["inbox"]
    copy = await api.post(f"/api/v1/items/{aid(store, pid)}/copy", json={"folder_id": inbox})
    await api.delete(f"/api/v1/items/{aid(store, pid)}", params={"hard": "true"})
    await store.collect_packs()
    assert texts_of((await api.get(f"/api/v1/items/{copy['id']}"))["props"]) == before


async def test_a_rebuilt_message_carries_the_pulled_texts(store: Store) -> None:
    pid = await pulled(store)
    await store.items.update(pid, {tags.SUBJECT: "edited here"})  # the source is stale
    rebuilt = parse_message(await store.sync.source(pid))
    assert rebuilt.props[tags.SUBJECT] == "edited here"
    assert "needle is in the hay, café" in str(rebuilt.props[tags.BODY])
    assert "needle" in bytes(rebuilt.props[tags.HTML]).decode()  # type: ignore[arg-type]


async def test_a_damaged_pack_shows_the_item_without_its_texts(
    store: Store, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    pid = await pulled(store)
    assert store.core.packs is not None
    for pack in store.core.packs.files():
        os.truncate(store.core.packs.path(pack), 10)
    with caplog.at_level(logging.ERROR):
        props = (await api.get(f"/api/v1/items/{aid(store, pid)}"))["props"]
    assert props["PidTagSubject"] == "quarterly figures" and not texts_of(props)
    assert "the cache's files were damaged" in caplog.text


async def test_the_index_reads_each_source_once(
    store: Store, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window of the indexer sorts a range of items before it takes as many as fit: the
    bodies are read for those it takes only (all of the range's were, about five times as
    many as indexed)."""
    monkeypatch.setattr(search, "WINDOW_BYTES", 200)  # a message or two a window
    reads = count_reads(monkeypatch)
    with store.search.bulk():  # indexed once all are in
        ids = [await pulled(store, RAW.replace(b"needle", b"word%d" % n)) for n in range(20)]
    assert await store.search.wait_current()
    assert len(reads) == 20
    found = await api.get("/api/v1/search?q=word7&columns=PidTagSubject")
    assert [i["id"] for i in found["items"]] == [aid(store, ids[7])]


async def test_a_sorted_page_reads_the_texts_of_its_items_only(
    store: Store, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite computes every column of the rows it sorts: a page of a listing sorted by a
    property no index has read the texts of the whole folder before it took two."""
    for n in range(12):
        await pulled(store, RAW.replace(b"quarterly", b"q%02d" % n))
    reads = count_reads(monkeypatch)
    inbox = (await api.roles())["inbox"]
    page = await api.get(
        f"/api/v1/folders/{inbox}/items", params={"sort": "-PidTagInternetMessageId", "limit": "2"}
    )
    assert [i["props"]["PidTagSubject"] for i in page["items"]] == ["q11 figures", "q10 figures"]
    assert all("needle" in i["props"]["PidTagBody"] for i in page["items"])
    assert len(reads) == 2


async def test_a_search_folder_lists_and_feeds_pulled_texts(store: Store, api: Api) -> None:
    roles = await api.roles()
    sf = await api.post(
        "/api/v1/folders",
        json={
            "name": "Quarterly",
            "parent_id": roles["ipm_subtree"],
            "search": {
                "restriction": {
                    "content": {"prop": "PidTagSubject", "value": "quarterly", "match": "substring"}
                },
                "folders": [roles["inbox"]],
            },
        },
    )
    pid = await pulled(store)
    want = texts_of((await api.get(f"/api/v1/items/{aid(store, pid)}"))["props"])
    listed = await api.get(f"/api/v1/folders/{sf['id']}/items", params={"sort": "PidTagSubject"})
    feed = await api.get(f"/api/v1/folders/{sf['id']}/changes")
    for entries in (listed["items"], feed["created"]):
        assert [texts_of(i["props"]) for i in entries] == [want]


async def test_a_source_that_fails_to_parse_shows_the_item_without_its_texts(
    store: Store, api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pid = await pulled(store)

    def broken(raw: bytes) -> dict[str, Any]:
        raise ValueError("a parser bug")

    monkeypatch.setattr(texts, "texts_doc", broken)
    with caplog.at_level(logging.WARNING):
        props = (await api.get(f"/api/v1/items/{aid(store, pid)}"))["props"]
    assert props["PidTagSubject"] == "quarterly figures" and not texts_of(props)
    assert "cannot be parsed" in caplog.text
