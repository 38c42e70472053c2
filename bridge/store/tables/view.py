"""A stateful table view (IMAPITable): visible rows with header rows for categories, a
cursor, bookmarks, expand/collapse state, and the diff that becomes table notifications.

Rows are identified by instance keys that stay the same while the view is open: a leaf's
key is made of its object id and MVI instance number, a header's of a counter assigned to
its category path the first time the view sees it. After the contents change, the cursor
and the bookmarks are found again by instance key."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.model.evaluate import sort_value
from bridge.model.restrictions import Restriction
from bridge.store.tables.contents import Leaf
from bridge.store.tables.spec import ViewSpec

MAX_BOOKMARKS = 256
DIFF_LIMIT = 64  # beyond this many changed rows one table_changed replaces row events


class Source(Protocol):
    """Where a view's rows come from (a folder's contents, the hierarchy, recipients...)."""

    folder_id: int | None
    item_id: int | None

    async def leaves(self, spec: ViewSpec) -> list[Leaf]: ...

    async def props(self, ids: list[int]) -> dict[int, dict[int, Any]]: ...

    async def find(self, restriction: Restriction) -> set[int]: ...


@dataclass(frozen=True, slots=True)
class Header:
    key: bytes
    level: int
    count: int
    unread: int
    first: Leaf
    expanded: bool


Entry = Leaf | Header


def leaf_key(leaf: Leaf) -> bytes:
    return b"\x01" + leaf.id.to_bytes(8, "big") + leaf.inst.to_bytes(4, "big")


def key_of(entry: Entry) -> bytes:
    return entry.key if isinstance(entry, Header) else leaf_key(entry)


class View:
    def __init__(self, vid: str, owner: int, source: Source, spec: ViewSpec) -> None:
        self.id = vid
        self.owner = owner
        self.source = source
        self.spec = spec
        self.rows: list[Entry] = []
        self.pos = 0
        self.dirty = True
        self.used = 0.0
        self._index: dict[bytes, int] | None = None
        self._header_ids: dict[tuple[Any, ...], bytes] = {}
        self._header_seq = itertools.count(1)
        self._state: dict[bytes, bool] = {}  # header key → expanded (overrides)
        self._bookmarks: dict[str, tuple[bytes | None, int]] = {}
        self._bookmark_seq = itertools.count(1)

    # -- building ---------------------------------------------------------------------

    async def refresh(self, modified: set[int] | None = None) -> list[dict[str, Any]]:
        """Re-read the rows; returns the table notifications of the change."""
        old = self.rows
        cursor = self._key_at(self.pos)
        marks = dict(self._bookmarks)
        leaves = await self.source.leaves(self.spec)
        self.rows = self._build(leaves)
        self._index = None
        self.dirty = False
        self.pos = self._find_pos(cursor, self.pos)
        self._bookmarks = {b: (k, self._find_pos(k, p)) for b, (k, p) in marks.items()}
        return self._diff(old, modified or set())

    def _build(self, leaves: list[Leaf]) -> list[Entry]:
        if not self.spec.levels:
            return list(leaves)
        out: list[Entry] = []
        self._group(leaves, 0, (), out)
        return out

    def _group(
        self, leaves: list[Leaf], level: int, path: tuple[Any, ...], out: list[Entry]
    ) -> None:
        if level == len(self.spec.levels):
            out.extend(leaves)
            return
        lv = self.spec.levels[level]
        keys = self.spec.keys
        groups: list[tuple[Any, list[Leaf]]] = []
        for leaf in leaves:
            gkey = tuple(sort_value(keys[k][0], leaf.values[k]) for k in lv.keys)
            if groups and groups[-1][0] == gkey:
                groups[-1][1].append(leaf)
            else:
                groups.append((gkey, [leaf]))
        if lv.aggregate is not None:
            index, kind = lv.aggregate
            tag = self.spec.aggregates[index]
            at = len(keys) + index

            def agg(group: tuple[Any, list[Leaf]]) -> Any:
                values = [sort_value(tag, leaf.values[at]) for leaf in group[1]]
                return max(values) if kind == "max" else min(values)

            groups.sort(key=agg, reverse=kind == "max")
        for gkey, members in groups:
            gpath = (*path, gkey)
            hkey = self._header_ids.get(gpath)
            if hkey is None:
                hkey = b"\x02" + next(self._header_seq).to_bytes(8, "big")
                self._header_ids[gpath] = hkey
            expanded = self._state.get(hkey, level < self.spec.expanded)
            unread = sum(leaf.unread for leaf in members)
            out.append(Header(hkey, level, len(members), unread, members[0], expanded))
            if expanded:
                self._group(members, level + 1, gpath, out)

    def _diff(self, old: list[Entry], modified: set[int]) -> list[dict[str, Any]]:
        if len(old) > 20 * DIFF_LIMIT or len(self.rows) > 20 * DIFF_LIMIT:
            return [{"event": "table_changed"}] if old != self.rows else []
        before = {key_of(e): e for e in old}
        events: list[dict[str, Any]] = []
        after_keys = set()
        prior: bytes | None = None
        for entry in self.rows:
            key = key_of(entry)
            after_keys.add(key)
            was = before.get(key)
            if was is None:
                events.append({"event": "row_added", "instance_key": key, "prior": prior})
            elif was != entry or (isinstance(entry, Leaf) and entry.id in modified):
                events.append({"event": "row_modified", "instance_key": key, "prior": prior})
            prior = key
        for key in before:
            if key not in after_keys:
                events.append({"event": "row_deleted", "instance_key": key, "prior": None})
        if len(events) > DIFF_LIMIT:
            return [{"event": "table_changed"}]
        return events

    # -- positions --------------------------------------------------------------------

    def index(self) -> dict[bytes, int]:
        if self._index is None:
            self._index = {key_of(e): i for i, e in enumerate(self.rows)}
        return self._index

    def _key_at(self, pos: int) -> bytes | None:
        return key_of(self.rows[pos]) if 0 <= pos < len(self.rows) else None

    def _find_pos(self, key: bytes | None, fallback: int) -> int:
        if key is not None:
            found = self.index().get(key)
            if found is not None:
                return found
        return min(fallback, len(self.rows))

    def query(self, count: int, advance: bool = True) -> tuple[list[Entry], int]:
        """QueryRows: count > 0 reads forward from the cursor; count < 0 reads the |count|
        rows before it (and leaves the cursor on the first of them)."""
        if count > 0:
            start, end = self.pos, min(len(self.rows), self.pos + count)
            new = end
        else:
            start, end = max(0, self.pos + count), self.pos
            new = start
        if advance:
            self.pos = new
        return self.rows[start:end], start

    def bookmark_pos(self, bookmark: str) -> int:
        if bookmark == "beginning":
            return 0
        if bookmark == "current":
            return self.pos
        if bookmark == "end":
            return len(self.rows)
        mark = self._bookmarks.get(bookmark)
        if mark is None:
            raise KeyError(bookmark)
        return mark[1]

    def seek(self, bookmark: str, rows: int) -> int:
        """SeekRow: returns the signed number of rows moved."""
        start = self.bookmark_pos(bookmark)
        self.pos = max(0, min(len(self.rows), start + rows))
        return self.pos - start

    def create_bookmark(self) -> str:
        if len(self._bookmarks) >= MAX_BOOKMARKS:
            raise OverflowError(f"at most {MAX_BOOKMARKS} bookmarks per view")
        bid = f"b{next(self._bookmark_seq)}"
        self._bookmarks[bid] = (self._key_at(self.pos), self.pos)
        return bid

    def free_bookmark(self, bid: str) -> bool:
        return self._bookmarks.pop(bid, None) is not None

    async def find(self, restriction: Restriction, bookmark: str, backward: bool) -> int | None:
        """FindRow: the first row from the bookmark (backward: before it) whose object passes."""
        start = self.bookmark_pos(bookmark)
        wanted = await self.source.find(restriction)
        order = range(start - 1, -1, -1) if backward else range(start, len(self.rows))
        for i in order:
            entry = self.rows[i]
            if isinstance(entry, Leaf) and entry.id in wanted:
                self.pos = i
                return i
        return None

    def set_expanded(self, key: bytes, expanded: bool) -> int:
        """Expand or collapse a header; returns how many rows appeared or went away."""
        at = self.index().get(key)
        if at is None or not isinstance(self.rows[at], Header):
            raise KeyError(key)
        before = len(self.rows)
        self._state[key] = expanded
        self.dirty = True
        return before

    async def rebuild_after_toggle(self, before: int) -> int:
        await self.refresh()
        return abs(len(self.rows) - before)
