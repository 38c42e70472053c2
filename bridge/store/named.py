"""The per-store map of named properties to property ids 0x8000–0xFFFE (GetIDsFromNames)."""

from __future__ import annotations

from uuid import UUID

import aiosqlite

from bridge.model import named as model_named
from bridge.model.named import NamedProp
from bridge.model.proptypes import make_tag
from bridge.store.errors import InvalidValue

FIRST_ID = 0x8000
LAST_ID = 0xFFFE


class NamedMap:
    """Loaded once at open; new mappings are written inside the caller's transaction."""

    def __init__(self) -> None:
        self._ids: dict[NamedProp, tuple[int, int | None]] = {}
        self._tags: dict[NamedProp, int] = {}  # the tag of each mapping with a type
        self._props: dict[int, NamedProp] = {}
        self._next = FIRST_ID

    def _map(self, np: NamedProp, pid: int, ptype: int | None) -> None:
        self._ids[np] = (pid, ptype)
        if ptype:
            self._tags[np] = make_tag(pid, ptype)
        self._props[pid] = np

    async def load(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("SELECT id, guid, lid, name, ptype FROM named_props") as cur:
            async for row in cur:
                np = model_named.interned(NamedProp(UUID(row["guid"]), row["lid"], row["name"]))
                self._map(np, row["id"], row["ptype"])
                self._next = max(self._next, row["id"] + 1)

    def lookup(self, np: NamedProp) -> tuple[int, int | None] | None:
        """(property id, type recorded at first use) or None when not mapped yet."""
        return self._ids.get(np)

    def known_tag(self, np: NamedProp) -> int | None:
        """The tag of `np` when it is mapped with a type (what `lookup` and `make_tag` give,
        in one look-up: items are written with a dozen named properties each)."""
        return self._tags.get(np)

    def prop_for(self, prop_id: int) -> NamedProp | None:
        return self._props.get(prop_id)

    def tag_for(self, np: NamedProp, ptype: int) -> int | None:
        found = self._ids.get(np)
        return make_tag(found[0], ptype) if found else None

    async def ensure(self, conn: aiosqlite.Connection, np: NamedProp, ptype: int | None) -> int:
        """The property id of `np`, mapping it (inside the open transaction) if new."""
        found = self._ids.get(np)
        if found:
            return found[0]
        if self._next > LAST_ID:
            raise InvalidValue("the store has no free named-property ids left")
        pid = self._next
        await conn.execute(
            "INSERT INTO named_props (id, guid, lid, name, ptype) VALUES (?, ?, ?, ?, ?)",
            (pid, str(np.guid).upper(), np.lid, np.name, ptype),
        )
        self._next += 1
        self._map(np, pid, ptype)
        return pid

    def forget(self, np: NamedProp) -> None:
        """Undo an in-memory mapping whose transaction rolled back."""
        found = self._ids.pop(np, None)
        self._tags.pop(np, None)
        if found:
            self._props.pop(found[0], None)
            self._next = min(self._next, found[0])

    def missing_known(self) -> bool:
        return any(np not in self._ids for np in model_named.KNOWN)

    async def seed_known(self, conn: aiosqlite.Connection) -> None:
        """Map every well-known named property at creation, so their ids are stable."""
        for np, info in sorted(model_named.KNOWN.items(), key=lambda kv: kv[1].canonical):
            await self.ensure(conn, np, info.ptype)
