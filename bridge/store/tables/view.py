"""A stateful table view (IMAPITable): visible rows with header rows for categories, a
cursor, bookmarks, expand/collapse state, and the diff that becomes table notifications.

Rows are identified by instance keys that stay the same while the view is open: a leaf's
key is made of its object id and MVI instance number, a header's of a counter assigned to
its category path the first time the view sees it. After the contents change, the cursor
and the bookmarks are found again by instance key.

A view of up to PAGED_ABOVE leaves keeps its rows in memory (and diffs them into row
notifications). A larger contents view keeps only its shape: the category groups it has
looked into, with their counts, and the expand/collapse state; its rows are read from SQL on
demand, a page at a time (see `Paged`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

from bridge.model.evaluate import sort_value
from bridge.model.restrictions import Comparable, Restriction
from bridge.store.tables.contents import ContentsQuery, Group, Leaf
from bridge.store.tables.spec import ViewSpec

MAX_BOOKMARKS = 256
DIFF_LIMIT = 64  # beyond this many changed rows one table_changed replaces row events
PAGED_ABOVE = 20 * DIFF_LIMIT  # views with more leaves read their rows from SQL on demand
FIND_CHUNK = 500  # rows per read while FindRow walks a paged view


class Source(Protocol):
    """Where a view's rows come from (a folder's contents, the hierarchy, recipients...)."""

    folder_id: int | None
    item_id: int | None

    async def leaves(self, spec: ViewSpec) -> list[Leaf]: ...

    async def props(self, ids: list[int]) -> dict[int, dict[int, Any]]: ...

    async def find(self, restriction: Restriction) -> set[int]: ...


class PagedSource(Source, Protocol):
    """A source that can answer a view from SQL on demand."""

    def paged(self, spec: ViewSpec) -> ContentsQuery | None: ...


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


GPath = tuple[tuple[Any, ...], ...]  # per level, the sort values of its category keys


class View:
    def __init__(self, vid: str, owner: int, source: Source, spec: ViewSpec) -> None:
        self.id = vid
        self.owner = owner
        self.source = source
        self.spec = spec
        self.rows: list[Entry] = []  # in memory (empty while paged)
        self.paged: Paged | None = None
        self.pos = 0
        self.dirty = True
        self.used = 0.0
        self._index: dict[bytes, int] | None = None
        self._header_ids: dict[GPath, bytes] = {}
        self._header_paths: dict[bytes, GPath] = {}
        self._header_seq = itertools.count(1)
        self._state: dict[bytes, bool] = {}  # header key → expanded (overrides)
        self._bookmarks: dict[str, tuple[bytes | None, int]] = {}
        self._bookmark_seq = itertools.count(1)
        self._cursor_key: tuple[int, bytes | None] | None = None  # (pos, key) seen by a read

    @property
    def total(self) -> int:
        return self.paged.total() if self.paged is not None else len(self.rows)

    # -- building ---------------------------------------------------------------------

    async def refresh(self, modified: set[int] | None = None) -> list[dict[str, Any]]:
        """Re-read the rows; returns the table notifications of the change. A paged view
        only notes the change (one `table_changed` until it is read again) and is re-read
        when it is next used."""
        if modified is not None and self.paged is not None:
            if self.dirty:
                return []
            self.dirty = True
            return [{"event": "table_changed"}]
        was_paged = self.paged is not None
        old = self.rows
        if self.paged is not None and self._cursor_key and self._cursor_key[0] == self.pos:
            cursor = self._cursor_key[1]  # the row read there before the change
        else:
            cursor = await self._key_at(self.pos)
        marks = dict(self._bookmarks)
        query = self._query()
        leaves = await query.count() if query is not None else 0
        if query is not None and leaves > PAGED_ABOVE:
            self.paged = Paged(self, query)
            await self.paged.load(leaves)
            self.rows = []
        else:
            self.paged = None
            self.rows = self._build(await self.source.leaves(self.spec))
        self._index = None
        self.dirty = False
        self.pos = await self._find_pos(cursor, self.pos)
        self._bookmarks = {b: (k, await self._find_pos(k, p)) for b, (k, p) in marks.items()}
        if was_paged or self.paged is not None:
            return [{"event": "table_changed"}] if modified is not None else []
        return self._diff(old, modified or set())

    def _query(self) -> ContentsQuery | None:
        paged = getattr(self.source, "paged", None)
        return paged(self.spec) if paged is not None else None

    def header_key(self, gpath: GPath) -> bytes:
        hkey = self._header_ids.get(gpath)
        if hkey is None:
            hkey = b"\x02" + next(self._header_seq).to_bytes(8, "big")
            self._header_ids[gpath] = hkey
            self._header_paths[hkey] = gpath
        return hkey

    def expanded(self, key: bytes, level: int) -> bool:
        return self._state.get(key, level < self.spec.expanded)

    def gkey_of(self, values: tuple[Comparable | None, ...], level: int) -> tuple[Any, ...]:
        """The category key of `level` of a row or group with these sort key values."""
        keys = self.spec.keys
        return tuple(sort_value(keys[k][0], values[k]) for k in self.spec.levels[level].keys)

    def gpath_of(self, values: tuple[Comparable | None, ...], levels: int) -> GPath:
        keys = self.spec.keys
        return tuple(
            tuple(sort_value(keys[k][0], values[k]) for k in lv.keys)
            for lv in self.spec.levels[:levels]
        )

    def _build(self, leaves: list[Leaf]) -> list[Entry]:
        if not self.spec.levels:
            return list(leaves)
        out: list[Entry] = []
        self._group(leaves, 0, (), out)
        return out

    def _group(self, leaves: list[Leaf], level: int, path: GPath, out: list[Entry]) -> None:
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
            hkey = self.header_key(gpath)
            expanded = self.expanded(hkey, level)
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
        """Positions of the rows of an in-memory view by instance key."""
        if self._index is None:
            self._index = {key_of(e): i for i, e in enumerate(self.rows)}
        return self._index

    async def position(self, key: bytes) -> int | None:
        """The position of the row with this instance key, None when it is not shown."""
        if self.paged is not None:
            return await self.paged.position(key)
        return self.index().get(key)

    async def _key_at(self, pos: int) -> bytes | None:
        if not 0 <= pos < self.total:
            return None
        if self.paged is not None:
            entries = await self.paged.slice(pos, pos + 1)
            return key_of(entries[0]) if entries else None
        return key_of(self.rows[pos])

    async def _find_pos(self, key: bytes | None, fallback: int) -> int:
        if key is not None:
            found = await self.position(key)
            if found is not None:
                return found
        return min(fallback, self.total)

    async def entries(self, start: int, end: int) -> list[Entry]:
        """The rows from position `start` up to `end`."""
        if self.paged is not None:
            return await self.paged.slice(start, end)
        return self.rows[start:end]

    async def query(self, count: int, advance: bool = True) -> tuple[list[Entry], int]:
        """QueryRows: count > 0 reads forward from the cursor; count < 0 reads the |count|
        rows before it (and leaves the cursor on the first of them)."""
        if count > 0:
            start, end = self.pos, min(self.total, self.pos + count)
            new = end
        else:
            start, end = max(0, self.pos + count), self.pos
            new = start
        if self.paged is None:
            entries = self.rows[start:end]
        else:
            # One row more, to remember which row the cursor stands on after the read.
            entries = await self.paged.slice(start, end + 1 if count > 0 else end)
            at = new if advance else self.pos
            seen = {start + i: key_of(e) for i, e in enumerate(entries)}
            if at in seen or at == self.total:
                self._cursor_key = (at, seen.get(at))
            entries = entries[: end - start]
        if advance:
            self.pos = new
        return entries, start

    def bookmark_pos(self, bookmark: str) -> int:
        if bookmark == "beginning":
            return 0
        if bookmark == "current":
            return self.pos
        if bookmark == "end":
            return self.total
        mark = self._bookmarks.get(bookmark)
        if mark is None:
            raise KeyError(bookmark)
        return mark[1]

    def seek(self, bookmark: str, rows: int) -> int:
        """SeekRow: returns the signed number of rows moved."""
        start = self.bookmark_pos(bookmark)
        self.pos = max(0, min(self.total, start + rows))
        return self.pos - start

    async def create_bookmark(self) -> str:
        if len(self._bookmarks) >= MAX_BOOKMARKS:
            raise OverflowError(f"at most {MAX_BOOKMARKS} bookmarks per view")
        bid = f"b{next(self._bookmark_seq)}"
        self._bookmarks[bid] = (await self._key_at(self.pos), self.pos)
        return bid

    def free_bookmark(self, bid: str) -> bool:
        return self._bookmarks.pop(bid, None) is not None

    async def find(self, restriction: Restriction, bookmark: str, backward: bool) -> int | None:
        """FindRow: the first row from the bookmark (backward: before it) whose object passes."""
        start = self.bookmark_pos(bookmark)
        wanted = await self.source.find(restriction)
        if self.paged is None:
            order = range(start - 1, -1, -1) if backward else range(start, len(self.rows))
            for i in order:
                entry = self.rows[i]
                if isinstance(entry, Leaf) and entry.id in wanted:
                    self.pos = i
                    return i
            return None
        if not wanted:
            return None
        total = self.total
        at = start
        while (at > 0) if backward else (at < total):
            lo, hi = (
                (max(0, at - FIND_CHUNK), at) if backward else (at, min(total, at + FIND_CHUNK))
            )
            chunk = list(enumerate(await self.paged.slice(lo, hi), lo))
            for i, entry in reversed(chunk) if backward else chunk:
                if isinstance(entry, Leaf) and entry.id in wanted:
                    self.pos = i
                    return i
            at = lo if backward else hi
        return None

    async def set_expanded(self, key: bytes, expanded: bool) -> int:
        """Expand or collapse a header; returns the number of rows before (the argument of
        `rebuild_after_toggle`)."""
        if self.paged is not None:
            if key not in self._header_paths or await self.paged.position(key) is None:
                raise KeyError(key)
            before = self.total
            self._state[key] = expanded
            await self.paged.toggled()
            return before
        at = self.index().get(key)
        if at is None or not isinstance(self.rows[at], Header):
            raise KeyError(key)
        before = len(self.rows)
        self._state[key] = expanded
        self.dirty = True
        return before

    async def rebuild_after_toggle(self, before: int) -> int:
        """How many rows appeared or went away."""
        if self.paged is None:
            await self.refresh()
        return abs(self.total - before)


@dataclass(eq=False, slots=True)
class Node:
    """A category group of a paged view, and the groups below it once looked into. Its
    category path and header key are worked out when first needed (a group can have
    thousands of groups below it, of which a page shows a few)."""

    group: Group
    level: int
    parent: GPath
    view: View
    children: Sequence[Node] | None = None
    size: tuple[int, int] | None = None  # (generation, rows shown), cached
    unread: int | None = None
    first: Leaf | None = None
    _gpath: GPath | None = None
    _key: bytes | None = None

    @property
    def gpath(self) -> GPath:
        if self._gpath is None:
            self._gpath = (*self.parent, self.view.gkey_of(self.group.values, self.level))
        return self._gpath

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = self.view.header_key(self.gpath)
        return self._key


class LazyNodes(Sequence[Node]):
    """The nodes of groups of the last level, made when first read."""

    def __init__(self, groups: Sequence[Group], level: int, parent: GPath, view: View) -> None:
        self.groups = groups
        self.level = level
        self.parent = parent
        self.view = view
        self.made: list[Node | None] = [None] * len(groups)

    def __len__(self) -> int:
        return len(self.groups)

    @overload
    def __getitem__(self, index: int) -> Node: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Node]: ...

    def __getitem__(self, index: int | slice) -> Node | Sequence[Node]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.groups)))]
        node = self.made[index]
        if node is None:
            group = self.groups[index]
            node = Node(group, self.level, self.parent, self.view, unread=group.unread)
            self.made[index] = node
        return node


class Paged:
    """The rows of a large view, read from SQL on demand.

    Without categories a page is one indexed query with LIMIT/OFFSET and the total is the
    folder's item count (or one COUNT). With categories the view holds the groups of level 0
    (one GROUP BY) and, for each group it has looked into, the groups below it; the number
    of rows a group shows comes from these counts and the expand/collapse state, so that a
    position maps to a group and an offset inside it without reading any leaf before it.
    Counts of unread items and the first leaf of a header are read when the header is."""

    def __init__(self, view: View, query: ContentsQuery) -> None:
        self.view = view
        self.query = query
        self.depth = len(view.spec.levels)
        self.leaves = 0
        self.top: Sequence[Node] = []
        self._generation = 0
        self._overridden: tuple[int, set[GPath]] | None = None

    async def load(self, leaves: int) -> None:
        self.leaves = leaves
        if self.depth:
            self.top = await self._nodes(0, (), ())

    async def toggled(self) -> None:
        self._generation += 1

    def total(self) -> int:
        if not self.depth:
            return self.leaves
        return sum(self._size(n) for n in self.top)

    async def _nodes(
        self, level: int, path: tuple[Comparable | None, ...], gpath: GPath
    ) -> Sequence[Node]:
        """The groups of `level` inside the group `path`, with the children of those under
        which a header was expanded or collapsed (so that their sizes are known)."""
        view = self.view
        groups = await self.query.groups(level, path)
        if level + 1 == self.depth:
            return LazyNodes(groups, level, gpath, view)
        nodes = []
        overridden = self.overridden()
        for group in groups:
            node = Node(group, level, gpath, view, unread=group.unread)
            if level + 1 < self.depth and overridden and self._under_override(node):
                node.children = await self._nodes(level + 1, group.values, node.gpath)
            nodes.append(node)
        return nodes

    def overridden(self) -> set[GPath]:
        """The category paths of the headers expanded or collapsed by the client."""
        if self._overridden is None or self._overridden[0] != self._generation:
            view = self.view
            paths = {view._header_paths[k] for k in view._state if k in view._header_paths}
            self._overridden = (self._generation, paths)
        return self._overridden[1]

    def _under_override(self, node: Node) -> bool:
        """Whether a header below the node was expanded or collapsed by the client."""
        overridden = self.overridden()
        if not overridden:
            return False
        g = node.gpath
        return any(len(o) > len(g) and o[: len(g)] == g for o in overridden)

    async def _children(self, node: Node) -> Sequence[Node]:
        if node.children is None:
            node.children = await self._nodes(node.level + 1, node.group.values, node.gpath)
        return node.children

    def _size(self, node: Node) -> int:
        """Rows the group shows: its header and, when expanded, what is below it."""
        if node.size is not None and node.size[0] == self._generation:
            return node.size[1]
        size = 1
        if self.view.expanded(node.key, node.level):
            if node.level == self.depth - 1:
                size += node.group.count
            elif node.children is not None and self._under_override(node):
                size += sum(self._size(c) for c in node.children)
            else:
                size += node.group.below
        node.size = (self._generation, size)
        return size

    async def _header(self, node: Node) -> Header:
        path = node.group.values
        if node.unread is None:
            node.unread = await self.query.unread(path)
        if node.first is None:
            node.first = (await self.query.page(0, 1, path))[0]
        expanded = self.view.expanded(node.key, node.level)
        return Header(node.key, node.level, node.group.count, node.unread, node.first, expanded)

    async def slice(self, start: int, end: int) -> list[Entry]:
        """The rows from position `start` up to `end`."""
        if end <= start:
            return []
        if not self.depth:
            return list(await self.query.page(start, end - start))
        out: list[Entry] = []
        await self._emit(self.top, 0, start, end, out)
        return out

    async def _emit(
        self, nodes: Sequence[Node], offset: int, start: int, end: int, out: list[Entry]
    ) -> None:
        pos = offset
        for i, node in enumerate(nodes):
            if pos >= end:
                return
            size = self._size(node)
            if pos + size > start:
                if node.first is None and node.group.first_id is not None:
                    await self._prefetch(nodes[i : i + end - max(pos, start)])
                if pos >= start:
                    out.append(await self._header(node))
                body = pos + 1
                if size > 1 and node.level == self.depth - 1:
                    lo, hi = max(start, body) - body, min(end, pos + size) - body
                    first = node.first if node.group.count == 1 else None
                    if hi > lo and lo == 0 and hi == 1 and first is not None:
                        out.append(first)
                    elif hi > lo:
                        out.extend(await self.query.page(lo, hi - lo, node.group.values))
                elif size > 1:
                    await self._emit(await self._children(node), body, start, end, out)
            pos += size

    async def _prefetch(self, nodes: Sequence[Node]) -> None:
        """The first leaves (and, for groups of one leaf, the unread counts) of the groups of
        the last level that a page is about to show, in one query."""
        todo = [n.group for n in nodes if n.first is None and n.group.first_id is not None]
        found = await self.query.first_leaves(todo)
        for node in nodes:
            first = found.get(node.group.first_id or 0)
            if node.first is None and first is not None:
                node.first = first
                if node.unread is None and node.group.count == 1:
                    node.unread = int(first.unread)

    async def _walk(self, gpath: GPath) -> tuple[int, Node] | None:
        """The position of the header of the group `gpath` and its node; None when the
        group is not there or not shown (a group above it is collapsed)."""
        pos = 0
        nodes = self.top
        for level, gkey in enumerate(gpath):
            for node in nodes:
                if node.gpath[level] == gkey:
                    break
                pos += self._size(node)
            else:
                return None
            if level == len(gpath) - 1:
                return pos, node
            if not self.view.expanded(node.key, node.level):
                return None
            pos += 1
            nodes = await self._children(node)
        return None

    async def position(self, key: bytes) -> int | None:
        view = self.view
        if key[:1] == b"\x02":
            gpath = view._header_paths.get(key)
            found = await self._walk(gpath) if gpath is not None else None
            return found[0] if found is not None else None
        item_id = int.from_bytes(key[1:9], "big")
        values = await self.query.values_of(item_id)
        if values is None:
            return None
        if not self.depth:
            return await self.query.rank(values, item_id)
        found = await self._walk(view.gpath_of(values, self.depth))
        if found is None or not view.expanded(found[1].key, found[1].level):
            return None
        pos, node = found
        return pos + 1 + await self.query.rank(values, item_id, node.group.values)
