"""Opening the store: fresh creation, migrations from an old schema, refusal of bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.model import classes, tags
from bridge.store import migrations
from bridge.store.defaults import DEFAULT_FOLDERS
from bridge.store.errors import StoreOpenError
from bridge.store.search_query import parse
from bridge.store.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures"


async def test_fresh_store_has_default_folders(store: Store) -> None:
    folders = {f.role: f for f in await store.folders.all() if f.role}
    assert set(folders) == {f.role for f in DEFAULT_FOLDERS}
    assert folders["calendar"].container_class == classes.IPF_APPOINTMENT
    assert folders["contacts"].container_class == classes.IPF_CONTACT
    assert folders["tasks"].container_class == classes.IPF_TASK
    assert folders["notes"].container_class == classes.IPF_STICKYNOTE
    assert folders["journal"].container_class == classes.IPF_JOURNAL
    sync_issues = folders["sync_issues"].id
    for role in ("conflicts", "local_failures", "server_failures"):
        assert folders[role].parent_id == sync_issues
    assert folders["inbox"].parent_id == folders["ipm_subtree"].id
    assert folders["root"].parent_id is None


async def test_reopen_keeps_ids_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s = await Store.open(path)
    roles = dict(s.folders.roles)
    guid = s.ids.store_guid
    fid = await s.folders.create(roles["inbox"], "Kept")
    await s.close()
    s = await Store.open(path)
    try:
        assert s.folders.roles == roles
        assert s.ids.store_guid == guid
        assert (await s.folders.get(fid)).display_name == "Kept"
        # ids are never reused after a restart
        assert await s.folders.create(roles["inbox"], "Next") > fid
    finally:
        await s.close()


async def test_migrates_store_made_by_schema_1(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "store_v1.sql").read_text())
    conn.close()
    s = await Store.open(path)
    try:
        version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
        assert version == migrations.LATEST > 1
        inbox = s.folders.roles["inbox"]
        items, total = await s.queries.list(inbox, sort=[(tags.SUBJECT, False)])
        assert total == 2
        assert [i.props[tags.SUBJECT] for i in items] == ["Made by schema 1", "Unread one"]
        blob_id, _, size = await s.queries.source(items[0].id)
        assert blob_id is not None and size == 23
        # blobs keep no hash since schema 15: the column is gone, the content is not
        columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(blobs)")}
        assert columns == {
            "id",
            "size",
            "base",
            "base_start",
            "base_end",
            "base_encoding",
            "pack",
            "pack_offset",
        }
        async with s.core.reader.execute(
            "SELECT data FROM blob_chunks WHERE id = ?", (blob_id * 65536,)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None and bytes(row[0]) == b"Subject: old\r\n\r\nhello\r\n"
        # tables of later migrations work on the migrated store
        _, secret = await s.tokens.create("after-migration", "read")
        assert await s.tokens.verify(secret) is not None
        # new ids continue after the old counters
        assert await s.folders.create(inbox, "New") >= 18
        assert s.core.named.missing_known() is False
        # the full-text index is built for the old items (keyed as migration 0013 says)
        page = await s.search.search(parse("schema"))
        assert page.complete and [i.props[tags.SUBJECT] for i in page.items] == ["Made by schema 1"]
    finally:
        await s.close()


async def test_refuses_non_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreOpenError, match="not an SQLite database"):
        await Store.open(path)
    assert path.read_bytes().startswith(b"this is not")


async def test_refuses_foreign_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE other (x)")
    conn.execute("INSERT INTO other VALUES (1)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreOpenError, match="another program"):
        await Store.open(path)
    assert sqlite3.connect(path).execute("SELECT x FROM other").fetchone() == (1,)


async def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    s = await Store.open(path)
    await s.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    conn.close()
    with pytest.raises(StoreOpenError, match="newer kbridge"):
        await Store.open(path)


async def test_refuses_corrupt_database(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    s = await Store.open(path)
    await s.close()
    data = bytearray(path.read_bytes())
    # keep the header, scribble over the schema page
    data[100:4000] = b"\xff" * 3900
    path.write_bytes(bytes(data))
    with pytest.raises(StoreOpenError):
        await Store.open(path)
