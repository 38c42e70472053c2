"""Pack files (schema 20): the content the upstream gives is kept in append-only files
beside the database, written before the rows that point at it commit; what no row points
at any more is given back by `Store.collect_packs`."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from bridge.dav.reader import BlobFile, Reader
from bridge.store import blobs, packs
from bridge.store.core import LOCAL, UPSTREAM
from bridge.store.items import NewItem
from bridge.store.packs import PackDamaged
from bridge.store.store import Store


def message(n: int, size: int = 5000) -> bytes:
    body = random.Random(n).randbytes(size).hex().encode()[:size]
    return b"Subject: m%d\r\n\r\n" % n + body


def new(n: int, size: int = 5000) -> NewItem:
    return NewItem(source=message(n, size), source_type="message/rfc822")


async def source_of(store: Store, item_id: int) -> bytes:
    blob_id, _, _ = await store.queries.source(item_id)
    assert blob_id is not None
    return await blobs.read_all(store.core.reader, blob_id)


async def where(store: Store, item_id: int) -> blobs.Packed | None:
    blob_id, _, _ = await store.queries.source(item_id)
    async with store.core.reader.execute(blobs.PART_OF, (blob_id,)) as cur:
        return blobs.packed(await cur.fetchone())


async def create(store: Store, items: list[NewItem], origin: str = UPSTREAM) -> list[int]:
    inbox = store.folders.roles["inbox"]
    async with store.core.write(origin) as tx:
        return await store.items.create_in(tx, inbox, items)


async def test_content_from_the_upstream_goes_to_a_pack_and_a_local_one_does_not(
    store: Store,
) -> None:
    pulled = await create(store, [new(i) for i in range(5)])
    local = await create(store, [new(9)], LOCAL)
    for n, iid in enumerate(pulled):
        assert await where(store, iid) is not None
        assert await source_of(store, iid) == message(n)
    assert await where(store, local[0]) is None
    assert await source_of(store, local[0]) == message(9)
    assert sum(store.core.packs.files().values()) == sum(len(message(i)) for i in range(5))


async def test_a_packed_source_reads_through_webdav_with_seeks(store: Store) -> None:
    big = message(1, 3 * packs.READ_BYTES + 77)
    (iid,) = await create(store, [NewItem(source=big, source_type="message/rfc822")])
    blob_id, _, size = await store.queries.source(iid)
    assert blob_id is not None and size == len(big)
    pieces = [len(p) async for p in blobs.read(store.core.reader, blob_id)]
    assert sum(pieces) == len(big) and max(pieces) <= packs.READ_BYTES
    reader = Reader(store.core.path)
    try:
        f = BlobFile(reader, blob_id)
        assert f.read(10) == big[:10]
        for offset in (0, 5, packs.READ_BYTES, len(big) - 3, len(big)):
            assert f.seek(offset) == offset
            assert f.read(packs.READ_BYTES + 9) == big[offset : offset + packs.READ_BYTES + 9]
        f.seek(100)
        assert f.read() == big[100:]
    finally:
        reader.close()


async def test_a_rolled_back_write_leaves_dead_bytes_and_loses_nothing(store: Store) -> None:
    (first,) = await create(store, [new(1)])
    with pytest.raises(RuntimeError):
        async with store.core.write(UPSTREAM) as tx:
            await store.items.create_in(tx, store.folders.roles["inbox"], [new(2)])
            raise RuntimeError("the sync failed here")
    (third,) = await create(store, [new(3)])
    assert await source_of(store, first) == message(1)
    assert await source_of(store, third) == message(3)
    spots = [await where(store, first), await where(store, third)]
    assert spots[0] is not None and spots[1] is not None
    assert spots[1].offset >= spots[0].offset + 2 * spots[0].size  # after the dead bytes


async def test_content_is_synced_to_disk_before_its_rows_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    sync, commit = packs._sync_file, type(store.core.writer).commit

    def traced_sync(handle: BinaryIO) -> None:
        sync(handle)
        order.append("pack synced")

    async def traced_commit(conn: object) -> None:
        order.append("committed")
        await commit(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(packs, "_sync_file", traced_sync)
    monkeypatch.setattr(type(store.core.writer), "commit", traced_commit)
    await create(store, [new(1), new(2)])
    assert order == ["pack synced", "committed"]


async def test_a_reopened_store_appends_after_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = await Store.open(path)
    try:
        (first,) = await create(store, [new(1)])
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        (second,) = await create(store, [new(2)])
        assert await source_of(store, first) == message(1)
        assert await source_of(store, second) == message(2)
    finally:
        await store.close()


async def test_collect_deletes_dead_packs_and_compacts_a_sparse_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 12_000)
    sizes = [5000, 5000, 8000, 3000, 5000, 5000, 5000, 5000]  # two sources a pack
    ids = await create(store, [new(n, size) for n, size in enumerate(sizes)])
    assert sorted(store.core.packs.files()) == [0, 1, 2, 3]
    other = await store.folders.create(store.folders.roles["inbox"], "Other")
    copy = await store.items.copy(ids[0], other)  # shares the bytes of ids[0]
    await store.items.delete(ids[0], hard=True)  # pack 0: still live through the copy
    await store.items.delete(ids[2], hard=True)  # pack 1: mostly dead
    await store.items.delete(ids[4], hard=True)  # pack 2: all dead
    await store.items.delete(ids[5], hard=True)
    moved = await where(store, ids[3])
    assert moved is not None and moved.pack == 1
    assert store.core.packs.maybe_dead  # (a run that deleted nothing does not look)
    await store.collect_packs()
    files = store.core.packs.files()
    assert 2 not in files  # nothing pointed at it
    assert 0 in files and 3 in files
    moved = await where(store, ids[3])
    assert moved is not None and moved.pack == store.core.packs.current == 4
    assert 1 in files  # its live source was copied into the current pack; a read may have it
    await store.collect_packs()
    assert 1 not in store.core.packs.files()  # deleted by the next call
    assert await source_of(store, copy) == message(0)
    for n in (1, 3, 6, 7):
        assert await source_of(store, ids[n]) == message(n, sizes[n])
    await store.items.delete(copy, hard=True)
    await store.items.delete(ids[1], hard=True)
    await store.collect_packs()
    assert 0 not in store.core.packs.files()


async def test_a_damaged_pack_is_reported_not_read_short(store: Store) -> None:
    (iid,) = await create(store, [new(1)])
    spot = await where(store, iid)
    assert spot is not None
    path = store.core.packs.path(spot.pack)
    path.write_bytes(path.read_bytes()[: spot.offset + 10])
    with pytest.raises(PackDamaged, match="lacks"):
        await source_of(store, iid)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows does not delete a file open")
async def test_a_read_begun_goes_on_when_its_pack_is_deleted(store: Store) -> None:
    big = message(4, 3 * packs.READ_BYTES)
    (iid,) = await create(store, [NewItem(source=big, source_type="message/rfc822")])
    spot = await where(store, iid)
    assert spot is not None
    blob_id, _, _ = await store.queries.source(iid)
    assert blob_id is not None
    reading = blobs.read(store.core.reader, blob_id)
    first = await anext(reading)
    store.core.packs.path(spot.pack).unlink()
    rest = [chunk async for chunk in reading]
    assert first + b"".join(rest) == big
    with pytest.raises(PackDamaged, match="missing"):
        await source_of(store, iid)  # a read begun after it: reported


async def test_packed_content_reads_before_its_write_reaches_the_disk(store: Store) -> None:
    """What a transaction packed is read in that transaction (a search folder's upkeep
    tests the texts of the messages it creates) before the packs' thread writes it."""
    assert store.core.packs is not None
    async with store.core.write(UPSTREAM) as tx:
        where = tx.pack(b"held bytes")
        assert where is not None
        assert store.core.packs.read(*where, 10) == b"held bytes"
        assert b"".join([c async for c in store.core.packs.chunks(*where, 5, 10)]) == b"bytes"
    assert store.core.packs._unwritten == {}  # written: read from the file now
    assert store.core.packs.read(*where, 10) == b"held bytes"
    with pytest.raises(RuntimeError):
        async with store.core.write(UPSTREAM) as tx:
            assert tx.pack(b"never written") is not None
            raise RuntimeError("rolled back")
    assert store.core.packs._unwritten == {}
