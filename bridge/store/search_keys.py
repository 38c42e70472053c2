"""Search keys: the rowids of the full-text index (migration 0013).

key = (second of receipt since 2000-01-01, clamped to a signed 32-bit number) * 2^32 + item id

so the index's rowid order is (received second, item id) order: a search walks the matches
newest first (`ORDER BY rowid DESC`) and stops at its page. Within one second the order is
by item id, not by the exact received time; a search sorts the last second of its page
exactly (search_results.py). The item id is the key's low 32 bits (`ITEM_ID_SQL`); items
whose id does not fit in them are not indexed (SQLite hands out ids one by one: that is
four billion items)."""

from __future__ import annotations

ID_BITS = 32
MAX_ITEM_ID = (1 << ID_BITS) - 1
_EPOCH = 12_591_158_400  # 2000-01-01T00:00:00Z in seconds since 1601-01-01 (FILETIME's)
_TICKS = 10_000_000  # FILETIME ticks (100 ns) per second
_LOW, _HIGH = -(1 << 31), (1 << 31) - 1


def item_id_sql(rowid: str) -> str:
    """SQL for the item id of the key `rowid` (an SQL expression)."""
    return f"({rowid} & {MAX_ITEM_ID})"


def key_sql(received: str, item_id: str) -> str:
    """SQL for `key(received, item_id)` of two SQL expressions (integer division truncates
    toward zero in SQLite; the received time is not negative by then, so it floors)."""
    second = f"(max(coalesce({received}, 0), 0) / {_TICKS} - {_EPOCH})"
    return f"(max(min({second}, {_HIGH}), {_LOW}) * {1 << ID_BITS} + {item_id})"


def second_of(received: int | None) -> int:
    """The key's second for a received time (FILETIME ticks; None counts as the earliest)."""
    seconds = max(received or 0, 0) // _TICKS - _EPOCH
    return min(max(seconds, _LOW), _HIGH)


def key(received: int | None, item_id: int) -> int:
    if not 0 <= item_id <= MAX_ITEM_ID:
        raise ValueError(f"item id {item_id} does not fit in a search key")
    return (second_of(received) << ID_BITS) + item_id


def key_second(k: int) -> int:
    """The second part of a key."""
    return k >> ID_BITS


def second_range(second: int) -> tuple[int, int]:
    """The keys of one second: [low, high)."""
    return second << ID_BITS, (second + 1) << ID_BITS
