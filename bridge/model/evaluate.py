"""The reference evaluator: restrictions and sort orders in plain Python, straight from the
MAPI semantics of MAPI.md §2. The SQL compiler of the table engine must agree with it.

Semantics (the bridge's choices where MAPI leaves room, documented in docs/tables.md):
- a property absent from a row makes every test on it false, except `exist` (and `not`);
- a test on a multi-valued property is true when any of its values passes;
- values compare as SQLite does: numbers < text < binary, within a class by value;
- `property`, `compare` and sort orders compare strings ASCII-case-insensitively (SQLite's
  NOCASE, gromox's strcasecmp); `content` is case-sensitive unless `ignore_case` or `loose`,
  which fold case fully (Unicode case folding);
- sorting: absent values first in ascending order, last in descending order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.model.proptypes import MV_INSTANCE, base_type, is_multi, prop_type
from bridge.model.restrictions import (
    STRING_TYPES,
    And,
    Bitmask,
    Comment,
    Comparable,
    Compare,
    Content,
    Count,
    Exist,
    Not,
    Or,
    Property,
    Restriction,
    Size,
    Sub,
    comparable,
    value_size,
)

_NOCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def nocase(text: str) -> str:
    """SQLite's NOCASE folding: ASCII letters only."""
    return text.translate(_NOCASE)


@dataclass(slots=True)
class Row:
    """One object as the evaluator sees it: JSON values by tag, plus sub-object rows."""

    props: Mapping[int, Any]
    recipients: Sequence[Mapping[int, Any]] = field(default_factory=list)
    attachments: Sequence[Mapping[int, Any]] = field(default_factory=list)


def values_of(props: Mapping[int, Any], tag: int) -> list[Comparable] | None:
    """The comparable values of a property (one for a single-valued one), None if absent.
    An MVI tag (type | 0x3000) reads the multi-valued property."""
    tag &= ~MV_INSTANCE
    raw = props.get(tag)
    if raw is None:
        return None
    ptype = prop_type(tag)
    if is_multi(ptype):
        if not isinstance(raw, list):
            return None
        return [comparable(ptype, v) for v in raw]
    return [comparable(ptype, raw)]


def rank(value: Comparable) -> tuple[int, Comparable]:
    """SQLite's order of storage classes: numbers, then text, then blobs."""
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, bytes):
        return (3, value)
    return (1, value)


def relop(a: Comparable, op: str, b: Comparable) -> bool:
    ka, kb = rank(a), rank(b)
    if op == "eq":
        return ka == kb
    if op == "ne":
        return ka != kb
    if op == "lt":
        return ka < kb
    if op == "le":
        return ka <= kb
    if op == "gt":
        return ka > kb
    return ka >= kb


def _fold_for_relop(tag: int, value: Comparable) -> Comparable:
    if isinstance(value, str) and base_type(prop_type(tag)) in STRING_TYPES:
        return nocase(value)
    return value


def _content(r: Content, value: Comparable) -> bool:
    needle: str | bytes = r.value
    hay = value
    if isinstance(hay, str) and isinstance(needle, str):
        if r.ignore_case or r.loose:
            hay, needle = hay.casefold(), needle.casefold()
        return _match_text(hay, needle, r.match)
    if isinstance(hay, bytes) and isinstance(needle, bytes):
        if r.match == "full":
            return hay == needle
        if r.match == "prefix":
            return hay.startswith(needle)
        return needle in hay
    return False


def _match_text(hay: str, needle: str, match: str) -> bool:
    if match == "full":
        return hay == needle
    if match == "prefix":
        return hay.startswith(needle)
    return needle in hay


def matches(r: Restriction, row: Row) -> bool:
    """Whether a row passes a restriction (a top-level `count` passes its sub-restriction;
    the limit is applied by `restrict`)."""
    if isinstance(r, And):
        return all(matches(c, row) for c in r.children)
    if isinstance(r, Or):
        return any(matches(c, row) for c in r.children)
    if isinstance(r, Not):
        return not matches(r.child, row)
    if isinstance(r, Comment):
        return True if r.child is None else matches(r.child, row)
    if isinstance(r, Count):
        return matches(r.child, row)
    if isinstance(r, Sub):
        rows = row.recipients if r.object == "recipients" else row.attachments
        return any(matches(r.child, Row(sub)) for sub in rows)
    if isinstance(r, Exist):
        return row.props.get(r.tag & ~MV_INSTANCE) is not None
    if isinstance(r, Compare):
        a, b = values_of(row.props, r.tag1), values_of(row.props, r.tag2)
        if a is None or b is None:
            return False
        return relop(_fold_for_relop(r.tag1, a[0]), r.op, _fold_for_relop(r.tag2, b[0]))
    values = values_of(row.props, r.tag)
    if values is None:
        return False
    if isinstance(r, Content):
        return any(_content(r, v) for v in values)
    if isinstance(r, Property):
        want = _fold_for_relop(r.tag, r.value)
        return any(relop(_fold_for_relop(r.tag, v), r.op, want) for v in values)
    if isinstance(r, Bitmask):
        return any(isinstance(v, int) and bool(v & r.mask) == r.nonzero for v in values)
    assert isinstance(r, Size)
    ptype = prop_type(r.tag)
    return any(relop(value_size(ptype, v), r.op, r.size) for v in values)


def limit_of(r: Restriction | None) -> int | None:
    """The row limit of a top-level `count` restriction."""
    return r.max if isinstance(r, Count) else None


# -- sort orders ---------------------------------------------------------------------------


class _Desc:
    """Reverses the order of a key inside a tuple."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: _Desc) -> bool:
        return bool(other.key > self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def sort_value(tag: int, value: Comparable | None) -> tuple[Any, ...]:
    """The key of one sort column: absent first, then by storage class and value (strings
    ASCII-case-insensitively)."""
    if value is None:
        return (0,)
    return (1, *rank(_fold_for_relop(tag, value)))


def sort_key(
    values: Sequence[Comparable | None],
    keys: Sequence[tuple[int, bool]],
    row_id: int,
    inst: int = 0,
) -> tuple[Any, ...]:
    """The total order of rows: the sort columns, then the row id (in the direction of the
    last column), then the MVI instance number."""
    parts: list[Any] = []
    for value, (tag, desc) in zip(values, keys, strict=True):
        key = sort_value(tag, value)
        parts.append(_Desc(key) if desc else key)
    last_desc = bool(keys) and keys[-1][1]
    parts.append(-row_id if last_desc else row_id)
    parts.append(inst)
    return tuple(parts)


def first_value(props: Mapping[int, Any], tag: int) -> Comparable | None:
    values = values_of(props, tag)
    return values[0] if values else None


def restrict_and_sort(
    rows: Mapping[int, Row],
    restriction: Restriction | None,
    keys: Sequence[tuple[int, bool]],
) -> list[int]:
    """Ids of the rows that pass, in sort order (non-MVI sort keys), limited by a top-level
    `count`."""
    passing = [rid for rid, row in rows.items() if restriction is None or matches(restriction, row)]
    passing.sort(
        key=lambda rid: sort_key([first_value(rows[rid].props, t) for t, _ in keys], keys, rid)
    )
    limit = limit_of(restriction)
    return passing if limit is None else passing[:limit]


def describe(r: Restriction) -> str:
    """A short text form for logs."""
    return json.dumps(repr(r))[1:-1][:300]
