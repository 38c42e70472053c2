"""The store facade: opens the cache and hands out its parts.

store = await Store.open(path)
fid = await store.folders.create(store.folders.roles["inbox"], "Projects")
iid = await store.items.create(fid, NewItem(props={tags.SUBJECT: "Hello"}))
view = await store.queries.get(iid)
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from bridge.store import blobs, conversation, packs
from bridge.store.core import SYSTEM, StoreCore
from bridge.store.dav_refs import DavRefs
from bridge.store.davstore import DavStore
from bridge.store.events import EventBus
from bridge.store.folders import Folders
from bridge.store.ids import IdCodec
from bridge.store.items import Items
from bridge.store.queries import Queries
from bridge.store.search import SearchIndex
from bridge.store.search_folders import SearchFolders
from bridge.store.syncstate import SyncState
from bridge.store.tokens import Tokens

DB_NAME = "store.sqlite"


class Store:
    def __init__(self, core: StoreCore) -> None:
        self.core = core
        self.folders = Folders(core)
        self.tokens = Tokens(core)
        self.sync = SyncState(core)
        self.dav_refs = DavRefs(core)
        self.items: Items
        self.queries: Queries
        self.dav: DavStore
        self.search_folders: SearchFolders
        self.search = SearchIndex(core)

    @classmethod
    async def open(cls, path: Path) -> Store:
        core = await StoreCore.open(path)
        try:
            if core.named.missing_known():
                async with core.write(SYSTEM) as tx:
                    await core.named.seed_known(tx.conn)
            store = cls(core)
            await store.folders.load()
            store.items = Items(core, store.folders)
            store.queries = Queries(core)
            store.dav = DavStore(core, store.folders, store.items)
            await conversation.fill_missing(core)
            store.search_folders = SearchFolders(core, store.folders, store.queries)
            await store.search_folders.start()
            await store._remove_orphan_blobs()
            await store.collect_packs()
            await store.search.start()
        except BaseException:
            await core.close()
            raise
        return store

    @property
    def ids(self) -> IdCodec:
        return self.core.ids

    @property
    def bus(self) -> EventBus:
        return self.core.bus

    @property
    def fresh(self) -> bool:
        return self.core.fresh

    def durable(self) -> contextlib.AbstractContextManager[None]:
        """`StoreCore.durable`: the writes begun inside commit durably, whatever their
        origin (a local change always does)."""
        return self.core.durable()

    async def close(self) -> None:
        await self.search.close()
        await self.core.close()

    async def collect_packs(self) -> None:
        """Give back the disk space of content no item points at any more (`packs.collect`):
        at open, and after each sync run."""
        await packs.collect(self.core)

    async def _remove_orphan_blobs(self) -> None:
        """Blobs streamed in for an attachment that never got attached (crash, abort)."""
        async with self.core.reader.execute("SELECT blob_id FROM pending_blobs") as cur:
            orphans = [row[0] for row in await cur.fetchall()]
        if orphans:
            async with self.core.write(SYSTEM) as tx:
                await blobs.delete_many(tx.conn, orphans)
